//! The cloud pool's stories, told once and run against each cloud: `tests/cloud.rs` runs them
//! on moto's EC2, `tests/cloud_gce.rs` on the Compute Engine test server.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Cloud, Peer, now_ms};
use crate::support::http;

/// Five agents on the cloud pool, each noting where and when it starts.
pub fn five_agents(ledger: &Path) -> String {
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

/// [`five_agents`], each held after its start until the file `release` (next to the
/// ledger) exists: so the pool must grow past its warm VM however fast agents would end.
pub fn five_held_agents(ledger: &Path) -> String {
    let release = ledger.with_file_name("release");
    let agents: String = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|slug| {
            format!(
                "## {slug}\n> command: echo \"start {slug} $(date +%s%3N) $PWD\" >> {ledger}; \
                 until [ -e {release} ]; do sleep 0.05; done; echo done-{slug}\n\n",
                ledger = ledger.display(),
                release = release.display()
            )
        })
        .collect();
    format!("---\nruntime: exec\npool: cloud\n---\n# Job\n\n{agents}")
}

/// A warm VM, five agents on at most three VMs, a spent bootstrap credential refused, the VMs
/// in `pool status`, a flush, and a restarted server that adopts the running VM and destroys an
/// orphan made behind its back.
pub fn lifecycle<P: Peer>() {
    let Some(mut cloud) = Cloud::<P>::start("min_idle: 1, max_vms: 3", five_held_agents) else {
        return;
    };
    let vms = cloud.wait_until("one warm machine", |c| c.pool_count("idle") == 1);
    let warm: Vec<_> = vms.into_iter().filter(|vm| vm.is_live()).collect();
    assert_eq!(warm.len(), 1, "one VM for min_idle: 1: {warm:?}");
    let warm_id = warm[0].id.clone();
    for key in [
        "murmur:tenant",
        "murmur:pool",
        "murmur:machine",
        "murmur:cluster",
    ] {
        assert!(warm[0].tag(key).is_some(), "tag {key} on {warm:?}");
    }

    let queued = now_ms();
    let run = cloud.start_run();
    cloud.wait_until("agents running on two VMs", |c| {
        let vms: BTreeSet<String> = c.starts().into_iter().map(|s| s.vm).collect();
        vms.len() >= 2
    });
    std::fs::write(cloud.path("release"), "").expect("release the agents");
    let events = cloud.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
    let starts = cloud.starts();
    assert_eq!(starts.len(), 5, "every agent ran once, on a VM: {starts:?}");
    let slugs: BTreeSet<&str> = starts.iter().map(|s| s.slug.as_str()).collect();
    assert_eq!(slugs.len(), 5, "{starts:?}");
    let ever: BTreeSet<String> = cloud.vms().into_iter().map(|vm| vm.id).collect();
    assert!(ever.len() <= 3, "never more than max_vms VMs: {ever:?}");
    let machines: BTreeSet<&str> = starts.iter().map(|s| s.vm.as_str()).collect();
    assert!(
        machines.len() > 1,
        "agents ran on more than the warm VM: {starts:?}"
    );
    let first_on = |warm: bool| {
        starts
            .iter()
            .filter(|s| (s.vm == warm_id) == warm)
            .map(|s| s.at_ms)
            .min()
            .expect("an agent ran there")
    };
    eprintln!(
        "{}: agent queued -> running: warm machine {} ms, cold machine (provision + boot + register) {} ms",
        std::any::type_name::<P>(),
        first_on(true).saturating_sub(queued),
        first_on(false).saturating_sub(queued)
    );

    // The bootstrap credential of a VM that registered is refused the second time.
    let spent = cloud.bootstrap_of(&warm_id);
    let auth = format!("Bearer {spent}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = r#"{"pool":"","public_key":"AAAA","host":"again"}"#;
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
    let shown = pools[0]["instances"].as_array().expect("instances").clone();
    let warm_shown = shown
        .iter()
        .find(|vm| {
            vm["instance_id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&warm_id))
        })
        .unwrap_or_else(|| panic!("{warm_id} in {status}"));
    assert_eq!(
        warm_shown["provider_state"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("running"),
        "{status}"
    );

    // A flush destroys the idle VMs (min_idle then makes a new warm one).
    cloud.wait_until("no machine busy or booting", Cloud::settled);
    let before: Vec<String> = cloud.live().into_iter().map(|vm| vm.id).collect();
    cloud.murmur(&["pool", "flush", "cloud"]);
    cloud.wait_until("the flushed VMs destroyed", |c| {
        let live: Vec<String> = c.live().into_iter().map(|vm| vm.id).collect();
        before.iter().all(|id| !live.contains(id))
    });
    let survivor = cloud.wait_until("a new warm machine", |c| {
        c.pool_count("idle") == 1 && c.live().len() == 1
    });
    let survivor: Vec<_> = survivor.into_iter().filter(|vm| vm.is_live()).collect();

    // A restarted server adopts the running VM and destroys an orphan made behind its back.
    cloud.stop_server();
    let cluster = survivor[0].tag("murmur:cluster").expect("cluster tag");
    let tenant = survivor[0].tag("murmur:tenant").expect("tenant tag");
    let orphan = cloud.peer.make_orphan(&cluster, &tenant, "cloud");
    assert!(cloud.live().iter().any(|vm| vm.id == orphan));
    cloud.start_server();
    cloud.wait_until("the orphan destroyed", |c| {
        c.live().iter().all(|vm| vm.id != orphan)
    });
    let live = cloud.wait_until("the adopted machine idle", |c| c.pool_count("idle") == 1);
    let ids: Vec<String> = live
        .into_iter()
        .filter(|vm| vm.is_live())
        .map(|vm| vm.id)
        .collect();
    assert_eq!(ids, [survivor[0].id.clone()], "adopted, not replaced");
}

/// An agent's VM sleeps after `sleep_after`; a follow-up wakes that very VM, and the agent
/// carries on in the same workspace on it; no other VM is made.
pub fn sleep_and_wake<P: Peer>() {
    let flight = |ledger: &Path| {
        let release = ledger.with_file_name("release");
        format!(
            "---\nruntime: exec\npool: cloud\n---\n# Rest\n\n\
             ## writer\n> command: echo \"start writer $(date +%s%3N) $PWD\" >> {ledger}; echo turn >> notes; echo wrote\n\n\
             ## other\n> pool: local\n> command: while [ ! -f {release} ]; do sleep 0.05; done; echo released\n\n",
            ledger = ledger.display(),
            release = release.display(),
        )
    };
    let Some(mut cloud) = Cloud::<P>::start("max_vms: 2, sleep_after: 1s", flight) else {
        return;
    };
    let run = cloud.start_run();
    cloud.wait_until("the writer ran", |c| c.starts().len() == 1);
    let vm = cloud.starts()[0].vm.clone();
    cloud.wait_until("its VM asleep with it", |c| {
        c.pool_count("sleeping") == 1
            && c.vms()
                .iter()
                .any(|i| i.id == vm && i.life == super::Life::Asleep)
    });
    let asleep = cloud.vms();
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
    assert_eq!(
        again[1].vm, vm,
        "woken on the same VM: {again:?} ({asleep:?})"
    );
    assert_eq!(
        again[1].pwd, again[0].pwd,
        "the same workspace on it: {again:?}"
    );
    let notes = std::fs::read_to_string(Path::new(&again[1].pwd).join("notes"))
        .expect("the agent's notes in its workspace");
    assert_eq!(notes.lines().count(), 2, "both turns wrote there: {notes}");
    let ever = cloud.vms();
    assert_eq!(ever.len(), 1, "no other VM was made: {ever:?}");
    std::fs::write(cloud.path("release"), "").expect("release");
    let events = cloud.events_until_ended(&run);
    assert!(events.contains("event: run_completed"), "{events}");
}
