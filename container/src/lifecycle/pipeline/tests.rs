use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::config::DatasourceConfig;
use crate::deploy::bundle::{BundleContents, BundleLimits, SessionDefaults, write_bundle};
use crate::lifecycle::chain;

fn spec(version: i64, backend: &str, sql: &str) -> MigrationSpec {
    MigrationSpec {
        version,
        description: format!("v{version}"),
        backend: backend.into(),
        sql: sql.into(),
    }
}

#[test]
fn migrations_are_grouped_by_version_with_their_variants() {
    let specs = [
        spec(1, "", "CREATE TABLE a (id INTEGER)"),
        spec(1, "postgres", "CREATE TABLE a (id BIGINT)"),
        spec(2, "", "ALTER TABLE a ADD b TEXT"),
    ];
    let grouped = group_migrations(&specs).unwrap();
    assert_eq!(grouped.len(), 2);
    assert_eq!(grouped[0].sql, "CREATE TABLE a (id INTEGER)");
    assert_eq!(
        grouped[0].variants,
        vec![("postgres".to_owned(), "CREATE TABLE a (id BIGINT)".to_owned())]
    );
    assert!(grouped[1].variants.is_empty());
}

#[test]
fn a_version_declared_twice_is_refused() {
    for second in [spec(3, "", "SELECT 2"), spec(3, "sqlite", "SELECT 2")] {
        let first = spec(3, &second.backend, "SELECT 1");
        let error = group_migrations(&[first, second]).unwrap_err();
        assert!(matches!(error, PipelineError::DuplicateMigration(3)), "{error:?}");
    }
}

#[test]
fn errors_keep_their_cause_as_source() {
    let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
    let error = PipelineError::Stage(DeployError::Io {
        path: "deploy/a.so".into(),
        source: io,
    });
    assert!(std::error::Error::source(&error).is_some());
    assert_eq!(chain(&error), "cannot stage the library: deploy/a.so: gone");
}

// What the pipeline decides before a module is loaded: where the app is
// mounted, which datasources it gets, its settings, what `init` receives.

/// A pipeline over `config`, with lazy SQLite pools (nothing connects)
/// under `dir` for `default` and, if configured, `reports`; no sessions.
fn pipeline(mut config: Config, dir: &Path) -> Pipeline {
    let url = |file: &str| format!("sqlite://{}", dir.join(file).display());
    let default = DatasourceConfig {
        url: url("default.db"),
        ..Default::default()
    };
    config.datasources.insert("default".into(), default);
    if let Some(reports) = config.datasources.get_mut("reports") {
        reports.url = url("reports.db");
    }
    let datasources = Datasources::from_config(&config.datasources).unwrap();
    let limits = BundleLimits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };
    // Each pipeline stages into a directory of its own.
    static PIPELINES: AtomicUsize = AtomicUsize::new(0);
    let staging = dir.join(format!("staging-{}", PIPELINES.fetch_add(1, Ordering::Relaxed)));
    Pipeline {
        config: Arc::new(config),
        datasources: Arc::new(datasources),
        sessions: None,
        staging: Arc::new(Staging::create_in(staging, limits).unwrap()),
        runtime: tokio::runtime::Handle::current(),
    }
}

/// A config whose `[apps.NAME]` section is `app`.
fn config_with(name: &str, app: AppConfig) -> Config {
    let mut config = Config::default();
    config.apps.insert(name.to_owned(), app);
    config
}

/// A descriptor for app `name` as `crabcat-app.toml` would say it.
fn descriptor(name: &str, toml_rest: &str) -> Descriptor {
    Descriptor::parse(&format!("name = \"{name}\"\nversion = \"1.0.0\"\n{toml_rest}")).unwrap()
}

/// Writes a bundle of app `name` (its library is not a real one: staging
/// unpacks and checks the bundle, it does not open the library) and
/// stages it.
fn staged_bundle(pipeline: &Pipeline, dir: &Path, descriptor: Descriptor) -> StagedCopy {
    let name = descriptor.name.clone();
    let library = dir.join(format!("lib{name}.so"));
    std::fs::write(&library, b"not really a library").unwrap();
    let out = dir.join(format!("{name}.crabcat"));
    let contents = BundleContents {
        descriptor,
        library,
        static_dir: None,
    };
    write_bundle(&contents, &out).unwrap();
    pipeline.staging.stage(&name, &out).unwrap()
}

#[tokio::test]
async fn the_context_path_is_configured_then_bundled_then_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let configured = AppConfig {
        context_path: Some("/configured".into()),
        ..Default::default()
    };
    let with_section = pipeline(config_with("shop", configured), dir.path());
    let bundled = staged_bundle(
        &with_section,
        dir.path(),
        descriptor("shop", "context_path = \"/store\""),
    );
    assert_eq!(with_section.context_path("shop", Some(&bundled)), "/configured");
    assert_eq!(with_section.context_path("shop", None), "/configured");

    let without = pipeline(Config::default(), dir.path());
    assert_eq!(without.context_path("shop", Some(&bundled)), "/store");
    assert_eq!(without.context_path("shop", None), "/shop");
    let plain = staged_bundle(&without, dir.path(), descriptor("shop", ""));
    assert_eq!(
        without.context_path("shop", Some(&plain)),
        "/shop",
        "a bundle that names no context path"
    );
    // A section that sets no context path does not hide the bundle's.
    let silent = pipeline(config_with("shop", AppConfig::default()), dir.path());
    assert_eq!(silent.context_path("shop", Some(&bundled)), "/store");
}

#[tokio::test]
async fn root_is_mounted_at_the_root_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(Config::default(), dir.path());
    assert_eq!(pipeline.context_path("ROOT", None), "/");
    assert_eq!(
        pipeline.context_path("root", None),
        "/root",
        "the name is case-sensitive"
    );
    let bundled = staged_bundle(&pipeline, dir.path(), descriptor("ROOT", "context_path = \"/home\""));
    assert_eq!(pipeline.context_path("ROOT", Some(&bundled)), "/home");
}

#[tokio::test]
async fn a_bundle_may_not_move_a_mounted_app() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(Config::default(), dir.path());
    let staged = staged_bundle(&pipeline, dir.path(), descriptor("shop", "context_path = \"/store\""));
    pipeline.check_context_path("shop", &staged, "/store").unwrap();
    let error = pipeline.check_context_path("shop", &staged, "/shop").unwrap_err();
    assert!(
        matches!(&error, PipelineError::ContextPathChanged { wanted, mounted } if wanted == "/store" && mounted == "/shop"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the bundle asks for context path /store, but the app is mounted at /shop; undeploy and deploy it to move it"
    );
}

#[tokio::test]
async fn an_app_granted_an_unconfigured_datasource_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppConfig {
        datasources: vec!["default".into(), "reports".into()],
        ..Default::default()
    };
    let pipeline = pipeline(config_with("shop", app), dir.path());
    let error = pipeline
        .app_data("shop", None)
        .err()
        .expect("reports is not configured");
    assert!(
        matches!(&error, PipelineError::UnknownDatasource(d) if d == "reports"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "datasource reports is not configured");
}

#[tokio::test]
async fn the_datasources_come_from_the_section_else_the_bundle_else_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(
        "shop",
        AppConfig {
            datasources: vec!["reports".into()],
            ..Default::default()
        },
    );
    config.datasources.insert("reports".into(), DatasourceConfig::default());
    let pipeline = pipeline(config, dir.path());
    let default_of = |data: &AppData| data.default_datasource().map(|d| d.name.clone());

    // The section wins over the bundle, even over a bundle naming an unknown one.
    let bundle = descriptor("shop", "datasources = [\"missing\"]");
    let data = pipeline.app_data("shop", Some(&bundle)).unwrap();
    assert_eq!(default_of(&data).as_deref(), Some("reports"));
    assert_eq!(&*data.name, "shop");

    // No section: the bundle's list, checked as strictly.
    let bundle = descriptor("blog", "datasources = [\"reports\", \"default\"]");
    let data = pipeline.app_data("blog", Some(&bundle)).unwrap();
    assert_eq!(default_of(&data).as_deref(), Some("reports"));
    let bundle = descriptor("blog", "datasources = [\"missing\"]");
    let error = pipeline
        .app_data("blog", Some(&bundle))
        .err()
        .expect("missing is unknown");
    assert!(
        matches!(&error, PipelineError::UnknownDatasource(d) if d == "missing"),
        "{error:?}"
    );

    // Neither: `default`.
    let data = pipeline.app_data("blog", None).unwrap();
    assert_eq!(default_of(&data).as_deref(), Some("default"));
}

#[tokio::test]
async fn a_bundles_session_settings_are_defaults_under_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = Descriptor {
        session: SessionDefaults {
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(7200)),
        },
        ..descriptor("shop", "")
    };
    let app = AppConfig {
        session_idle_timeout: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    let pipeline = pipeline(config_with("shop", app), dir.path());
    let settings = pipeline.app_settings("shop", Some(&bundle));
    assert_eq!(
        settings.session_idle_timeout,
        Some(Duration::from_secs(300)),
        "the section wins"
    );
    assert_eq!(
        settings.session_max_lifetime,
        Some(Duration::from_secs(7200)),
        "the bundle fills in what the section leaves unset"
    );
    let settings = pipeline.app_settings("shop", None);
    assert_eq!(
        settings.session_max_lifetime, None,
        "no bundle: the [sessions] value applies later"
    );
    let settings = pipeline.app_settings("blog", Some(&bundle));
    assert_eq!(settings.session_idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(settings.max_requests, AppConfig::default().max_requests);
}

#[tokio::test]
async fn init_receives_its_name_prefix_and_config_section() {
    let dir = tempfile::tempdir().unwrap();
    let mut section = serde_json::Map::new();
    section.insert("greeting".into(), serde_json::json!("Hi"));
    let app = AppConfig {
        config: section,
        ..Default::default()
    };
    let pipeline = pipeline(config_with("shop", app), dir.path());
    let document: serde_json::Value = serde_json::from_slice(&pipeline.init_document("shop", "/shop")).unwrap();
    assert_eq!(document["name"], "shop");
    assert_eq!(document["context_path"], "/shop");
    assert_eq!(document["config"], serde_json::json!({ "greeting": "Hi" }));
    assert!(document["max_log_level"].is_string(), "{document}");
    let root: serde_json::Value = serde_json::from_slice(&pipeline.init_document("ROOT", "/")).unwrap();
    assert_eq!(root["context_path"], "", "the root app's prefix is empty");
    assert_eq!(root["config"], serde_json::json!({}));
}

#[tokio::test]
async fn migrations_without_a_datasource_are_refused_by_name() {
    let data = AppData::new("shop".into(), Vec::new());
    migrate(&data, &[]).await.expect("no migrations need no datasource");
    let error = migrate(&data, &[spec(1, "", "CREATE TABLE a (id INTEGER)")])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PipelineError::NoDatasource(app) if app == "shop"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "app shop has migrations but no datasource");
}

#[test]
fn error_messages_name_the_step_and_what_failed() {
    let cases = [
        (
            PipelineError::DuplicateMigration(7),
            "the module declares migration 7 twice",
        ),
        (
            PipelineError::Init("no greeting configured".into()),
            "init failed: no greeting configured",
        ),
        (
            PipelineError::Runtime(std::io::Error::other("no threads")),
            "cannot start the app's worker threads",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
    let runtime = PipelineError::Runtime(std::io::Error::other("no threads"));
    assert_eq!(chain(&runtime), "cannot start the app's worker threads: no threads");
}
