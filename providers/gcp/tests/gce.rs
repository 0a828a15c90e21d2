//! The GCE placement through the real client against the in-repo Compute Engine test server
//! (`murmur_testkit::gce`): real REST paths, operations awaited to `DONE`, the real error
//! shape, and user credentials whose token comes from the server's `/token`.

use google_cloud_compute_v1::client::Instances;
use murmur_gcp::{Gce, Placement};
use murmur_pool::{Error, InstanceId, InstanceState, Provider, Provision, Shape, Tags};
use murmur_testkit::gce::{ACCESS_TOKEN, GceServer};

const ZONES: [&str; 2] = ["us-central1-a", "us-central1-b"];

fn placement(url: &str) -> Placement {
    Placement {
        name: "gcp-a".into(),
        project: "acme".into(),
        zones: ZONES.iter().map(|z| (*z).to_owned()).collect(),
        network: "default".into(),
        service_account: None,
        endpoint: Some(url.into()),
    }
}

async fn gce(url: &str) -> Gce {
    let user = murmur_testkit::gce::user_credentials(url);
    let credentials = google_cloud_auth::credentials::user_account::Builder::new(user)
        .build()
        .expect("user credentials");
    Gce::with_credentials(placement(url), credentials)
        .await
        .expect("client")
}

fn request(machine: &str, cluster: &str) -> Provision {
    Provision {
        tags: Tags {
            tenant: "local".into(),
            pool: "cloud".into(),
            machine: machine.into(),
            cluster: cluster.into(),
        },
        shape: Shape {
            machine_type: "e2-standard-4".into(),
            image: "projects/acme/global/images/murmur".into(),
            disk_gb: 50,
        },
        boot_script: format!("#!/bin/sh\necho booted {machine} > \"$BOOT_MARK\"\n"),
    }
}

#[tokio::test]
async fn an_instance_is_inserted_suspended_resumed_listed_and_deleted() {
    let server = GceServer::start("acme");
    let gce = gce(server.url()).await;
    let asked = request("m-1", "cluster-a");

    let started = std::time::Instant::now();
    let made = gce.provision(&asked).await.expect("provision");
    eprintln!(
        "cold provision (insert, operation to DONE, get): {:?}",
        started.elapsed()
    );
    assert!(made.skipped.is_empty());
    let id = made.instance.id.clone();
    assert_eq!(id, InstanceId("us-central1-a/murmur-m-1".into()));
    assert_eq!(made.instance.state, InstanceState::Running);
    assert_eq!(made.instance.tags.as_ref(), Some(&asked.tags));

    // What the server recorded: labels, the startup-script, the boot disk, the machine type.
    let recorded = server
        .instance("us-central1-a", "murmur-m-1")
        .expect("recorded");
    assert_eq!(recorded["labels"]["murmur-cluster"], "cluster-a");
    assert_eq!(recorded["labels"]["murmur-machine"], "m-1");
    assert_eq!(recorded["labels"]["murmur-tenant"], "local");
    assert_eq!(recorded["labels"]["murmur-pool"], "cloud");
    assert_eq!(recorded["metadata"]["items"][0]["key"], "startup-script");
    assert_eq!(
        recorded["metadata"]["items"][0]["value"],
        asked.boot_script.as_str()
    );
    assert_eq!(
        recorded["machineType"],
        "zones/us-central1-a/machineTypes/e2-standard-4"
    );
    assert_eq!(recorded["disks"][0]["boot"], true);
    assert_eq!(
        recorded["disks"][0]["initializeParams"]["sourceImage"],
        "projects/acme/global/images/murmur"
    );
    assert_eq!(
        recorded["networkInterfaces"][0]["network"],
        "global/networks/default"
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {ACCESS_TOKEN}")))
    );
    let looks = requests
        .iter()
        .filter(|r| r.path.contains("/operations/"))
        .count();
    assert!(
        looks >= 2,
        "the insert's operation is looked at until DONE (PENDING, RUNNING, DONE): {looks}"
    );

    gce.sleep(&id).await.expect("suspend");
    assert_eq!(
        server
            .instance("us-central1-a", "murmur-m-1")
            .expect("there")["status"],
        "SUSPENDED"
    );
    assert_eq!(
        gce.get(&id).await.expect("get").state,
        InstanceState::Stopped
    );
    let started = std::time::Instant::now();
    gce.wake(&id).await.expect("resume");
    eprintln!("wake (resume, operation to DONE): {:?}", started.elapsed());
    assert_eq!(
        server
            .instance("us-central1-a", "murmur-m-1")
            .expect("there")["status"],
        "RUNNING"
    );

    let other = gce
        .provision(&request("m-2", "cluster-b"))
        .await
        .expect("other cluster");
    let listed = gce.list("cluster-a").await.expect("list");
    assert_eq!(listed.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&id]);
    assert_eq!(listed[0].provider_state, "RUNNING");
    let filters: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/instances"))
        .collect();
    assert_eq!(filters.len(), ZONES.len(), "one list per zone");
    assert_eq!(
        gce.list("cluster-b").await.expect("list b")[0].id,
        other.instance.id
    );

    gce.destroy(&id).await.expect("delete");
    assert!(server.instance("us-central1-a", "murmur-m-1").is_none());
    assert!(gce.list("cluster-a").await.expect("list after").is_empty());
    gce.destroy(&id)
        .await
        .expect("deleting a deleted instance again is fine");
    let gone = gce.get(&id).await.expect_err("gone");
    assert!(matches!(gone, Error::NotFound { .. }), "{gone}");
}

#[tokio::test]
async fn the_startup_script_runs_as_the_boot() {
    let server = GceServer::start("acme");
    let gce = gce(server.url()).await;
    gce.provision(&request("m-boot", "c"))
        .await
        .expect("provision");
    let recorded = server
        .instance("us-central1-a", "murmur-m-boot")
        .expect("recorded");
    let script = recorded["metadata"]["items"][0]["value"]
        .as_str()
        .expect("script")
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("mark");
    let boot = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("BOOT_MARK", &mark)
        .status()
        .expect("boot");
    assert!(boot.success());
    assert_eq!(
        std::fs::read_to_string(&mark).expect("mark"),
        "booted m-boot\n"
    );
}

#[tokio::test]
async fn a_zone_without_capacity_is_skipped_for_the_next() {
    let server = GceServer::start("acme");
    let gce = gce(server.url()).await;
    server.exhaust_zone("us-central1-a");
    let made = gce
        .provision(&request("m-1", "c"))
        .await
        .expect("the second zone has room");
    assert_eq!(made.instance.location, "us-central1-b");
    assert_eq!(made.skipped.len(), 1);
    assert_eq!(made.skipped[0].location, "us-central1-a");
    assert!(
        made.skipped[0]
            .reason
            .contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "{}",
        made.skipped[0].reason
    );

    server.exhaust_zone("us-central1-b");
    let full = gce
        .provision(&request("m-2", "c"))
        .await
        .expect_err("no zone has room");
    assert!(
        matches!(&full, Error::Capacity { location, .. } if location == "us-central1-b"),
        "{full}"
    );
}

#[tokio::test]
async fn refusals_bad_placements_and_a_dead_endpoint_are_typed() {
    let server = GceServer::start("acme");
    let gce = gce(server.url()).await;
    server.deny_all(true);
    let denied = gce.provision(&request("m-1", "c")).await.expect_err("403");
    assert!(denied.stops_pool(), "{denied}");
    let text = denied.to_string();
    assert!(
        text.contains("GOOGLE_APPLICATION_CREDENTIALS")
            && text.contains("compute.instances.insert"),
        "{text}"
    );
    server.deny_all(false);

    let no_image = Provision {
        shape: Shape {
            image: String::new(),
            ..request("m", "c").shape
        },
        ..request("m", "c")
    };
    assert!(
        matches!(gce.provision(&no_image).await, Err(Error::Config { key, .. }) if key == "image")
    );
    let mut bad_label = request("m", "c");
    bad_label.tags.pool = "Team Pool".into();
    assert!(
        matches!(gce.provision(&bad_label).await, Err(Error::Config { key, .. }) if key == "labels")
    );
    let no_zones = Placement {
        zones: Vec::new(),
        ..placement(server.url())
    };
    assert!(matches!(no_zones.validate(), Err(Error::Config { key, .. }) if key == "zones"));
    let no_project = Placement {
        project: String::new(),
        ..placement(server.url())
    };
    assert!(matches!(no_project.validate(), Err(Error::Config { key, .. }) if key == "project"));
    let plan = gce.plan(&request("m", "c"));
    assert!(
        plan[0].contains("instances.insert") && plan[0].contains("murmur-cluster=c"),
        "{plan:?}"
    );
    assert!(
        plan.iter().all(|c| !c.contains("booted")),
        "the script is withheld: {plan:?}"
    );

    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let down = Gce::with_client(
        placement(&url),
        Instances::builder()
            .with_endpoint(&url)
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
            .with_retry_policy(murmur_gcp::retry_policy())
            .build()
            .await
            .expect("client"),
    );
    let unreachable = down.list("c").await.expect_err("nothing listens");
    assert!(
        matches!(&unreachable, Error::Unreachable { endpoint, .. } if *endpoint == url),
        "{unreachable}"
    );
}
