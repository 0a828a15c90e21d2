//! KEKs from environment variables: `MURMUR_KEK` holds the current key and
//! `MURMUR_KEK_PREVIOUS` the older ones (comma- or space-separated), each 32 random bytes in
//! standard base64. For a machine where a key file is not wanted (a container, CI).

use super::{Kek, Keyring, LocalKek};
use crate::Error;

pub const KEK_VAR: &str = "MURMUR_KEK";
pub const KEK_PREVIOUS_VAR: &str = "MURMUR_KEK_PREVIOUS";

/// The keyring named by [`KEK_VAR`] and [`KEK_PREVIOUS_VAR`] in this process's environment.
pub fn keyring_from_env() -> Result<Keyring, Error> {
    let read = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    keyring_from_values(read(KEK_VAR).as_deref(), read(KEK_PREVIOUS_VAR).as_deref())
}

/// The keyring from the two variables' values (`None` when unset).
pub fn keyring_from_values(
    current: Option<&str>,
    previous: Option<&str>,
) -> Result<Keyring, Error> {
    let current = current.ok_or_else(|| Error::EnvMissing {
        var: KEK_VAR.to_owned(),
    })?;
    let mut keyring = Keyring::new(Kek::Local(parse(KEK_VAR, current)?));
    let older = previous.unwrap_or_default();
    for (index, text) in older
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        let var = format!("{KEK_PREVIOUS_VAR} (key {})", index + 1);
        keyring = keyring.with_previous(Kek::Local(parse(&var, text)?));
    }
    Ok(keyring)
}

fn parse(var: &str, text: &str) -> Result<LocalKek, Error> {
    LocalKek::from_base64(text).map_err(|reason| Error::EnvKey {
        var: var.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_text() -> String {
        LocalKek::generate().expect("key").to_base64().to_string()
    }

    #[test]
    fn current_and_previous_keys_are_read() {
        let (current, old1, old2) = (key_text(), key_text(), key_text());
        let previous = format!("{old1}, {old2}");
        let keyring = keyring_from_values(Some(&current), Some(&previous)).expect("keyring");
        assert_eq!(keyring.ids().count(), 3);
        let expected = LocalKek::from_base64(&current).expect("parses");
        assert_eq!(keyring.current_id(), expected.id());
    }

    #[test]
    fn a_missing_or_bad_key_says_what_to_set_without_echoing_it() {
        let missing = keyring_from_values(None, None).expect_err("missing");
        assert!(matches!(missing, Error::EnvMissing { .. }));
        assert!(missing.to_string().contains("base64"), "{missing}");
        let bad = keyring_from_values(Some("not!base64-secretish"), None).expect_err("bad");
        assert!(matches!(bad, Error::EnvKey { .. }));
        assert!(!bad.to_string().contains("secretish"), "{bad}");
        let short = keyring_from_values(Some("c2hvcnQ="), None).expect_err("short");
        assert!(short.to_string().contains("5 bytes, not 32"), "{short}");
        let bad_old = keyring_from_values(Some(&key_text()), Some("zz")).expect_err("old");
        assert!(bad_old.to_string().contains(KEK_PREVIOUS_VAR), "{bad_old}");
    }
}
