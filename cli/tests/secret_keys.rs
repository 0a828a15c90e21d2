//! Bad key input with the real binary: a key file that went missing after secrets were set
//! is not silently swapped for the fresh key made in its place — the next write says which key it
//! needs, and the secrets open again once the file is back; `MURMUR_KEK` that is no key is
//! refused with what it must be.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn murmur(repo: &Path, keys: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .current_dir(repo)
        .args(args)
        .env_remove("MURMUR_DATABASE_URL")
        .env_remove("MURMUR_KEK")
        .env_remove("MURMUR_KEK_PREVIOUS")
        .env("MURMUR_KEY_FILE", keys)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("murmur starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("murmur ends")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_missing_key_file_is_named_and_a_new_one_opens_nothing() {
    let repo = tempfile::tempdir().expect("repo");
    std::fs::create_dir_all(repo.path().join(".git")).expect("a repository");
    let keys_dir = tempfile::tempdir().expect("keys");
    let keys = keys_dir.path().join("murmur/keys");
    let set = murmur(repo.path(), &keys, &["secret", "set", "TOKEN"], "first");
    assert!(set.status.success(), "{}", text(&set));
    let kept = std::fs::read(&keys).expect("the key file");
    std::fs::remove_file(&keys).expect("lose the key file");

    let refused = murmur(repo.path(), &keys, &["secret", "set", "OTHER"], "second");
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("not in the keyring"),
        "says which key it needs: {said}"
    );
    assert!(
        !said.contains("second") && !said.contains("first"),
        "{said}"
    );

    std::fs::write(&keys, &kept).expect("the key file is back");
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let again = murmur(repo.path(), &keys, &["secret", "set", "OTHER"], "second");
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn an_environment_key_that_is_no_key_is_refused_with_what_it_must_be() {
    let repo = tempfile::tempdir().expect("repo");
    std::fs::create_dir_all(repo.path().join(".git")).expect("a repository");
    let keys = repo.path().join("unused");
    let mut child = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .current_dir(repo.path())
        .args(["secret", "set", "TOKEN"])
        .env("MURMUR_KEK", "not-base64-and-short")
        .env("MURMUR_KEY_FILE", &keys)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("murmur starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"v")
        .expect("stdin");
    let out = child.wait_with_output().expect("murmur ends");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("32 random bytes in standard base64"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("not-base64-and-short"),
        "the text is never echoed"
    );
}
