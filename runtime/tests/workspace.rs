//! Git workspaces against real repositories.

use murmur_testkit::git::git;
use std::path::Path;

use murmur_runtime::workspace::{Error, Repository};

fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("README.md"), "base\n").expect("write");
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-qm", "base"]);
    dir
}

fn commit_file(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).expect("write");
    git(dir, &["add", file]);
    git(dir, &["commit", "-qm", file]);
}

#[tokio::test]
async fn an_agent_gets_its_own_branch_and_its_commits_are_counted() {
    let repo = repository();
    let work = tempfile::tempdir().expect("temp dir");
    let repository = Repository::open(repo.path(), None).await.expect("open");
    assert_eq!(repository.base, "main");
    let tree = repository
        .worktree(&work.path().join("design"), "murmur/f/r1/design", &[])
        .await
        .expect("worktree");
    assert_eq!(
        git(&tree.path, &["branch", "--show-current"]),
        "murmur/f/r1/design"
    );
    commit_file(&tree.path, "plan.md", "plan\n");
    commit_file(&tree.path, "notes.md", "notes\n");
    let changes = tree.changes().await.expect("changes");
    assert_eq!(changes.commits, 2);
    assert_eq!(changes.diff_stat, "2 files changed, 2 insertions(+)");
    assert!(tree.diff().await.expect("diff").contains("+plan"));
    let again = repository
        .worktree(&tree.path, "murmur/f/r1/design", &[])
        .await
        .expect("a retry reuses it");
    assert_eq!(again, tree);
    assert_eq!(
        git(repo.path(), &["branch", "--show-current"]),
        "main",
        "the user's checkout is untouched"
    );
}

#[tokio::test]
async fn upstream_branches_are_merged_in_order() {
    let repo = repository();
    let work = tempfile::tempdir().expect("temp dir");
    let repository = Repository::open(repo.path(), Some("main"))
        .await
        .expect("open");
    let api = repository
        .worktree(&work.path().join("api"), "murmur/f/r1/api", &[])
        .await
        .expect("api");
    commit_file(&api.path, "api.rs", "api\n");
    let ui = repository
        .worktree(&work.path().join("ui"), "murmur/f/r1/ui", &[])
        .await
        .expect("ui");
    commit_file(&ui.path, "ui.rs", "ui\n");
    let upstream = ["murmur/f/r1/api".to_owned(), "murmur/f/r1/ui".to_owned()];
    let join = repository
        .worktree(&work.path().join("join"), "murmur/f/r1/join", &upstream)
        .await
        .expect("join");
    assert!(join.path.join("api.rs").exists() && join.path.join("ui.rs").exists());
    assert_eq!(
        join.changes().await.expect("changes").commits,
        0,
        "merged upstream work is not the agent's own"
    );
    commit_file(&join.path, "join.rs", "join\n");
    let retried = repository
        .worktree(&join.path, "murmur/f/r1/join", &upstream)
        .await
        .expect("retry");
    assert_eq!(
        retried.base_commit, join.base_commit,
        "a retry counts from the same start"
    );
    assert_eq!(retried.changes().await.expect("changes").commits, 1);
}

#[tokio::test]
async fn a_merge_conflict_names_the_files() {
    let repo = repository();
    let work = tempfile::tempdir().expect("temp dir");
    let repository = Repository::open(repo.path(), None).await.expect("open");
    let left = repository
        .worktree(&work.path().join("left"), "left", &[])
        .await
        .expect("left");
    commit_file(&left.path, "README.md", "left\n");
    let right = repository
        .worktree(&work.path().join("right"), "right", &[])
        .await
        .expect("right");
    commit_file(&right.path, "README.md", "right\n");
    let upstream = ["left".to_owned(), "right".to_owned()];
    let error = repository
        .worktree(&work.path().join("join"), "join", &upstream)
        .await
        .expect_err("conflict");
    assert!(
        matches!(&error, Error::MergeConflict { branch, files } if branch == "right" && files == &["README.md"]),
        "{error}"
    );
    assert!(error.to_string().contains("conflicts in: README.md"));
}

#[tokio::test]
async fn bad_starting_points_are_clear_errors() {
    let repo = repository();
    let work = tempfile::tempdir().expect("temp dir");
    let not_git = tempfile::tempdir().expect("temp dir");
    assert!(matches!(
        Repository::open(not_git.path(), None).await,
        Err(Error::NotARepository(_))
    ));
    assert!(
        matches!(Repository::open(repo.path(), Some("develop")).await, Err(Error::NoBase(b)) if b == "develop")
    );
    let repository = Repository::open(repo.path(), None).await.expect("open");
    git(repo.path(), &["branch", "taken"]);
    let taken = repository
        .worktree(&work.path().join("a"), "taken", &[])
        .await
        .expect_err("exists");
    assert!(matches!(taken, Error::BranchExists(b) if b == "taken"));
    repository.ensure_clean().await.expect("clean");
    std::fs::write(repo.path().join("README.md"), "edited\n").expect("write");
    let dirty = repository.ensure_clean().await.expect_err("dirty");
    assert!(
        dirty
            .to_string()
            .contains("uncommitted changes (README.md)"),
        "{dirty}"
    );
}

/// An engine killed while it prepared a worktree leaves it added but not (fully) merged,
/// with no start ref: the retried attempt finishes the merges before the agent works there.
#[tokio::test]
async fn a_worktree_whose_preparation_was_cut_short_is_finished() {
    let repo = repository();
    let work = tempfile::tempdir().expect("temp dir");
    let repository = Repository::open(repo.path(), Some("main"))
        .await
        .expect("open");
    let mut upstream = Vec::new();
    for name in ["api", "ui"] {
        let branch = format!("murmur/f/r1/{name}");
        let tree = repository
            .worktree(&work.path().join(name), &branch, &[])
            .await
            .expect("upstream");
        commit_file(&tree.path, &format!("{name}.rs"), "work\n");
        upstream.push(branch);
    }
    // What the killed engine left: the worktree added, the first upstream merged, no more.
    let path = work.path().join("join");
    let path_text = path.display().to_string();
    git(
        repo.path(),
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "murmur/f/r1/join",
            &path_text,
            "main",
        ],
    );
    git(&path, &["merge", "--no-edit", "-q", &upstream[0]]);
    let join = repository
        .worktree(&path, "murmur/f/r1/join", &upstream)
        .await
        .expect("join");
    assert!(join.path.join("api.rs").exists() && join.path.join("ui.rs").exists());
    assert_eq!(
        join.changes().await.expect("changes").commits,
        0,
        "the agent's own commits count from after the merges"
    );
}
