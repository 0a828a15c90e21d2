//! Moving bases with real repositories: an origin, the server's mirror of it, an agent's
//! worktree from the mirror; the origin moves on, the mirror is fetched, and the worktree
//! takes the new base as its repository says.

use std::path::{Path, PathBuf};

use super::*;
use crate::mirror;
use crate::workspace::Repository;

async fn git_ok(dir: &Path, args: &[&str]) -> String {
    git(dir, args).await.expect("git")
}

/// An origin on `main` (with `shared.txt`), the clone pushes go from, and the mirror.
struct Setup {
    _root: tempfile::TempDir,
    seed: PathBuf,
    mirror: PathBuf,
    work: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let seed = root.path().join("seed");
        std::fs::create_dir(&seed).expect("seed");
        git_ok(&seed, &["init", "--quiet", "-b", "main"]).await;
        configure(&seed).await;
        std::fs::write(seed.join("shared.txt"), "one\n").expect("file");
        git_ok(&seed, &["add", "."]).await;
        git_ok(&seed, &["commit", "--quiet", "-m", "seed"]).await;
        let bare = root.path().join("origin.git");
        let bare_text = bare.display().to_string();
        git_ok(
            root.path(),
            &["clone", "--quiet", "--bare", "seed", &bare_text],
        )
        .await;
        git_ok(&seed, &["remote", "add", "origin", &bare_text]).await;
        let mirror = root.path().join("mirror");
        mirror::ensure(&bare_text, &mirror, "main", None)
            .await
            .expect("mirror");
        configure(&mirror).await;
        let work = root.path().join("work");
        Self {
            _root: root,
            seed,
            mirror,
            work,
        }
    }

    /// The origin's `main` moves on (`file` written); the mirror fetches it. Answers the tip.
    async fn move_base(&self, file: &str, text: &str) -> String {
        std::fs::write(self.seed.join(file), text).expect("file");
        git_ok(&self.seed, &["add", "."]).await;
        git_ok(&self.seed, &["commit", "--quiet", "-m", "base moves"]).await;
        git_ok(&self.seed, &["push", "--quiet", "origin", "main"]).await;
        mirror::fetch(&self.mirror, None).await.expect("fetch")
    }

    async fn agent(&self, slug: &str, upstream: &[String]) -> (Repository, Worktree) {
        let repository = Repository::open(&self.mirror, None).await.expect("open");
        let branch = format!("murmur/f/r/{slug}");
        let tree = repository
            .worktree(&self.work.join(slug), &branch, upstream)
            .await
            .expect("worktree");
        (repository, tree)
    }
}

async fn configure(dir: &Path) {
    git_ok(dir, &["config", "user.email", "t@t"]).await;
    git_ok(dir, &["config", "user.name", "t"]).await;
}

async fn commit(tree: &Worktree, file: &str, text: &str) {
    std::fs::write(tree.path.join(file), text).expect("file");
    git_ok(&tree.path, &["add", "."]).await;
    git_ok(&tree.path, &["commit", "--quiet", "-m", "agent"]).await;
}

async fn contains(tree: &Worktree, commit: &str) -> bool {
    succeeds(&tree.path, &["merge-base", "--is-ancestor", commit, "HEAD"])
        .await
        .expect("git")
}

#[tokio::test]
async fn a_merge_takes_the_new_base_in_and_counts_only_the_agents_work() {
    let setup = Setup::new().await;
    let (repository, mut tree) = setup.agent("a", &[]).await;
    commit(&tree, "agent.txt", "work\n").await;
    assert_eq!(
        tree.follow_base(&repository, BaseMove::Merge)
            .await
            .expect("follow"),
        Followed::UpToDate
    );
    let tip = setup.move_base("base.txt", "new\n").await;
    let agent_head = git_ok(&tree.path, &["rev-parse", "HEAD"]).await;
    let followed = tree
        .follow_base(&repository, BaseMove::Merge)
        .await
        .expect("follow");
    assert_eq!(followed, Followed::Took(tip.clone()));
    assert!(contains(&tree, &tip).await, "the new base is in the branch");
    assert!(
        contains(&tree, &agent_head).await,
        "the agent's commit stays"
    );
    let parents = git_ok(&tree.path, &["rev-list", "--parents", "-n", "1", "HEAD"]).await;
    assert_eq!(parents.split(' ').count(), 3, "a merge commit: {parents}");
    let changes = tree.changes().await.expect("changes");
    assert_eq!(changes.commits, 1, "the base's commit is not the agent's");
    assert!(
        changes.diff_stat.starts_with("1 file changed"),
        "{}",
        changes.diff_stat
    );
    // The moved start is recorded: a later attempt counts from it too.
    let again = Repository::open(&setup.mirror, None).await.expect("open");
    let reopened = again
        .worktree(&tree.path, &tree.branch, &[])
        .await
        .expect("existing");
    assert_eq!(reopened.base_commit, tip);
}

#[tokio::test]
async fn a_rebase_replays_the_agents_commits_onto_the_new_base() {
    let setup = Setup::new().await;
    let (repository, mut tree) = setup.agent("a", &[]).await;
    commit(&tree, "agent.txt", "work\n").await;
    let tip = setup.move_base("base.txt", "new\n").await;
    let followed = tree
        .follow_base(&repository, BaseMove::Rebase)
        .await
        .expect("follow");
    assert_eq!(followed, Followed::Took(tip.clone()));
    let parent = git_ok(&tree.path, &["rev-parse", "HEAD^"]).await;
    assert_eq!(parent, tip, "the agent's commit sits on the new base");
    let merges = git_ok(&tree.path, &["rev-list", "--merges", "--count", "HEAD"]).await;
    assert_eq!(merges, "0");
    assert_eq!(
        git_ok(&tree.path, &["show", "HEAD:agent.txt"]).await,
        "work"
    );
    assert_eq!(tree.changes().await.expect("changes").commits, 1);
}

#[tokio::test]
async fn a_start_with_upstream_merges_moves_to_a_merge_of_it_and_the_base() {
    let setup = Setup::new().await;
    let (_, mut up) = setup.agent("up", &[]).await;
    commit(&up, "up.txt", "upstream\n").await;
    let (repository, mut tree) = setup.agent("down", &[up.branch.clone()]).await;
    commit(&tree, "down.txt", "downstream\n").await;
    let tip = setup.move_base("base.txt", "new\n").await;
    tree.follow_base(&repository, BaseMove::Rebase)
        .await
        .expect("follow");
    assert!(contains(&tree, &tip).await);
    assert_eq!(
        git_ok(&tree.path, &["show", "HEAD:up.txt"]).await,
        "upstream"
    );
    let changes = tree.changes().await.expect("changes");
    assert_eq!(changes.commits, 1, "only the agent's own commit");
    assert!(
        changes.diff_stat.starts_with("1 file changed"),
        "{}",
        changes.diff_stat
    );
    // The upstream agent's branch is untouched by its downstream's move.
    up.follow_base(&repository, BaseMove::Merge)
        .await
        .expect("follow");
    assert!(contains(&up, &tip).await);
}

#[tokio::test]
async fn a_conflict_names_its_files_and_leaves_the_branch_as_it_was() {
    for how in [BaseMove::Merge, BaseMove::Rebase] {
        let setup = Setup::new().await;
        let (repository, mut tree) = setup.agent("a", &[]).await;
        commit(&tree, "shared.txt", "the agent's\n").await;
        let before = git_ok(&tree.path, &["rev-parse", "HEAD"]).await;
        let start = tree.base_commit.clone();
        setup.move_base("shared.txt", "the base's\n").await;
        let error = tree
            .follow_base(&repository, how)
            .await
            .expect_err("conflict");
        let message = error.to_string();
        assert!(
            matches!(&error, Error::BaseConflict { files, .. } if files == &["shared.txt"]),
            "{message}"
        );
        assert!(
            message.contains("`main`") && message.contains("murmur/f/r/a"),
            "{message}"
        );
        assert_eq!(git_ok(&tree.path, &["rev-parse", "HEAD"]).await, before);
        assert_eq!(tree.base_commit, start);
        let status = git_ok(&tree.path, &["status", "--porcelain"]).await;
        assert!(status.is_empty(), "no merge or rebase left open: {status}");
    }
}
