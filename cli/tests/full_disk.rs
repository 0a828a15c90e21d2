//! A store on a disk that fills up mid-run: a clear error, a consistent database, and a
//! resume that finishes once there is room again. Uses a 2 MiB tmpfs (room for the schema and a run, not for the chatty agent's 3 MB of output) in a private mount
//! namespace (`unshare`), so it needs no privileges beyond user namespaces (or root).

use std::process::Command;

#[test]
fn a_full_disk_stops_the_run_cleanly_and_resume_finishes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".murmur/flights")).expect("mkdir");
    std::fs::create_dir_all(repo.join(".git")).expect("mkdir");
    std::fs::create_dir_all(repo.join("db")).expect("mkdir");
    std::fs::write(
        repo.join(".murmur/flights/chatty.md"),
        "---\nruntime: exec\n---\n# Chatty\n\n## small\n> command: echo small\n\n## chatty\n> needs: small\n> command: head -c 3000000 /dev/zero | tr '\\0' x | fold -w 1000\n",
    )
    .expect("write flight");
    let script = r#"
set -u
murmur="$1"
mount -t tmpfs -o size=2m tmpfs db || { echo "cannot mount a tmpfs"; exit 99; }
"$murmur" flight run chatty --db db/murmur.db >/dev/null 2>first.err; echo "first=$?"
id=$("$murmur" runs ls --db db/murmur.db --json | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
echo "status=$("$murmur" runs show "$id" --db db/murmur.db --json | python3 -c "import json,sys; print(json.load(sys.stdin)['status'])")"
python3 -c "import sqlite3; print('integrity=' + sqlite3.connect('db/murmur.db').execute('pragma integrity_check').fetchone()[0])"
mount -o remount,size=64m db
"$murmur" runs resume "$id" --db db/murmur.db >/dev/null 2>resume.err; echo "resume=$?"
"$murmur" runs show "$id" --db db/murmur.db --json | python3 -c "import json,sys; r=json.load(sys.stdin); print('final=' + r['status'], 'small=%s' % r['agents'][0]['attempts'])"
"#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--map-root-user",
            "sh",
            "-c",
            script,
            "sh",
            env!("CARGO_BIN_EXE_murmur"),
        ])
        .current_dir(&repo)
        .output()
        .expect("unshare runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let first_err = std::fs::read_to_string(repo.join("first.err")).unwrap_or_default();
    assert!(
        report.contains("first=2"),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        first_err.contains("the database is full or out of disk space"),
        "{first_err}"
    );
    assert!(first_err.contains("murmur runs resume"), "{first_err}");
    // Nobody drives the run once its engine stopped: it says so until it is resumed.
    assert!(report.contains("status=interrupted"), "{report}");
    assert!(report.contains("integrity=ok"), "{report}");
    assert!(report.contains("resume=0"), "{report}");
    assert!(
        report.contains("final=completed small=1"),
        "small ran once: {report}"
    );
}
