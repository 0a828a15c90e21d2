//! The one AEAD used at rest: XChaCha20-Poly1305 (RustCrypto), random 24-byte nonces (large
//! enough that random nonces never repeat in practice), and associated data that binds each
//! ciphertext to where it belongs.

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::Error;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;

/// A 256-bit symmetric key, zeroed on drop.
#[derive(Clone)]
pub struct SymmetricKey(Zeroizing<[u8; KEY_LEN]>);

impl SymmetricKey {
    pub fn generate() -> Result<Self, Error> {
        let key = Key::try_generate().map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self::from_array(key.into()))
    }

    pub fn from_array(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// `None` unless exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self::from_array(array))
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.0))
    }

    /// Encrypts under a fresh random nonce; returns (nonce, ciphertext with tag).
    pub fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), Error> {
        let nonce = XNonce::try_generate().map_err(|e| Error::Random(e.to_string()))?;
        let payload = Payload {
            msg: plaintext,
            aad: ad,
        };
        let ciphertext = self
            .cipher()
            .encrypt(&nonce, payload)
            .map_err(|_| Error::Seal("the cipher refused the input".to_owned()))?;
        Ok((nonce.into(), ciphertext))
    }

    /// `None` when the ciphertext, nonce or associated data is not what was sealed.
    pub fn open(&self, ad: &[u8], nonce: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let payload = Payload {
            msg: ciphertext,
            aad: ad,
        };
        self.cipher()
            .decrypt(&XNonce::from(nonce), payload)
            .ok()
            .map(Zeroizing::new)
    }
}

/// Associated data: a purpose label, then each part length-prefixed so that no two
/// different lists of parts give the same bytes (`("ab", "c")` is not `("a", "bc")`).
pub fn associated_data(label: &str, parts: &[&str]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(label.len() + parts.iter().map(|p| p.len() + 8).sum::<usize>());
    ad.extend_from_slice(label.as_bytes());
    for part in parts {
        ad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        ad.extend_from_slice(part.as_bytes());
    }
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_unambiguous() {
        assert_ne!(
            associated_data("l", &["ab", "c"]),
            associated_data("l", &["a", "bc"])
        );
    }

    #[test]
    fn a_sealed_message_opens_only_with_its_key_nonce_and_data() {
        let key = SymmetricKey::generate().expect("key");
        let (nonce, ciphertext) = key.seal(b"ad", b"plain").expect("seal");
        assert_eq!(
            key.open(b"ad", &nonce, &ciphertext)
                .expect("opens")
                .as_slice(),
            b"plain"
        );
        assert!(key.open(b"other", &nonce, &ciphertext).is_none());
        let other = SymmetricKey::generate().expect("key");
        assert!(other.open(b"ad", &nonce, &ciphertext).is_none());
        assert!(key.open(b"ad", &nonce[..10], &ciphertext).is_none());
    }
}
