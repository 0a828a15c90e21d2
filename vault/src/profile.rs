//! A developer's profile (`murmur setup`): their own credentials, sealed under their tenant's
//! data key with the tenant and the developer as associated data, written as a short text
//! file (`.murmur/murmur.local.yaml`). Only the server holding the key-encryption key that
//! wraps that tenant's data key opens it; a file copied into another tenant, or edited in
//! any byte, does not open — it never yields different credentials.
//!
//! The text is YAML, but read strictly line by line: exactly these lines, in this order, so
//! that every byte of the file is either checked here or covered by the AEAD.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::aead::associated_data;
use crate::{DataKey, Error, SecretSet};

const PROFILE_LABEL: &str = "murmur profile v1";
/// The file's first line: what it is and the format's version.
const HEADER: &str = "murmur-profile: 1";
const NONCE_LEN: usize = 24;

/// A profile as the file holds it: whose it is, and the sealed credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    pub tenant: String,
    pub developer: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("tenant", &self.tenant)
            .field("developer", &self.developer)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Seals `credentials` for `developer` of `tenant` under the tenant's data key.
    pub fn seal(
        key: &DataKey,
        tenant: &str,
        developer: &str,
        credentials: &SecretSet,
    ) -> Result<Self, Error> {
        check_word("tenant", tenant)?;
        check_word("developer", developer)?;
        let plaintext = crate::wire::encode(credentials);
        let ad = associated_data(PROFILE_LABEL, &[tenant, developer]);
        let (nonce, ciphertext) = key.0.seal(&ad, &plaintext)?;
        Ok(Self {
            tenant: tenant.to_owned(),
            developer: developer.to_owned(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// The credentials, when `key` is the data key of the tenant the profile was sealed for
    /// and nothing of it changed.
    pub fn open(&self, key: &DataKey) -> Result<SecretSet, Error> {
        let ad = associated_data(PROFILE_LABEL, &[&self.tenant, &self.developer]);
        let plaintext = key
            .0
            .open(&ad, &self.nonce, &self.ciphertext)
            .ok_or_else(|| Error::Profile {
                tenant: self.tenant.clone(),
                developer: self.developer.clone(),
            })?;
        crate::wire::decode(&plaintext)
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        format!(
            "{HEADER}\ntenant: {}\ndeveloper: {}\nnonce: {}\nsealed: {}\n",
            self.tenant,
            self.developer,
            STANDARD.encode(&self.nonce),
            STANDARD.encode(&self.ciphertext),
        )
    }

    /// Reads the file's text; anything but exactly what [`Self::to_text`] writes is refused.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("it does not end with a line break"))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(malformed(&format!("the first line is not `{HEADER}`")));
        }
        let mut field = |key: &str| -> Result<String, Error> {
            let line = lines
                .next()
                .ok_or_else(|| malformed(&format!("the `{key}` line is missing")))?;
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or_else(|| malformed(&format!("expected the `{key}: ` line")))
        };
        let tenant = field("tenant")?;
        let developer = field("developer")?;
        let nonce = decode("nonce", &field("nonce")?)?;
        let ciphertext = decode("sealed", &field("sealed")?)?;
        if lines.next().is_some() {
            return Err(malformed("lines after `sealed`"));
        }
        check_word("tenant", &tenant)?;
        check_word("developer", &developer)?;
        if nonce.len() != NONCE_LEN {
            return Err(malformed("the nonce is not 24 bytes"));
        }
        Ok(Self {
            tenant,
            developer,
            nonce,
            ciphertext,
        })
    }
}

fn decode(key: &str, text: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(text)
        .map_err(|_| malformed(&format!("`{key}` is not base64")))
}

/// Tenants and developers are single printable words, so that a line reads back as it was.
fn check_word(what: &str, word: &str) -> Result<(), Error> {
    let fits =
        (1..=200).contains(&word.len()) && word.chars().all(|c| c.is_ascii_graphic() && c != '#');
    if fits {
        Ok(())
    } else {
        Err(malformed(&format!(
            "the {what} must be one word of printable ASCII characters, at most 200"
        )))
    }
}

fn malformed(reason: &str) -> Error {
    Error::Malformed {
        what: "profile (.murmur/murmur.local.yaml; run `murmur setup` again)",
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretValue;

    fn credentials() -> SecretSet {
        let mut set = SecretSet::new();
        let value = |text: &str| SecretValue::new(text.as_bytes().to_vec());
        set.insert("ANTHROPIC_API_KEY", value("sk-ant-marker"))
            .expect("insert");
        set.insert("GITHUB_TOKEN", value("ghp-marker"))
            .expect("insert");
        set
    }

    #[test]
    fn a_profile_round_trips_through_its_text() {
        let key = DataKey::generate().expect("key");
        let profile = Profile::seal(&key, "acme", "ada@example.com", &credentials()).expect("seal");
        let text = profile.to_text();
        assert!(!text.contains("marker"), "{text}");
        let read = Profile::from_text(&text).expect("reads");
        assert_eq!(read, profile);
        assert_eq!(read.open(&key).expect("opens"), credentials());
    }

    #[test]
    fn another_key_tenant_or_developer_does_not_open_it() {
        let key = DataKey::generate().expect("key");
        let text = Profile::seal(&key, "acme", "ada", &credentials())
            .expect("seal")
            .to_text();
        let other = DataKey::generate().expect("key");
        let refused = Profile::from_text(&text).unwrap().open(&other).unwrap_err();
        assert!(matches!(refused, Error::Profile { .. }), "{refused}");
        for (from, to) in [
            ("tenant: acme", "tenant: acmf"),
            ("developer: ada", "developer: bob"),
        ] {
            let edited = Profile::from_text(&text.replace(from, to)).expect("still reads");
            assert!(
                matches!(edited.open(&key), Err(Error::Profile { .. })),
                "{to}"
            );
        }
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let key = DataKey::generate().expect("key");
        let text = Profile::seal(&key, "acme", "ada", &credentials())
            .expect("seal")
            .to_text();
        for index in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[index] ^= 0x01;
            let Ok(tampered) = String::from_utf8(bytes) else {
                continue;
            };
            let opened = Profile::from_text(&tampered).and_then(|p| p.open(&key));
            assert!(opened.is_err(), "byte {index} changed and it still opened");
        }
    }

    #[test]
    fn hostile_text_is_refused_with_a_reason() {
        for text in [
            "",
            "murmur-profile: 1",
            "murmur-profile: 2\n",
            "tenant: a\n",
        ] {
            let refused = Profile::from_text(text).unwrap_err();
            assert!(matches!(refused, Error::Malformed { .. }), "{refused}");
        }
        let key = DataKey::generate().expect("key");
        assert!(Profile::seal(&key, "ac me", "ada", &credentials()).is_err());
    }
}
