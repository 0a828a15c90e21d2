//! `murmur setup` with the real binary: the keys come from the environment and from standard
//! input (not a terminal: one line each, an empty line skips one), land sealed in
//! `.murmur/murmur.local.yaml` (0600, gitignored, no value in it), and reach an `exec` agent
//! as environment variables, masked in its output. A profile of another tenant, one renamed
//! into this tenant and one changed in a byte stop the run with a clear error.

mod support;
use support::{described as text, with_stdin as run};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use support::db::Backend;
use support::fixture::Fixture;

const ANTHROPIC: &str = "sk-ant-setup-marker-51c0";
const GITHUB: &str = "ghp-setup-marker-7a9e";

fn murmur(fixture: &Fixture, keys: &Path, args: &[&str]) -> Command {
    let mut command = fixture.command(args);
    command
        .env_remove("MURMUR_KEK")
        .env_remove("MURMUR_KEK_PREVIOUS")
        .env_remove("OPENAI_API_KEY")
        .env_remove("GITHUB_TOKEN")
        .env_remove("ANTHROPIC_API_KEY")
        .env("MURMUR_KEY_FILE", keys);
    command
}

/// `murmur setup` with the Anthropic key in its environment and the other two on stdin.
fn setup(fixture: &Fixture, keys: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["setup", "--developer", "ada@example.com"];
    args.extend_from_slice(extra);
    let mut command = murmur(fixture, keys, &args);
    command.env("ANTHROPIC_API_KEY", ANTHROPIC);
    // OpenAI skipped (an empty line), then the GitHub token.
    run(&mut command, &format!("\n{GITHUB}\n"))
}

fn write_flight(fixture: &Fixture) {
    let script = "printf '%s' \"$ANTHROPIC_API_KEY\" | sha256sum; \
                  echo \"github $GITHUB_TOKEN openai=${OPENAI_API_KEY:-unset}\"";
    fixture.write_flight(
        "keys",
        &format!("---\nruntime: exec\n---\n# Keys\n\n## show\n> command: {script}\n"),
    );
}

/// Runs the flight to its end; the run's id and its log lines.
fn run_flight(fixture: &Fixture, keys: &Path) -> Result<(String, String), String> {
    let started = murmur(fixture, keys, &["flight", "run", "keys", "--detach"])
        .output()
        .expect("murmur runs");
    if !started.status.success() {
        return Err(text(&started));
    }
    let run_id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let waited = murmur(fixture, keys, &["wait", &format!("{run_id}/show")])
        .output()
        .expect("murmur wait");
    assert!(waited.status.success(), "{}", text(&waited));
    Ok((run_id.clone(), fixture.logs(&run_id).join("\n")))
}

#[test]
fn setup_seals_the_keys_and_agents_get_them_masked() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "setup");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    let out = setup(&fixture, &keys, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("ANTHROPIC_API_KEY (from the environment)"),
        "{said}"
    );
    assert!(said.contains("GITHUB_TOKEN (as entered)"), "{said}");
    assert!(
        !said.contains("OPENAI_API_KEY") && !said.contains("marker"),
        "{said}"
    );

    let profile = fixture.path(".murmur/murmur.local.yaml");
    let written = std::fs::read_to_string(&profile).expect("the profile");
    assert!(!written.contains("marker"), "{written}");
    assert!(
        written.contains("tenant: local\ndeveloper: ada@example.com\n"),
        "{written}"
    );
    let mode = std::fs::metadata(&profile)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ignored = std::fs::read_to_string(fixture.path(".murmur/.gitignore")).expect("ignore");
    assert!(
        ignored.lines().any(|l| l == "murmur.local.yaml"),
        "{ignored}"
    );
    let status = Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--ignored",
            ".murmur/murmur.local.yaml",
        ])
        .current_dir(fixture.repo())
        .output()
        .expect("git");
    assert!(
        String::from_utf8_lossy(&status.stdout).starts_with("!!"),
        "git ignores it"
    );

    write_flight(&fixture);
    let (run_id, logs) = run_flight(&fixture, &keys).expect("the run");
    let hash = hex::encode(Sha256::digest(ANTHROPIC.as_bytes()));
    assert!(
        logs.contains(&hash),
        "the agent has the Anthropic key:\n{logs}"
    );
    assert!(
        logs.contains("github *** openai=unset"),
        "masked, and only what was given:\n{logs}"
    );
    let shown = fixture.show(&run_id).to_string();
    for answer in [&logs, &shown] {
        assert!(!answer.contains("marker"), "a key in an answer:\n{answer}");
    }
}

#[test]
fn a_profile_of_another_tenant_renamed_or_changed_is_refused() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "setup_refused");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    write_flight(&fixture);
    let created = murmur(&fixture, &keys, &["tenant", "create", "acme"])
        .output()
        .expect("runs");
    assert!(created.status.success(), "{}", text(&created));
    let out = setup(&fixture, &keys, &["--tenant", "acme"]);
    assert!(out.status.success(), "{}", text(&out));
    let refused = run_flight(&fixture, &keys).expect_err("another tenant's profile");
    assert!(refused.contains("profile of tenant `acme`"), "{refused}");

    let profile = fixture.path(".murmur/murmur.local.yaml");
    let acme = std::fs::read_to_string(&profile).expect("profile");
    // A secret gives `local` a data key of its own: what the renamed file is opened with.
    let secret = run(
        &mut murmur(&fixture, &keys, &["secret", "set", "OTHER"]),
        "x",
    );
    assert!(secret.status.success(), "{}", text(&secret));
    std::fs::write(&profile, acme.replace("tenant: acme", "tenant: local")).expect("rename");
    let refused = run_flight(&fixture, &keys).expect_err("renamed into local");
    assert!(
        refused.contains("does not open with that tenant's key"),
        "{refused}"
    );

    let out = setup(&fixture, &keys, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let good = std::fs::read(&profile).expect("profile");
    let mut tampered = good.clone();
    let at = good.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&profile, &tampered).expect("tamper");
    let refused = run_flight(&fixture, &keys).expect_err("a changed byte");
    assert!(refused.contains("does not open"), "{refused}");
    assert!(!refused.contains("marker"), "{refused}");
    std::fs::write(&profile, &good).expect("restore");
    run_flight(&fixture, &keys).expect("the untouched profile runs");
}

#[test]
fn setup_without_any_key_or_with_a_bad_one_is_refused() {
    let fixture = Fixture::with_history(&Backend::Sqlite, "setup_bad");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    let args = ["setup", "--developer", "ada"];
    let none = run(&mut murmur(&fixture, &keys, &args), "\n\n\n");
    assert!(!none.status.success(), "{}", text(&none));
    assert!(
        text(&none).contains("no credentials given"),
        "{}",
        text(&none)
    );
    let mut nul = murmur(&fixture, &keys, &args);
    nul.env("ANTHROPIC_API_KEY", "a\u{1}b");
    let refused = run(&mut nul, "\nx\0y\n");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("NUL byte"), "{}", text(&refused));
    assert!(!fixture.path(".murmur/murmur.local.yaml").exists());
}
