//! Cloud pools end to end, real processes: a `murmur serve` whose pool runs on the `aws`
//! placement against moto's EC2 server. Each VM's boot is simulated honestly: the test reads the
//! instance's user-data back from moto (`DescribeInstanceAttribute userData`) and runs that very
//! script as a local process, so the real `murmur worker` registers with the one-time bootstrap
//! credential it carries; a stopped instance's process is paused, a started one continued, a
//! terminated one killed.

#[path = "../cli/tests/support/mod.rs"]
mod support;

#[path = "cloud_support.rs"]
mod cloud_support;

use std::collections::BTreeSet;

use cloud_support::Cloud;
use support::http;

/// Five agents on the cloud pool, each noting where and when it starts.
fn five_agents(ledger: &std::path::Path) -> String {
    let agents: String = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|slug| {
            format!(
                "## {slug}\n> command: echo \"start {slug} $(date +%s%3N) $PWD\" >> {ledger}; echo done-{slug}\n\n",
                ledger = ledger.display()
            )
        })
        .collect();
    format!("---\nruntime: exec\npool: cloud\n---\n# Job\n\n{agents}")
}

#[test]
fn an_aws_pool_keeps_warm_vms_runs_agents_on_them_and_reconciles_after_a_restart() {
    let Some(mut cloud) = Cloud::start("min_idle: 1, max_vms: 3", five_agents) else {
        return;
    };
    // One warm machine before any agent.
    let vms = cloud.wait_until("one warm machine", |c| c.pool_count("idle") == 1);
    let warm = vms.live();
    assert_eq!(warm.len(), 1, "one VM for min_idle: 1: {vms:?}");
    let warm_id = warm[0].id.clone();
    let tags = &warm[0].tags;
    for key in [
        "murmur:tenant",
        "murmur:pool",
        "murmur:machine",
        "murmur:cluster",
    ] {
        assert!(tags.iter().any(|(k, _)| k == key), "tag {key} on {tags:?}");
    }

    let started = cloud_support::now_ms();
    let run = cloud.start_run();
    let events = cloud.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    let starts = cloud.starts();
    assert_eq!(starts.len(), 5, "every agent ran once: {starts:?}");
    let slugs: BTreeSet<&str> = starts.iter().map(|s| s.slug.as_str()).collect();
    assert_eq!(slugs.len(), 5, "{starts:?}");
    let ever: BTreeSet<String> = cloud.ec2.instances().into_iter().map(|vm| vm.id).collect();
    assert!(ever.len() <= 3, "never more than max_vms VMs: {ever:?}");
    let machines: BTreeSet<&str> = starts.iter().map(|s| s.vm.as_str()).collect();
    assert!(
        machines.len() > 1,
        "agents ran on more than the warm VM: {starts:?}"
    );
    let warm_start = starts
        .iter()
        .filter(|s| s.vm == warm_id)
        .map(|s| s.at_ms)
        .min()
        .expect("an agent ran on the warm VM");
    let cold_start = starts
        .iter()
        .filter(|s| s.vm != warm_id)
        .map(|s| s.at_ms)
        .min()
        .expect("an agent ran on a VM made for it");
    eprintln!(
        "agent queued -> running: warm machine {} ms, cold machine (provision + boot + register) {} ms",
        warm_start.saturating_sub(started),
        cold_start.saturating_sub(started)
    );

    // The bootstrap credential of a VM that registered is refused the second time.
    let spent = cloud.bootstrap_of(&warm_id);
    let body = r#"{"pool":"","public_key":"AAAA","host":"again"}"#;
    let auth = format!("Bearer {spent}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, answer) = http(
        &cloud.address,
        "POST",
        "/v1/workers/register",
        &headers,
        body,
    );
    assert_eq!(status, 401, "a spent bootstrap credential: {answer}");

    // `pool status` shows the VMs' instance ids and the provider's states.
    let status = cloud.murmur(&["pool", "status", "cloud", "--json"]);
    let pools: serde_json::Value = serde_json::from_str(&status).expect("json");
    let shown: Vec<&str> = pools[0]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|vm| vm["instance_id"].as_str())
        .collect();
    assert!(shown.contains(&warm_id.as_str()), "{status}");
    assert!(
        status.contains("\"provider_state\": \"running\""),
        "{status}"
    );

    // A flush terminates the idle VMs (min_idle then makes a new warm one).
    // (The run ends with its last update; the machine that sent it is released right after.)
    cloud.wait_until("no machine busy", |c| c.pool_count("busy") == 0);
    let before: Vec<String> = cloud.ec2.live().into_iter().map(|vm| vm.id).collect();
    cloud.murmur(&["pool", "flush", "cloud"]);
    cloud.wait_until("the flushed VMs terminated", |c| {
        let live: Vec<String> = c.ec2.live().into_iter().map(|vm| vm.id).collect();
        before.iter().all(|id| !live.contains(id))
    });
    cloud.wait_until("a new warm machine", |c| c.pool_count("idle") == 1);
    let survivor = cloud.ec2.live();
    assert_eq!(survivor.len(), 1, "{survivor:?}");

    // A restarted server adopts the running VM and terminates an orphan made behind its back.
    cloud.stop_server();
    let cluster = survivor[0].tag("murmur:cluster").expect("cluster tag");
    let tenant = survivor[0].tag("murmur:tenant").expect("tenant tag");
    let orphan = cloud.ec2.run_orphan(&cluster, &tenant, "cloud");
    cloud.start_server();
    cloud.wait_until("the orphan terminated", |c| {
        c.ec2.live().iter().all(|vm| vm.id != orphan)
    });
    let live = cloud.wait_until("the adopted machine idle", |c| c.pool_count("idle") == 1);
    let ids: Vec<String> = live.live().into_iter().map(|vm| vm.id).collect();
    assert_eq!(ids, [survivor[0].id.clone()], "adopted, not replaced");
}

#[test]
fn min_idle_two_refills_and_idle_timeout_destroys_the_extras() {
    let one_agent = |ledger: &std::path::Path| {
        format!(
            // The agent holds its machine until the test has seen the refill.
            "---\nruntime: exec\npool: cloud\n---\n# One\n\n## a\n> command: echo \"start a $(date +%s%3N) $PWD\" >> {}; while [ ! -e {} ]; do sleep 0.05; done\n\n",
            ledger.display(),
            ledger.with_file_name("go").display()
        )
    };
    let Some(mut cloud) = Cloud::start("min_idle: 2, max_vms: 3, idle_timeout: 2s", one_agent)
    else {
        return;
    };
    cloud.wait_until("two warm machines", |c| c.pool_count("idle") == 2);
    assert_eq!(cloud.ec2.live().len(), 2);
    // The calls one more would take, without making them or showing a credential.
    let plan = cloud.murmur_without_db(&["pool", "up", "cloud", "--dry-run"]);
    assert!(
        plan.contains("ec2:DescribeImages region=us-east-1"),
        "{plan}"
    );
    assert!(
        plan.contains("ec2:RunInstances") && plan.contains("HibernationOptions.Configured=true"),
        "{plan}"
    );
    assert!(!plan.contains("murb_"), "no credential in a plan: {plan}");
    assert_eq!(cloud.ec2.live().len(), 2, "a dry run makes nothing");
    let run = cloud.start_run();
    // The agent took a warm machine, the pool made a third; past idle_timeout, back to two.
    cloud.wait_until("a third VM for the refill", |c| {
        c.ec2.instances().len() == 3
    });
    std::fs::write(cloud.path("go"), "").expect("go");
    let events = cloud.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    cloud.wait_until("the extra destroyed", |c| {
        c.pool_count("idle") == 2 && c.ec2.live().len() == 2
    });
    let before: Vec<String> = cloud.ec2.live().into_iter().map(|vm| vm.id).collect();
    cloud.murmur(&["pool", "flush", "cloud"]);
    cloud.wait_until("every flushed VM terminated", |c| {
        let live: Vec<String> = c.ec2.live().into_iter().map(|vm| vm.id).collect();
        before.iter().all(|id| !live.contains(id))
    });
}

#[test]
fn a_broken_placement_is_refused_naming_the_key() {
    let fixture = support::fixture::Fixture::new(&support::db::Backend::Sqlite, "cloud-config");
    fixture.write_config(
        "pools:\n  cloud: { placement: aws-x, environment: vm, max_vms: 1 }\n\
         environments:\n  vm: { aws: { instance_type: t3.micro } }\n\
         placements:\n  aws-x: { provider: aws, region: us-east-1 }\n\
         server: { url: 'http://127.0.0.1:1' }\n",
    );
    let out = fixture.murmur(&["serve", "--bind", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("environments.vm.aws.image_id is missing"),
        "{said}"
    );
}

#[test]
fn a_vm_sleeps_with_its_agent_and_the_same_instance_wakes_for_a_follow_up() {
    let flight = |ledger: &std::path::Path| {
        let release = ledger.with_file_name("release");
        format!(
            "---\nruntime: exec\npool: cloud\n---\n# Rest\n\n\
             ## writer\n> command: echo \"start writer $(date +%s%3N) $PWD\" >> {ledger}; echo wrote\n\n\
             ## other\n> pool: local\n> command: while [ ! -f {release} ]; do sleep 0.05; done; echo released\n\n",
            ledger = ledger.display(),
            release = release.display(),
        )
    };
    let Some(mut cloud) = Cloud::start("max_vms: 2, sleep_after: 1s", flight) else {
        return;
    };
    let run = cloud.start_run();
    cloud.wait_until("the writer ran", |c| c.starts().len() == 1);
    let vm = cloud.starts()[0].vm.clone();
    cloud.wait_until("its VM stopped with it", |c| {
        c.pool_count("sleeping") == 1
            && c.ec2
                .instances()
                .iter()
                .any(|i| i.id == vm && i.state == "stopped")
    });
    cloud.murmur(&[
        "queue",
        "add",
        "--run",
        &run,
        "--detach",
        "writer",
        "once more",
    ]);
    cloud.wait_until("the writer ran again", |c| c.starts().len() == 2);
    let again = cloud.starts();
    assert_eq!(again[1].vm, vm, "woken on the same instance: {again:?}");
    let ever = cloud.ec2.instances();
    assert_eq!(ever.len(), 1, "no other VM was made: {ever:?}");
    std::fs::write(cloud.path("release"), "").expect("release");
    let events = cloud.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
}
