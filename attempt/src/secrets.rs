//! An attempt's secrets on their way to the agent: sealed by the server to the machine's
//! ephemeral key (HPKE, the attempt as the purpose), opened by the machine in memory, and
//! masked (`***`) in every output line the agent prints.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use murmur_protocol::AttemptKey;
use murmur_vault::{MachineKey, MachinePublicKey, SealedSecrets, SecretSet};
use zeroize::Zeroizing;

/// What the text replacing a secret's value reads.
pub const MASK: &str = "***";

/// Seals `secrets` for the attempt `key` to the machine whose public key is `public`, as
/// `EnvironmentSpec::sealed_secrets` carries it.
pub fn seal(
    public: &MachinePublicKey,
    secrets: &SecretSet,
    key: &AttemptKey,
) -> Result<String, murmur_vault::Error> {
    let sealed = murmur_vault::seal_to(public, secrets, purpose(key).as_bytes())?;
    Ok(STANDARD.encode(sealed.to_bytes()))
}

/// Opens what [`seal`] sealed for this attempt; a machine without a key, or a message sealed
/// to another machine or for another attempt, is refused.
pub fn open(
    machine_key: Option<&MachineKey>,
    sealed: &str,
    key: &AttemptKey,
) -> Result<SecretSet, String> {
    let machine_key = machine_key.ok_or_else(|| {
        format!("attempt {key} carries secrets, but this machine holds no key to open them")
    })?;
    let bytes = Zeroizing::new(
        STANDARD
            .decode(sealed)
            .map_err(|_| format!("the sealed secrets of attempt {key} are not base64"))?,
    );
    let sealed = SealedSecrets::from_bytes(&bytes).map_err(|e| e.to_string())?;
    machine_key
        .open(&sealed, purpose(key).as_bytes())
        .map_err(|e| format!("cannot open the secrets of attempt {key}: {e}"))
}

/// The HPKE `info`: a message sealed for one attempt does not open as another's.
fn purpose(key: &AttemptKey) -> String {
    format!("attempt {}\n{}\n{}", key.run_id, key.slug, key.attempt)
}

/// The secrets as the agent's environment variables. A value that is no UTF-8 text is
/// passed as it would be read back, with replacement characters.
pub fn variables(secrets: &SecretSet) -> Vec<(String, String)> {
    secrets
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.expose()).into_owned();
            (name.to_owned(), text)
        })
        .collect()
}

/// Replaces known secret values in output lines, as GitHub Actions does. A value of several
/// lines is masked line by line too, since output arrives one line at a time.
#[derive(Clone, Default)]
pub struct Mask {
    /// Longest first, so a value that contains another is masked whole.
    values: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mask({} values)", self.values.len())
    }
}

impl Mask {
    pub fn new(secrets: &SecretSet) -> Self {
        let mut values: Vec<Zeroizing<String>> = Vec::new();
        for (_, value) in secrets.iter() {
            let text = Zeroizing::new(String::from_utf8_lossy(value.expose()).into_owned());
            let lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
            for piece in lines.chain(std::iter::once(text.as_str())) {
                if !piece.is_empty() && !values.iter().any(|v| v.as_str() == piece) {
                    values.push(Zeroizing::new(piece.to_owned()));
                }
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Self { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every known value replaced by [`MASK`].
    pub fn apply(&self, text: String) -> String {
        if !self.values.iter().any(|v| text.contains(v.as_str())) {
            return text;
        }
        let mut masked = Zeroizing::new(text);
        for value in &self.values {
            if masked.contains(value.as_str()) {
                *masked = masked.replace(value.as_str(), MASK);
            }
        }
        std::mem::take(&mut *masked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use murmur_vault::SecretValue;

    fn set(pairs: &[(&str, &str)]) -> SecretSet {
        let mut set = SecretSet::new();
        for (name, value) in pairs {
            set.insert(name, SecretValue::new(value.as_bytes().to_vec()))
                .expect("a valid secret");
        }
        set
    }

    fn key(attempt: u32) -> AttemptKey {
        AttemptKey {
            run_id: "r1".to_owned(),
            slug: "build".to_owned(),
            attempt,
        }
    }

    #[test]
    fn sealed_secrets_open_on_their_machine_for_their_attempt_only() {
        let machine = MachineKey::generate();
        let secrets = set(&[("TOKEN", "s3cret")]);
        let sealed = seal(&machine.public(), &secrets, &key(1)).expect("sealed");
        assert!(!sealed.contains("s3cret"));
        let opened = open(Some(&machine), &sealed, &key(1)).expect("opened");
        assert_eq!(
            opened.get("TOKEN").map(|v| v.expose()),
            Some(&b"s3cret"[..])
        );
        let other = MachineKey::generate();
        assert!(open(Some(&other), &sealed, &key(1)).is_err());
        assert!(open(Some(&machine), &sealed, &key(2)).is_err());
        let missing = open(None, &sealed, &key(1)).unwrap_err();
        assert!(missing.contains("holds no key"), "{missing}");
        assert!(open(Some(&machine), "not base64!", &key(1)).is_err());
    }

    #[test]
    fn known_values_are_masked_whole_and_line_by_line() {
        let mask = Mask::new(&set(&[("A", "abc"), ("B", "abcdef"), ("C", "one\ntwo")]));
        assert_eq!(mask.apply("x abcdef y abc".to_owned()), "x *** y ***");
        assert_eq!(mask.apply("two then one".to_owned()), "*** then ***");
        assert_eq!(mask.apply("nothing here".to_owned()), "nothing here");
        assert!(Mask::default().is_empty());
    }
}
