//! What crosses the seam between deciding and running an attempt: the attempt a placement is
//! handed, what the attempt reports while it runs, and how it ended. Serde types only, so a
//! worker on another machine speaks exactly what the local pool runs in-process.

mod attempt;
mod check;
mod outcome;
pub mod worker;

pub use attempt::ExtraRepository;
pub use attempt::{
    AttemptKey, AttemptSpec, CodingSpec, EnvironmentSpec, ExecSpec, LocalPullRequest,
    PullRequestDraft, RuntimeSpec, UpstreamResult, WorkspaceSpec,
};
pub use attempt::{FollowBase, RepositoryOrigin};
pub use check::{CheckSpec, Reviewer, Verdict};
pub use outcome::{AttemptFailure, AttemptUpdate, Delivered, FailureKind, Finished, Stream};
