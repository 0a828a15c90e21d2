//! The flights this server knows: the repository's `.murmur/flights/*.md` that are valid.

use murmur_parser::Flight;

use super::AppState;

/// A valid flight with its name and the exact text a run will be pinned to.
pub struct Known {
    pub name: String,
    pub source: String,
    pub flight: Flight,
}

/// Every valid flight, by name; invalid files are left out (`murmur flight ls` shows them).
pub fn flights(state: &AppState) -> Vec<Known> {
    let dir = state.inner.repository.join(".murmur/flights");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let name = path.file_stem()?.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).ok()?;
            let source = murmur_parser::Source::new(&text);
            let parsed = murmur_parser::parse_source(&source, &name);
            let flight = parsed.flight.clone().filter(|_| parsed.is_valid())?;
            Some(Known {
                name,
                source: source.text().to_owned(),
                flight,
            })
        })
        .collect()
}
