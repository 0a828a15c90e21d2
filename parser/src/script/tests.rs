//! The rewriting itself, and every quoting context run by real shells (dash as `sh`, and bash)
//! with hostile values: each must come out verbatim, and nothing in it may run.

use std::path::Path;
use std::process::Command;

use super::*;

/// Binds `${{ inputs.NAME }}` (and, with `item`, the item) from `values`.
fn bound(script: &str, values: &[(&str, &str)], item: bool) -> Result<Bound, Error> {
    bind(script, item, |reference| {
        let name = match reference {
            Reference::Input(name) => *name,
            Reference::Item => "item",
            Reference::RunId => "run",
            _ => return None,
        };
        values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
}

fn one(script: &str, value: &str) -> Bound {
    bound(script, &[("v", value)], false).expect("bound")
}

/// Runs the bound script with `shell -c` in `dir`: its stdout, and whether it succeeded.
fn run(shell: &str, bound: &Bound, dir: &Path) -> String {
    let output = Command::new(shell)
        .arg("-c")
        .arg(&bound.script)
        .envs(bound.env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .output()
        .expect("the shell runs");
    assert!(
        output.status.success(),
        "{shell} failed on {:?}: {}",
        bound.script,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn shells() -> Vec<&'static str> {
    let mut shells = vec!["sh"];
    if Command::new("bash").arg("-c").arg(":").status().is_ok() {
        shells.push("bash");
    }
    shells
}

/// Values that would run `touch pwned` (or change the script) were they script text.
fn hostile() -> Vec<String> {
    let mut values: Vec<String> = [
        "$(touch pwned)",
        "`touch pwned`",
        "'; touch pwned; '",
        "\"; touch pwned; \"",
        "\\",
        "a\\\"b\\'c\\\\",
        "; touch pwned",
        "line one\nline two\n\ntouch pwned\n",
        "$HOME ${HOME} $0 $1 $$",
        "* ? [a-z] [!x] ~",
        "}}${{ inputs.v }}{}",
        "'\"'\"'",
        "EOF\ntouch pwned\nEOF",
        "x $(id -un) `hostname`",
        "  leading and trailing  ",
        "",
        "tab\there ünïcödé ✓",
        "\\$(touch pwned)",
        "$((1+1))",
    ]
    .iter()
    .map(|v| (*v).to_owned())
    .collect();
    values.push("$(touch pwned) `touch pwned` 'q' \"dq\" \\ ;\n*?[ ".repeat(100_000 / 48));
    values
}

/// Scripts that print `${{ inputs.v }}` in some context, and what they print for `value`.
fn cases(value: &str) -> Vec<(&'static str, String)> {
    let v = value;
    let trimmed = value.trim_end_matches('\n');
    vec![
        ("printf '%s' ${{ inputs.v }}", v.to_owned()),
        ("printf '%s' \"${{ inputs.v }}\"", v.to_owned()),
        ("printf '%s' '${{ inputs.v }}'", v.to_owned()),
        ("printf '%s' \"<${{ inputs.v }}>\"", format!("<{v}>")),
        (
            "printf '%s' \"${{ inputs.v }}suffix\"",
            format!("{v}suffix"),
        ),
        ("printf '%s' '<${{ inputs.v }}>'", format!("<{v}>")),
        ("printf '%s' pre${{ inputs.v }}post", format!("pre{v}post")),
        ("printf '%s' \\${{ inputs.v }}", v.to_owned()),
        ("printf '%s' \"\\${{ inputs.v }}\"", v.to_owned()),
        ("printf '%s' \"a\\\"${{ inputs.v }}\"", format!("a\"{v}")),
        ("x=${{ inputs.v }}; printf '%s' \"$x\"", v.to_owned()),
        ("printf '%s' \"${UNSET:-${{ inputs.v }}}\"", v.to_owned()),
        ("printf '%s' ${UNSET:-${{ inputs.v }}}", v.to_owned()),
        (
            "printf '%s' \"$(printf '%s' \"${{ inputs.v }}\")\"",
            trimmed.to_owned(),
        ),
        (
            "printf '%s' \"$(printf '%s' ${{ inputs.v }})\"",
            trimmed.to_owned(),
        ),
        (
            "printf '%s' \"`printf '%s' ${{ inputs.v }}`\"",
            trimmed.to_owned(),
        ),
        (
            "# it's a comment: ${{ inputs.v }}\nprintf '%s' \"${{ inputs.v }}\" # and ' this",
            v.to_owned(),
        ),
        (
            "case ${{ inputs.v }} in \"${{ inputs.v }}\") printf same;; *) printf other;; esac",
            "same".to_owned(),
        ),
        ("cat <<EOF\n${{ inputs.v }}\nEOF", format!("{v}\n")),
        (
            "cat <<EOF\n\"$(printf '%s' ${{ inputs.v }})\" '${{ inputs.v }}'\nEOF",
            format!("\"{trimmed}\" '{v}'\n"),
        ),
        (
            "cat <<'EOF'\n$HOME `x` \\ ${{ inputs.v }} \\\nEOF\nprintf end",
            format!("$HOME `x` \\ {v} \\\nend"),
        ),
        ("cat <<-\"EOF\"\n\t${{ inputs.v }}\n\tEOF", format!("{v}\n")),
        (
            "cat <<'A B'\n${{ inputs.v }}\nA B\nprintf after",
            format!("{v}\nafter"),
        ),
        (
            "cat <<A; cat <<'B'\n${{ inputs.v }}\nA\n'${{ inputs.v }}'\nB",
            format!("{v}\n'{v}'\n"),
        ),
        (
            "printf '%s' \"$(cat <<'EOF'\n${{ inputs.v }}\nEOF\n)\"",
            trimmed.to_owned(),
        ),
        (
            "cat <<'EOF'\nno reference: $HOME\nEOF",
            "no reference: $HOME\n".to_owned(),
        ),
    ]
}

#[test]
fn every_context_prints_hostile_values_verbatim_and_runs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    for shell in shells() {
        for value in hostile() {
            for (script, expected) in cases(&value) {
                let bound = one(script, &value);
                let printed = run(shell, &bound, dir.path());
                assert_eq!(
                    printed,
                    expected,
                    "{shell}: {script:?} with {:?} became {:?}",
                    &value[..value.len().min(60)],
                    bound.script
                );
                assert!(
                    !dir.path().join("pwned").exists(),
                    "{shell} ran part of {value:?} in {script:?}"
                );
            }
        }
    }
}

#[test]
fn bash_ansi_c_quotes_are_closed_and_reopened() {
    if !shells().contains(&"bash") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for value in hostile() {
        let bound = one("printf '%s' $'a\\t${{ inputs.v }}\\'b'", &value);
        assert_eq!(run("bash", &bound, dir.path()), format!("a\t{value}'b"));
        assert!(!dir.path().join("pwned").exists());
    }
}

#[test]
fn expansions_are_written_for_their_context() {
    let cases = [
        ("echo ${{ inputs.v }}", "echo \"$MURMUR_REF_1\""),
        (
            "echo \"hello ${{ inputs.v }}!\"",
            "echo \"hello ${MURMUR_REF_1}!\"",
        ),
        (
            "echo 'a ${{ inputs.v }} b'",
            "echo 'a '\"$MURMUR_REF_1\"' b'",
        ),
        (
            "cat <<EOF\n${{ inputs.v }}\nEOF",
            "cat <<EOF\n${MURMUR_REF_1}\nEOF",
        ),
        (
            "cat <<'EOF'\n$x ${{ inputs.v }}\nEOF",
            "cat <<EOF\n\\$x ${MURMUR_REF_1}\nEOF",
        ),
        ("cat <<'EOF'\n$x\nEOF", "cat <<'EOF'\n$x\nEOF"),
        ("echo \\${{ inputs.v }}", "echo \"$MURMUR_REF_1\""),
    ];
    for (script, expected) in cases {
        let bound = one(script, "value");
        assert_eq!(bound.script, expected, "{script}");
        let expected_env = match script.contains("${{") {
            true => vec![("MURMUR_REF_1".to_owned(), "value".to_owned())],
            false => Vec::new(),
        };
        assert_eq!(bound.env, expected_env);
    }
}

#[test]
fn one_variable_per_reference_and_unknown_ones_stay_as_written() {
    let bound = bound(
        "echo ${{ inputs.a }} ${{inputs.b}} ${{ inputs.a }} ${{ github.sha }} ${{ inputs.zzz }}",
        &[("a", "1"), ("b", "2")],
        false,
    )
    .expect("bound");
    assert_eq!(
        bound.script,
        "echo \"$MURMUR_REF_1\" \"$MURMUR_REF_2\" \"$MURMUR_REF_1\" ${{ github.sha }} ${{ inputs.zzz }}"
    );
    assert_eq!(bound.env.len(), 2);
}

#[test]
fn the_fan_out_item_is_a_variable_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    for value in hostile() {
        let script = "printf '%s|' {} '{}' \"${{ item }}\" ${{ run.id }}";
        let bound = bound(script, &[("item", &value), ("run", "r-1")], true).expect("bound");
        assert_eq!(bound.env.len(), 2, "`{{}}` and `${{{{ item }}}}` share one");
        let printed = run("sh", &bound, dir.path());
        assert_eq!(printed, format!("{value}|{value}|{value}|r-1|"));
        assert!(!dir.path().join("pwned").exists());
    }
    let not_an_instance = bound("find . -exec echo {} \\;", &[("item", "x")], false);
    assert_eq!(
        not_an_instance.expect("bound").script,
        "find . -exec echo {} \\;",
        "`{{}}` is only an item in an instance"
    );
}

#[test]
fn arithmetic_and_nul_bytes_are_refused() {
    let error = bound("echo $(( ${{ inputs.v }} + 1 ))", &[("v", "1")], false).unwrap_err();
    assert_eq!(error, Error::Arithmetic("${{ inputs.v }}".to_owned()));
    assert!(error.to_string().contains("expr"), "{error}");
    let error = bound("echo ${{ inputs.v }}", &[("v", "a\0b")], false).unwrap_err();
    assert_eq!(error, Error::NulByte("${{ inputs.v }}".to_owned()));
    let nested = bound("echo $(( $(echo ${{ inputs.v }}) ))", &[("v", "1")], false);
    assert!(
        nested.is_ok(),
        "a command inside arithmetic is a script again"
    );
}

#[test]
fn scripts_without_references_are_untouched() {
    for script in [
        "echo \"unterminated",
        "cat <<'EOF'\nno end",
        "echo $((1 + 2)) ${x:-y} `date` $'a' # c'",
        "",
        "ünïcödé ✓ \\",
    ] {
        assert_eq!(one(script, "v").script, script);
    }
}

#[test]
fn broken_scripts_never_panic() {
    let pieces = [
        "${{ inputs.v }}",
        "'",
        "\"",
        "\\",
        "$(",
        "$((",
        "${",
        ")",
        "}",
        "`",
        "<<",
        "<<-'E'",
        "\n",
        "#",
        "$'",
        "E",
        "{}",
        "\t",
        "ü",
    ];
    // Every sequence of three pieces: the scanner must finish and bind the reference.
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let script = format!("{a}{b}{c}");
                let result = bound(&script, &[("v", "x"), ("item", "i")], true);
                let bindable = |text: &str| {
                    reference::occurrences(text)
                        .filter(|o| o.expression.trim() == "inputs.v")
                        .count()
                };
                if let Ok(bound) = result {
                    assert_eq!(bindable(&bound.script), 0, "{script:?}");
                }
            }
        }
    }
}
