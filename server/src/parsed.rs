//! Flights parsed once, not per request: a start of a catalog flight re-parses only when the
//! catalog has a new generation of it, a start of a repository file only when the file's
//! text changed. Generations are never overwritten (a save is a new number, a delete is a
//! mark), so `(name, generation)` always names one text; a file is keyed by its whole text,
//! so any edit, however small, is read again.
//!
//! One entry per flight and origin: a new version replaces the old one, so the cache holds
//! at most one parse per flight that exists. Names that do not exist are never kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use murmur_parser::{Flight, Parsed, Source};

/// Which text of a flight a parse is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A catalog generation.
    Generation(i64),
    /// A repository file, by its whole text.
    Text(Arc<str>),
}

impl Version {
    fn is_from_catalog(&self) -> bool {
        matches!(self, Version::Generation(_))
    }
}

/// A flight's parse: the flight when valid, the diagnostics otherwise.
#[derive(Clone)]
pub enum Parse {
    Valid {
        /// The normalised text (BOM dropped, CRLF folded) a run is pinned to.
        source: Arc<str>,
        flight: Arc<Flight>,
    },
    Invalid(Arc<Parsed>),
}

type Key = (String, bool, String);

#[derive(Default)]
pub struct Cache {
    /// By tenant (two tenants' generation 1 of `deploy` are different texts),
    /// catalog-or-file and name.
    entries: Mutex<HashMap<Key, (Version, Parse)>>,
    /// How many texts were parsed: what tests check the cache by.
    parses: AtomicU64,
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, (Version, Parse)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The parse of `text` as flight `name` at `version`: kept from before when `version`
    /// is the one parsed last, parsed (and kept) otherwise.
    pub fn parse(&self, tenant: &str, name: &str, version: Version, text: &str) -> Parse {
        let key = (
            tenant.to_owned(),
            version.is_from_catalog(),
            name.to_owned(),
        );
        if let Some((kept, parse)) = self.lock().get(&key)
            && *kept == version
        {
            return parse.clone();
        }
        // Parsed outside the lock: a large flight must not hold up every other start.
        let parse = parse(name, text);
        self.parses.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(key, (version, parse.clone()));
        parse
    }

    /// How many texts were parsed so far.
    #[cfg(test)]
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }
}

fn parse(name: &str, text: &str) -> Parse {
    let source = Source::new(text);
    let parsed = murmur_parser::parse_source(&source, name);
    match parsed.flight.clone().filter(|_| parsed.is_valid()) {
        Some(flight) => Parse::Valid {
            source: Arc::from(source.text()),
            flight: Arc::new(flight),
        },
        None => Parse::Invalid(Arc::new(parsed)),
    }
}
