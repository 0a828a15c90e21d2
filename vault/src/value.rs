//! Secret values in memory: wiped when dropped, never shown by `Debug`, and their names
//! checked to be usable as environment variables (which is how agents receive them).

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::Error;

/// Longest secret name accepted.
pub const MAX_NAME: usize = 128;
/// Largest value accepted: well below Linux's 128 KiB limit on one environment string.
pub const MAX_VALUE: usize = 64 * 1024;
/// Names the engine sets itself (`MURMUR_REF_1`, `MURMUR_TREE`): a secret must not shadow them.
const RESERVED_PREFIX: &str = "MURMUR_";

/// A secret's plaintext. Its memory is zeroed on drop; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of the bytes (no copy is left behind by this call).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A value fit for `name`: not empty, no NUL, not too large.
    pub fn checked(name: &str, bytes: Vec<u8>) -> Result<Self, Error> {
        let value = Self::new(bytes);
        value.check(name)?;
        Ok(value)
    }

    /// Reads a value for `name` from `input` (standard input, say) to its end, less one
    /// final line break (what `echo` or a terminal adds). The buffer is allocated once at
    /// its largest, so no copy of the value is left behind by a reallocation.
    pub fn read(name: &str, input: &mut impl std::io::Read) -> Result<Self, ReadError> {
        let mut bytes = Zeroizing::new(vec![0u8; MAX_VALUE + 2]);
        let mut len = 0;
        while len < bytes.len() {
            match input.read(&mut bytes[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
        for ending in [&b"\r\n"[..], b"\n"] {
            if bytes[..len].ends_with(ending) {
                len -= ending.len();
                break;
            }
        }
        bytes.truncate(len);
        let value = Self(bytes);
        value.check(name).map_err(ReadError::Invalid)?;
        Ok(value)
    }

    pub(crate) fn from_zeroizing(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    pub fn check(&self, name: &str) -> Result<(), Error> {
        let name = name.to_owned();
        if self.0.is_empty() {
            return Err(Error::EmptyValue { name });
        }
        if self.0.len() > MAX_VALUE {
            let len = self.0.len();
            return Err(Error::ValueTooLarge { name, len });
        }
        if self.0.contains(&0) {
            return Err(Error::NulInValue { name });
        }
        Ok(())
    }

    /// The plaintext, for the one place that must hand it on (an agent's environment).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// Why [`SecretValue::read`] gave no value.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the value: {0}")]
    Io(std::io::Error),
    #[error(transparent)]
    Invalid(Error),
}

/// Refuses a name that cannot be an environment variable, or that shadows Murmur's own.
pub fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !rest_ok || name.len() > MAX_NAME || name.starts_with(RESERVED_PREFIX) {
        return Err(Error::InvalidName {
            name: printable(name),
        });
    }
    Ok(())
}

/// A name is not secret, but it may be hostile: keep an error message one plain line.
fn printable(name: &str) -> String {
    let mut shown: String = name.chars().take(MAX_NAME).collect();
    shown = shown.escape_debug().to_string();
    if name.chars().count() > MAX_NAME {
        shown.push('…');
    }
    shown
}

/// Named secrets, as one agent receives them. `Debug` lists the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretSet(BTreeMap<String, SecretValue>);

impl SecretSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one secret after checking its name and value.
    pub fn insert(&mut self, name: &str, value: SecretValue) -> Result<(), Error> {
        check_name(name)?;
        value.check(name)?;
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretValue)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_value() {
        let mut set = SecretSet::new();
        set.insert("TOKEN", SecretValue::new(b"hunter2-marker".to_vec()))
            .expect("insert");
        let shown = format!("{set:?} {:?}", set.get("TOKEN"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("TOKEN"), "{shown}");
    }

    #[test]
    fn names_must_be_environment_variable_names() {
        for good in ["A", "_x", "GITHUB_TOKEN", "a1_b2"] {
            check_name(good).expect(good);
        }
        let long = "A".repeat(MAX_NAME + 1);
        for bad in [
            "",
            "1A",
            "A-B",
            "A B",
            "Ä",
            "MURMUR_REF_1",
            "A=B",
            "A\n",
            &long,
        ] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_hostile_name_is_shown_escaped_and_cut() {
        let name = format!("\x1b[2J{}", "x".repeat(500));
        let message = check_name(&name).expect_err("refused").to_string();
        assert!(!message.contains('\x1b'), "{message:?}");
        assert!(message.len() < 600, "{}", message.len());
    }

    #[test]
    fn a_read_value_loses_one_final_line_break_and_is_bounded() {
        let read = |input: &[u8]| SecretValue::read("N", &mut &input[..]);
        assert_eq!(read(b"v\n").expect("value").expose(), b"v");
        assert_eq!(read(b"v\r\n").expect("value").expose(), b"v");
        assert_eq!(read(b"a\nb\n\n").expect("value").expose(), b"a\nb\n");
        assert_eq!(read(b"v").expect("value").expose(), b"v");
        assert!(matches!(
            read(b"\n"),
            Err(ReadError::Invalid(Error::EmptyValue { .. }))
        ));
        let exact = vec![b'a'; MAX_VALUE];
        assert_eq!(read(&exact).expect("largest").len(), MAX_VALUE);
        let big = vec![b'a'; MAX_VALUE * 3];
        assert!(matches!(
            read(&big),
            Err(ReadError::Invalid(Error::ValueTooLarge { .. }))
        ));
    }

    #[test]
    fn values_must_be_non_empty_without_nul_and_bounded() {
        let check = |bytes: &[u8]| SecretValue::checked("N", bytes.to_vec());
        assert!(matches!(check(b""), Err(Error::EmptyValue { .. })));
        assert!(matches!(check(b"a\0b"), Err(Error::NulInValue { .. })));
        let big = vec![b'a'; MAX_VALUE + 1];
        assert!(matches!(check(&big), Err(Error::ValueTooLarge { .. })));
        assert_eq!(check(b"ok").expect("fine").expose(), b"ok");
    }
}
