//! Workers of a tenant, end to end with real processes: a worker registered with a tenant's
//! worker token is that tenant's machine. It runs that tenant's agents only (an older run of
//! the server's own tenant waiting for the same pool is passed over), it is listed in that
//! tenant's machines only (over HTTP and by `murmur machines ls --tenant`), and the server's
//! own workers run every tenant's agents.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use serde_json::Value;
use support::db::Backend;
use support::fixture::Fixture;
use support::serve::{self, Api, created_token};

const CONFIG: &str = "pools:\n  fleet: { placement: workers, max_vms: 2 }\n";

/// A one-agent flight of pool `fleet` whose agent notes `who` in the ledger.
fn flight(who: &str, ledger: &str) -> String {
    format!(
        "---\nruntime: exec\npool: fleet\n---\n# Job\n\n## note\n> command: echo \"ran {who}\" >> {ledger}\n"
    )
}

/// Creates tenant `acme`; answers an API token of it.
fn acme(fixture: &Fixture) -> String {
    let created = fixture
        .command(&["tenant", "create", "acme"])
        .output()
        .expect("murmur runs");
    assert!(created.status.success(), "{created:?}");
    token(
        fixture,
        &["token", "create", "--name", "ci", "--tenant", "acme"],
    )
}

fn token(fixture: &Fixture, args: &[&str]) -> String {
    created_token(&fixture.command(args).output().expect("murmur runs"))
}

/// Saves catalog flight `name` in the tenant of `api`'s token.
fn save_flight(api: &Api, name: &str, markdown: &str) {
    let auth = format!("Bearer {}", api.token);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/markdown"),
    ];
    let path = format!("/v1/flights/{name}");
    let (status, body) = support::http(&api.address, "PUT", &path, &headers, markdown);
    assert_eq!(status, 201, "save: {body}");
}

fn status_of(api: &Api, path: &str) -> u16 {
    let auth = format!("Bearer {}", api.token);
    support::http(&api.address, "GET", path, &[("Authorization", &auth)], "").0
}

fn machines(api: &Api) -> Vec<Value> {
    serde_json::from_str(&api.get("/v1/machines", "application/json")).expect("machines as json")
}

fn has_machine(api: &Api, id: &str) -> bool {
    machines(api).iter().any(|m| m["id"] == id)
}

fn machine_of(api: &Api, run: &str) -> Value {
    let shown: Value =
        serde_json::from_str(&api.get(&format!("/v1/runs/{run}"), "application/json"))
            .expect("run as json");
    shown["agents"][0]["machine"].clone()
}

every_backend!(
    a_tenant_s_worker_runs_that_tenant_s_agents_only,
    a_shared_worker_keeps_no_tenant_s_work_for_another
);

fn a_tenant_s_worker_runs_that_tenant_s_agents_only(backend: &Backend) {
    let fixture = Fixture::with_history(backend, "worker_tenants");
    fixture.write_config(CONFIG);
    let ledger = fixture.ledger.display().to_string();
    fixture.write_flight("job", &flight("ours", &ledger));
    let acme_token = acme(&fixture);
    let mut worker_token = serve::worker_token_args("fleet").to_vec();
    worker_token.extend(["--tenant", "acme"]);
    let acme_worker_token = token(&fixture, &worker_token);
    let cluster = serve::Cluster::start(fixture, "fleet", Box::new(|_| {}));
    let acme = Api {
        address: cluster.api.address.clone(),
        token: acme_token,
    };
    save_flight(&acme, "theirs", &flight("theirs", &ledger));

    // The server's own tenant's run waits for the pool first; acme's worker passes it over.
    let ours = cluster.api.start_run("job");
    let theirs = acme.start_run("theirs");
    let (_acme_worker, acme_machine) =
        serve::registered(cluster.worker_command("acme", &acme_worker_token));
    let events = acme.events_until_ended(&theirs);
    assert!(events.contains("event: run_completed"), "{events}");
    assert_eq!(machine_of(&acme, &theirs), acme_machine.as_str());
    let noted = std::fs::read_to_string(&ledger).unwrap_or_default();
    assert_eq!(
        noted, "ran theirs\n",
        "acme's worker ran acme's agent alone"
    );

    assert!(has_machine(&acme, &acme_machine), "{:#?}", machines(&acme));
    assert!(
        !has_machine(&cluster.api, &acme_machine),
        "another tenant's machine is not listed: {:#?}",
        machines(&cluster.api)
    );
    assert_eq!(status_of(&acme, &format!("/v1/runs/{ours}")), 404);
    let listed = |tenant: &[&str]| {
        let mut args = vec!["machines", "ls", "--json"];
        args.extend(tenant);
        cluster.murmur.murmur(&args)
    };
    let theirs = listed(&["--tenant", "acme"]);
    assert!(
        String::from_utf8_lossy(&theirs.stdout).contains(&acme_machine),
        "{theirs:?}"
    );
    let own = listed(&[]);
    assert!(
        !String::from_utf8_lossy(&own.stdout).contains(&acme_machine),
        "{own:?}"
    );
    let nobody = listed(&["--tenant", "nobody"]);
    assert!(!nobody.status.success());
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no tenant `nobody`"),
        "{nobody:?}"
    );

    // A worker of the server's own tenant runs what waits.
    let (_own_worker, own_machine) = cluster.worker("own");
    let events = cluster.api.events_until_ended(&ours);
    assert!(events.contains("event: run_completed"), "{events}");
    assert_eq!(machine_of(&cluster.api, &ours), own_machine.as_str());
    let noted = std::fs::read_to_string(&ledger).unwrap_or_default();
    assert_eq!(noted, "ran theirs\nran ours\n");
}

/// A worker of the server's own tenant runs every tenant's agents, one tenant's at a time: what
/// the server's own agent left in the worker's folder (its worktree) is gone before acme's
/// agent runs there, and acme's agent finds nothing of it.
fn a_shared_worker_keeps_no_tenant_s_work_for_another(backend: &Backend) {
    let fixture = Fixture::with_history(backend, "worker_tenants");
    fixture.write_config(CONFIG);
    fixture.write_flight(
        "job",
        "---\nruntime: exec\npool: fleet\n---\n# Job\n\n## note\n> command: echo kept-by-ours-7f3a > ours-marker.txt && echo left\n",
    );
    let acme_token = acme(&fixture);
    let cluster = serve::Cluster::start(fixture, "fleet", Box::new(|_| {}));
    let acme = Api {
        address: cluster.api.address.clone(),
        token: acme_token,
    };
    // The agent works two folders below the worker's (`RUN/SLUG`).
    save_flight(
        &acme,
        "look",
        "---\nruntime: exec\npool: fleet\n---\n# Look\n\n## look\n> command: echo \"found $(find ../.. -name 'ours-*' | wc -l) of theirs\"\n",
    );
    let (_worker, machine) = cluster.worker("shared");
    let worker_dir = cluster.path("shared");

    let ours = cluster.api.start_run("job");
    let events = cluster.api.events_until_ended(&ours);
    assert!(events.contains("event: run_completed"), "{events}");
    let left = support::marker::files_holding(&worker_dir, "kept-by-ours-7f3a");
    assert!(
        !left.is_empty(),
        "the agent's worktree stays on its machine"
    );

    let theirs = acme.start_run("look");
    let events = acme.events_until_ended(&theirs);
    assert!(events.contains("event: run_completed"), "{events}");
    assert_eq!(machine_of(&acme, &theirs), machine.as_str());
    assert!(events.contains("found 0 of theirs"), "{events}");
    assert!(
        support::marker::files_holding(&worker_dir, "kept-by-ours-7f3a").is_empty(),
        "nothing of the server's own tenant is left on the machine"
    );
}
