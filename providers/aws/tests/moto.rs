//! The EC2 placement through the real SDK against moto's EC2 server (started on a free port):
//! the whole lifecycle, asserted on what moto recorded and, for the hibernate flag moto
//! ignores, on the request that went on the wire. Skipped, saying so, only when no
//! `moto_server` is installed; `.ci/run` installs one.

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ec2::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_ec2::types::{Filter, InstanceAttributeName};
use base64::Engine as _;
use murmur_aws::{Ec2, Placement};
use murmur_pool::{Error, InstanceId, InstanceState, Provider, Provision, Shape, Tags};
use murmur_testkit::moto::Moto;

/// Every request body the client sent, so the test can see what moto does not keep.
#[derive(Debug, Clone, Default)]
struct Wire(Arc<Mutex<Vec<String>>>);

impl Intercept for Wire {
    fn name(&self) -> &'static str {
        "wire"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        self.0
            .lock()
            .expect("wire")
            .push(String::from_utf8_lossy(body).into_owned());
        Ok(())
    }
}

impl Wire {
    fn sent(&self, action: &str) -> Vec<String> {
        let wanted = format!("Action={action}&");
        self.0
            .lock()
            .expect("wire")
            .iter()
            .filter(|b| b.starts_with(&wanted))
            .cloned()
            .collect()
    }
}

fn client(url: &str, wire: &Wire) -> Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .interceptor(wire.clone())
        .build();
    Client::from_conf(config)
}

fn placement(url: &str, subnets: Vec<String>) -> Placement {
    Placement {
        name: "aws-east".into(),
        region: "us-east-1".into(),
        subnet_ids: subnets,
        security_group_ids: Vec::new(),
        instance_profile: None,
        endpoint_url: Some(url.into()),
    }
}

fn request(machine: &str, cluster: &str, image: &str) -> Provision {
    Provision {
        tags: Tags {
            tenant: "local".into(),
            pool: "cloud".into(),
            machine: machine.into(),
            cluster: cluster.into(),
        },
        shape: Shape {
            machine_type: "m7i.large".into(),
            image: image.into(),
            disk_gb: 40,
        },
        boot_script: format!("#!/bin/sh\necho booted {machine} > \"$BOOT_MARK\"\n"),
    }
}

/// An image moto knows, and its default subnets.
async fn image_and_subnets(client: &Client) -> (String, Vec<String>) {
    let images = client
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("describe images");
    let image = images
        .images()
        .iter()
        .find(|i| i.root_device_name().is_some())
        .and_then(|i| i.image_id())
        .expect("moto has an amazon image")
        .to_owned();
    let subnets = client
        .describe_subnets()
        .send()
        .await
        .expect("describe subnets");
    let subnets = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id().map(str::to_owned))
        .take(2)
        .collect();
    (image, subnets)
}

async fn state_of(client: &Client, id: &InstanceId) -> String {
    let found = client
        .describe_instances()
        .instance_ids(&id.0)
        .send()
        .await
        .expect("describe");
    let instance = &found.reservations()[0].instances()[0];
    instance
        .state()
        .and_then(|s| s.name())
        .expect("state")
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn an_instance_is_run_slept_woken_listed_and_terminated() {
    let Some(moto) = Moto::start() else { return };
    let wire = Wire::default();
    let client = client(moto.url(), &wire);
    let (image, subnets) = image_and_subnets(&client).await;
    let ec2 = Ec2::with_client(placement(moto.url(), subnets.clone()), client.clone());
    let asked = request("m-1", "cluster-a", &image);

    let started = std::time::Instant::now();
    let made = ec2.provision(&asked).await.expect("provision");
    eprintln!(
        "cold provision (DescribeImages + RunInstances on moto): {:?}",
        started.elapsed()
    );
    assert!(made.skipped.is_empty());
    let id = made.instance.id.clone();
    assert_eq!(made.instance.tags.as_ref(), Some(&asked.tags));

    // What moto recorded: tags, the subnet, hibernation, the encrypted root volume, user-data.
    let found = client
        .describe_instances()
        .instance_ids(&id.0)
        .send()
        .await
        .expect("describe");
    let instance = &found.reservations()[0].instances()[0];
    assert_eq!(instance.subnet_id(), Some(subnets[0].as_str()));
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("m7i.large")
    );
    for (key, value) in asked.tags.pairs() {
        assert!(
            instance
                .tags()
                .iter()
                .any(|t| t.key() == Some(key) && t.value() == Some(value)),
            "tag {key}={value} on {:?}",
            instance.tags()
        );
    }
    let run = wire.sent("RunInstances");
    assert_eq!(run.len(), 1);
    assert!(
        run[0].contains("HibernationOptions.Configured=true"),
        "{}",
        run[0]
    );
    assert!(run[0].contains("Ebs.Encrypted=true"), "{}", run[0]);
    let volumes = client
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(&id.0)
                .build(),
        )
        .send()
        .await
        .expect("describe volumes");
    assert!(
        volumes
            .volumes()
            .iter()
            .any(|v| v.encrypted() == Some(true) && v.size() == Some(40)),
        "{volumes:?}"
    );
    let user_data = client
        .describe_instance_attribute()
        .instance_id(&id.0)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .expect("user data");
    let encoded = user_data
        .user_data()
        .and_then(|v| v.value())
        .expect("user data value");
    let script = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert_eq!(String::from_utf8(script).expect("utf-8"), asked.boot_script);

    ec2.sleep(&id).await.expect("sleep");
    let stop = wire.sent("StopInstances");
    assert!(
        stop.len() == 1 && stop[0].contains("Hibernate=true"),
        "{stop:?}"
    );
    assert_eq!(state_of(&client, &id).await, "stopped");
    let started = std::time::Instant::now();
    ec2.wake(&id).await.expect("wake");
    eprintln!("wake (StartInstances on moto): {:?}", started.elapsed());
    assert_eq!(state_of(&client, &id).await, "running");

    // Listing by cluster: ours, with its tags; another cluster's instance is not ours.
    let other = ec2
        .provision(&request("m-2", "cluster-b", &image))
        .await
        .expect("other cluster");
    let listed = ec2.list("cluster-a").await.expect("list");
    assert_eq!(listed.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&id]);
    assert_eq!(listed[0].state, InstanceState::Running);
    assert_eq!(
        listed[0].tags.as_ref().map(|t| t.machine.as_str()),
        Some("m-1")
    );
    let listed = ec2.list("cluster-b").await.expect("list b");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, other.instance.id);

    ec2.destroy(&id).await.expect("destroy");
    assert_eq!(state_of(&client, &id).await, "terminated");
    assert!(ec2.list("cluster-a").await.expect("list after").is_empty());
    ec2.destroy(&id)
        .await
        .expect("destroying a terminated instance again is fine");
}

#[tokio::test]
async fn the_user_data_read_back_runs_as_the_boot() {
    let Some(moto) = Moto::start() else { return };
    let wire = Wire::default();
    let client = client(moto.url(), &wire);
    let (image, _) = image_and_subnets(&client).await;
    let ec2 = Ec2::with_client(placement(moto.url(), Vec::new()), client.clone());
    let made = ec2
        .provision(&request("m-boot", "c", &image))
        .await
        .expect("provision");
    let user_data = client
        .describe_instance_attribute()
        .instance_id(&made.instance.id.0)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .expect("user data");
    let script = base64::engine::general_purpose::STANDARD
        .decode(
            user_data
                .user_data()
                .and_then(|v| v.value())
                .expect("value"),
        )
        .expect("base64");
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("mark");
    let boot = std::process::Command::new("sh")
        .arg("-c")
        .arg(String::from_utf8(script).expect("utf-8"))
        .env("BOOT_MARK", &mark)
        .status()
        .expect("run the boot script");
    assert!(boot.success());
    assert_eq!(
        std::fs::read_to_string(&mark).expect("mark"),
        "booted m-boot\n"
    );
}

#[tokio::test]
async fn bad_placements_and_images_name_the_key_and_a_dead_endpoint_is_unreachable() {
    let missing = Placement {
        name: "aws-east".into(),
        ..Placement::default()
    };
    let refused = missing.validate().expect_err("no region");
    assert!(
        matches!(&refused, Error::Config { key, .. } if key == "region"),
        "{refused}"
    );
    let bad_subnet = Placement {
        subnet_ids: vec!["net-1".into()],
        ..placement("http://x", Vec::new())
    };
    assert!(matches!(bad_subnet.validate(), Err(Error::Config { key, .. }) if key == "subnet_ids"));

    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let ec2 = Ec2::with_client(placement(&url, Vec::new()), client(&url, &Wire::default()));
    let down = ec2.list("c").await.expect_err("nothing listens");
    assert!(
        matches!(&down, Error::Unreachable { endpoint, .. } if *endpoint == url),
        "{down}"
    );

    let Some(moto) = Moto::start() else { return };
    let ec2 = Ec2::with_client(
        placement(moto.url(), Vec::new()),
        client(moto.url(), &Wire::default()),
    );
    let no_image = ec2
        .provision(&request("m", "c", ""))
        .await
        .expect_err("no image");
    assert!(
        matches!(&no_image, Error::Config { key, .. } if key == "image_id"),
        "{no_image}"
    );
    let unknown = ec2
        .provision(&request("m", "c", "ami-00000000deadbeef"))
        .await
        .expect_err("unknown image");
    assert!(
        matches!(&unknown, Error::Config { key, .. } if key == "image_id"),
        "{unknown}"
    );
    let plan = ec2.plan(&request("m", "c", "ami-1"));
    assert!(plan.iter().any(|c| c.contains("RunInstances") && c.contains("HibernationOptions.Configured=true")));
    assert!(
        plan.iter().all(|c| !c.contains("booted")),
        "the boot script is withheld: {plan:?}"
    );
}
