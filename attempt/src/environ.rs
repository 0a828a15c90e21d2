//! What an agent's process finds in its environment. Nothing of the machine's own
//! environment comes along wholesale (an engine's or a worker's keys, database URLs and tokens
//! live there): only a documented base, the names the workspace passes (`environment.pass`),
//! the variables the agent's coding CLI reads its credentials and switches from, the
//! variables the workspace sets, the run's `MURMUR_*` context and, last so they win, the
//! attempt's secrets.

use murmur_protocol::{AttemptSpec, CheckSpec, Reviewer, RuntimeSpec};

use crate::Settings;

/// What every agent keeps of the machine's environment: what a shell and the tools in it need
/// to find programs, a home, a language and a scratch folder (docs/configuration.md).
pub const BASE: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TMPDIR", "TZ",
];

/// Prefixes of the base: the locale's categories (`LC_ALL`, `LC_CTYPE`, …).
const BASE_PREFIXES: &[&str] = &["LC_"];

/// What Claude Code reads its endpoint, key and switches from.
const CLAUDE_PREFIXES: &[&str] = &["ANTHROPIC_", "CLAUDE_", "DISABLE_"];

/// What Codex reads its key, endpoint and home from.
const CODEX_PREFIXES: &[&str] = &["OPENAI_", "CODEX_"];

/// The machine's variables this agent keeps: the base, then the passed names, then its
/// runtime's credentials.
pub fn kept(
    machine: impl Iterator<Item = (String, String)>,
    runtime: &RuntimeSpec,
    pass: &[String],
    settings: &Settings,
) -> Vec<(String, String)> {
    let (prefixes, names) = runtime_credentials(runtime, settings);
    machine
        .filter(|(name, _)| {
            BASE.contains(&name.as_str())
                || BASE_PREFIXES.iter().any(|p| name.starts_with(p))
                || pass.iter().any(|passed| passed == name)
                || prefixes.iter().any(|p| name.starts_with(p))
                || names.iter().any(|n| n == name)
        })
        .collect()
}

/// What a process running as `runtime` keeps of this machine's own environment ([`kept`]).
pub fn kept_here(
    runtime: &RuntimeSpec,
    pass: &[String],
    settings: &Settings,
) -> Vec<(String, String)> {
    let machine = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    kept(machine, runtime, pass, settings)
}

/// What an attempt's process starts from: what it keeps of this machine's environment
/// ([`kept_here`]), then the variables its spec sets (`EnvironmentSpec::variables`), which
/// win over the machine's. The run's context and the secrets come after, and win over both.
pub fn of_attempt(spec: &AttemptSpec, settings: &Settings) -> Vec<(String, String)> {
    let mut env = kept_here(&spec.runtime, &spec.environment.pass, settings);
    let variables = &spec.environment.variables;
    env.retain(|(name, _)| !variables.iter().any(|(set, _)| set == name));
    env.extend(variables.iter().cloned());
    env
}

/// The prefixes and names a coding agent's CLI reads its credentials from; none for `exec`.
fn runtime_credentials(
    runtime: &RuntimeSpec,
    settings: &Settings,
) -> (&'static [&'static str], Vec<String>) {
    match runtime {
        RuntimeSpec::Exec(_) | RuntimeSpec::Check(CheckSpec::Ci { .. }) => (&[], Vec::new()),
        RuntimeSpec::Claude(_)
        | RuntimeSpec::Check(CheckSpec::Review {
            reviewer: Reviewer::Claude(_),
            ..
        }) => (CLAUDE_PREFIXES, Vec::new()),
        // A model provider configured in `runtimes.codex.config` names the variable its key
        // is in (`env_key`): without it the provider could not authenticate.
        RuntimeSpec::Codex(_)
        | RuntimeSpec::Check(CheckSpec::Review {
            reviewer: Reviewer::Codex(_),
            ..
        }) => (
            CODEX_PREFIXES,
            settings
                .codex
                .config
                .iter()
                .flat_map(|c| env_keys(c))
                .collect(),
        ),
    }
}

/// The values of `env_key = "NAME"` in one `-c` setting.
fn env_keys(setting: &str) -> Vec<String> {
    setting
        .match_indices("env_key")
        .filter_map(|(at, key)| {
            let rest = setting[at + key.len()..].trim_start().strip_prefix('=')?;
            let rest = rest.trim_start().trim_start_matches(['"', '\'']);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use murmur_protocol::{CodingSpec, ExecSpec};

    fn machine() -> Vec<(String, String)> {
        [
            ("PATH", "/bin"),
            ("LC_ALL", "C"),
            ("MURMUR_KEK", "kek"),
            ("DATABASE_URL", "postgres://"),
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
            ("PROVIDER_KEY", "p"),
            ("HTTPS_PROXY", "proxy"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn names(kept: Vec<(String, String)>) -> Vec<String> {
        kept.into_iter().map(|(name, _)| name).collect()
    }

    fn coding() -> CodingSpec {
        CodingSpec {
            model: None,
            system_prompt: None,
            allowed_tools: Vec::new(),
            resume: None,
            idle_timeout_secs: 1,
        }
    }

    #[test]
    fn an_exec_agent_keeps_the_base_and_what_is_passed() {
        let exec = RuntimeSpec::Exec(ExecSpec {
            script: Ok(String::new()),
            script_env: Vec::new(),
        });
        let pass = vec!["HTTPS_PROXY".to_owned()];
        let kept = kept(machine().into_iter(), &exec, &pass, &Settings::default());
        assert_eq!(names(kept), ["PATH", "LC_ALL", "HTTPS_PROXY"]);
    }

    #[test]
    fn coding_agents_keep_their_own_cli_credentials_only() {
        let settings = Settings::default();
        let claude = kept(
            machine().into_iter(),
            &RuntimeSpec::Claude(coding()),
            &[],
            &settings,
        );
        assert_eq!(names(claude), ["PATH", "LC_ALL", "ANTHROPIC_API_KEY"]);
        let mut settings = Settings::default();
        settings.codex.config = vec![
            "model_providers.x={name=\"x\",env_key=\"PROVIDER_KEY\",wire_api=\"responses\"}"
                .to_owned(),
        ];
        let codex = kept(
            machine().into_iter(),
            &RuntimeSpec::Codex(coding()),
            &[],
            &settings,
        );
        assert_eq!(
            names(codex),
            ["PATH", "LC_ALL", "OPENAI_API_KEY", "PROVIDER_KEY"]
        );
    }

    #[test]
    fn env_key_is_read_in_every_spelling() {
        assert_eq!(env_keys("a.env_key = 'K_1'"), ["K_1"]);
        assert_eq!(env_keys("env_key=K2,x.env_key=\"K3\""), ["K2", "K3"]);
        assert!(env_keys("env_key=").is_empty());
        assert!(env_keys("no key here").is_empty());
    }
}
