//! A worktree that starts at a given commit (a push's `after`), fetched from `origin` when the
//! repository does not have it yet; real repositories.

use std::path::Path;

use murmur_runtime::workspace::{Error, Repository};
use murmur_testkit::git::git;

fn commit(dir: &Path, text: &str) -> String {
    std::fs::write(dir.join("version.txt"), text).expect("write");
    git(dir, &["add", "version.txt"]);
    git(dir, &["commit", "-qm", text]);
    git(dir, &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn a_worktree_starts_at_the_commit_even_one_only_origin_has() {
    let origin = tempfile::tempdir().expect("origin");
    git(origin.path(), &["init", "-q", "-b", "main"]);
    let old = commit(origin.path(), "old");
    commit(origin.path(), "new");
    let local = tempfile::tempdir().expect("local");
    let origin_path = origin.path().display().to_string();
    git(local.path(), &["clone", "-q", &origin_path, "."]);
    // Pushed after the clone: only origin has it.
    let pushed = commit(origin.path(), "pushed");
    let work = tempfile::tempdir().expect("work");
    let repository = Repository::open(local.path(), None).await.expect("open");

    repository.ensure_commit(&old).await.expect("present");
    let tree = repository
        .worktree_from(&work.path().join("a"), "murmur/f/r/a", &[], Some(&old))
        .await
        .expect("worktree");
    assert_eq!(read(&tree.path), "old");
    assert_eq!(tree.base_commit, old);

    repository.ensure_commit(&pushed).await.expect("fetched");
    let tree = repository
        .worktree_from(&work.path().join("b"), "murmur/f/r/b", &[], Some(&pushed))
        .await
        .expect("worktree");
    assert_eq!(read(&tree.path), "pushed");
}

#[tokio::test]
async fn a_commit_nobody_has_is_a_clear_error() {
    let repo = tempfile::tempdir().expect("repo");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    commit(repo.path(), "only");
    let repository = Repository::open(repo.path(), None).await.expect("open");
    let missing = "1234567890abcdef1234567890abcdef12345678";
    let error = repository.ensure_commit(missing).await.unwrap_err();
    assert!(matches!(error, Error::MissingCommit { .. }), "{error}");
    assert!(error.to_string().contains("no remote `origin`"), "{error}");
    let elsewhere = tempfile::tempdir().expect("origin");
    git(elsewhere.path(), &["init", "-q", "-b", "main"]);
    commit(elsewhere.path(), "other");
    let url = elsewhere.path().display().to_string();
    git(repo.path(), &["remote", "add", "origin", &url]);
    let error = repository.ensure_commit(missing).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("commit {missing} is not in the repository")),
        "{error}"
    );
}

fn read(tree: &Path) -> String {
    std::fs::read_to_string(tree.join("version.txt")).expect("read")
}
