//! Helpers for the CLI's crash tests (`crash.rs`, `crash_semantics.rs`): the real binary on a
//! temporary repository and store, followed event by event, killed with SIGKILL, resumed,
//! and checked against the store and the agents' own ledger.

// Each test crate uses its own part of these helpers.
#![allow(dead_code)]

pub mod beacon;
pub mod check;
pub mod db;
pub mod fixture;
pub mod session;

/// One `#[test]` per backend for each listed test body `fn NAME(&Backend)`: `sqlite::NAME`
/// and `postgres::NAME` (see [`Backend::postgres`] for when that one is skipped).
#[macro_export]
macro_rules! every_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&$crate::support::db::Backend::Sqlite); })+
        }
        mod postgres {
            $(#[test] fn $name() {
                let Some(backend) = $crate::support::db::Backend::postgres() else { return };
                super::$name(&backend);
            })+
        }
    };
}
