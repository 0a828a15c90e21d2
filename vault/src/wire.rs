//! The plaintext form of a [`SecretSet`] inside a sealed message: a version byte, a count,
//! then each name and value length-prefixed (u32, big-endian). Decoding treats the bytes as
//! hostile even after they opened, and every buffer holding values is zeroed on drop.

use zeroize::Zeroizing;

use crate::{Error, SecretSet, SecretValue};

const VERSION: u8 = 1;

pub fn encode(set: &SecretSet) -> Zeroizing<Vec<u8>> {
    let size = 5 + set
        .iter()
        .map(|(n, v)| 8 + n.len() + v.len())
        .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.push(VERSION);
    out.extend_from_slice(&length(set.len()));
    for (name, value) in set.iter() {
        out.extend_from_slice(&length(name.len()));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&length(value.len()));
        out.extend_from_slice(value.expose());
    }
    out
}

fn length(len: usize) -> [u8; 4] {
    // Names and values are bounded far below u32::MAX by `value::MAX_*`.
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

pub fn decode(bytes: &[u8]) -> Result<SecretSet, Error> {
    let mut reader = Reader { bytes };
    if reader.take(1)? != [VERSION] {
        return Err(malformed("unknown version"));
    }
    let count = reader.length()?;
    let mut set = SecretSet::new();
    for _ in 0..count {
        let name_len = reader.length()?;
        let name = std::str::from_utf8(reader.take(name_len)?)
            .map_err(|_| malformed("a name is not UTF-8"))?
            .to_owned();
        let value_len = reader.length()?;
        let value = SecretValue::new(reader.take(value_len)?.to_vec());
        set.insert(&name, value)?;
    }
    if !reader.bytes.is_empty() {
        return Err(malformed("bytes after the last secret"));
    }
    Ok(set)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        if len > self.bytes.len() {
            return Err(malformed("it ends early"));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn length(&mut self) -> Result<usize, Error> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| malformed("length"))?;
        Ok(u32::from_be_bytes(bytes) as usize)
    }
}

fn malformed(reason: &str) -> Error {
    Error::Malformed {
        what: "sealed secret set",
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SecretSet {
        let mut set = SecretSet::new();
        for (name, value) in [("A", "1"), ("TOKEN", "x=y\nz")] {
            set.insert(name, SecretValue::new(value.as_bytes().to_vec()))
                .expect("insert");
        }
        set
    }

    #[test]
    fn a_set_round_trips() {
        let set = sample();
        assert_eq!(decode(&encode(&set)).expect("decodes"), set);
        assert_eq!(
            decode(&encode(&SecretSet::new())).expect("empty"),
            SecretSet::new()
        );
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn huge_lengths_and_bad_names_are_refused_without_allocating() {
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&bytes).is_err());
        let mut bad_name = vec![VERSION, 0, 0, 0, 1, 0, 0, 0, 3];
        bad_name.extend_from_slice(b"A-B\0\0\0\x01x");
        assert!(matches!(decode(&bad_name), Err(Error::InvalidName { .. })));
    }
}
