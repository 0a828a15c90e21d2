//! Workspaces in the store, on every backend: added once per tenant (the same name in two
//! tenants is two workspaces), listed and read back whole (its variables too), a run's workspace recorded, and a
//! removal refused while one of its runs has not finished, naming it.

mod backends;

use backends::TestDb;
use murmur_engine::Store;
use murmur_engine::store::NewRun;
use murmur_engine::store::workspaces::{Removed, RunPlace};
use murmur_engine::workspace::{
    ConflictResolution, Workspace, WorkspaceDefaults, WorkspaceRepository,
};

every_backend!(workspaces_are_kept_per_tenant);

const AT: &str = "2026-01-01T00:00:00.000Z";

fn workspace(name: &str, urls: &[&str]) -> Workspace {
    Workspace {
        name: name.to_owned(),
        repositories: urls
            .iter()
            .map(|url| WorkspaceRepository {
                url: (*url).to_owned(),
                base: Some("main".to_owned()),
                conflict_resolution: ConflictResolution::Rebase,
                credential: Some("GIT_TOKEN".to_owned()),
            })
            .collect(),
        defaults: WorkspaceDefaults {
            base: Some("develop".to_owned()),
            pool: Some("fleet".to_owned()),
            environment: [("STAGE", "staging"), ("QUOTED", "it's $(not run)")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            check: Some("make test".to_owned()),
            secrets: vec!["DEPLOY".to_owned()],
        },
        min_idle: 2,
        created_at: AT.to_owned(),
    }
}

async fn run(store: &Store, id: &str) {
    let agents = vec!["a".to_owned()];
    store
        .create_run(&NewRun {
            id,
            flight: "hello",
            flight_path: None,
            source: "# Hello\n\n## a\nHi.\n",
            digest: "d",
            inputs: &serde_json::json!({}),
            created_at: AT,
            agents: &agents,
            event: None,
        })
        .await
        .expect("create run");
}

async fn workspaces_are_kept_per_tenant(db: &TestDb) {
    let local = backends::open(db).await;
    local.create_tenant("acme", AT).await.expect("tenant");
    let acme = local
        .for_tenant("acme")
        .await
        .expect("lookup")
        .expect("acme");
    let backend = workspace("backend", &["/srv/api.git", "/srv/schemas.git"]);
    assert!(local.add_workspace(&backend).await.expect("add"));
    assert!(
        !local.add_workspace(&backend).await.expect("again"),
        "one name once"
    );
    let theirs = workspace("backend", &["/srv/other.git"]);
    assert!(
        acme.add_workspace(&theirs)
            .await
            .expect("same name, other tenant")
    );
    // Two workspaces may hold one repository.
    assert!(
        local
            .add_workspace(&workspace("api", &["/srv/api.git"]))
            .await
            .expect("add")
    );

    let names: Vec<String> = local
        .workspaces()
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["api", "backend"]);
    assert_eq!(
        local.workspace("backend").await.expect("read"),
        Some(backend.clone())
    );
    assert_eq!(acme.workspace("backend").await.expect("read"), Some(theirs));
    assert_eq!(acme.workspace("api").await.expect("read"), None);

    run(&local, "0run1").await;
    local
        .set_run_workspace("0run1", "backend", Some("release"))
        .await
        .expect("record");
    assert_eq!(
        local.run_workspace("0run1").await.expect("read"),
        Some("backend".to_owned())
    );
    assert_eq!(
        local.run_place("0run1").await.expect("read"),
        RunPlace {
            workspace: Some("backend".to_owned()),
            base: Some("release".to_owned()),
        }
    );
    // A run of the implicit workspace on a base of its own (`murmur spawn --base`).
    run(&local, "0run2").await;
    local
        .set_run_base("0run2", "release")
        .await
        .expect("record");
    assert_eq!(local.run_workspace("0run2").await.expect("read"), None);
    assert_eq!(
        local.run_place("0run2").await.expect("read"),
        RunPlace {
            workspace: None,
            base: Some("release".to_owned()),
        }
    );
    assert_eq!(
        local.run_place("0run3").await.expect("read"),
        RunPlace::default()
    );
    assert_eq!(acme.run_workspace("0run1").await.expect("read"), None);
    assert_eq!(
        local
            .runs_in_workspace("backend", true)
            .await
            .expect("runs"),
        ["0run1"]
    );
    assert_eq!(
        local.remove_workspace("backend").await.expect("refused"),
        Removed::InFlight(vec!["0run1".to_owned()])
    );
    assert_eq!(
        acme.remove_workspace("backend").await.expect("theirs"),
        Removed::Gone
    );
    assert_eq!(
        acme.remove_workspace("backend").await.expect("again"),
        Removed::Missing
    );
    assert_eq!(
        local.remove_workspace("api").await.expect("no runs"),
        Removed::Gone
    );
    assert!(
        local
            .workspace("backend")
            .await
            .expect("still there")
            .is_some()
    );
}
