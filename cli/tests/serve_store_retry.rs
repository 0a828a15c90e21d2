//! A server whose store fills up mid-run does not abandon the run: the supervisor tries the
//! drive again with backoff, and once there is room the run completes. Uses a 2 MiB tmpfs in a
//! private mount namespace (`unshare`), as `full_disk.rs` does.

use std::process::Command;

#[test]
fn a_drive_that_fails_on_the_store_is_tried_again_and_the_run_completes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir_all(repo.join(".git")).expect("mkdir");
    std::fs::create_dir_all(repo.join("db")).expect("mkdir");
    std::fs::write(
        repo.join(".murmur/flights/chatty.md"),
        "---\nruntime: exec\n---\n# Chatty\n\n## small\n> command: echo small\n\n## chatty\n> needs: small\n> command: head -c 3000000 /dev/zero | tr '\\0' x | fold -w 1000\n",
    )
    .expect("write flight");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--map-root-user",
            "sh",
            "-c",
            include_str!("serve_store_retry.sh"),
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_murmur"))
        .current_dir(&repo)
        .env_remove("MURMUR_DATABASE_URL")
        .env_remove("MURMUR_LOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(repo.join("serve.log")).unwrap_or_default();
    let context = format!(
        "{stdout}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("cannot mount a tmpfs"), "{context}");
    assert!(
        stdout.contains("retried=True"),
        "the drive failed on the full store: {context}"
    );
    assert!(
        stdout.contains("final=completed"),
        "and the run completed once there was room: {context}"
    );
    assert!(stdout.contains("script=0"), "{context}");
}
