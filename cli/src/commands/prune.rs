//! `murmur runs prune`: removes the worktrees (and on request the branches) that finished runs
//! left behind. Which runs is a pure decision over their rows and one reading of the clock
//! ([`select`]); what each run left is found on disk and in git ([`super::prune_disk`]).

use std::path::Path;

use chrono::{DateTime, Utc};
use clap::Args;
use murmur_engine::RunStatus;
use murmur_engine::store::RunRow;
use murmur_runtime::workspace::Repository;
use serde::Serialize;

use super::prune_disk::{self, Freed, Protected};
use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, existing_store, repository_for};
use crate::output::emit_line;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Prune runs that finished longer ago than this (`7d`, `12h`, `30m`; `0`: every finished
    /// run)
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub older_than: String,
    /// Delete the runs' branches too (`murmur/FLIGHT/RUN/SLUG`, or an agent's `branch`), and
    /// Murmur's refs for them; a follow-up (`murmur queue add`) then starts from the base
    /// branch instead of the agent's work
    #[arg(long)]
    pub branches: bool,
    /// Prune failed and canceled runs too, which `murmur runs retry` could still run
    #[arg(long)]
    pub include_retryable: bool,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON: {"dry_run", "runs": [{"id", "flight", "status", "finished_at", "worktrees",
    /// "branches", "kept_branches", "bytes"}], "retryable_kept", "totals"}
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Which finished runs to prune.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Only runs that finished at least this long before now.
    pub older_than: chrono::Duration,
    pub include_retryable: bool,
}

/// What [`select`] makes of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Prune,
    /// Not finished (queued, running, or a status this binary does not know): never touched.
    Unfinished,
    /// Finished less than `older_than` ago, or at a time that cannot be read.
    TooRecent,
    /// Failed or canceled, so `murmur runs retry` can still run it.
    Retryable,
}

/// The verdict on one run at `now`.
pub fn verdict_of(row: &RunRow, now: DateTime<Utc>, policy: Policy) -> Verdict {
    // A run with no finish time (none is expected) counts from its creation.
    let finished_at = row.finished_at.as_deref().unwrap_or(&row.created_at);
    verdict(&row.status, finished_at, now, policy)
}

/// The verdict on a run in `status` that finished at `finished_at` (an RFC 3339 stamp).
pub fn verdict(status: &str, finished_at: &str, now: DateTime<Utc>, policy: Policy) -> Verdict {
    let Some(status) = RunStatus::parse(status).filter(|s| s.is_terminal()) else {
        return Verdict::Unfinished;
    };
    let Ok(finished) = DateTime::parse_from_rfc3339(finished_at) else {
        // An unreadable time may be a run that just finished: keep it.
        return Verdict::TooRecent;
    };
    if now.signed_duration_since(finished) < policy.older_than {
        return Verdict::TooRecent;
    }
    if status != RunStatus::Completed && !policy.include_retryable {
        return Verdict::Retryable;
    }
    Verdict::Prune
}

/// `--older-than`: a duration as flights write them, or `0` for every finished run.
pub fn parse_age(text: &str) -> anyhow::Result<chrono::Duration> {
    if text.trim() == "0" {
        return Ok(chrono::Duration::zero());
    }
    let age: murmur_parser::Duration = text
        .parse()
        .map_err(|e| anyhow::anyhow!("--older-than {text}: {e} (or `0` for every finished run)"))?;
    let secs = i64::try_from(age.as_secs())
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| anyhow::anyhow!("--older-than {text}: that duration is too long"))?;
    Ok(secs)
}

/// What one pruned run gave back.
#[derive(Debug, Serialize)]
struct RunReport {
    id: String,
    flight: String,
    status: String,
    finished_at: Option<String>,
    #[serde(flatten)]
    freed: Freed,
}

#[derive(Debug, Default, Serialize)]
struct Totals {
    runs: usize,
    worktrees: usize,
    branches: usize,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    runs: Vec<RunReport>,
    /// Failed and canceled runs old enough to prune, kept for `murmur runs retry`.
    retryable_kept: Vec<String>,
    totals: Totals,
}

pub fn run(args: &PruneArgs) -> anyhow::Result<Exit> {
    let policy = Policy {
        older_than: parse_age(&args.older_than)?,
        include_retryable: args.include_retryable,
    };
    let repo = repository_for(None);
    let Some(url) = existing_store(&args.db, &repo)? else {
        eprintln!(
            "no runs here yet (no store at {}): nothing to prune",
            repo.display()
        );
        return Ok(Exit::Success);
    };
    let now = Utc::now();
    let report = block_on(prune(args, &url, &repo, now, policy))?;
    if args.json {
        emit_line(&serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(Exit::Success)
}

async fn prune(
    args: &PruneArgs,
    url: &str,
    repo: &Path,
    now: DateTime<Utc>,
    policy: Policy,
) -> anyhow::Result<Report> {
    let store = murmur_engine::Store::open(url).await?;
    let finished = store.finished_runs().await?;
    let mut report = Report {
        dry_run: args.dry_run,
        runs: Vec::new(),
        retryable_kept: Vec::new(),
        totals: Totals::default(),
    };
    let mut chosen = Vec::new();
    for row in finished {
        match verdict_of(&row, now, policy) {
            Verdict::Prune => chosen.push(row),
            Verdict::Retryable => report.retryable_kept.push(row.id),
            Verdict::Unfinished | Verdict::TooRecent => {}
        }
    }
    let git = repo
        .join(".git")
        .exists()
        .then(|| Repository::for_housekeeping(repo.to_path_buf()));
    let protected = match (&git, args.branches) {
        (Some(_), true) => Protected::gather(&store, &chosen).await?,
        _ => Protected::default(),
    };
    let work_root = repo.join(".murmur/work");
    for row in &chosen {
        // The run may have been reopened (`murmur queue add`) since it was listed.
        let current = store.run(&row.id).await?;
        if verdict_of(&current, now, policy) != Verdict::Prune {
            continue;
        }
        let target = prune_disk::Target {
            row: &current,
            agents: store.agents(&row.id).await?,
            run_dir: work_root.join(&row.id),
            git: git.as_ref(),
            branches: args.branches,
            protected: &protected,
        };
        let freed = prune_disk::prune_run(&target, args.dry_run).await?;
        if freed.is_empty() {
            continue;
        }
        add(&mut report.totals, &freed);
        report.runs.push(RunReport {
            id: current.id.clone(),
            flight: current.flight.clone(),
            status: current.status.clone(),
            finished_at: current.finished_at.clone(),
            freed,
        });
    }
    if let (Some(git), false) = (&git, args.dry_run) {
        git.prune_worktrees().await?;
    }
    Ok(report)
}

fn add(totals: &mut Totals, freed: &Freed) {
    totals.runs += 1;
    totals.worktrees += freed.worktrees.len();
    totals.branches += freed.branches.len();
    totals.bytes += freed.bytes;
}

fn print_report(report: &Report) {
    let verb = if report.dry_run {
        "would prune"
    } else {
        "pruned"
    };
    for run in &report.runs {
        emit_line(&format!(
            "{verb} run {} ({}, {}): {}",
            run.id,
            run.flight,
            run.status,
            amounts(
                run.freed.worktrees.len(),
                run.freed.bytes,
                run.freed.branches.len()
            )
        ));
        for kept in &run.freed.kept_branches {
            emit_line(&format!("  kept branch {}: {}", kept.branch, kept.reason));
        }
    }
    let totals = &report.totals;
    emit_line(&format!(
        "{verb} {} {}: {}",
        totals.runs,
        plural(totals.runs, "run", "runs"),
        amounts(totals.worktrees, totals.bytes, totals.branches)
    ));
    if !report.retryable_kept.is_empty() {
        let count = report.retryable_kept.len();
        emit_line(&format!(
            "kept {count} failed or canceled {} that `murmur runs retry` can still run \
             (--include-retryable prunes them too)",
            plural(count, "run", "runs")
        ));
    }
}

/// `3 worktrees (1.2 MB), 3 branches`.
fn amounts(worktrees: usize, bytes: u64, branches: usize) -> String {
    format!(
        "{worktrees} {} ({}), {branches} {}",
        plural(worktrees, "worktree", "worktrees"),
        human_size(bytes),
        plural(branches, "branch", "branches")
    )
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// Decimal units, as `du --si` and file managers count: 78.2 MB is 78,200,000 bytes.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-10T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn policy(age: &str, include_retryable: bool) -> Policy {
        Policy {
            older_than: parse_age(age).expect("age"),
            include_retryable,
        }
    }

    /// The verdict on a run in `status` finished at `at`, judged at `now()`.
    fn judge(status: &str, at: &str, age: &str, include_retryable: bool) -> Verdict {
        verdict(status, at, now(), policy(age, include_retryable))
    }

    #[test]
    fn only_runs_finished_long_enough_ago_are_pruned() {
        let (old, exactly) = ("2025-01-02T23:59:59.000Z", "2025-01-03T00:00:00.000Z");
        let young = "2025-01-03T00:00:01.000Z";
        assert_eq!(judge("completed", old, "7d", false), Verdict::Prune);
        assert_eq!(judge("completed", exactly, "7d", false), Verdict::Prune);
        assert_eq!(judge("completed", young, "7d", false), Verdict::TooRecent);
        assert_eq!(judge("completed", young, "0", false), Verdict::Prune);
        assert_eq!(judge("completed", young, "12h", false), Verdict::Prune);
        // Another offset is the same instant.
        let elsewhere = "2025-01-03T01:59:59.000+02:00";
        assert_eq!(judge("completed", elsewhere, "7d", false), Verdict::Prune);
    }

    #[test]
    fn unfinished_runs_are_never_pruned() {
        for status in ["running", "queued", "interrupted", "something-new", ""] {
            let verdict = judge(status, "2020-01-01T00:00:00.000Z", "0", true);
            assert_eq!(verdict, Verdict::Unfinished, "{status:?}");
        }
    }

    #[test]
    fn retryable_runs_need_asking() {
        for status in ["failed", "canceled"] {
            let old = "2025-01-01T00:00:00.000Z";
            assert_eq!(judge(status, old, "0", false), Verdict::Retryable);
            assert_eq!(judge(status, old, "0", true), Verdict::Prune);
        }
        let recent = "2025-01-09T23:00:00.000Z";
        assert_eq!(judge("failed", recent, "7d", true), Verdict::TooRecent);
    }

    #[test]
    fn an_unreadable_finish_time_keeps_the_run() {
        for garbage in ["yesterday", "", "2025-13-01T00:00:00Z"] {
            assert_eq!(judge("completed", garbage, "0", true), Verdict::TooRecent);
        }
    }

    #[test]
    fn ages_as_written_on_the_command_line() {
        assert_eq!(parse_age("0").expect("0"), chrono::Duration::zero());
        assert_eq!(parse_age("7d").expect("7d"), chrono::Duration::days(7));
        assert_eq!(
            parse_age("1h30m").expect("1h30m"),
            chrono::Duration::minutes(90)
        );
        for bad in ["", "7", "-1d", "7w", "d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn sizes_read_as_people_expect() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_000), "1.0 kB");
        assert_eq!(human_size(78_200_000), "78.2 MB");
        assert_eq!(human_size(999_960), "1.0 MB");
        assert_eq!(human_size(3_000_000_000_000_000), "3000.0 TB");
    }
}
