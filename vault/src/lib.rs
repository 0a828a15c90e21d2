//! Murmur's secrets, kept so that no value rests in plaintext.
//!
//! - **At rest, envelope encryption**: each tenant has a [`DataKey`] that encrypts its secrets
//!   (XChaCha20-Poly1305, associated data = tenant and name). The data key is stored only
//!   wrapped ([`WrappedKey`]) by a key-encryption key from a [`Keyring`]: a [`KeyFile`], an
//!   environment variable ([`keyring_from_env`]), or AWS KMS (feature `kms`). Each wrapped key
//!   records its KEK's id, so rotating the KEK re-wraps data keys and leaves secrets alone.
//! - **On the way to a machine, HPKE**: a machine's ephemeral [`MachineKey`]; the server
//!   [`seal_to`]s its public key exactly the [`SecretSet`] an attempt needs.
//! - **In memory**: [`SecretValue`] is zeroed on drop and never printed by `Debug`.
//!
//! This crate does no storage and knows nothing of runs: the caller keeps the bytes.

mod aead;
mod data_key;
mod error;
pub mod kek;
mod machine;
mod profile;
mod value;
mod wire;

pub use data_key::{DataKey, Sealed};
pub use error::Error;
pub use kek::{Kek, KeyFile, Keyring, LocalKek, WrappedKey, keyring_from_env};
pub use machine::{MachineKey, MachinePublicKey, SealedSecrets, seal_to};
pub use profile::Profile;
pub use value::{MAX_NAME, MAX_VALUE, ReadError, SecretSet, SecretValue, check_name};
