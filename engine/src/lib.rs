//! Murmur's durable executor.
//!
//! The core is pure: [`model::RunModel`] folds committed [`Event`]s into state and decides what
//! happens next. The [`executor`] is the shell around it: it commits each decision to the
//! [`store`] first and only then starts or stops agents, so a crash at any point loses no
//! finished work and never repeats it.

pub mod children;
pub mod clock;
pub mod event;
pub mod executor;
pub mod histogram;
pub mod identity;
pub mod lease;
pub mod machine;
pub mod model;
pub mod persona;
pub mod preflight;
pub mod profile;
pub mod retry;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod state;
pub mod store;
pub mod transitions;
pub mod workspace;

pub use clock::{Clock, SystemClock};
pub use event::{Event, Stream};
pub use model::{AgentModel, RunModel, TransitionError};
pub use state::{AgentState, RunStatus};
pub use store::Store;
