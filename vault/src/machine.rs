//! Sealing secrets to one machine (HPKE, RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305, base mode). A machine makes its key pair in memory when it registers and
//! publishes only the public key; the server seals exactly what an attempt needs to it, with
//! an `info` naming that purpose (the attempt), so a sealed message opens only on that machine
//! and only for that purpose.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::aead::associated_data;
use crate::{Error, SecretSet, wire};

type Kem = X25519HkdfSha256;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

const INFO_LABEL: &str = "murmur machine secrets v1";
/// Bytes of an X25519 public key and of an encapsulated key.
const KEY_BYTES: usize = 32;

/// A machine's ephemeral key pair; the private half never leaves this value (zeroed on drop).
pub struct MachineKey {
    private: PrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for MachineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MachineKey(public {})", self.public().to_base64())
    }
}

/// The half a machine publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachinePublicKey(PublicKey);

/// Secrets sealed to one machine: the encapsulated key and the ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecrets {
    encapped: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecrets({} bytes)", self.ciphertext.len())
    }
}

impl MachineKey {
    /// A new key pair from the system's random number generator.
    pub fn generate() -> Self {
        let (private, public) = Kem::gen_keypair();
        Self { private, public }
    }

    pub fn public(&self) -> MachinePublicKey {
        MachinePublicKey(self.public.clone())
    }

    /// Opens what [`seal_to`] sealed to this machine's public key with the same `info`.
    pub fn open(&self, sealed: &SealedSecrets, info: &[u8]) -> Result<SecretSet, Error> {
        let encapped = EncappedKey::from_bytes(&sealed.encapped).map_err(|_| Error::Open)?;
        let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &encapped,
            &full_info(info),
            &sealed.ciphertext,
            &[],
        )
        .map_err(|_| Error::Open)?;
        wire::decode(&Zeroizing::new(plain))
    }
}

/// Seals `secrets` to the machine whose public key is `public`, for the purpose `info`.
pub fn seal_to(
    public: &MachinePublicKey,
    secrets: &SecretSet,
    info: &[u8],
) -> Result<SealedSecrets, Error> {
    let plain = wire::encode(secrets);
    let (encapped, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &public.0,
        &full_info(info),
        &plain,
        &[],
    )
    .map_err(|e| Error::Seal(e.to_string()))?;
    Ok(SealedSecrets {
        encapped: encapped.to_bytes().to_vec(),
        ciphertext,
    })
}

fn full_info(info: &[u8]) -> Vec<u8> {
    let mut full = associated_data(INFO_LABEL, &[]);
    full.extend_from_slice(&(info.len() as u64).to_be_bytes());
    full.extend_from_slice(info);
    full
}

impl MachinePublicKey {
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        self.0.to_bytes().into()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        PublicKey::from_bytes(bytes).ok().map(Self)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// A key as [`Self::to_base64`] wrote it; the error shows at most a few characters.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let refused = || {
            Error::PublicKey(
                text.chars()
                    .take(60)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            )
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| refused())?;
        Self::from_bytes(&bytes).ok_or_else(refused)
    }
}

impl SealedSecrets {
    /// One byte string for transport: the encapsulated key, then the ciphertext.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.encapped.as_slice(), &self.ciphertext].concat()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < KEY_BYTES {
            return Err(Error::Malformed {
                what: "sealed secrets",
                reason: format!("{} bytes is shorter than its key", bytes.len()),
            });
        }
        let (encapped, ciphertext) = bytes.split_at(KEY_BYTES);
        Ok(Self {
            encapped: encapped.to_vec(),
            ciphertext: ciphertext.to_vec(),
        })
    }
}
