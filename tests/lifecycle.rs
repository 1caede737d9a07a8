//! The lifecycle manager, in-process, with real modules: the state of each
//! app (and the error of a failed one) is kept in one place and published.

use std::sync::Arc;
use std::time::Duration;

use crabcat::config::{AppConfig, Config, DatasourceConfig};
use crabcat::db::Datasources;
use crabcat::lifecycle::{AppManager, AppState};
use crabcat_tests::module;

fn config_with(dir: &std::path::Path, apps: &[(&str, serde_json::Value)]) -> Config {
    let mut config = Config::default();
    config.deploy.dir = dir.to_path_buf();
    for (name, app_config) in apps {
        let serde_json::Value::Object(map) = app_config.clone() else {
            panic!("object")
        };
        config.apps.insert(
            (*name).to_owned(),
            AppConfig {
                config: map,
                ..AppConfig::default()
            },
        );
    }
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn states_are_published_with_the_failure_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(module("hello"), dir.path().join("hello.so")).unwrap();
    std::fs::copy(module("probe"), dir.path().join("broken.so")).unwrap();
    std::fs::copy(module("bad-abi"), dir.path().join("old.so")).unwrap();
    let mut config = config_with(dir.path(), &[("broken", serde_json::json!({"init": "error"}))]);
    let url = format!("sqlite://{}/crabcat.db", dir.path().display());
    config.datasources.insert(
        "default".into(),
        DatasourceConfig {
            url,
            ..Default::default()
        },
    );
    let datasources = Arc::new(Datasources::from_config(&config.datasources).unwrap());
    let manager = AppManager::new(Arc::new(config), datasources).unwrap();
    let mut status = manager.subscribe();
    manager.deploy_all().await;

    let apps = status.borrow_and_update().clone();
    assert_eq!(apps["hello"].state, AppState::Running);
    assert_eq!(apps["hello"].context_path, "/hello");
    assert_eq!(apps["hello"].module.as_ref().unwrap().crate_name, "hello");
    match &apps["broken"].state {
        AppState::Failed(reason) => assert_eq!(reason, "init failed: probe was told to fail its init"),
        other => panic!("broken is {other}"),
    }
    match &apps["old"].state {
        AppState::Failed(reason) => assert!(reason.contains("ABI major version 999"), "{reason}"),
        other => panic!("old is {other}"),
    }
    assert!(apps["old"].module.is_none(), "a refused module reports nothing");

    // A reload publishes two updates: the new image counted as it is
    // loaded (it stays loaded even if init fails), then the new version
    // running, with its reload counted.
    let before = manager.publishes();
    let outcome = manager.reload("hello", None, true).await.unwrap();
    assert_eq!(outcome, crabcat::lifecycle::Outcome::Reloaded);
    assert_eq!(manager.publishes() - before, 2);
    let hello = manager.apps()["hello"].clone();
    assert_eq!((hello.reloads, hello.images), (1, 2));

    manager.shutdown(Duration::from_secs(5)).await;
    assert!(status.has_changed().unwrap());
    let apps = status.borrow_and_update().clone();
    assert_eq!(apps["hello"].state, AppState::Stopped);
    assert!(
        matches!(apps["broken"].state, AppState::Failed(_)),
        "failed apps stay failed"
    );
}
