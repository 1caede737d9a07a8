//! The admin subcommands of the `crabcat` binary, against a running container.

use std::process::Command;

use crabcat_tests::{ADMIN_TOKEN, Container, crabcat_bin, module};

/// Runs `crabcat ARGS --admin URL` with the token in the environment.
fn crabcat(c: &Container, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(crabcat_bin())
        .args(args)
        .arg("--admin")
        .arg(c.admin_url(""))
        .env("CRABCAT_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run crabcat");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_commands_deploy_list_reload_stop_start_undeploy() {
    let c = Container::builder().deploy(&module("hello"), "hello.so").start();
    let library = module("versioned-a");

    let (code, out, err) = crabcat(&c, &["deploy", library.to_str().unwrap(), "--name", "demo"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("demo: deployed (version 0.1.0, sha256 "), "{out}");
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));

    let (code, out, _) = crabcat(&c, &["apps"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("demo ") && l.contains("running") && l.contains("/demo")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("hello ") && l.contains("running")),
        "{out}"
    );

    for (command, outcome) in [("reload", "reloaded"), ("stop", "stopped"), ("start", "started")] {
        let (code, out, err) = crabcat(&c, &[command, "demo"]);
        assert_eq!(code, 0, "{command}: {err}");
        assert!(out.starts_with(&format!("demo: {outcome}")), "{command}: {out}");
    }
    let (code, out, _) = crabcat(&c, &["undeploy", "demo"]);
    assert_eq!((code, out.trim()), (0, "demo: undeployed"));
    assert_eq!(c.get("/demo/").await.0, 404);

    let (code, _, err) = crabcat(&c, &["reload", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no app named nope"), "{err}");

    let output = Command::new(crabcat_bin())
        .args([
            "apps",
            "--admin",
            &c.admin_url(""),
            "--token",
            "wrong-token-wrong-token",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing or wrong bearer token"));

    let output = Command::new(crabcat_bin())
        .args(["apps", "--admin", "http://127.0.0.1:1", "--token", ADMIN_TOKEN])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the admin API"));
}

#[test]
fn a_public_admin_address_without_a_token_is_refused_before_binding() {
    let output = Command::new(crabcat_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
            "--deploy-dir",
            "/nonexistent",
        ])
        .env_remove("CRABCAT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("admin.listen") && err.contains("needs a configured token"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_says_where_it_was_looked_for_and_how_to_pass_one() {
    let c = Container::builder().start();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = Command::new(crabcat_bin())
        .args(["apps", "--admin"])
        .arg(c.admin_url(""))
        .current_dir(elsewhere.path())
        .env_remove("CRABCAT_ADMIN_TOKEN")
        .env_remove("CRABCAT_CONFIG")
        .output()
        .expect("run crabcat");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    let looked_at = elsewhere.path().join("data/admin.token");
    assert!(err.contains(&looked_at.display().to_string()), "{err}");
    assert!(err.contains("--token or CRABCAT_ADMIN_TOKEN"), "{err}");

    let output = Command::new(crabcat_bin())
        .args(["apps", "--admin"])
        .arg(c.admin_url(""))
        .env("CRABCAT_ADMIN_TOKEN", "a-wrong-token-0123456789")
        .output()
        .expect("run crabcat");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("refused the token"), "{err}");
}
