//! The key file: created 0600, refused when loose, rotated and retired on a real file system.

use std::os::unix::fs::PermissionsExt;

use murmur_vault::{Error, KeyFile};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_key_file_is_created_0600_in_a_0700_folder_and_reopened_with_the_same_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config/murmur/keys");
    let created = KeyFile::open_or_create(&path).expect("create");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("parent")), 0o700);
    let reopened = KeyFile::open_or_create(&path).expect("reopen");
    assert_eq!(created.current_id(), reopened.current_id());
    assert!(created.current_id().starts_with("local:"));
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["keys"], "no temporary file is left behind");
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_the_mode_to_set() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys");
    KeyFile::open_or_create(&path).expect("create");
    for loose in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).expect("chmod");
        let refused = KeyFile::open(&path).expect_err("refused");
        assert!(
            matches!(refused, Error::LooseKeyFile { mode, .. } if mode == loose),
            "{refused}"
        );
        let message = refused.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains(&format!("{loose:04o}")), "{message}");
        assert!(KeyFile::open_or_create(&path).is_err(), "also on first use");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    KeyFile::open(&path).expect("0400 is fine");
}

#[test]
fn a_missing_empty_or_corrupt_key_file_is_a_clear_error_that_never_echoes_its_text() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = KeyFile::open(&dir.path().join("nope")).expect_err("missing");
    assert!(matches!(missing, Error::KeyFile { .. }), "{missing}");
    let path = dir.path().join("keys");
    let write = |text: &str| {
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    };
    write("# only a comment\n\n");
    let empty = KeyFile::open(&path).expect_err("empty").to_string();
    assert!(empty.contains("holds no key"), "{empty}");
    write("c2VjcmV0aXNoLXRleHQ=\n");
    let corrupt = KeyFile::open(&path).expect_err("corrupt").to_string();
    assert!(corrupt.contains("line 1"), "{corrupt}");
    assert!(!corrupt.contains("c2VjcmV0aXNo"), "{corrupt}");
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir(&path).expect("a folder");
    assert!(KeyFile::open(&path).is_err());
}

#[test]
fn rotating_keeps_the_old_key_until_it_is_retired() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys");
    let mut file = KeyFile::open_or_create(&path).expect("create");
    let old = file.current_id().to_owned();
    let new = file.rotate().expect("rotate");
    assert_ne!(old, new);
    assert_eq!(mode(&path), 0o600, "a rewritten key file stays private");
    let reopened = KeyFile::open(&path).expect("reopen");
    assert_eq!(reopened.ids(), [new.clone(), old.clone()]);
    assert_eq!(
        file.retire(&[old.as_str()]).expect("keep"),
        Vec::<String>::new()
    );
    assert_eq!(file.retire(&[]).expect("retire"), [old]);
    assert_eq!(KeyFile::open(&path).expect("reopen").ids(), [new]);
}

#[test]
fn two_processes_creating_the_key_file_at_once_end_with_one_key() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys");
    let ids: Vec<String> = std::thread::scope(|scope| {
        let creators: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| KeyFile::open_or_create(&path).map(|f| f.current_id().to_owned()))
            })
            .collect();
        creators
            .into_iter()
            .map(|c| c.join().expect("thread").expect("create"))
            .collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(KeyFile::open(&path).expect("open").ids().len(), 1);
}
