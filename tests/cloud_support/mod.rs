//! What the cloud tests share: a `murmur serve` whose pool `cloud` runs on a cloud placement,
//! the cloud itself (moto's EC2 or the Compute Engine test server, behind [`Peer`]), and the
//! VMs' simulated boots: each VM's boot script (user-data, startup-script) read back from the
//! cloud and run as a local process, paused while the VM sleeps, killed when it is gone.

// Each test crate uses its own part of these helpers (and only one of the clouds).
#![allow(dead_code)]

pub mod ec2;
pub mod gce;
pub mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::db::Backend;
use super::support::fixture::Fixture;
use super::support::http;
use super::support::watched::Watched;

const DEADLINE: Duration = Duration::from_secs(90);
/// The longest the test waits for the server to say something before it looks at the cloud
/// again (the cloud tells nobody; the server logs every act).
const LOOK_AT_MOST: Duration = Duration::from_millis(100);

pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_millis()).expect("ms fit")
}

/// Where a VM is in its life, as the boot simulation acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Created, not running yet.
    Starting,
    Up,
    /// Stopped, hibernated or suspended: its process is paused.
    Asleep,
    Gone,
}

/// One VM as the cloud describes it.
#[derive(Debug, Clone)]
pub struct Vm {
    /// The EC2 instance id, or the Compute Engine instance name.
    pub id: String,
    /// The cloud's own state name.
    pub state: String,
    pub life: Life,
    /// The murmur tags, under their EC2 keys (`murmur:cluster`), whatever the cloud.
    pub tags: Vec<(String, String)>,
}

impl Vm {
    pub fn tag(&self, key: &str) -> Option<String> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    pub fn is_live(&self) -> bool {
        self.life != Life::Gone
    }
}

/// A cloud a test runs against.
pub trait Peer: Sized {
    /// `None` (the test skips, saying so) when this cloud's test server is not installed.
    fn start() -> Option<Self>;
    /// `environments:` (environment `vm`) and `placements:` (placement `test`) lines.
    fn config(&self) -> String;
    /// The provider's standard credentials in the environment of a `murmur` process.
    fn credentials(&self, command: &mut Command);
    /// Every VM the cloud knows (a deleted GCE instance is simply not listed).
    fn vms(&self) -> Vec<Vm>;
    /// The script the VM boots with, as the cloud keeps it.
    fn boot_script(&self, vm: &Vm) -> Option<String>;
    /// A VM tagged for `pool` of `cluster` that no server made; its id.
    fn make_orphan(&self, cluster: &str, tenant: &str, pool: &str) -> String;
}

/// A VM's simulated life: its boot script running as a local process.
struct Booted {
    /// `None` for a VM without a boot script (made behind the server's back).
    process: Option<Watched>,
    paused: bool,
}

/// An agent's start, from the ledger: which VM's folder it ran in, and when.
#[derive(Debug)]
pub struct Start {
    pub slug: String,
    pub at_ms: u64,
    pub vm: String,
    /// Its working directory on the VM.
    pub pwd: String,
}

/// The cloud, a `murmur serve` with pool `cloud` on it, and the VMs' boots.
pub struct Cloud<P: Peer> {
    pub peer: P,
    fixture: Fixture,
    server: Option<Watched>,
    pub address: String,
    api_token: String,
    ledger: PathBuf,
    vms: tempfile::TempDir,
    booted: BTreeMap<String, Booted>,
}

impl<P: Peer> Cloud<P> {
    /// `None` (the test skips, saying so) without the cloud's test server. `pool` is the
    /// pool's settings besides its placement and environment; `flight` makes the flight
    /// `job` from the ledger's path.
    pub fn start(pool: &str, flight: impl FnOnce(&Path) -> String) -> Option<Self> {
        Self::start_prepared(pool, flight, |_| {})
    }

    /// [`Cloud::start`], with `prepare` done to the cloud before the server first looks at it
    /// (a fault switched on).
    pub fn start_prepared(
        pool: &str,
        flight: impl FnOnce(&Path) -> String,
        prepare: impl FnOnce(&P),
    ) -> Option<Self> {
        let peer = P::start()?;
        prepare(&peer);
        let fixture = Fixture::with_history(&Backend::Sqlite, "cloud");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        fixture.write_config(&format!(
            "pools:\n  cloud: {{ placement: test, environment: vm, {pool} }}\n{}\
             server: {{ url: 'http://{address}' }}\n",
            peer.config()
        ));
        let ledger = fixture.path("starts");
        fixture.write_flight("job", &flight(&ledger));
        let out = fixture.murmur(&["token", "create", "--name", "tests"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let api_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut cloud = Self {
            peer,
            fixture,
            server: None,
            address,
            api_token,
            ledger,
            vms: tempfile::tempdir().expect("temp dir"),
            booted: BTreeMap::new(),
        };
        cloud.start_server();
        Some(cloud)
    }

    pub fn start_server(&mut self) {
        let mut command = self.fixture.command(&["serve", "--bind", &self.address]);
        self.peer.credentials(&mut command);
        command
            .env("MURMUR_POOL_TICK_MS", "200")
            .env("MURMUR_POOL_ORPHAN_GRACE_SECS", "1")
            .env("MURMUR_MACHINE_LEASE_TTL", "5");
        let mut server = Watched::spawn(command);
        server.wait_for("listening on http://");
        self.server = Some(server);
    }

    pub fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }

    /// Every line the server said so far.
    pub fn server_said(&mut self) -> String {
        self.server.as_mut().map(Watched::said).unwrap_or_default()
    }

    /// `murmur ARGS` in the repository, with the cloud's credentials; its stdout.
    pub fn murmur(&self, args: &[&str]) -> String {
        let mut command = self.fixture.command(args);
        self.peer.credentials(&mut command);
        Self::output(command, args)
    }

    /// `murmur ARGS` in the repository without `--db` (for commands that take none).
    pub fn murmur_without_db(&self, args: &[&str]) -> String {
        let mut command = super::support::murmur(self.fixture.repo());
        command.args(args).env("NO_COLOR", "1");
        self.peer.credentials(&mut command);
        Self::output(command, args)
    }

    fn output(mut command: Command, args: &[&str]) -> String {
        let out = command.output().expect("murmur runs");
        assert!(
            out.status.success(),
            "murmur {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every VM the cloud knows, and those not gone.
    pub fn vms(&self) -> Vec<Vm> {
        self.peer.vms()
    }

    pub fn live(&self) -> Vec<Vm> {
        self.vms().into_iter().filter(Vm::is_live).collect()
    }

    /// Boots new VMs from their boot scripts, pauses sleeping ones, continues woken ones and
    /// kills those gone.
    fn step(&mut self) {
        let vms = self.peer.vms();
        for vm in &vms {
            match (self.booted.get_mut(&vm.id), vm.life) {
                (None, Life::Up) => {
                    let booted = self.boot(vm);
                    self.booted.insert(vm.id.clone(), booted);
                }
                (Some(booted), Life::Asleep) if !booted.paused => {
                    if let Some(process) = &booted.process {
                        process.signal("-STOP");
                    }
                    booted.paused = true;
                }
                (Some(booted), Life::Up) if booted.paused => {
                    if let Some(process) = &booted.process {
                        process.signal("-CONT");
                    }
                    booted.paused = false;
                }
                (Some(booted), Life::Gone) => booted.kill(),
                _ => {}
            }
        }
        for (id, booted) in &mut self.booted {
            if !vms.iter().any(|vm| vm.id == *id) {
                booted.kill();
            }
        }
    }

    fn boot(&self, vm: &Vm) -> Booted {
        let Some(script) = self.peer.boot_script(vm) else {
            return Booted {
                process: None,
                paused: false,
            };
        };
        let bin = Path::new(env!("CARGO_BIN_EXE_murmur"))
            .parent()
            .expect("the binary's folder")
            .to_owned();
        let dir = self.vms.path().join(&vm.id);
        std::fs::create_dir_all(&dir).expect("the VM's folder");
        std::fs::write(dir.join("boot.sh"), &script).expect("the boot script");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("sh");
        command.arg("boot.sh").current_dir(&dir).env("PATH", path);
        Booted {
            process: Some(Watched::spawn(command)),
            paused: false,
        }
    }

    /// Keeps the VMs' lives going until `done` holds; panics after the deadline.
    pub fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) -> Vec<Vm> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.step();
            if done(self) {
                return self.peer.vms();
            }
            if Instant::now() > deadline {
                let said = self.server_said();
                panic!(
                    "not within {DEADLINE:?}: {what}; VMs {:?}\nthe server said:\n{said}",
                    self.peer.vms()
                );
            }
            self.server
                .as_mut()
                .expect("a running server")
                .heard_within(LOOK_AT_MOST);
        }
    }

    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let auth = format!("Bearer {}", self.api_token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        http(&self.address, method, path, &headers, body)
    }

    /// Pool `cloud` as `GET /v1/pools` shows it.
    pub fn pool(&self) -> serde_json::Value {
        let (status, body) = self.api("GET", "/v1/pools", "");
        assert_eq!(status, 200, "{body}");
        let pools: serde_json::Value = serde_json::from_str(&body).expect("json");
        pools
            .as_array()
            .into_iter()
            .flatten()
            .find(|pool| pool["pool"] == "cloud")
            .cloned()
            .unwrap_or_default()
    }

    /// Machines of pool `cloud` in `state`, as `GET /v1/pools` counts them.
    pub fn pool_count(&self, state: &str) -> u64 {
        self.pool()["machines"][state].as_u64().unwrap_or(0)
    }

    /// No machine busy, booting or waking: what there is has settled.
    pub fn settled(&self) -> bool {
        ["busy", "provisioning", "waking"]
            .iter()
            .all(|state| self.pool_count(state) == 0)
    }

    pub fn start_run(&self) -> String {
        let (status, body) = self.api("POST", "/v1/flights/job/runs", "{}");
        assert!(matches!(status, 201 | 202), "start: {status} {body}");
        let run: serde_json::Value = serde_json::from_str(&body).expect("json");
        run["run_id"]
            .as_str()
            .or(run["id"].as_str())
            .expect("the run's id")
            .to_owned()
    }

    /// Keeps the VMs going while the run's event stream is open; returns its events.
    pub fn events_until_ended(&mut self, run: &str) -> String {
        let (address, token) = (self.address.clone(), self.api_token.clone());
        let path = format!("/v1/runs/{run}/events");
        let stream = std::thread::spawn(move || {
            let auth = format!("Bearer {token}");
            let headers = [
                ("Authorization", auth.as_str()),
                ("Accept", "text/event-stream"),
            ];
            http(&address, "GET", &path, &headers, "")
        });
        self.wait_until("the run's end", |_| stream.is_finished());
        let (status, events) = stream.join().expect("the stream's thread");
        assert_eq!(status, 200, "{events}");
        events
    }

    /// A path next to the ledger, in the repository's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.ledger.with_file_name(name)
    }

    /// Every agent start the ledger noted (lines `start SLUG MS PWD`) on a VM.
    pub fn starts(&self) -> Vec<Start> {
        let vms = self.vms.path().display().to_string();
        std::fs::read_to_string(&self.ledger)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let (_, slug, at, pwd) =
                    (words.next()?, words.next()?, words.next()?, words.next()?);
                let vm = pwd.strip_prefix(&vms)?.trim_start_matches('/');
                let vm = vm.split('/').next()?;
                Some(Start {
                    slug: slug.to_owned(),
                    at_ms: at.parse().ok()?,
                    vm: vm.to_owned(),
                    pwd: pwd.to_owned(),
                })
            })
            .collect()
    }

    /// The bootstrap credential VM `id` booted with.
    pub fn bootstrap_of(&self, id: &str) -> String {
        let script = std::fs::read_to_string(self.vms.path().join(id).join("boot.sh"))
            .expect("the VM booted");
        ec2::between(&script, "MURMUR_WORKER_TOKEN='", "'")
            .expect("a bootstrap credential")
            .to_owned()
    }
}

impl Booted {
    fn kill(&mut self) {
        if let Some(process) = &mut self.process {
            if self.paused {
                process.signal("-CONT");
                self.paused = false;
            }
            let _ = process.child.kill();
        }
    }
}

impl<P: Peer> Drop for Cloud<P> {
    fn drop(&mut self) {
        for booted in self.booted.values_mut() {
            booted.kill();
            if let Some(process) = &mut booted.process {
                let _ = process.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("the server said:\n{}", self.server_said());
        }
    }
}
