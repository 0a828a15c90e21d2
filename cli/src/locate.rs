//! Finding the repository and its flights from wherever the command runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub const FLIGHTS_DIR: &str = ".murmur/flights";

/// The nearest folder at or above `start` that has a `.murmur` folder or is a git work tree.
pub fn repository_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".murmur").is_dir() || dir.join(".git").exists())
        .map(Path::to_path_buf)
}

pub fn current_repository() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir().context("cannot read the current folder")?;
    repository_root(&here).with_context(|| {
        format!(
            "{} is not inside a repository (no .murmur folder or .git above it)",
            here.display()
        )
    })
}

/// A flight argument: a path when it names an existing file or looks like one, else a name.
pub fn resolve_flight(argument: &str) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(argument);
    let looks_like_path = argument.contains('/') || argument.ends_with(".md");
    if as_path.is_file() || looks_like_path {
        return Ok(as_path.to_path_buf());
    }
    let root = current_repository()
        .with_context(|| format!("`{argument}` is not a file, and there is no repository to look up a flight of that name"))?;
    let path = root.join(FLIGHTS_DIR).join(format!("{argument}.md"));
    if path.is_file() {
        return Ok(path);
    }
    let known = flight_files(&root).unwrap_or_default();
    let names: Vec<String> = known.iter().filter_map(|p| flight_name(p)).collect();
    let hint = match murmur_parser::did_you_mean(argument, names.iter().map(String::as_str)) {
        Some(close) => format!("did you mean `{close}`?"),
        None if names.is_empty() => format!(
            "there are no flights in {}",
            root.join(FLIGHTS_DIR).display()
        ),
        None => format!("flights here: {}", names.join(", ")),
    };
    bail!(
        "no flight named `{argument}`: {} does not exist ({hint})",
        path.display()
    )
}

/// The `.md` files of a repository's flights folder, sorted by name.
pub fn flight_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(FLIGHTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "md") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A flight's name is its file stem.
pub fn flight_name(path: &Path) -> Option<String> {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
}
