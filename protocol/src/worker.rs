//! The worker protocol: a `murmur worker` connects out to the server over HTTP (it needs no
//! inbound port), registers its machine, and then alternates between asking for work (which
//! also renews its machine's lease) and sending its attempts' updates, each numbered per
//! attempt so that a batch sent again after a dropped connection is taken once.

use serde::{Deserialize, Serialize};

use crate::{AttemptKey, AttemptSpec, AttemptUpdate};

/// `POST /v1/workers/register`, with a worker token (`murmur token create --worker --pool P`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// Empty: the pool the worker token is for.
    pub pool: String,
    /// The machine's ephemeral X25519 public key (base64); secrets are sealed to it.
    pub public_key: String,
    /// For people: where the worker runs. A worker registers a new machine each time it
    /// starts.
    pub host: String,
}

/// The answer to a registration: the machine's own credential, used for everything after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    pub machine_id: String,
    /// Shown once; the server keeps only its hash. Revoked when the machine is terminated.
    pub credential: String,
    /// A worker silent for longer than this is `lost`.
    pub lease_secs: u64,
}

/// `POST /v1/workers/poll`: what the machine runs now; answered with what it should start and
/// stop. Waits up to `wait_ms` for work when there is none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Poll {
    pub running: Vec<AttemptKey>,
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Work {
    pub start: Vec<AttemptSpec>,
    /// Attempts the machine must stop: canceled, or no longer its own (it was lost meanwhile).
    pub stop: Vec<AttemptKey>,
}

/// One attempt's update with its place in that attempt's stream (from 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Numbered {
    pub seq: u64,
    pub update: AttemptUpdate,
}

/// `POST /v1/workers/updates`: updates not yet acknowledged, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Updates {
    pub attempts: Vec<AttemptUpdates>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptUpdates {
    pub key: AttemptKey,
    pub updates: Vec<Numbered>,
}

/// What the server took: per attempt, every update up to `upto` (the worker may forget them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Acknowledged {
    pub acks: Vec<Ack>,
    /// Attempts the server no longer takes updates for: the worker stops them.
    pub stop: Vec<AttemptKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub key: AttemptKey,
    pub upto: u64,
}
