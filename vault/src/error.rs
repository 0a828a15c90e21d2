//! What can go wrong, said so the caller knows what to do. No message ever holds a secret
//! value or key material: only names, paths, key ids and modes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the key file {path} is open to others (mode {mode:04o}); run `chmod 600 {path}` so only its owner can read it",
        path = path.display()
    )]
    LooseKeyFile { path: PathBuf, mode: u32 },
    #[error("cannot use the key file {path}: {reason}", path = path.display())]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "the environment variable {var} is not set; set it to a key-encryption key: 32 random bytes in standard base64 (`head -c 32 /dev/urandom | base64`)"
    )]
    EnvMissing { var: String },
    #[error(
        "the environment variable {var} holds no usable key-encryption key ({reason}); it must be 32 random bytes in standard base64 (`head -c 32 /dev/urandom | base64`)"
    )]
    EnvKey { var: String, reason: String },
    #[error(
        "a data key is wrapped by the key-encryption key {id}, which is not in the keyring; give that key too (an older line of the key file, MURMUR_KEK_PREVIOUS, or the KMS key), then rotate"
    )]
    UnknownKek { id: String },
    #[error(
        "the data key of tenant `{tenant}` does not open with the key-encryption key {id}: the stored wrapped key was changed, or it belongs to another tenant"
    )]
    Unwrap { tenant: String, id: String },
    #[error(
        "secret `{name}` of tenant `{tenant}` does not open: it was changed, moved from another tenant or name, or encrypted under another data key"
    )]
    Decrypt { tenant: String, name: String },
    #[error(
        "the profile of `{developer}` in tenant `{tenant}` does not open with that tenant's key: it was written by another server or for another tenant, or changed; run `murmur setup` again"
    )]
    Profile { tenant: String, developer: String },
    #[error(
        "`{name}` is not a secret name: use letters, digits and `_`, not starting with a digit or `MURMUR_`, at most {max} characters (it becomes an environment variable)",
        max = crate::value::MAX_NAME
    )]
    InvalidName { name: String },
    #[error("secret `{name}` has an empty value; give it a value on standard input")]
    EmptyValue { name: String },
    #[error(
        "secret `{name}` is too large ({len} bytes); values may have at most {max} bytes",
        max = crate::value::MAX_VALUE
    )]
    ValueTooLarge { name: String, len: usize },
    #[error(
        "secret `{name}` contains a NUL byte, which an environment variable cannot hold; give a value without it"
    )]
    NulInValue { name: String },
    #[error(
        "the sealed secrets do not open with this machine's key: they were sealed to another machine or for another purpose, or changed on the way"
    )]
    Open,
    #[error("cannot seal the secrets to the machine: {0}")]
    Seal(String),
    #[error(
        "`{0}` is not a machine public key: expected 32 bytes in standard base64, as the machine published it"
    )]
    PublicKey(String),
    #[error("the {what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("the system's random number generator failed: {0}")]
    Random(String),
    #[error(
        "AWS KMS is unreachable ({detail}); check the network, AWS_REGION and AWS_ENDPOINT_URL_KMS"
    )]
    KmsUnreachable { detail: String },
    #[error("AWS KMS refused to {action}: {message}")]
    Kms {
        action: &'static str,
        message: String,
    },
}
