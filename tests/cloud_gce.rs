//! A `gcp` cloud pool end to end against `testkit::gce` (the Compute Engine REST paths,
//! operations and errors): a real `murmur serve` keeps a warm VM, each VM's boot is its
//! `startup-script` metadata read back from the server and run as a local process (so the real
//! `murmur worker` registers with the bootstrap credential), agents run on the VMs, and a flush
//! deletes them.

#[path = "../cli/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use murmur_testkit::gce::GceServer;
use support::db::Backend;
use support::fixture::Fixture;
use support::http;
use support::watched::Watched;

const DEADLINE: Duration = Duration::from_secs(90);
/// The longest the test waits for the server to say something before it looks at the GCE server
/// again (that one tells nobody; ours logs every act).
const LOOK_AT_MOST: Duration = Duration::from_millis(100);

struct Gcp {
    gce: GceServer,
    fixture: Fixture,
    server: Watched,
    address: String,
    api_token: String,
    vms: tempfile::TempDir,
    booted: BTreeMap<String, Watched>,
}

impl Gcp {
    fn start(ledger_name: &str) -> Self {
        let gce = GceServer::start("acme");
        let vms = tempfile::tempdir().expect("temp dir");
        let credentials = vms.path().join("adc.json");
        let adc = serde_json::json!({
            "type": "authorized_user",
            "client_id": "murmur-test",
            "client_secret": "not-a-secret",
            "refresh_token": "refresh",
            "token_uri": format!("{}/token", gce.url()),
        });
        std::fs::write(&credentials, adc.to_string()).expect("credentials");
        let fixture = Fixture::with_history(&Backend::Sqlite, "gce");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        fixture.write_config(&format!(
            "pools:\n  cloud: {{ placement: gcp-test, environment: vm, min_idle: 1, max_vms: 2 }}\n\
             environments:\n  vm: {{ gcp: {{ machine_type: e2-small, image: projects/acme/global/images/murmur }} }}\n\
             placements:\n  gcp-test: {{ provider: gcp, project: acme, zones: [us-central1-a], endpoint: '{}' }}\n\
             server: {{ url: 'http://{address}' }}\n",
            gce.url()
        ));
        let ledger = fixture.path(ledger_name);
        let agents: String = ["a", "b", "c"]
            .iter()
            .map(|slug| {
                format!(
                    "## {slug}\n> command: echo \"start {slug} $PWD\" >> {}\n\n",
                    ledger.display()
                )
            })
            .collect();
        fixture.write_flight(
            "job",
            &format!("---\nruntime: exec\npool: cloud\n---\n# Job\n\n{agents}"),
        );
        let out = fixture.murmur(&["token", "create", "--name", "tests"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let api_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut command = fixture.command(&["serve", "--bind", &address]);
        command
            .env("GOOGLE_APPLICATION_CREDENTIALS", &credentials)
            .env("MURMUR_POOL_TICK_MS", "200");
        let mut server = Watched::spawn(command);
        server.wait_for("listening on http://");
        Self {
            gce,
            fixture,
            server,
            address,
            api_token,
            vms,
            booted: BTreeMap::new(),
        }
    }

    /// Boots each new running instance from its startup-script; kills those deleted.
    fn step(&mut self) {
        let bin = Path::new(env!("CARGO_BIN_EXE_murmur"))
            .parent()
            .expect("the binary's folder")
            .to_owned();
        let listed = self.gce.instances();
        for (zone, name, status) in &listed {
            if status != "RUNNING" || self.booted.contains_key(name) {
                continue;
            }
            let instance = self.gce.instance(zone, name).expect("listed");
            let script = instance["metadata"]["items"][0]["value"]
                .as_str()
                .expect("a startup-script")
                .to_owned();
            let dir = self.vms.path().join(name);
            std::fs::create_dir_all(&dir).expect("the VM's folder");
            std::fs::write(dir.join("boot.sh"), script).expect("boot script");
            let path = format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let mut command = Command::new("sh");
            command.arg("boot.sh").current_dir(&dir).env("PATH", path);
            self.booted.insert(name.clone(), Watched::spawn(command));
        }
        for (name, process) in &mut self.booted {
            if !listed.iter().any(|(_, n, _)| n == name) {
                let _ = process.child.kill();
            }
        }
    }

    fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.step();
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not within {DEADLINE:?}: {what}; instances {:?}\nthe server said:\n{}",
                self.gce.instances(),
                self.server.said()
            );
            self.server.heard_within(LOOK_AT_MOST);
        }
    }

    fn api(&self, method: &str, path: &str) -> (u16, String) {
        let auth = format!("Bearer {}", self.api_token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        http(&self.address, method, path, &headers, "{}")
    }

    fn idle(&self) -> u64 {
        self.count("idle")
    }

    /// Machines of pool `cloud` in `state`, as `GET /v1/pools` counts them.
    fn count(&self, state: &str) -> u64 {
        let (_, body) = self.api("GET", "/v1/pools");
        let pools: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        pools
            .as_array()
            .into_iter()
            .flatten()
            .find(|pool| pool["pool"] == "cloud")
            .and_then(|pool| pool["machines"][state].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for Gcp {
    fn drop(&mut self) {
        for process in self.booted.values_mut() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("the server said:\n{}", self.server.said());
        }
    }
}

#[test]
fn a_gcp_pool_boots_from_the_startup_script_runs_agents_and_flushes() {
    let mut gcp = Gcp::start("starts");
    gcp.wait_until("one warm VM", |g| g.idle() == 1);
    assert_eq!(gcp.gce.instances().len(), 1);
    let (status, body) = gcp.api("POST", "/v1/flights/job/runs");
    assert!(matches!(status, 201 | 202), "start: {status} {body}");
    let run: serde_json::Value = serde_json::from_str(&body).expect("json");
    let run = run["run_id"]
        .as_str()
        .or(run["id"].as_str())
        .expect("run id")
        .to_owned();
    let (address, token) = (gcp.address.clone(), gcp.api_token.clone());
    let stream = std::thread::spawn(move || {
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
        ];
        http(
            &address,
            "GET",
            &format!("/v1/runs/{run}/events"),
            &headers,
            "",
        )
    });
    gcp.wait_until("the run's end", |_| stream.is_finished());
    let (_, events) = stream.join().expect("stream");
    assert!(events.contains("event: run_completed"), "{events}");
    let ledger = std::fs::read_to_string(gcp.fixture.path("starts")).expect("ledger");
    assert_eq!(ledger.lines().count(), 3, "{ledger}");
    let vms = gcp.vms.path().display().to_string();
    assert!(
        ledger.lines().all(|line| line.contains(&vms)),
        "every agent ran on a VM: {ledger}"
    );
    assert!(
        gcp.gce.instances().len() <= 2,
        "max_vms: {:?}",
        gcp.gce.instances()
    );

    // The run ends with its last update; the machine that sent it is released right after.
    // The refill for min_idle may still be booting: flush what is there once it settled.
    gcp.wait_until("no machine busy or booting", |g| {
        g.count("busy") == 0 && g.count("provisioning") == 0 && g.count("waking") == 0
    });
    let before: Vec<String> = gcp.gce.instances().into_iter().map(|(_, n, _)| n).collect();
    let out = gcp.fixture.murmur(&["pool", "flush", "cloud"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gcp.wait_until("the flushed VMs deleted", |g| {
        let now: Vec<String> = g.gce.instances().into_iter().map(|(_, n, _)| n).collect();
        before.iter().all(|name| !now.contains(name))
    });
}
