//! The documentation inside the repository keeps up with the binary: every command of the real
//! `murmur --help` (recursively) has its section in docs/cli.md naming each of its flags, and
//! the README and docs/ link only to files that exist in the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Printed by every command; docs/cli.md says them once, not per command.
const EVERYWHERE: [&str; 3] = ["--plain", "--help", "--version"];
const REFRESH: &str = "run `scripts/cli_docs.py` to regenerate the command reference";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_murmur"))
        .args(path)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "murmur {path:?} --help: {out:?}");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The lines of one titled section of a help text (`Commands:`, `Options:`).
fn section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|line| *line != title)
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' '))
        .collect()
}

fn subcommands(help: &str) -> Vec<String> {
    section(help, "Commands:")
        .into_iter()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

fn flags(help: &str) -> BTreeSet<String> {
    section(help, "Options:")
        .into_iter()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            line.split([' ', ','])
                .find(|word| word.starts_with("--"))
                .map(str::to_owned)
        })
        .filter(|flag| !EVERYWHERE.contains(&flag.as_str()))
        .collect()
}

/// Every command path of the binary, depth first, with its help text.
fn commands(path: Vec<String>, found: &mut Vec<(Vec<String>, String)>) {
    let text = help(&path);
    let children = subcommands(&text);
    found.push((path.clone(), text));
    for child in children {
        let mut deeper = path.clone();
        deeper.push(child);
        commands(deeper, found);
    }
}

/// The text of docs/cli.md's section whose heading is `` `murmur PATH` ``, up to the next
/// command's heading.
fn doc_section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let heading = format!("`{name}`");
    let start = doc
        .lines()
        .find(|line| line.starts_with('#') && line.trim_start_matches('#').trim() == heading)?;
    let at = doc.find(start)? + start.len();
    let rest = &doc[at..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    Some(&rest[..end])
}

#[test]
fn every_command_and_flag_is_in_the_cli_reference() {
    let doc = read("docs/cli.md");
    let mut found = Vec::new();
    commands(Vec::new(), &mut found);
    assert!(
        found.len() > 20,
        "the walk found the commands: {}",
        found.len()
    );
    let mut missing = Vec::new();
    for (path, text) in &found[1..] {
        let name = format!("murmur {}", path.join(" "));
        let Some(section) = doc_section(&doc, &name) else {
            missing.push(format!("no section for `{name}`"));
            continue;
        };
        for flag in flags(text) {
            if !section.contains(&format!("{flag}`")) && !section.contains(&format!("{flag} ")) {
                missing.push(format!("`{name}` does not mention {flag}"));
            }
        }
    }
    for flag in EVERYWHERE {
        if !doc.contains(flag) {
            missing.push(format!("docs/cli.md never mentions {flag}"));
        }
    }
    assert!(missing.is_empty(), "{REFRESH}:\n{}", missing.join("\n"));
}

/// The Markdown without its code: fenced blocks and inline code spans.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut kept = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let outside_code = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
            kept.push_str(&outside_code);
            kept.push('\n');
        }
    }
    kept
}

/// Relative links (`](path)`, `](path#anchor)`) of Markdown prose.
fn relative_links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| text[at + 2..].split(')').next())
        .map(|target| target.split('#').next().unwrap_or(""))
        .filter(|target| !target.is_empty() && !target.contains("://"))
        .filter(|target| !target.starts_with("mailto:"))
        .collect()
}

#[test]
fn the_readme_and_the_docs_link_only_inside_the_repository() {
    let root = root();
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|ext| ext == "md") {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        let text = prose(&std::fs::read_to_string(file).expect("readable"));
        let dir = file.parent().expect("a folder");
        for link in relative_links(&text) {
            let target = dir.join(link);
            let inside = target
                .canonicalize()
                .is_ok_and(|target| target.starts_with(&root));
            if !inside {
                broken.push(format!("{}: {link}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to missing or outside files:\n{}",
        broken.join("\n")
    );
    let readme = read("README.md");
    for doc in [
        "docs/flights.md",
        "docs/cli.md",
        "docs/http.md",
        "docs/configuration.md",
    ] {
        assert!(
            readme.contains(&format!("]({doc}")),
            "README.md links {doc}"
        );
    }
}

#[test]
fn the_flight_reference_names_every_diagnostic_code() {
    let doc = read("docs/flights.md");
    let codes = read("parser/src/diagnostic.rs");
    // The codes' one text mapping: `Code::X => "text",`.
    let names: Vec<&str> = codes
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Code::"))
        .filter_map(|rest| rest.split_once("=> \""))
        .filter_map(|(_, text)| text.split('"').next())
        .collect();
    assert!(names.len() > 15, "found the codes: {names:?}");
    let missing: Vec<&&str> = names
        .iter()
        .filter(|code| !doc.contains(&format!("`{code}`")))
        .collect();
    assert!(missing.is_empty(), "docs/flights.md lacks {missing:?}");
}
