//! moto's EC2 API spoken directly (the query protocol over HTTP, XML answers): what the tests
//! read back from the cloud and what they make behind the server's back.

use std::collections::BTreeMap;
use std::process::Command;

use base64::Engine as _;
use murmur_testkit::moto::Moto;

use super::{Life, Peer, Vm};

pub(super) fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
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
    moto: Moto,
    image: String,
}

impl Ec2 {
    fn launch() -> Option<Self> {
        let moto = Moto::start()?;
        let mut ec2 = Self {
            moto,
            image: String::new(),
        };
        ec2.image = ec2.first_image();
        Some(ec2)
    }

    fn call(&self, params: &[(&str, &str)]) -> String {
        let (status, text) = self.moto.query("ec2", "2016-11-15", params);
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
                let life = match state {
                    "pending" | "running" => Life::Up,
                    "stopping" | "stopped" => Life::Asleep,
                    _ => Life::Gone,
                };
                let vm = Vm {
                    id: id.to_owned(),
                    state: state.to_owned(),
                    life,
                    tags,
                };
                found.insert(id.to_owned(), vm);
            }
        }
        found.into_values().collect()
    }

    /// The instance's user-data, decoded: the VM's boot script; `None` when it has none.
    pub fn user_data(&self, id: &str) -> Option<String> {
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
        let image = self.image.clone();
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

impl Peer for Ec2 {
    fn start() -> Option<Self> {
        Self::launch()
    }

    fn config(&self) -> String {
        format!(
            "environments:\n  vm: {{ disk_gb: 8, aws: {{ instance_type: t3.micro, image_id: {} }} }}\n\
             placements:\n  test: {{ provider: aws, region: us-east-1, endpoint_url: '{}' }}\n",
            self.image,
            self.moto.url()
        )
    }

    fn credentials(&self, command: &mut Command) {
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
    }

    fn vms(&self) -> Vec<Vm> {
        self.instances()
    }

    fn boot_script(&self, vm: &Vm) -> Option<String> {
        self.user_data(&vm.id)
    }

    fn make_orphan(&self, cluster: &str, tenant: &str, pool: &str) -> String {
        self.run_orphan(cluster, tenant, pool)
    }
}
