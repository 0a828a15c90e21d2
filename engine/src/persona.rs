//! Personas: who an agent is. The built-ins cover the usual roles; a repository adds or
//! overrides them with `.murmur/personas/NAME.md` (YAML frontmatter `model`, `runtime`,
//! `allowed_tools`; the body is the system prompt).

use std::path::Path;

use murmur_parser::Runtime;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persona {
    pub name: String,
    pub system_prompt: String,
    pub model: Option<String>,
    pub runtime: Option<Runtime>,
    pub allowed_tools: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown persona `{name}`: the built-ins are {}, and the repository defines {}", BUILTIN_NAMES.join(", "), list(.defined))]
    Unknown { name: String, defined: Vec<String> },
    #[error("cannot read persona file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("persona file {path} has invalid frontmatter: {reason}")]
    Frontmatter { path: String, reason: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

pub const BUILTIN_NAMES: [&str; 5] = [
    "programmer",
    "architect",
    "reviewer",
    "tester",
    "researcher",
];
const EDITING: &[&str] = &["Bash", "Edit", "Write", "Read", "Glob", "Grep"];
const READING: &[&str] = &["Bash", "Read", "Glob", "Grep"];

/// The built-in persona `name`, whatever a repository defines.
pub fn builtin(name: &str) -> Option<Persona> {
    let (prompt, tools) = match name {
        "programmer" => (
            "You are a careful software engineer working in a git repository. Make focused changes, \
             follow the code's existing style, run the relevant tests, and commit your work with clear messages.",
            EDITING,
        ),
        "architect" => (
            "You are a software architect. Read the code before proposing anything; answer with a concrete \
             plan: the files to change, the steps in order, the risks and how to test. Do not edit files.",
            READING,
        ),
        "reviewer" => (
            "You are a code reviewer. Read the diff and the code around it. Check correctness, tests and \
             clarity. Answer with APPROVE, or REQUEST CHANGES followed by specific, actionable items.",
            READING,
        ),
        "tester" => (
            "You are a test engineer. Write tests that fail without the change and pass with it, cover edge \
             cases, run the whole suite, and commit the tests.",
            EDITING,
        ),
        "researcher" => (
            "You are a researcher. Investigate the question in the code and its history; report findings with \
             file and line references. Do not edit files.",
            READING,
        ),
        _ => return None,
    };
    Some(Persona {
        name: name.to_owned(),
        system_prompt: prompt.to_owned(),
        model: None,
        runtime: None,
        allowed_tools: tools.iter().map(|t| (*t).to_owned()).collect(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFrontmatter {
    model: Option<String>,
    runtime: Option<Runtime>,
    allowed_tools: Option<Vec<String>>,
}

/// The persona `name`: the repository's file if it has one, else the built-in.
pub fn resolve(repository: &Path, name: &str) -> Result<Persona, Error> {
    let path = repository
        .join(".murmur/personas")
        .join(format!("{name}.md"));
    match std::fs::read_to_string(&path) {
        Ok(text) => from_file(name, &path, &text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            builtin(name).ok_or_else(|| Error::Unknown {
                name: name.to_owned(),
                defined: defined(repository),
            })
        }
        Err(source) => Err(Error::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn from_file(name: &str, path: &Path, text: &str) -> Result<Persona, Error> {
    let (front, body) = split_frontmatter(text);
    let front: FileFrontmatter = match front {
        Some(yaml) if !yaml.trim().is_empty() => {
            serde_saphyr::from_str(yaml).map_err(|e| Error::Frontmatter {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?
        }
        _ => FileFrontmatter {
            model: None,
            runtime: None,
            allowed_tools: None,
        },
    };
    let fallback_tools = builtin(name)
        .map(|p| p.allowed_tools)
        .unwrap_or_else(|| EDITING.iter().map(|t| (*t).to_owned()).collect());
    Ok(Persona {
        name: name.to_owned(),
        system_prompt: body.trim().to_owned(),
        model: front.model,
        runtime: front.runtime,
        allowed_tools: front.allowed_tools.unwrap_or(fallback_tools),
    })
}

fn split_frontmatter(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (None, text);
    };
    match rest.find("\n---") {
        Some(end) => {
            let body_start = rest[end + 4..]
                .find('\n')
                .map_or(rest.len(), |n| end + 4 + n + 1);
            (Some(&rest[..end]), &rest[body_start.min(rest.len())..])
        }
        None => (None, text),
    }
}

/// The personas a repository defines in `.murmur/personas/`, sorted.
pub fn defined(repository: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(repository.join(".murmur/personas")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_repository_personas() {
        let repo = tempfile::tempdir().unwrap();
        let reviewer = resolve(repo.path(), "reviewer").unwrap();
        assert!(reviewer.system_prompt.contains("APPROVE"));
        assert!(!reviewer.allowed_tools.contains(&"Edit".to_owned()));
        std::fs::create_dir_all(repo.path().join(".murmur/personas")).unwrap();
        std::fs::write(
            repo.path().join(".murmur/personas/dba.md"),
            "---\nmodel: claude-opus-4-1\nruntime: claude\nallowed_tools: [Read, Bash]\n---\n\nYou know PostgreSQL well.\n",
        )
        .unwrap();
        let dba = resolve(repo.path(), "dba").unwrap();
        assert_eq!(dba.model.as_deref(), Some("claude-opus-4-1"));
        assert_eq!(dba.runtime, Some(Runtime::Claude));
        assert_eq!(dba.allowed_tools, ["Read", "Bash"]);
        assert_eq!(dba.system_prompt, "You know PostgreSQL well.");
        let unknown = resolve(repo.path(), "dbb").unwrap_err().to_string();
        assert!(unknown.contains("the repository defines dba"), "{unknown}");
        std::fs::write(
            repo.path().join(".murmur/personas/bad.md"),
            "---\nmodle: x\n---\nText\n",
        )
        .unwrap();
        assert!(matches!(
            resolve(repo.path(), "bad"),
            Err(Error::Frontmatter { .. })
        ));
    }
}
