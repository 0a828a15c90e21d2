//! A tenant's data key: it encrypts that tenant's secrets, and is itself stored only wrapped
//! by a key-encryption key (see `kek`). Each secret's associated data is (tenant, name), so a
//! ciphertext copied to another tenant's row or another name does not open.

use crate::aead::{SymmetricKey, associated_data};
use crate::{Error, SecretValue};

const SECRET_LABEL: &str = "murmur secret v1";

/// One encrypted secret as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// A tenant's data key in plaintext, zeroed on drop; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct DataKey(pub(crate) SymmetricKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    pub fn generate() -> Result<Self, Error> {
        SymmetricKey::generate().map(Self)
    }

    /// Encrypts `value` as secret `name` of `tenant`; the value is checked first.
    pub fn encrypt(&self, tenant: &str, name: &str, value: &SecretValue) -> Result<Sealed, Error> {
        crate::value::check_name(name)?;
        value.check(name)?;
        let ad = associated_data(SECRET_LABEL, &[tenant, name]);
        let (nonce, ciphertext) = self.0.seal(&ad, value.expose())?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens what [`Self::encrypt`] sealed for exactly this tenant and name.
    pub fn decrypt(&self, tenant: &str, name: &str, sealed: &Sealed) -> Result<SecretValue, Error> {
        let ad = associated_data(SECRET_LABEL, &[tenant, name]);
        self.0
            .open(&ad, &sealed.nonce, &sealed.ciphertext)
            .map(SecretValue::from_zeroizing)
            .ok_or_else(|| Error::Decrypt {
                tenant: tenant.to_owned(),
                name: name.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> SecretValue {
        SecretValue::new(text.as_bytes().to_vec())
    }

    #[test]
    fn a_secret_round_trips() {
        let key = DataKey::generate().expect("key");
        let sealed = key
            .encrypt("acme", "TOKEN", &value("s3cret"))
            .expect("seal");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cret"));
        let opened = key.decrypt("acme", "TOKEN", &sealed).expect("opens");
        assert_eq!(opened.expose(), b"s3cret");
    }

    #[test]
    fn another_tenant_or_name_does_not_open_it() {
        let key = DataKey::generate().expect("key");
        let sealed = key
            .encrypt("acme", "TOKEN", &value("s3cret"))
            .expect("seal");
        for (tenant, name) in [("other", "TOKEN"), ("acme", "OTHER"), ("acmeT", "OKEN")] {
            let refused = key.decrypt(tenant, name, &sealed).expect_err("refused");
            assert!(matches!(refused, Error::Decrypt { .. }), "{refused}");
            assert!(!refused.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn a_tampered_ciphertext_or_nonce_does_not_open() {
        let key = DataKey::generate().expect("key");
        let sealed = key
            .encrypt("acme", "TOKEN", &value("s3cret"))
            .expect("seal");
        for index in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[index] ^= 1;
            assert!(
                key.decrypt("acme", "TOKEN", &tampered).is_err(),
                "byte {index}"
            );
        }
        let mut tampered = sealed.clone();
        tampered.nonce[0] ^= 1;
        assert!(key.decrypt("acme", "TOKEN", &tampered).is_err());
        let mut short = sealed;
        short.ciphertext.truncate(3);
        assert!(key.decrypt("acme", "TOKEN", &short).is_err());
    }

    #[test]
    fn another_data_key_does_not_open_it() {
        let sealed = DataKey::generate()
            .expect("key")
            .encrypt("acme", "TOKEN", &value("s3cret"))
            .expect("seal");
        let other = DataKey::generate().expect("key");
        assert!(other.decrypt("acme", "TOKEN", &sealed).is_err());
    }

    #[test]
    fn bad_input_is_refused_before_encrypting() {
        let key = DataKey::generate().expect("key");
        assert!(matches!(
            key.encrypt("acme", "BAD-NAME", &value("x")),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            key.encrypt("acme", "EMPTY", &value("")),
            Err(Error::EmptyValue { .. })
        ));
    }
}
