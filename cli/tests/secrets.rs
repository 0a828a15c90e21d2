//! `murmur secret set|ls|rm|rotate-key` with the real binary, a real key file and the real
//! SQLite store: values only on stdin, never in the store in plaintext, never printed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use murmur_engine::Store;
use murmur_engine::secrets::Secrets;
use murmur_vault::KeyFile;

struct Setup {
    repo: tempfile::TempDir,
    keys: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let repo = tempfile::tempdir().expect("repo");
        std::fs::create_dir_all(repo.path().join(".git")).expect("a repository");
        let keys = tempfile::tempdir().expect("keys");
        Self { repo, keys }
    }

    fn key_file(&self) -> PathBuf {
        self.keys.path().join("murmur/keys")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_murmur"));
        command
            .current_dir(self.repo.path())
            .args(["secret"])
            .args(args)
            .env_remove("MURMUR_DATABASE_URL")
            .env_remove("MURMUR_KEK")
            .env_remove("MURMUR_KEK_PREVIOUS")
            .env("MURMUR_KEY_FILE", self.key_file())
            .env("NO_COLOR", "1");
        command
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
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

    fn db(&self) -> PathBuf {
        self.repo.path().join(".murmur/murmur.db")
    }

    /// Opens the named secrets through the engine with the key file's keys.
    fn open(&self, names: &[&str]) -> Vec<Vec<u8>> {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = Store::open(&self.db().display().to_string())
                .await
                .expect("store");
            let keyring = KeyFile::open(&self.key_file())
                .expect("key file")
                .keyring()
                .expect("keyring");
            let set = Secrets::new(&store, &keyring)
                .open(names)
                .await
                .expect("secrets open");
            names
                .iter()
                .map(|n| set.get(n).expect("named").expose().to_vec())
                .collect()
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

fn contains(path: &Path, marker: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(marker.len()).any(|w| w == marker.as_bytes()))
}

#[test]
fn a_secret_is_set_from_stdin_listed_without_its_value_and_removed() {
    let setup = Setup::new();
    let marker = format!("marker-{}", std::process::id());
    let set = setup.run(&["set", "API_TOKEN"], &format!("{marker}\n"));
    assert_ok(&set);
    assert_eq!(text(&set.stdout), "secret API_TOKEN set\n");
    let mode = std::fs::metadata(setup.key_file())
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_ok(&setup.run(&["set", "OTHER"], "x"));
    let replaced = setup.run(&["set", "API_TOKEN"], &format!("{marker}\n"));
    assert_eq!(text(&replaced.stdout), "secret API_TOKEN replaced\n");
    assert_eq!(setup.open(&["API_TOKEN"]), [marker.as_bytes().to_vec()]);

    let listed = setup.run(&["ls", "--json"], "");
    assert_ok(&listed);
    let entries: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(entries[0]["name"], "API_TOKEN");
    assert_eq!(entries[0]["created_by"], "local");
    let keys: Vec<_> = entries[0]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "created_at",
            "created_by",
            "name",
            "updated_at",
            "updated_by"
        ]
    );
    let table = setup.run(&["ls"], "");
    assert!(
        text(&table.stdout).starts_with("API_TOKEN "),
        "{}",
        text(&table.stdout)
    );

    for output in [&set, &replaced, &listed, &table] {
        assert!(!text(&output.stdout).contains(&marker) && !text(&output.stderr).contains(&marker));
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", setup.db().display()));
        assert!(
            !contains(&path, &marker),
            "{} holds the value",
            path.display()
        );
    }

    assert_ok(&setup.run(&["rm", "API_TOKEN"], ""));
    let again = setup.run(&["rm", "API_TOKEN"], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("no secret `API_TOKEN`"),
        "{}",
        text(&again.stderr)
    );
}

fn value_file(setup: &Setup) -> PathBuf {
    let path = setup.keys.path().join("value");
    std::fs::write(&path, "v").expect("value file");
    path
}

#[test]
fn bad_names_empty_values_and_loose_or_misplaced_key_files_are_refused() {
    let setup = Setup::new();
    for (name, value) in [
        ("BAD-NAME", "v"),
        ("1X", "v"),
        ("MURMUR_TREE", "v"),
        ("EMPTY", "\n"),
    ] {
        let out = setup.run(&["set", name], value);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
    }
    assert!(!setup.db().exists() || setup.open(&[]).is_empty());

    assert_ok(&setup.run(&["set", "OK"], "v"));
    std::fs::set_permissions(setup.key_file(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let loose = setup.run(&["set", "OK"], "v");
    assert_eq!(loose.status.code(), Some(2));
    assert!(
        text(&loose.stderr).contains("chmod 600"),
        "{}",
        text(&loose.stderr)
    );

    let inside = setup
        .command(&["set", "OK"])
        .env("MURMUR_KEY_FILE", setup.repo.path().join("keys"))
        .stdin(std::fs::File::open(value_file(&setup)).expect("value"))
        .output()
        .expect("runs");
    assert_eq!(inside.status.code(), Some(2));
    assert!(
        text(&inside.stderr).contains("inside the repository"),
        "{}",
        text(&inside.stderr)
    );
    assert!(!setup.repo.path().join("keys").exists());
}

#[test]
fn rotate_key_rewraps_data_keys_and_secrets_still_open() {
    let setup = Setup::new();
    assert_ok(&setup.run(&["set", "TOKEN"], "kept"));
    let before = KeyFile::open(&setup.key_file()).expect("key file").ids();
    let rotated = setup.run(&["rotate-key"], "");
    assert_ok(&rotated);
    assert!(
        text(&rotated.stdout).contains("1 data keys re-wrapped"),
        "{}",
        text(&rotated.stdout)
    );
    let after = KeyFile::open(&setup.key_file()).expect("key file").ids();
    assert_eq!(after.len(), 2);
    assert_eq!(after[1], before[0], "the old key stays until retired");
    assert_eq!(setup.open(&["TOKEN"]), [b"kept".to_vec()]);

    let retired = setup.run(&["rotate-key", "--retire"], "");
    assert_ok(&retired);
    assert!(text(&retired.stderr).contains("dropped the old key-encryption key"));
    assert_eq!(
        KeyFile::open(&setup.key_file())
            .expect("key file")
            .ids()
            .len(),
        1
    );
    assert_eq!(setup.open(&["TOKEN"]), [b"kept".to_vec()]);
}
