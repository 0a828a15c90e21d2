//! A property over the store's read methods: whatever rows random tenants hold (runs whose
//! ids share prefixes across tenants, catalog flights, secrets and tokens of the same names,
//! machines), no read of one tenant's store returns, counts or finds another tenant's row.
//! On SQLite and PostgreSQL; every case adds fresh tenants to one store, so the rows of
//! earlier cases are there to leak too.

mod backends;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use murmur_engine::Store;
use murmur_engine::secrets::Secrets;
use murmur_engine::store::{Error, MachineFilter, NewGeneration, NewMachine, NewRun};
use murmur_vault::{Kek, Keyring, LocalKek, SecretValue};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const AT: &str = "2026-01-01T00:00:00.000Z";

/// One row to create: of which tenant (an index into the case's tenants), what, and a key
/// that repeats across tenants (the same run-id prefix, flight, secret or token name).
#[derive(Debug, Clone)]
struct Row {
    tenant: usize,
    kind: Kind,
    key: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    Flight,
    Secret,
    Token,
    Machine,
}

fn world() -> impl Strategy<Value = (Vec<String>, Vec<Row>)> {
    let kind = prop_oneof![
        Just(Kind::Run),
        Just(Kind::Flight),
        Just(Kind::Secret),
        Just(Kind::Token),
        Just(Kind::Machine),
    ];
    let row = (0usize..3, kind, 0u8..3).prop_map(|(tenant, kind, key)| Row { tenant, kind, key });
    let tenants = prop::collection::btree_set("[a-z][a-z0-9]{0,6}", 2..4);
    (tenants, prop::collection::vec(row, 1..16))
        .prop_map(|(tenants, rows)| (tenants.into_iter().collect(), rows))
}

/// What the case created, by tenant: what each tenant's reads may return and must find.
#[derive(Default)]
struct Owned {
    runs: BTreeSet<String>,
    flights: BTreeSet<String>,
    secrets: BTreeSet<String>,
    tokens: BTreeMap<String, String>,
    machines: BTreeSet<String>,
}

struct Case<'a> {
    root: &'a Store,
    ring: &'a Keyring,
    number: usize,
}

impl Case<'_> {
    fn run_id(&self, row: &Row) -> String {
        format!("c{}r{}t{}", self.number, row.key, row.tenant)
    }

    async fn create(&self, store: &Store, row: &Row, owned: &mut Owned) -> Result<(), Error> {
        let key = row.key;
        let marker = format!("{} {}", store.tenant(), key);
        match row.kind {
            Kind::Run => {
                let id = self.run_id(row);
                if owned.runs.insert(id.clone()) {
                    run(store, &id).await?;
                }
            }
            Kind::Flight => {
                let name = format!("f{key}");
                let markdown = format!("# {marker}\n\n## a\nA.\n");
                let new = NewGeneration {
                    name: &name,
                    markdown: &markdown,
                    digest: "d",
                    author: "p",
                    created_at: AT,
                };
                store.save_flight(&new).await?;
                owned.flights.insert(name);
            }
            Kind::Secret => {
                let name = format!("S{key}");
                let value = SecretValue::new(marker.into_bytes());
                let secrets = Secrets::new(store, self.ring);
                secrets.set(&name, &value, "p", AT).await.expect("set");
                owned.secrets.insert(name);
            }
            Kind::Token => {
                let name = format!("t{key}");
                if let Entry::Vacant(slot) = owned.tokens.entry(name.clone()) {
                    let token = format!("mur_{}_{}", self.number, self.run_id(row));
                    store.add_token(&name, &token, AT).await?;
                    slot.insert(token);
                }
            }
            Kind::Machine => {
                let id = format!("m{}", self.run_id(row));
                if owned.machines.insert(id.clone()) {
                    store.create_machine(&machine(&id)).await.expect("machine");
                }
            }
        }
        Ok(())
    }
}

async fn run(store: &Store, id: &str) -> Result<(), Error> {
    let agents = vec!["build".to_owned()];
    let run = NewRun {
        id,
        flight: "deploy",
        flight_path: None,
        source: "# Deploy\n\n## build\nBuild.\n",
        digest: "d",
        inputs: &serde_json::json!({}),
        created_at: AT,
        agents: &agents,
        event: None,
    };
    store.create_run(&run).await
}

fn machine(id: &str) -> NewMachine<'_> {
    NewMachine {
        id,
        pool: "local",
        placement: "local",
        public_key: None,
        credential: None,
        lease_expires_at: None,
        at: AT,
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

/// Everything of the case, every tenant's: the ids and names to probe each tenant with.
struct Probes {
    runs: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    tokens: Vec<String>,
    machines: BTreeSet<String>,
}

async fn reads_run_rows(store: &Store, own: &Owned, probes: &Probes) -> Result<(), TestCaseError> {
    let t = store.tenant().to_owned();
    let mine = |id: &str| own.runs.contains(id);
    let stray = |ids: Vec<String>, read: &str| {
        let stray: Vec<_> = ids.into_iter().filter(|id| !mine(id)).collect();
        check(stray.is_empty(), || {
            format!("{t}: {read} returned {stray:?}")
        })
    };
    let case_runs = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter()
            .filter(|id| probes.runs.contains(id))
            .collect()
    };
    let listed = store.runs(10_000).await.expect("runs");
    check(listed.iter().all(|r| r.tenant == t), || {
        format!("{t}: runs()")
    })?;
    let listed = case_runs(listed.into_iter().map(|r| r.id).collect());
    check(listed.len() == own.runs.len(), || {
        format!("{t}: runs() missed its own")
    })?;
    stray(listed, "runs()")?;
    let unfinished = store.unfinished_runs().await.expect("unfinished");
    stray(
        case_runs(unfinished.into_iter().map(|r| r.id).collect()),
        "unfinished_runs()",
    )?;
    let page = store
        .list_runs(&Default::default(), AT)
        .await
        .expect("list_runs");
    stray(
        case_runs(page.runs.into_iter().map(|r| r.id).collect()),
        "list_runs()",
    )?;
    let finished = store.finished_runs().await.expect("finished");
    stray(
        case_runs(finished.into_iter().map(|r| r.id).collect()),
        "finished_runs()",
    )?;
    let driverless = store.runs_without_driver(AT).await.expect("driverless");
    stray(case_runs(driverless), "runs_without_driver()")?;
    let named = store.agents_named("build", 10_000).await.expect("named");
    stray(
        case_runs(named.into_iter().map(|a| a.run_id).collect()),
        "agents_named()",
    )?;
    let all: Vec<String> = probes.runs.iter().cloned().collect();
    let leases = store.leases(&all).await.expect("leases");
    stray(leases.into_keys().collect(), "leases()")?;
    for id in &probes.runs {
        let agents = store.agents(id).await.expect("agents");
        check(agents.is_empty() != mine(id), || {
            format!("{t}: agents({id})")
        })?;
        let events = store.events(id, 0).await.expect("events");
        check(mine(id) || events.is_empty(), || {
            format!("{t}: events({id})")
        })?;
        let found = store.run(id).await.ok().map(|r| r.id);
        check(found.is_some() == mine(id), || format!("{t}: run({id})"))?;
        let lease = store.lease(id).await;
        check(lease.is_ok() == mine(id), || format!("{t}: lease({id})"))?;
    }
    for prefix in &probes.prefixes {
        match store.run(prefix).await {
            Ok(row) => check(mine(&row.id), || format!("{t}: run({prefix}) = {}", row.id))?,
            Err(Error::NoRun(_) | Error::AmbiguousRun(_)) => {}
            Err(error) => return Err(TestCaseError::fail(format!("run({prefix}): {error}"))),
        }
    }
    Ok(())
}

/// Counts over every run of the tenant: this case's own rows plus the earlier cases' of the
/// same tenant, of which there are none (each case's tenants are new).
async fn counts(store: &Store, own: &Owned) -> Result<(), TestCaseError> {
    let t = store.tenant().to_owned();
    let runs: i64 = store
        .run_counts()
        .await
        .expect("counts")
        .iter()
        .map(|c| c.1)
        .sum();
    check(runs == own.runs.len() as i64, || {
        format!("{t}: run_counts {runs}")
    })?;
    let agents: i64 = store
        .agent_counts()
        .await
        .expect("counts")
        .iter()
        .map(|c| c.1)
        .sum();
    check(agents == own.runs.len() as i64, || {
        format!("{t}: agent_counts {agents}")
    })?;
    let queued = store.queued_agents().await.expect("queued");
    check(queued.iter().all(|(run, _)| own.runs.contains(run)), || {
        format!("{t}: queued_agents {queued:?}")
    })?;
    let machines: usize = store
        .machine_counts()
        .await
        .expect("counts")
        .iter()
        .map(|c| c.2)
        .sum();
    check(machines == own.machines.len(), || {
        format!("{t}: machine_counts {machines}")
    })
}

async fn reads_named_rows(
    store: &Store,
    ring: &Keyring,
    own: &Owned,
    probes: &Probes,
) -> Result<(), TestCaseError> {
    let t = store.tenant().to_owned();
    let marker =
        |text: &str| text.starts_with(&format!("# {t} ")) || text.starts_with(&format!("{t} "));
    let flights = store.catalog_flights().await.expect("flights");
    let names: BTreeSet<String> = flights.iter().map(|f| f.name.clone()).collect();
    check(names == own.flights, || {
        format!("{t}: catalog_flights {names:?}")
    })?;
    check(flights.iter().all(|f| marker(&f.markdown)), || {
        format!("{t}: another's text")
    })?;
    for key in 0..3 {
        let name = format!("f{key}");
        let found = store.catalog_flight(&name, None).await.expect("flight");
        check(found.is_some() == own.flights.contains(&name), || {
            format!("{t}: {name}")
        })?;
        check(found.is_none_or(|f| marker(&f.markdown)), || {
            format!("{t}: {name}'s text")
        })?;
    }
    let secrets: BTreeSet<String> = store
        .secrets()
        .await
        .expect("secrets")
        .into_iter()
        .map(|s| s.name)
        .collect();
    check(secrets == own.secrets, || {
        format!("{t}: secrets {secrets:?}")
    })?;
    let all = ["S0", "S1", "S2"];
    let sealed = store.secret_ciphertexts(&all).await.expect("ciphertexts");
    check(sealed.len() == own.secrets.len(), || {
        format!("{t}: secret_ciphertexts")
    })?;
    for name in &own.secrets {
        let opened = Secrets::new(store, ring)
            .open(&[name.as_str()])
            .await
            .expect("open");
        let value = opened
            .get(name)
            .map(|v| v.expose().to_vec())
            .unwrap_or_default();
        check(marker(&String::from_utf8_lossy(&value)), || {
            format!("{t}: {name}'s value")
        })?;
    }
    let tokens: BTreeSet<String> = store
        .list_tokens()
        .await
        .expect("tokens")
        .into_iter()
        .map(|t| t.name)
        .collect();
    let own_tokens: BTreeSet<String> = own.tokens.keys().cloned().collect();
    check(tokens == own_tokens, || {
        format!("{t}: list_tokens {tokens:?}")
    })?;
    for token in &probes.tokens {
        let mine = own.tokens.values().any(|own| own == token);
        let found = store.authenticate(token).await.expect("authenticate");
        check(found.is_some() == mine, || {
            format!("{t}: authenticate({token})")
        })?;
        let caller = store
            .caller(token)
            .await
            .expect("caller")
            .expect("every token has a tenant");
        check((caller.tenant == t) == mine, || {
            format!("{t}: caller({token})")
        })?;
    }
    let filter = MachineFilter {
        pool: None,
        state: None,
    };
    let machines: BTreeSet<String> = store
        .machines(&filter)
        .await
        .expect("machines")
        .into_iter()
        .map(|m| m.id)
        .collect();
    check(machines == own.machines, || {
        format!("{t}: machines {machines:?}")
    })?;
    for id in &probes.machines {
        let found = store.machine(id).await.is_ok();
        check(found == own.machines.contains(id), || {
            format!("{t}: machine({id})")
        })?;
    }
    Ok(())
}

/// One case: fresh tenants, their rows, then every read of every tenant.
async fn one_case(case: &Case<'_>, names: &[String], rows: &[Row]) -> Result<(), TestCaseError> {
    let mut stores = Vec::new();
    for name in names {
        let name = format!("{name}-{}", case.number);
        assert!(case.root.create_tenant(&name, AT).await.expect("tenant"));
        stores.push(
            case.root
                .for_tenant(&name)
                .await
                .expect("lookup")
                .expect("tenant"),
        );
    }
    let mut owned: Vec<Owned> = stores.iter().map(|_| Owned::default()).collect();
    for row in rows {
        let row = Row {
            tenant: row.tenant % stores.len(),
            ..row.clone()
        };
        let created = case
            .create(&stores[row.tenant], &row, &mut owned[row.tenant])
            .await;
        created.map_err(|e| TestCaseError::fail(format!("{row:?}: {e}")))?;
    }
    let probes = Probes {
        runs: owned.iter().flat_map(|o| o.runs.iter().cloned()).collect(),
        prefixes: (0..3)
            .map(|key| format!("c{}r{key}", case.number))
            .collect(),
        tokens: owned
            .iter()
            .flat_map(|o| o.tokens.values().cloned())
            .collect(),
        machines: owned
            .iter()
            .flat_map(|o| o.machines.iter().cloned())
            .collect(),
    };
    for (store, own) in stores.iter().zip(&owned) {
        reads_run_rows(store, own, &probes).await?;
        counts(store, own).await?;
        reads_named_rows(store, case.ring, own, &probes).await?;
    }
    Ok(())
}

fn property(db: backends::TestDb) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let root = runtime.block_on(backends::open(&db));
    let ring = Keyring::new(Kek::Local(LocalKek::generate().expect("key")));
    let cases = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(24));
    let outcome = runner.run(&world(), |(names, rows)| {
        let number = cases.fetch_add(1, Ordering::Relaxed);
        let case = Case {
            root: &root,
            ring: &ring,
            number,
        };
        runtime.block_on(one_case(&case, &names, &rows))
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn no_read_returns_another_tenants_row_on_sqlite() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    property(runtime.block_on(backends::sqlite()));
}

#[test]
fn no_read_returns_another_tenants_row_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    if let Some(db) = runtime.block_on(backends::postgres()) {
        property(db);
    }
}
