//! `murmur worker`: a machine of the `workers` placement. It connects out to `murmur serve`
//! (it needs no inbound port), registers its machine with a worker token and an ephemeral key
//! pair made in memory, then polls for work (which renews its machine's lease), runs what it
//! is given (agents' turns, and gate checks in an agent's worktree) with the same attempt
//! runner as the local pool, and sends each attempt's numbered updates until the server
//! acknowledges them. It knows nothing of the engine or its store:
//! everything it learns comes over the protocol of `murmur_protocol::worker`.
//!
//! Connection trouble is never fatal: a server that is down, a dropped connection or a 401
//! (a wrong or revoked token) is reported and tried again with backoff. Only a refusal that
//! trying again cannot change (a token of another pool, a pool the server does not have)
//! ends the worker.

mod backoff;
mod client;
mod folder;
mod outbox;
mod session;

use std::path::PathBuf;
use std::sync::Arc;

use murmur_protocol::worker::{Register, Registered};

pub use client::Error as ClientError;
pub use murmur_attempt::Settings;

/// How the worker was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's URL, `http://HOST:PORT`.
    pub server: String,
    /// A worker token of `pool`.
    pub token: String,
    pub pool: String,
    /// Attempts' workspaces go below this.
    pub dir: PathBuf,
    /// How this machine reaches the agent runtimes and GitHub.
    pub settings: murmur_attempt::Settings,
    /// For people: where the worker runs.
    pub host: String,
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dir(#[from] folder::Error),
    #[error("{0}")]
    Refused(client::Error),
}

/// Works for the server until a refusal that retrying cannot change. Needs a multi-thread
/// runtime: emptying the folder for another tenant blocks in place.
pub async fn run(options: Options) -> Result<(), Error> {
    let folder = Arc::new(folder::Folder::open(&options.dir)?);
    let machine = Arc::new(murmur_attempt::Machine {
        work_root: folder.root().to_path_buf(),
        settings: options.settings.clone(),
        clones: true,
    });
    let client = client::Client::new(&options.server);
    // The private half never leaves this process: secrets sealed to it open only here.
    let key = Arc::new(murmur_vault::MachineKey::generate());
    let register = Register {
        pool: options.pool.clone(),
        public_key: key.public().to_base64(),
        host: options.host.clone(),
    };
    loop {
        let registered = register_until_done(&client, &options, &register).await?;
        let machine = session::Machine {
            runner: machine.clone(),
            key: key.clone(),
            folder: folder.clone(),
        };
        session::Session::new(client.clone(), machine, registered)
            .run()
            .await;
        tracing::warn!("the machine's credential was refused; registering again");
    }
}

async fn register_until_done(
    client: &client::Client,
    options: &Options,
    register: &Register,
) -> Result<Registered, Error> {
    let mut backoff = backoff::Backoff::default();
    loop {
        match client.register(&options.token, register).await {
            Ok(registered) => {
                tracing::info!(
                    "registered machine {} with {}; its lease is {}s",
                    registered.machine_id,
                    options.server,
                    registered.lease_secs
                );
                return Ok(registered);
            }
            Err(client::Error::Unauthorized(message)) => tracing::error!(
                "the server refused the worker token (401): {message}; check --token (a token from `murmur token create --worker --pool NAME` on the server); trying again in {:?}",
                backoff.peek()
            ),
            Err(error) if error.is_transient() => tracing::warn!(
                "cannot register: {error}; trying again in {:?}",
                backoff.peek()
            ),
            Err(error) => return Err(Error::Refused(error)),
        }
        backoff.wait().await;
    }
}
