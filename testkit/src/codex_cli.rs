//! Finding, configuring and isolating the real Codex CLI for tests.
//!
//! Codex 0.169 ignores `OPENAI_BASE_URL` for its built-in provider, so tests define their own
//! provider pointing at [`crate::ModelServer::openai_url`]; see [`provider_config`].

use std::path::{Path, PathBuf};
use std::process::Command;

/// The model tests ask for. It is in Codex's built-in model catalogue: an unknown name works
/// too, but makes the CLI print an `error` item ("Model metadata for `x` not found").
pub const MODEL: &str = "gpt-5.5";

/// The provider id tests define, and the variable its bearer token is read from.
pub const PROVIDER: &str = "murmur_testkit";
pub const API_KEY_VAR: &str = "MURMUR_TESTKIT_OPENAI_KEY";
pub const API_KEY: &str = "test-key";

/// Config overrides that keep the CLI off every host but the scripted server, and make a
/// failed connection final.
///
/// Without `features.plugins=false` the CLI runs `git ls-remote
/// https://github.com/openai/plugins.git` and resolves `api.github.com` and `chatgpt.com`;
/// without `analytics.enabled=false` it resolves `ab.chatgpt.com`. With both, `strace`
/// shows connections to the scripted server only. `features.unbounded_connection_retries`
/// is on by default and makes an unreachable server an endless `Reconnecting...` loop (5 s,
/// 10 s, 20 s, ... apart) whatever the provider's retry settings say.
pub const QUIET_CONFIG: &[&str] = &[
    "features.plugins=false",
    "analytics.enabled=false",
    "features.unbounded_connection_retries=false",
    "check_for_update_on_startup=false",
];

/// Path of `node_modules/.bin/codex` in the repository root.
///
/// # Panics
/// When the CLI is not installed: tests that need it must fail, not skip, so a missing
/// `npm install` never passes as green.
pub fn codex_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/.bin/codex");
    assert!(
        bin.exists(),
        "Codex CLI not found at {}: run npm install in the repository root",
        bin.display()
    );
    bin
}

/// The `-c` values (without the `-c`) that point the CLI at `base_url` (a Responses API root
/// such as [`crate::ModelServer::openai_url`]) with retries off, plus [`QUIET_CONFIG`].
pub fn provider_config(base_url: &str) -> Vec<String> {
    let provider = format!(
        "model_providers.{PROVIDER}={{name=\"{PROVIDER}\",base_url=\"{base_url}\",\
         wire_api=\"responses\",env_key=\"{API_KEY_VAR}\",\
         request_max_retries=0,stream_max_retries=0}}"
    );
    let mut config = vec![format!("model_provider={PROVIDER}"), provider];
    config.extend(QUIET_CONFIG.iter().map(|c| (*c).to_owned()));
    config
}

/// [`provider_config`] as command-line arguments: `-c`, value, `-c`, value, ...
pub fn config_args(base_url: &str) -> Vec<String> {
    provider_config(base_url)
        .into_iter()
        .flat_map(|value| ["-c".to_owned(), value])
        .collect()
}

/// The environment that isolates the CLI in `home`: `HOME`, `CODEX_HOME` (`home/.codex`;
/// sessions go to `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl`),
/// `TMPDIR` (`home/tmp`) and the provider's key. Both directories are created here.
///
/// `TMPDIR` must not contain `CODEX_HOME`: the CLI then refuses to install its helper
/// commands ("WARNING: proceeding, even though we could not create PATH aliases: Refusing to
/// create helper binaries under temporary dir") and says so on stderr on every run.
pub fn codex_env(home: &Path) -> Vec<(String, String)> {
    let codex_home = home.join(".codex");
    let tmp = home.join("tmp");
    for dir in [&codex_home, &tmp] {
        std::fs::create_dir_all(dir).expect("create CODEX_HOME and TMPDIR");
    }
    let path = |p: &Path| p.display().to_string();
    vec![
        ("HOME".to_owned(), path(home)),
        ("CODEX_HOME".to_owned(), path(&codex_home)),
        ("TMPDIR".to_owned(), path(&tmp)),
        (API_KEY_VAR.to_owned(), API_KEY.to_owned()),
    ]
}

/// A `codex` command with [`codex_env`] and no other inherited variable but `PATH` (its shell
/// tool needs it). Arguments, including [`config_args`], are the caller's.
pub fn codex_command(home: &Path) -> Command {
    let mut cmd = Command::new(codex_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(codex_env(home));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_args_pair_every_value_with_a_flag() {
        let args = config_args("http://127.0.0.1:1/v1");
        assert_eq!(args.len(), 2 * (2 + QUIET_CONFIG.len()));
        assert!(args.iter().step_by(2).all(|a| a == "-c"));
        assert_eq!(args[1], format!("model_provider={PROVIDER}"));
        assert!(
            args[3].contains("base_url=\"http://127.0.0.1:1/v1\""),
            "{}",
            args[3]
        );
    }
}
