//! The app author's path, end to end, as the README tells it: `crabcat
//! new` → `cargo test` (the new crate's own test, which runs its module
//! in the real container) → `crabcat package` → `crabcat deploy` → the
//! hello route, the database route and the static page answer → edit →
//! package and deploy again → the new code answers.
//!
//! It builds the new crate with cargo (dev for its test, release for the
//! package) in the workspace's target directory, so the SDK's
//! dependencies are not built again for every run.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crabcat_tests::{ADMIN_TOKEN, Container, crabcat_bin, target_dir};

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn crabcat() -> Command {
    let mut command = Command::new(crabcat_bin());
    command.env("CARGO_TARGET_DIR", target_dir());
    command
}

fn package(app: &Path, out: &Path) {
    run(crabcat()
        .arg("package")
        .arg("--manifest-path")
        .arg(app.join("Cargo.toml"))
        .arg("--out")
        .arg(out));
}

fn deploy(c: &Container, bundle: &Path) -> String {
    let output = run(crabcat()
        .arg("deploy")
        .arg(bundle)
        .args(["--admin", &c.admin_url(""), "--token", ADMIN_TOKEN]));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn new_test_package_deploy_edit_redeploy() {
    let scratch = tempfile::tempdir().unwrap();
    let app = scratch.path().join("demo-app");
    run(crabcat().args(["new", "demo-app", "--path"]).arg(&app));
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "static/index.html",
        "crabcat-app.toml",
        "tests/app.rs",
    ] {
        assert!(app.join(file).is_file(), "crabcat new wrote {file}");
    }

    // The crate's own test: its module in the real container.
    run(Command::new(env!("CARGO"))
        .args(["test", "--manifest-path"])
        .arg(app.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CRABCAT_BIN", crabcat_bin()));

    let bundle = scratch.path().join("demo-app-0.1.0.crabcat");
    package(&app, &bundle);
    let c = Container::builder().start();
    let said = deploy(&c, &bundle);
    assert!(said.starts_with("demo-app: deployed (version 0.1.0"), "{said}");
    assert_eq!(c.get("/demo-app/").await, (200, "Hello from demo-app!\n".into()));
    let (status, page) = c.get("/demo-app/static/index.html").await;
    assert!(status == 200 && page.contains("<h1>demo-app</h1>"), "{status} {page}");
    let (status, css) = c.get("/demo-app/static/style.css").await;
    assert!(status == 200 && css.contains("font-family"), "{status} {css}");
    assert_eq!(c.get("/demo-app/visits").await, (200, "{\"visits\":1}".into()));

    // Edit, package, deploy again: a reload, without downtime.
    let lib = app.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("Hello from", "Howdy from")).unwrap();
    package(&app, &bundle);
    let said = deploy(&c, &bundle);
    assert!(said.starts_with("demo-app: reloaded"), "{said}");
    c.wait_for_answer("/demo-app/", Duration::from_secs(5), |s, b| {
        s == 200 && b == "Howdy from demo-app!\n"
    })
    .await;
    assert_eq!(
        c.get("/demo-app/visits").await,
        (200, "{\"visits\":2}".into()),
        "the data stays"
    );
}
