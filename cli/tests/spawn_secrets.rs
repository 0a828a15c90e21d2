//! `murmur spawn -e NAME`: one agent gets a secret for its lifetime only. Top-level, the
//! developer gives it to `lead`; inside `lead`, `murmur spawn given -e NAME` passes it on to
//! one child while its sibling does not get it, and a secret the lead does not have cannot be
//! passed on. The value, sealed to the machine like `secrets:`, is then looked for where it
//! must not be: the store (the SQLite file and its WAL, or a `pg_dump` of PostgreSQL), `.murmur/`
//! (worktrees, logs), answers and logs. On SQLite and PostgreSQL.

mod support;
use support::described as text;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::db::Backend;
use support::fixture::Fixture;

const BIN: &str = env!("CARGO_BIN_EXE_murmur");
const MARKER: &str = "marker-5be0c7a1-given-to-one-child";
/// The lead and two children at once.
const SLOTS: &str = "pools:\n  local:\n    max_vms: 4\n";

/// The store in `MURMUR_DATABASE_URL`: a `--db` after `murmur spawn`'s prompt would be prompt.
fn murmur(fixture: &Fixture, keys: &Path, args: &[&str]) -> Command {
    let mut command = support::murmur(fixture.repo());
    command
        .args(args)
        .env("MURMUR_DATABASE_URL", fixture.db_url())
        .env_remove("MURMUR_KEK")
        .env_remove("MURMUR_KEK_PREVIOUS")
        .env("MURMUR_KEY_FILE", keys)
        .env("NO_COLOR", "1");
    command
}

/// `command` run with `stdin`.
fn output(mut command: Command, stdin: &str) -> Output {
    support::with_stdin(&mut command, stdin)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

const LEAD: &str = "set -e
BIN spawn given -e DEPLOY_TOKEN --runtime exec 'printf %s \"$DEPLOY_TOKEN\" | sha256sum | cut -c1-64; echo \"value $DEPLOY_TOKEN\"' >/dev/null
BIN spawn sibling --runtime exec 'echo \"sibling=${DEPLOY_TOKEN:-unset}\"' >/dev/null
refused=$(BIN spawn thief -e OTHER_TOKEN --runtime exec 'echo no' 2>&1 || true)
g=$(BIN wait given | paste -sd' ' -)
s=$(BIN wait sibling)
echo \"lead=${DEPLOY_TOKEN:+has-it} given=[$g] $s refused=[$refused]\"
";

fn a_secret_given_with_spawn_e_reaches_that_child_only_and_rests_nowhere(backend: &Backend) {
    let fixture = Fixture::with_history(backend, "spawn_secrets");
    fixture.write_config(SLOTS);
    let dir = &fixture;
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    let set = output(
        murmur(dir, &keys, &["secret", "set", "DEPLOY_TOKEN"]),
        &format!("{MARKER}\n"),
    );
    assert!(set.status.success(), "{}", text(&set));
    let script = keys_dir.path().join("lead.sh");
    std::fs::write(&script, LEAD.replace("BIN", BIN)).expect("script");

    let unknown = output(
        murmur(
            dir,
            &keys,
            &["spawn", "lead", "-e", "NOPE", "--runtime", "exec", "true"],
        ),
        "",
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("there is no secret `NOPE`"),
        "{}",
        text(&unknown)
    );

    let command = format!("sh {}", script.display());
    let args = [
        "spawn",
        "lead",
        "-e",
        "DEPLOY_TOKEN",
        "--runtime",
        "exec",
        &command,
    ];
    let spawned = output(murmur(dir, &keys, &args), "");
    assert_eq!(spawned.status.code(), Some(0), "{}", text(&spawned));

    let runs = json(&output(murmur(dir, &keys, &["runs", "ls", "--json"]), ""));
    let runs = runs.as_array().cloned().unwrap_or_default();
    assert_eq!(
        runs.len(),
        3,
        "lead, given and sibling; the refused spawn recorded nothing: {runs:?}"
    );
    let lead_run = runs
        .iter()
        .find(|run| run["flight"] == "lead")
        .expect("the lead's run");
    let shown = |run: &Value| {
        let id = run["id"].as_str().expect("id");
        json(&output(
            murmur(dir, &keys, &["runs", "show", id, "--json"]),
            "",
        ))
    };
    let lead = shown(lead_run);
    let hash = hex::encode(Sha256::digest(MARKER.as_bytes()));
    let answer = lead["agents"][0]["response"].as_str().unwrap_or_default();
    assert!(
        answer.starts_with(&format!(
            "lead=has-it given=[{hash} value ***] sibling=unset refused=[error: `OTHER_TOKEN` is not a secret this agent has"
        )),
        "{answer}"
    );
    for run in &runs {
        let id = run["id"].as_str().expect("id");
        let logs = output(murmur(dir, &keys, &["runs", "logs", id]), "");
        for answer in [shown(run).to_string(), text(&logs)] {
            assert!(
                !answer.contains(MARKER),
                "the marker in an answer:\n{answer}"
            );
        }
    }
    let files = support::marker::files_holding(fixture.repo(), MARKER);
    assert!(files.is_empty(), "the marker in {files:?}");
    if let Backend::Postgres(_) = backend {
        let dump = Command::new("pg_dump")
            .arg(fixture.db_url())
            .output()
            .expect("pg_dump runs");
        assert!(dump.status.success(), "{}", text(&dump));
        let dumped = String::from_utf8_lossy(&dump.stdout);
        assert!(dumped.contains("run_secrets"), "pg_dump dumped the store");
        assert!(
            !dumped.contains(MARKER),
            "the marker in the PostgreSQL store"
        );
    }
}

every_backend!(a_secret_given_with_spawn_e_reaches_that_child_only_and_rests_nowhere);
