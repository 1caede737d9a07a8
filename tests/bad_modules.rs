//! Bad input in the deploy directory: each failure is logged with the file
//! name and the reason, and the container keeps serving every other app.

use std::time::Duration;

use crabcat_tests::{Container, abort_module, module};

fn deploy_everything_bad() -> Container {
    Container::builder()
        .deploy(&module("hello"), "hello.so")
        .deploy_bytes("garbage.so", b"this is a text file, not a shared library\n")
        .deploy(&module("no-symbol"), "nosymbol.so")
        .deploy(&module("bad-abi"), "badabi.so")
        .deploy(&abort_module(), "aborting.so")
        .deploy(&module("probe"), "initerror.so")
        .deploy(&module("probe"), "initpanic.so")
        .deploy(&module("probe"), "healthy.so")
        .deploy_bytes("bad name.so", b"ignored")
        .deploy_bytes(".uploading.so", b"hidden files are not deployed")
        .config(
            r#"
            [apps.initerror.config]
            init = "error"
            [apps.initpanic.config]
            init = "panic"
            "#,
        )
        .start()
}

fn failure_line(c: &Container, file: &str) -> String {
    let lines = c.log_lines_with(&["deployment failed", file]);
    assert_eq!(lines.len(), 1, "expected one failure line for {file}:\n{}", c.logs());
    lines[0].clone()
}

#[tokio::test]
async fn bad_modules_fail_alone_with_a_clear_reason() {
    let c = deploy_everything_bad();
    let expected = [
        ("garbage.so", "not a loadable library"),
        ("nosymbol.so", "no `crabcat_module_v1` symbol"),
        ("badabi.so", "uses ABI major version 999, this container speaks 1"),
        ("aborting.so", "was built with panic = \"abort\""),
        ("initerror.so", "init failed: probe was told to fail its init"),
        (
            "initpanic.so",
            "init failed: init panicked: probe was told to panic in init",
        ),
    ];
    for (file, reason) in expected {
        let line = failure_line(&c, file);
        assert!(line.contains(reason), "{file}: {reason:?} not in {line}");
        // The failed app keeps its slot: 503, not somebody else's 404.
        let name = file.trim_end_matches(".so");
        assert_eq!(c.get(&format!("/{name}/")).await.0, 503, "{name}");
    }
    assert!(!c.logs().contains("this module must never be loaded"));
    let skipped = c.log_lines_with(&["skipped a file in the deploy directory", "bad name.so"]);
    assert_eq!(skipped.len(), 1, "{}", c.logs());
    assert!(c.log_lines_with(&["uploading"]).is_empty(), "hidden files are ignored");

    // Every good app serves.
    assert_eq!(c.get("/hello/").await, (200, "Hello from Crabcat!\n".into()));
    assert_eq!(
        c.get("/healthy/").await,
        (200, "probe healthy at \"/healthy\"\n".into())
    );
}

#[tokio::test]
async fn failed_init_never_calls_destroy() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("destroyed.txt");
    let mut c = Container::builder()
        .deploy(&module("probe"), "broken.so")
        .config(&format!(
            "[apps.broken.config]\ninit = \"error\"\ndestroy_marker = {:?}\n",
            marker.display().to_string()
        ))
        .start();
    let response = c.client().get(c.url("/broken/")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1", "a 503 says when to retry");
    assert!(c.terminate().success());
    assert!(!marker.exists(), "destroy ran for an app whose init failed");
    assert!(c.wait_for_log("stopped", Duration::from_secs(1)).is_some());
}
