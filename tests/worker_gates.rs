//! Gate checks through `murmur worker`, real processes: a `murmur serve` with a `workers` pool
//! and workers in folders of their own. The `ci` check and the `review` session of an agent
//! that ran on a worker run there too, in the agent's worktree on the worker (not on the
//! server's host), with the agents' environment (a passed variable set only on the worker, a
//! secret sealed to the worker, masked in what comes back), and their verdicts come back: a
//! failure reaches the agent as a follow-up, a pass completes the run. A check whose worker is
//! killed runs again on the other, from the agent's branch; one cut short by a server restart
//! runs again. The reviewer is the real Claude Code CLI, or (a `reviewer` persona on `codex`)
//! the real Codex CLI, against the scripted model server. On SQLite and PostgreSQL.

#[path = "../cli/tests/claude_project/mod.rs"]
mod claude_project;
#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use claude_project::{Project, agent, text};
use murmur_testkit::codex_cli::{codex_bin, codex_env, provider_config};
use murmur_testkit::{ModelServer, Turn};
use support::beacon::Beacon;
use support::db::{Backend, PgDatabase};
use support::serve;
use support::watched::Watched;

/// The variable naming the file the `ci` check writes its working folder to: passed to the
/// check through `environment.pass`, and set only in the worker's environment.
const WHERE_VAR: &str = "GATE_CHECK_RECORD";

/// A secret's value, found nowhere but where it is used.
const SECRET: &str = "secret-5f0c2e-for-the-check-only";

/// The project and its model server, as every `murmur` of the test runs against them, and the
/// folder of the tenant's key file. With a Codex home, the Codex CLI is set up too.
struct Claude {
    project: Project,
    model: ModelServer,
    _keys: tempfile::TempDir,
    _database: Option<PgDatabase>,
    codex_home: Option<tempfile::TempDir>,
}

impl serve::Murmur for Claude {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.project.murmur(&self.model, args);
        if let Some(home) = &self.codex_home {
            command
                .env("MURMUR_CODEX_BIN", codex_bin())
                .envs(codex_env(home.path()));
        }
        command
    }
}

type Cluster = serve::Cluster<Claude>;

fn cluster(backend: &Backend, flight: &str, config: &str, turns: Vec<Turn>) -> Cluster {
    cluster_with_secret(backend, flight, config, turns, None)
}

/// A cluster whose `reviewer` persona runs on Codex, pointed at the model server.
fn codex_review_cluster(backend: &Backend, flight: &str, pool: &str, turns: Vec<Turn>) -> Cluster {
    let model = ModelServer::start(turns);
    let codex: Vec<String> = provider_config(&model.openai_url())
        .iter()
        .map(|c| format!("      - '{}'", c.replace('\'', "''")))
        .collect();
    let config = format!(
        "{pool}runtimes:\n  codex:\n    config:\n{}\n",
        codex.join("\n")
    );
    // A model the scripted Responses API serves as the Codex CLI asks it (as codex_flight does).
    let persona = "---\nruntime: codex\nmodel: gpt-5.5\n---\nYou review changes.\n";
    let files = [
        (".murmur/murmur.yaml", config.as_str()),
        (".murmur/personas/reviewer.md", persona),
    ];
    let setup = Setup {
        backend,
        flight,
        files: &files,
        model,
        secret: None,
        codex: true,
    };
    setup.start()
}

/// The same, with a secret of the tenant's set first (`murmur secret set NAME`); the server
/// has the tenant's key file, and not the check's variable, which only the workers set.
fn cluster_with_secret(
    backend: &Backend,
    flight: &str,
    config: &str,
    turns: Vec<Turn>,
    secret: Option<(&str, &str)>,
) -> Cluster {
    let setup = Setup {
        backend,
        flight,
        files: &[(".murmur/murmur.yaml", config)],
        model: ModelServer::start(turns),
        secret,
        codex: false,
    };
    setup.start()
}

/// What a cluster of these tests is made of.
struct Setup<'a> {
    backend: &'a Backend,
    flight: &'a str,
    files: &'a [(&'a str, &'a str)],
    model: ModelServer,
    secret: Option<(&'a str, &'a str)>,
    codex: bool,
}

impl Setup<'_> {
    fn start(self) -> Cluster {
        let Setup {
            backend,
            flight,
            files,
            model,
            secret,
            codex,
        } = self;
        let keys_dir = tempfile::tempdir().expect("temp dir");
        let keys = keys_dir.path().join("keys");
        let mut project = Project::with_files(&[("job", flight)], files);
        let database = support::db::created(backend, "gates").map(|(database, url)| {
            project.use_database(url);
            database
        });
        if let Some((name, value)) = secret {
            let mut set = with_keys(project.murmur(&model, &["secret", "set", name]), &keys);
            let out = support::with_stdin(&mut set, &format!("{value}\n"));
            assert!(out.status.success(), "{}", text(&out));
        }
        let short_lease = serve::short_lease();
        let serve_with: serve::ServeWith = Box::new(move |command| {
            with_keys_in(command, &keys);
            command.env_remove(WHERE_VAR);
            short_lease(command);
        });
        let claude = Claude {
            project,
            model,
            _keys: keys_dir,
            _database: database,
            codex_home: codex.then(|| tempfile::tempdir().expect("temp dir")),
        };
        serve::Cluster::start(claude, "fleet", serve_with)
    }
}

/// A worker in its own folder, once registered; the check records its folder in `record`.
fn worker(cluster: &Cluster, name: &str, record: &Path) -> Watched {
    let mut command = cluster.worker_command(name, &cluster.worker_token);
    command.env(WHERE_VAR, record);
    serve::registered(command).0
}

/// The command with the tenant's key file (and no other key-encryption key).
fn with_keys(mut command: Command, keys: &Path) -> Command {
    with_keys_in(&mut command, keys);
    command
}

fn with_keys_in(command: &mut Command, keys: &Path) {
    command
        .env_remove("MURMUR_KEK")
        .env_remove("MURMUR_KEK_PREVIOUS")
        .env("MURMUR_KEY_FILE", keys);
}

every_backend!(
    a_ci_check_runs_on_the_worker_that_holds_the_agent_s_worktree,
    a_check_whose_worker_is_killed_runs_again_on_the_other_from_the_branch,
    a_check_cut_short_by_a_server_restart_runs_again_on_the_same_worker,
    a_review_runs_on_the_worker_and_its_requests_reach_the_agent,
    a_codex_review_runs_on_the_worker,
);

/// `build` commits `fixed.txt` only on a follow-up, saying when it was told what was missing.
const CI_FLIGHT: &str = "---\nruntime: exec\npool: fleet\n---\n\n# Checked on a worker\n\n## build\n> gate: ci\n> retries: 1\n\n\
```sh\n\
case \"$MURMUR_FOLLOW_UP\" in *'fixed.txt is missing'*) echo 'told: fixed.txt is missing' ;; esac\n\
if [ -n \"$MURMUR_FOLLOW_UP\" ]; then\n  echo ok > fixed.txt && git add fixed.txt && git -c user.name=a -c user.email=a@a commit -qm fix\nfi\n\
echo \"built on attempt $MURMUR_ATTEMPT\"\n```\n";

/// A configuration whose `ci` check is `script` (kept in `dirs`), passed the record's variable.
fn ci_config(dirs: &Path, script: &str, max_vms: u32) -> String {
    let check = dirs.join("check.sh");
    std::fs::write(&check, script).expect("write the check");
    format!(
        "pools:\n  fleet: {{ placement: workers, max_vms: {max_vms} }}\nchecks:\n  command: \"sh '{}'\"\nenvironment:\n  pass: [{WHERE_VAR}]\n",
        check.display()
    )
}

fn a_ci_check_runs_on_the_worker_that_holds_the_agent_s_worktree(backend: &Backend) {
    let dirs = tempfile::tempdir().expect("temp dir");
    let script = format!(
        "echo \"$PWD\" >> \"${WHERE_VAR}\"\nprintf '%s\\n' \"$DEPLOY_TOKEN\" >> \"${WHERE_VAR}.token\"\necho \"token $DEPLOY_TOKEN\"\ntest -f fixed.txt || {{ echo 'fixed.txt is missing'; exit 3; }}\n"
    );
    let config = ci_config(dirs.path(), &script, 1) + "secrets: [DEPLOY_TOKEN]\n";
    let secret = Some(("DEPLOY_TOKEN", SECRET));
    let cluster = cluster_with_secret(backend, CI_FLIGHT, &config, Vec::new(), secret);
    let record = cluster.path("where.txt");
    let _worker = worker(&cluster, "one", &record);
    let run = cluster.api.start_run("job");
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    assert!(
        events.contains("told: fixed.txt is missing"),
        "the check's failure reached the agent as a follow-up: {events}"
    );
    assert!(events.contains("event: gate_failed"), "{events}");
    assert!(events.contains("event: gate_passed"), "{events}");

    let folders = std::fs::read_to_string(&record).expect("the check recorded where it ran");
    let folders: Vec<&str> = folders.lines().collect();
    assert_eq!(folders.len(), 2, "failed once, then passed: {folders:?}");
    let tokens = std::fs::read_to_string(cluster.path("where.txt.token")).expect("the tokens");
    assert_eq!(
        tokens.lines().collect::<Vec<_>>(),
        [SECRET, SECRET],
        "the secret reached the check on the worker, sealed to it"
    );
    assert!(
        events.contains("token ***") && !events.contains(SECRET),
        "the value is masked in the failure that went back: {events}"
    );
    let worktree = cluster.worker_dir("one").join(&run).join("build");
    for folder in &folders {
        assert_eq!(
            Path::new(folder),
            worktree,
            "the check ran in the agent's worktree on the worker"
        );
    }
    let server_work = cluster.murmur.project.repo().join(".murmur/work");
    assert!(
        !server_work.join(&run).join("build").exists(),
        "nothing of the agent's was checked out on the server's host"
    );
    let show = cluster.murmur.project.show(&cluster.murmur.model, &run);
    let build = agent(&show, "build");
    assert_eq!(build["state"], "completed", "{show:#}");
    assert_eq!(build["attempts"], 2, "{show:#}");
}

/// `build` commits its fix at once; its check reports the first time it runs and waits for `go`.
const QUICK_FLIGHT: &str = "---\nruntime: exec\npool: fleet\n---\n\n# Checked on a worker\n\n## build\n> gate: ci\n\n\
```sh\necho ok > fixed.txt && git add fixed.txt && git -c user.name=a -c user.email=a@a commit -qm fix\necho built\n```\n";

fn a_check_whose_worker_is_killed_runs_again_on_the_other_from_the_branch(backend: &Backend) {
    let dirs = tempfile::tempdir().expect("temp dir");
    let beacon = Beacon::bind();
    let go = dirs.path().join("go");
    let script = format!(
        "echo \"$PWD\" >> \"${WHERE_VAR}\"\nif [ ! -e '{go}' ]; then {signal}; until [ -e '{go}' ]; do sleep 0.05; done; fi\ntest -f fixed.txt\n",
        go = go.display(),
        signal = beacon.signal(),
    );
    let config = ci_config(dirs.path(), &script, 2);
    let cluster = cluster(backend, QUICK_FLIGHT, &config, Vec::new());
    let record = cluster.path("where.txt");
    let mut one = worker(&cluster, "one", &record);
    let mut two = worker(&cluster, "two", &record);
    let run = cluster.api.start_run("job");
    beacon.wait("the first check");
    let first = std::fs::read_to_string(&record).expect("the first check's folder");
    let on_one = first.contains(&cluster.worker_dir("one").display().to_string());
    let (victim, survivor) = if on_one {
        (&mut one, "two")
    } else {
        (&mut two, "one")
    };
    victim.signal("-KILL");
    std::fs::write(&go, "").expect("touch go");
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    assert!(events.contains("event: gate_passed"), "{events}");

    let folders = std::fs::read_to_string(&record).expect("the checks' folders");
    let folders: Vec<&str> = folders.lines().collect();
    assert_eq!(folders.len(), 2, "once on each worker: {folders:?}");
    let again = cluster.worker_dir(survivor).join(&run).join("build");
    assert_eq!(
        Path::new(folders[1]),
        again,
        "the check ran again on the other worker, in a worktree made from the agent's branch"
    );
    let show = cluster.murmur.project.show(&cluster.murmur.model, &run);
    let build = agent(&show, "build");
    assert_eq!(build["state"], "completed", "{show:#}");
    assert_eq!(
        build["attempts"], 1,
        "the agent's turn was not repeated: {show:#}"
    );
}

fn a_check_cut_short_by_a_server_restart_runs_again_on_the_same_worker(backend: &Backend) {
    let dirs = tempfile::tempdir().expect("temp dir");
    let beacon = Beacon::bind();
    let go = dirs.path().join("go");
    let script = format!(
        "echo \"$PWD\" >> \"${WHERE_VAR}\"\n{signal}\nuntil [ -e '{go}' ]; do sleep 0.05; done\ntest -f fixed.txt\n",
        go = go.display(),
        signal = beacon.signal(),
    );
    let config = ci_config(dirs.path(), &script, 1);
    let mut cluster = cluster(backend, QUICK_FLIGHT, &config, Vec::new());
    let record = cluster.path("where.txt");
    let _worker = worker(&cluster, "one", &record);
    let run = cluster.api.start_run("job");
    beacon.wait("the first check");
    cluster.kill_server();
    cluster.serve_again();
    beacon.wait("the check, opened again by the new server");
    std::fs::write(&go, "").expect("touch go");
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    assert!(events.contains("event: gate_interrupted"), "{events}");
    assert!(events.contains("event: gate_passed"), "{events}");
    let folders = std::fs::read_to_string(&record).expect("the checks' folders");
    let worktree = cluster.worker_dir("one").join(&run).join("build");
    let folders: Vec<&str> = folders.lines().collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
    assert!(
        folders.iter().all(|f| Path::new(f) == worktree),
        "{folders:?}"
    );
}

/// `implement` greets in English, and in French too once the reviewer asks for it.
const REVIEW_FLIGHT: &str = "---\nruntime: exec\npool: fleet\nretries: 1\n---\n\n# Reviewed on a worker\n\n## implement\n> gate: review\n\n\
```sh\n\
if [ -n \"$MURMUR_FOLLOW_UP\" ]; then echo Bonjour >> GREETING.md; else echo Hello > GREETING.md; fi\n\
git add GREETING.md && git -c user.name=a -c user.email=a@a commit -qm greet\n\
echo \"greeted on attempt $MURMUR_ATTEMPT\"\n```\n";

/// The reviewer's two verdicts: changes first, then approval.
fn review_turns() -> Vec<Turn> {
    vec![
        Turn::text("REQUEST CHANGES\nSay hello in French as well."),
        Turn::text("APPROVE\nBoth greetings are there."),
    ]
}

const REVIEW_POOL: &str = "pools:\n  fleet: { placement: workers, max_vms: 1 }\n";

fn a_review_runs_on_the_worker_and_its_requests_reach_the_agent(backend: &Backend) {
    let cluster = cluster(backend, REVIEW_FLIGHT, REVIEW_POOL, review_turns());
    reviewed_on_the_worker(&cluster);
}

/// The same review with the `reviewer` persona on Codex: the real Codex CLI runs on the worker,
/// in the agent's worktree there, against the scripted Responses API.
fn a_codex_review_runs_on_the_worker(backend: &Backend) {
    let cluster = codex_review_cluster(backend, REVIEW_FLIGHT, REVIEW_POOL, review_turns());
    reviewed_on_the_worker(&cluster);
}

/// Runs the reviewed flight on one worker: the reviewer reads the diff, then the fix, in the
/// agent's worktree on the worker, and the agent works twice.
fn reviewed_on_the_worker(cluster: &Cluster) {
    let record = cluster.path("where.txt");
    let _worker = worker(cluster, "one", &record);
    let run = cluster.api.start_run("job");
    let events = cluster.api.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    assert!(events.contains("event: gate_failed"), "{events}");
    assert!(events.contains("event: gate_passed"), "{events}");

    let calls = cluster.murmur.model.scripted_requests();
    assert_eq!(calls.len(), 2, "one call per review: {calls:#?}");
    assert!(
        calls[0].to_string().contains("+Hello"),
        "the first review reads the diff: {}",
        calls[0]
    );
    assert!(
        calls[1].to_string().contains("+Bonjour"),
        "the second review reads the fix: {}",
        calls[1]
    );
    let worktree = cluster.worker_dir("one").join(&run).join("implement");
    let worktree = worktree.display().to_string();
    assert!(
        calls
            .iter()
            .all(|call| call.to_string().contains(&worktree)),
        "the reviewer worked in the agent's worktree on the worker ({worktree}): {}",
        calls[0]
    );
    let show = cluster.murmur.project.show(&cluster.murmur.model, &run);
    let implement = agent(&show, "implement");
    assert_eq!(implement["state"], "completed", "{show:#}");
    assert_eq!(implement["attempts"], 2, "{show:#}");
}
