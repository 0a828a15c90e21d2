//! Findings as the engine sees them when it records a run (no pools known) and as
//! `flight validate` sees them (the configuration's pools).

use murmur_parser::{Code, Severity, Source};

use super::*;

fn flight(text: &str) -> Flight {
    murmur_parser::parse(text, "t").flight.expect("readable")
}

fn codes(findings: &[Finding]) -> Vec<(Severity, Code)> {
    findings.iter().map(|f| (f.severity, f.code)).collect()
}

const INHERITED: &str =
    "---\npersona: murmur-programmer\npool: fleet\n---\n# T\n\n## a\n\nA.\n\n## b\n\nB.\n";

#[test]
fn an_inherited_persona_is_one_finding_and_pools_go_unchecked_without_a_configuration() {
    let repo = tempfile::tempdir().expect("temp dir");
    let flight = flight(INHERITED);
    let agents = crate::run::agents_of(&flight);
    let facts = Facts::of_repository(repo.path(), false);
    let found = findings(&flight, &agents, &facts);
    assert_eq!(codes(&found), [(Severity::Error, Code::UnknownPersona)]);
    let refused = crate::run::check_runnable(&flight, &agents, repo.path(), false)
        .expect_err("an unknown persona refuses the run");
    assert!(
        refused
            .to_string()
            .starts_with("unknown persona `murmur-programmer` (did you mean `programmer`?"),
        "{refused}"
    );
    let configured = Facts {
        pools: Some(BTreeSet::from(["other".to_owned()])),
        ..facts
    };
    let diagnostics = check(&flight, &Source::new(INHERITED), &configured);
    let at: Vec<(Code, usize, usize)> = diagnostics
        .iter()
        .map(|d| (d.code, d.line, d.column))
        .collect();
    assert_eq!(
        at,
        [(Code::UnknownPersona, 2, 10), (Code::UnknownPool, 3, 7)]
    );
}

#[test]
fn warnings_never_refuse_a_run() {
    let flight = flight("---\nruntime: exec\n---\n# T\n\n## a\n> model: m\n> command: echo a\n");
    let agents = crate::run::agents_of(&flight);
    let found = findings(&flight, &agents, &Facts::default());
    assert_eq!(codes(&found), [(Severity::Warning, Code::NoEffect)]);
    assert_eq!(refuse(found), Ok(()));
}

#[test]
fn a_persona_name_that_is_no_file_stem_is_never_looked_up_on_disk() {
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(repo.path().join(".murmur/personas")).expect("mkdir");
    std::fs::write(repo.path().join(".murmur/secret.md"), "---\n---\nsecret\n").expect("write");
    let flight = flight("# T\n\n## a\n> persona: ../secret\n\nA.\n");
    let agents = crate::run::agents_of(&flight);
    let found = findings(&flight, &agents, &Facts::of_repository(repo.path(), false));
    assert_eq!(codes(&found), [(Severity::Error, Code::UnknownPersona)]);
}
