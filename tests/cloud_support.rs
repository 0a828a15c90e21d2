//! What the cloud tests share: moto's EC2 API spoken directly (the query protocol over HTTP),
//! the VMs' simulated boots, and a `murmur serve` with an `aws` pool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use murmur_testkit::moto::Moto;

use super::support::db::Backend;
use super::support::fixture::Fixture;
use super::support::http;
use super::support::watched::Watched;

const DEADLINE: Duration = Duration::from_secs(90);
/// The longest the test waits for the server to say something before it looks at moto again
/// (moto tells nobody; the server logs every act).
const LOOK_AT_MOST: Duration = Duration::from_millis(100);

pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since.as_millis()).expect("ms fit")
}

/// One EC2 instance as moto describes it.
#[derive(Debug, Clone)]
pub struct Vm {
    pub id: String,
    pub state: String,
    pub tags: Vec<(String, String)>,
}

impl Vm {
    pub fn tag(&self, key: &str) -> Option<String> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn is_live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "pending" | "running" | "stopping" | "stopped"
        )
    }
}

/// The instances at the end of a wait.
#[derive(Debug)]
pub struct Seen(pub Vec<Vm>);

impl Seen {
    pub fn live(&self) -> Vec<Vm> {
        self.0.iter().filter(|vm| vm.is_live()).cloned().collect()
    }
}

fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// The outermost `<item>…</item>` elements at the start of `set` (up to its closing tag).
fn top_items(set: &str) -> Vec<&str> {
    let (open, close) = ("<item>", "</item>");
    let mut items = Vec::new();
    let (mut depth, mut start, mut at) = (0usize, 0usize, 0usize);
    while at < set.len() {
        let rest = &set[at..];
        if rest.starts_with(open) {
            if depth == 0 {
                start = at;
            }
            depth += 1;
            at += open.len();
        } else if rest.starts_with(close) {
            depth = depth.saturating_sub(1);
            at += close.len();
            if depth == 0 {
                items.push(&set[start..at]);
            }
        } else if depth == 0 && rest.starts_with("</instancesSet>") {
            break;
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    items
}

/// moto's EC2 API, spoken directly: form-encoded queries, XML answers.
pub struct Ec2 {
    address: String,
}

impl Ec2 {
    pub fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }

    fn call(&self, params: &[(&str, &str)]) -> String {
        let mut body = "Version=2016-11-15".to_owned();
        for (key, value) in params {
            body.push_str(&format!("&{key}={}", Self::encode(value)));
        }
        // moto routes by the credential scope and checks no signature.
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00";
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", auth),
        ];
        let (status, text) = http(&self.address, "POST", "/", &headers, &body);
        assert_eq!(status, 200, "{params:?}: {text}");
        text
    }

    /// Every instance moto knows, terminated ones too.
    pub fn instances(&self) -> Vec<Vm> {
        let xml = self.call(&[("Action", "DescribeInstances")]);
        let mut found: BTreeMap<String, Vm> = BTreeMap::new();
        for set in xml.split("<instancesSet>").skip(1) {
            for item in top_items(set) {
                let Some(id) = between(item, "<instanceId>", "</instanceId>") else {
                    continue;
                };
                let state = between(item, "<instanceState>", "</instanceState>")
                    .and_then(|s| between(s, "<name>", "</name>"))
                    .unwrap_or_default();
                let tags = between(item, "<tagSet>", "</tagSet>")
                    .map(|tags| {
                        tags.split("<item>")
                            .skip(1)
                            .filter_map(|t| {
                                Some((
                                    between(t, "<key>", "</key>")?.to_owned(),
                                    between(t, "<value>", "</value>")?.to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                found.insert(
                    id.to_owned(),
                    Vm {
                        id: id.to_owned(),
                        state: state.to_owned(),
                        tags,
                    },
                );
            }
        }
        found.into_values().collect()
    }

    pub fn live(&self) -> Vec<Vm> {
        self.instances().into_iter().filter(Vm::is_live).collect()
    }

    /// The instance's user-data, decoded: the VM's boot script; `None` when it has none.
    fn user_data(&self, id: &str) -> Option<String> {
        let xml = self.call(&[
            ("Action", "DescribeInstanceAttribute"),
            ("InstanceId", id),
            ("Attribute", "userData"),
        ]);
        let encoded = between(&xml, "<userData>", "</userData>")
            .and_then(|u| between(u, "<value>", "</value>"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .expect("base64 user-data");
        Some(String::from_utf8(bytes).expect("utf-8 user-data"))
    }

    fn first_image(&self) -> String {
        let xml = self.call(&[("Action", "DescribeImages")]);
        between(&xml, "<imageId>", "</imageId>")
            .expect("moto has images")
            .to_owned()
    }

    /// An instance tagged for the cluster's pool that no server made: an orphan.
    pub fn run_orphan(&self, cluster: &str, tenant: &str, pool: &str) -> String {
        let image = self.first_image();
        let tags = [
            ("murmur:cluster", cluster),
            ("murmur:tenant", tenant),
            ("murmur:pool", pool),
            ("murmur:machine", "0000-not-in-the-store"),
        ];
        let mut params = vec![
            ("Action".to_owned(), "RunInstances".to_owned()),
            ("ImageId".to_owned(), image),
            ("MinCount".to_owned(), "1".to_owned()),
            ("MaxCount".to_owned(), "1".to_owned()),
            ("InstanceType".to_owned(), "t3.micro".to_owned()),
            (
                "TagSpecification.1.ResourceType".to_owned(),
                "instance".to_owned(),
            ),
        ];
        for (i, (key, value)) in tags.iter().enumerate() {
            params.push((
                format!("TagSpecification.1.Tag.{}.Key", i + 1),
                (*key).to_owned(),
            ));
            params.push((
                format!("TagSpecification.1.Tag.{}.Value", i + 1),
                (*value).to_owned(),
            ));
        }
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let xml = self.call(&borrowed);
        between(&xml, "<instanceId>", "</instanceId>")
            .expect("the orphan's id")
            .to_owned()
    }
}

/// A VM's simulated life: its boot script running as a local process.
struct Booted {
    /// `None` for an instance without a boot script (made behind the server's back).
    process: Option<Watched>,
    paused: bool,
}

/// An agent's start, from the ledger: which VM's folder it ran in, and when.
#[derive(Debug)]
pub struct Start {
    pub slug: String,
    pub at_ms: u64,
    pub vm: String,
}

/// moto, a `murmur serve` with pool `cloud` on it, and the VMs' boots.
pub struct Cloud {
    pub ec2: Ec2,
    _moto: Moto,
    fixture: Fixture,
    server: Option<Watched>,
    pub address: String,
    api_token: String,
    ledger: PathBuf,
    vms: tempfile::TempDir,
    booted: BTreeMap<String, Booted>,
}

impl Cloud {
    /// `None` (the test skips, saying so) without moto. `pool` is the pool's settings besides
    /// its placement and environment; `flight` makes the flight `job` from the ledger's path.
    pub fn start(pool: &str, flight: impl FnOnce(&Path) -> String) -> Option<Self> {
        let moto = Moto::start()?;
        let ec2 = Ec2 {
            address: moto.url().trim_start_matches("http://").to_owned(),
        };
        let image = ec2.first_image();
        let fixture = Fixture::with_history(&Backend::Sqlite, "cloud");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        fixture.write_config(&format!(
            "pools:\n  cloud: {{ placement: aws-test, environment: vm, {pool} }}\n\
             environments:\n  vm: {{ disk_gb: 8, aws: {{ instance_type: t3.micro, image_id: {image} }} }}\n\
             placements:\n  aws-test: {{ provider: aws, region: us-east-1, endpoint_url: '{}' }}\n\
             server: {{ url: 'http://{address}' }}\n",
            moto.url()
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
            ec2,
            _moto: moto,
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

    fn with_aws(command: &mut Command) {
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
    }

    pub fn start_server(&mut self) {
        let mut command = self.fixture.command(&["serve", "--bind", &self.address]);
        Self::with_aws(&mut command);
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

    /// `murmur ARGS` in the repository, with moto's credentials; its stdout.
    pub fn murmur(&self, args: &[&str]) -> String {
        let mut command = self.fixture.command(args);
        Self::with_aws(&mut command);
        let out = command.output().expect("murmur runs");
        assert!(
            out.status.success(),
            "murmur {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `murmur ARGS` in the repository without `--db` (for commands that take none).
    pub fn murmur_without_db(&self, args: &[&str]) -> String {
        let mut command = super::support::murmur(self.fixture.repo());
        command.args(args).env("NO_COLOR", "1");
        Self::with_aws(&mut command);
        let out = command.output().expect("murmur runs");
        assert!(
            out.status.success(),
            "murmur {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Boots new instances from their user-data, pauses stopped ones, continues started ones
    /// and kills terminated ones.
    fn step(&mut self) {
        let bin = Path::new(env!("CARGO_BIN_EXE_murmur"))
            .parent()
            .expect("the binary's folder")
            .to_owned();
        for vm in self.ec2.instances() {
            let running = matches!(vm.state.as_str(), "pending" | "running");
            match self.booted.get_mut(&vm.id) {
                None if running => {
                    let Some(script) = self.ec2.user_data(&vm.id) else {
                        let nothing = Booted {
                            process: None,
                            paused: false,
                        };
                        self.booted.insert(vm.id.clone(), nothing);
                        continue;
                    };
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
                    let process = Some(Watched::spawn(command));
                    self.booted.insert(
                        vm.id.clone(),
                        Booted {
                            process,
                            paused: false,
                        },
                    );
                }
                Some(booted) if matches!(vm.state.as_str(), "stopping" | "stopped") => {
                    if let Some(process) = &booted.process
                        && !booted.paused
                    {
                        process.signal("-STOP");
                        booted.paused = true;
                    }
                }
                Some(booted) if running && booted.paused => {
                    if let Some(process) = &booted.process {
                        process.signal("-CONT");
                    }
                    booted.paused = false;
                }
                Some(booted) if matches!(vm.state.as_str(), "shutting-down" | "terminated") => {
                    if let Some(process) = &mut booted.process {
                        let _ = process.child.kill();
                    }
                }
                _ => {}
            }
        }
    }

    /// Keeps the VMs' lives going until `done` holds; panics after the deadline.
    pub fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) -> Seen {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.step();
            if done(self) {
                return Seen(self.ec2.instances());
            }
            if Instant::now() > deadline {
                let said = self.server.as_mut().map(Watched::said).unwrap_or_default();
                panic!(
                    "not within {DEADLINE:?}: {what}; instances {:?}\nthe server said:\n{said}",
                    self.ec2.instances()
                );
            }
            self.server
                .as_mut()
                .expect("a running server")
                .heard_within(LOOK_AT_MOST);
        }
    }

    fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let auth = format!("Bearer {}", self.api_token);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        http(&self.address, method, path, &headers, body)
    }

    /// Machines of pool `cloud` in `state`, as `GET /v1/pools` counts them.
    pub fn pool_count(&self, state: &str) -> u64 {
        let (status, body) = self.api("GET", "/v1/pools", "");
        assert_eq!(status, 200, "{body}");
        let pools: serde_json::Value = serde_json::from_str(&body).expect("json");
        pools
            .as_array()
            .into_iter()
            .flatten()
            .find(|pool| pool["pool"] == "cloud")
            .and_then(|pool| pool["machines"][state].as_u64())
            .unwrap_or(0)
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

    /// Every agent start the ledger noted.
    pub fn starts(&self) -> Vec<Start> {
        std::fs::read_to_string(&self.ledger)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let (_, slug, at, pwd) =
                    (words.next()?, words.next()?, words.next()?, words.next()?);
                let vm = pwd.split('/').find(|part| part.starts_with("i-"))?;
                Some(Start {
                    slug: slug.to_owned(),
                    at_ms: at.parse().ok()?,
                    vm: vm.to_owned(),
                })
            })
            .collect()
    }

    /// The bootstrap credential VM `id` booted with.
    pub fn bootstrap_of(&self, id: &str) -> String {
        let script = std::fs::read_to_string(self.vms.path().join(id).join("boot.sh"))
            .expect("the VM booted");
        between(&script, "MURMUR_WORKER_TOKEN='", "'")
            .expect("a bootstrap credential")
            .to_owned()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        for booted in self.booted.values_mut() {
            let Some(process) = &mut booted.process else {
                continue;
            };
            if booted.paused {
                process.signal("-CONT");
            }
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        if std::thread::panicking()
            && let Some(server) = self.server.as_mut()
        {
            eprintln!("the server said:\n{}", server.said());
        }
    }
}
