//! Graceful shutdown: in-flight requests finish, `destroy` runs exactly
//! once per initialised app, the process exits 0.

use std::path::Path;
use std::time::{Duration, Instant};

use crabcat_tests::{Container, module};

fn marker_config(apps: &[&str], dir: &Path, extra: &str) -> String {
    let mut toml = String::from(extra);
    for app in apps {
        let marker = dir.join(format!("{app}.destroyed"));
        toml.push_str(&format!(
            "\n[apps.{app}.config]\ndestroy_marker = {:?}\n",
            marker.display().to_string()
        ));
    }
    toml
}

fn destroy_count(dir: &Path, app: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{app}.destroyed")))
        .map(|text| text.lines().filter(|l| *l == format!("destroyed {app}")).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_requests_finish_and_destroys_each_app_once() {
    let builder = Container::builder();
    let scratch = builder.scratch();
    let mut c = builder
        .deploy(&module("probe"), "one.so")
        .deploy(&module("probe"), "two.so")
        .deploy(&module("tour"), "tour.so")
        .config(&marker_config(&["one", "two"], &scratch, ""))
        .start();
    let in_flight = {
        let (client, url) = (c.client().clone(), c.url("/one/sleep?ms=1500"));
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };
    c.wait_for_log("sleeping 1500 ms", Duration::from_secs(10))
        .expect("the request reached the module");
    let status = c.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", c.logs());
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept 1500\n");
    assert_eq!(destroy_count(&scratch, "one"), 1);
    assert_eq!(destroy_count(&scratch, "two"), 1);
    assert_eq!(c.log_lines_with(&["tour destroyed", "app=\"tour\""]).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_past_the_shutdown_timeout_are_cancelled() {
    let builder = Container::builder();
    let scratch = builder.scratch();
    let mut c = builder
        .deploy(&module("probe"), "slow.so")
        .config(&marker_config(
            &["slow"],
            &scratch,
            "[server]\nshutdown_timeout = \"300ms\"\n",
        ))
        .start();
    let in_flight = {
        let (client, url) = (c.client().clone(), c.url("/slow/sleep?ms=20000"));
        tokio::spawn(async move { client.get(url).send().await })
    };
    c.wait_for_log("sleeping 20000 ms", Duration::from_secs(10))
        .expect("the request reached the module");
    let started = Instant::now();
    let status = c.terminate();
    assert_eq!(status.code(), Some(1), "cancelled requests make the exit code non-zero");
    assert!(
        c.wait_for_log("were cancelled", Duration::from_secs(5)).is_some(),
        "{}",
        c.logs()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    // The request was cut short: an error status or a closed connection, not the 20 s answer.
    if let Ok(response) = in_flight.await.unwrap() {
        assert_ne!(response.status(), 200);
    }
    assert_eq!(destroy_count(&scratch, "slow"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_stops_the_start_before_any_app_runs() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let builder = Container::builder();
    let scratch = builder.scratch();
    let (status, logs) = builder
        .deploy(&module("probe"), "probe.so")
        .deploy(&module("tour"), "tour.so")
        .config(&marker_config(&["probe"], &scratch, ""))
        .listen(taken.local_addr().unwrap())
        .run_to_exit(Duration::from_secs(30));
    assert!(!status.success(), "{logs}");
    assert!(logs.contains("cannot listen on"), "{logs}");
    assert!(!logs.contains("tour initialised"), "no app was started:\n{logs}");
    assert_eq!(destroy_count(&scratch, "probe"), 0);
    assert!(!scratch.join("crabcat.db").exists(), "no datasource was opened");
}
