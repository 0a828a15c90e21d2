//! `murmur secret set|ls|rm|rotate-key`: the store's secrets, encrypted under this machine's
//! key-encryption keys (see `keys`). A value comes from standard input only, never from the
//! command line, where every process on the machine could read it.

use std::io::IsTerminal;

use anyhow::Context;
use murmur_engine::secrets::{Error as SecretsError, Secrets};
use murmur_engine::store::secrets::Written;
use murmur_engine::{Clock, SystemClock};
use murmur_vault::{ReadError, SecretValue};

use super::keys::Keys;
use crate::Exit;
use crate::cli::DbArgs;
use crate::context::{block_on, open_store, repository_for};
use crate::output::emit_line;
use crate::terminal::sanitize;

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set secret NAME to the value on standard input (never an argument; one final line
    /// break is dropped); agents receive it as the environment variable NAME
    Set {
        /// The secret's name: letters, digits and `_`, as an environment variable's
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the secrets: names, who set them and when, never values
    Ls {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove secret NAME
    Rm {
        /// The secret's name
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Make a new key-encryption key current and re-wrap every data key with it; secrets
    /// are not re-encrypted
    RotateKey {
        /// Then drop the key file's older keys that no data key of this store uses (only
        /// when no other store shares the key file)
        #[arg(long)]
        retire: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn run(command: SecretCommand) -> anyhow::Result<Exit> {
    match command {
        SecretCommand::Set { name, db } => set(&db, &name),
        SecretCommand::Ls { json, db } => list(&db, json),
        SecretCommand::Rm { name, db } => remove(&db, &name),
        SecretCommand::RotateKey { retire, db } => rotate_key(&db, retire),
    }
}

/// Who set a secret from this machine's command line.
const LOCAL_AUTHOR: &str = "local";

fn set(db: &DbArgs, name: &str) -> anyhow::Result<Exit> {
    if let Err(error) = murmur_vault::check_name(name) {
        eprintln!("error: {error}");
        return Ok(Exit::Usage);
    }
    let value = match read_value(name)? {
        Ok(value) => value,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(Exit::Usage);
        }
    };
    let repo = repository_for(None);
    block_on(async {
        let keys = Keys::load(&repo)?;
        let store = open_store(db, &repo).await?;
        let secrets = Secrets::new(&store, &keys.keyring);
        let written = secrets
            .set(name, &value, LOCAL_AUTHOR, &SystemClock.stamp())
            .await?;
        let verb = match written {
            Written::Created => "set",
            Written::Replaced => "replaced",
        };
        emit_line(&format!("secret {name} {verb}"));
        Ok(Exit::Success)
    })
}

fn read_value(name: &str) -> anyhow::Result<Result<SecretValue, murmur_vault::Error>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "type the value of {name}, then Ctrl-D (it shows as you type; pipe it in to avoid that)"
        );
    }
    match SecretValue::read(name, &mut stdin.lock()) {
        Ok(value) => Ok(Ok(value)),
        Err(ReadError::Invalid(error)) => Ok(Err(error)),
        Err(ReadError::Io(error)) => {
            Err(error).context("cannot read the value from standard input")
        }
    }
}

fn list(db: &DbArgs, json: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let store = open_store(db, &repo).await?;
        let entries = store.secrets().await?;
        if json {
            emit_line(&serde_json::to_string_pretty(&entries)?);
            return Ok(Exit::Success);
        }
        if entries.is_empty() {
            eprintln!("no secrets; `murmur secret set NAME < value` adds one");
        }
        for entry in &entries {
            let line = format!(
                "{:<32} {:<24} {}",
                entry.name,
                sanitize(&entry.updated_by),
                entry.updated_at
            );
            emit_line(&line);
        }
        Ok(Exit::Success)
    })
}

fn remove(db: &DbArgs, name: &str) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let keys = Keys::load(&repo)?;
        let store = open_store(db, &repo).await?;
        match Secrets::new(&store, &keys.keyring).remove(name).await {
            Ok(()) => {
                emit_line(&format!("secret {name} removed"));
                Ok(Exit::Success)
            }
            Err(error @ SecretsError::NoSecret(_)) => {
                eprintln!("error: {error}");
                Ok(Exit::Failure)
            }
            Err(error) => Err(error.into()),
        }
    })
}

/// Makes a new key-encryption key current and re-wraps every data key with it; secrets are
/// not re-encrypted. With a key file, the new key is added to it; with `retire`, older keys
/// that no data key of this store needs are dropped (only when no other store shares the
/// file). With `MURMUR_KEK`, set the new key there and the old one in
/// `MURMUR_KEK_PREVIOUS` first.
fn rotate_key(db: &DbArgs, retire: bool) -> anyhow::Result<Exit> {
    let repo = repository_for(None);
    block_on(async {
        let mut keys = Keys::load(&repo)?;
        let store = open_store(db, &repo).await?;
        if let Some(file) = keys.file.as_mut() {
            let id = file.rotate()?;
            eprintln!("new key-encryption key {id} in {}", file.path().display());
            keys.keyring = file.keyring()?;
        }
        let secrets = Secrets::new(&store, &keys.keyring);
        let rotation = secrets.rotate(&SystemClock.stamp()).await?;
        emit_line(&format!(
            "{} data keys re-wrapped with {}, {} already were",
            rotation.rewrapped,
            keys.keyring.current_id(),
            rotation.current
        ));
        if rotation.raced > 0 {
            eprintln!(
                "{} data keys were changed by another process meanwhile; run `murmur secret rotate-key` again",
                rotation.raced
            );
            return Ok(Exit::Failure);
        }
        if let Some(file) = keys.file.as_mut().filter(|_| retire) {
            let in_use = secrets.kek_ids_in_use().await?;
            let in_use: Vec<&str> = in_use.iter().map(String::as_str).collect();
            for id in file.retire(&in_use)? {
                eprintln!("dropped the old key-encryption key {id}");
            }
        }
        Ok(Exit::Success)
    })
}
