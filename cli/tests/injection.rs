//! The issue's own reproduction, with the real binary: an input that is a command
//! substitution is printed by the exec agent, never run.

mod support;

use support::murmur_output as murmur;

const INJ: &str = "---\nruntime: exec\ninputs:\n  who: { required: true }\n---\n# Inj\n\n## hello\n> command: echo \"hello ${{ inputs.who }}\"\n\n## single\n> command: printf 'single: %s\\n' '${{ inputs.who }}'\n\n## heredoc\n\n```sh\ncat <<'EOF'\nheredoc: ${{ inputs.who }}\nEOF\n```\n";

#[test]
fn a_command_substitution_in_an_input_is_printed_not_run() {
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(repo.path().join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir(repo.path().join(".git")).expect("mkdir");
    std::fs::write(repo.path().join(".murmur/flights/inj.md"), INJ).expect("write");
    let marker = repo.path().join("pwned");
    let value = format!("$(echo INJECTED >&2; id -un) `touch {}`", marker.display());
    let input = format!("who={value}");
    let run = murmur(repo.path(), &["flight", "run", "inj", "--input", &input]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        format!("hello {value}"),
        format!("single: {value}"),
        format!("heredoc: {value}"),
    ] {
        assert!(stdout.contains(&line), "{line:?} in {stdout}");
    }
    let ran = |text: &str| {
        text.lines()
            .any(|line| line.trim_end().ends_with("INJECTED"))
    };
    assert!(
        !ran(&stderr) && !ran(&stdout),
        "the substitution ran: {stderr}"
    );
    assert!(!marker.exists(), "the backticks ran");
}
