//! Cloud pools end to end, real processes: a `murmur serve` whose pool runs on the `aws`
//! placement against moto's EC2 server. Each VM's boot is simulated honestly: the test reads the
//! instance's user-data back from moto (`DescribeInstanceAttribute userData`) and runs that very
//! script as a local process, so the real `murmur worker` registers with the one-time bootstrap
//! credential it carries; a stopped instance's process is paused, a started one continued, a
//! terminated one killed.

#[path = "../cli/tests/support/mod.rs"]
mod support;

#[path = "cloud_support/mod.rs"]
mod cloud_support;

use cloud_support::ec2::Ec2;
use cloud_support::{Cloud, scenarios};

#[test]
fn an_aws_pool_keeps_warm_vms_runs_agents_on_them_and_reconciles_after_a_restart() {
    scenarios::lifecycle::<Ec2>();
}

#[test]
fn a_vm_sleeps_with_its_agent_and_the_same_instance_wakes_for_a_follow_up() {
    scenarios::sleep_and_wake::<Ec2>();
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
    let Some(mut cloud) =
        Cloud::<Ec2>::start("min_idle: 2, max_vms: 3, idle_timeout: 2s", one_agent)
    else {
        return;
    };
    cloud.wait_until("two warm machines", |c| c.pool_count("idle") == 2);
    assert_eq!(cloud.live().len(), 2);
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
    assert_eq!(cloud.live().len(), 2, "a dry run makes nothing");
    let run = cloud.start_run();
    // The agent took a warm machine, the pool made a third; past idle_timeout, back to two.
    cloud.wait_until("a third VM for the refill", |c| c.vms().len() == 3);
    std::fs::write(cloud.path("go"), "").expect("go");
    let events = cloud.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    cloud.wait_until("the extra destroyed", |c| {
        c.pool_count("idle") == 2 && c.live().len() == 2
    });
    let before: Vec<String> = cloud.live().into_iter().map(|vm| vm.id).collect();
    cloud.murmur(&["pool", "flush", "cloud"]);
    cloud.wait_until("every flushed VM terminated", |c| {
        let live: Vec<String> = c.live().into_iter().map(|vm| vm.id).collect();
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
