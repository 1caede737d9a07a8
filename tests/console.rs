//! The operations console, without a browser (that is
//! `tests/browser/console_test.py`): the page and its assets are served
//! without a token under a strict Content-Security-Policy, its data call
//! needs the token, the history it draws is made of real requests, and
//! `crabcat status` shows the console's columns.

use std::process::Command;
use std::time::{Duration, Instant};

use crabcat_tests::{ADMIN_TOKEN, Container, crabcat_bin, module};
use reqwest::Method;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_assets_need_no_token_and_carry_a_strict_policy() {
    let c = Container::builder().start();
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let response = c.client().get(c.admin_url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("content-type").as_deref(), Some(content_type), "{path}");
        assert_eq!(header("content-security-policy").as_deref(), Some(CSP), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"), "{path}");
        let etag = header("etag").expect("an ETag");
        assert!(response.text().await.unwrap().len() > 100, "{path}");

        let again = c
            .client()
            .get(c.admin_url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates with its ETag");
        assert_eq!(
            again.headers()["content-security-policy"],
            CSP,
            "{path}: the policy on a 304 too"
        );
    }

    let html = admin_text(&c, "/console").await;
    assert!(html.contains(r#"<script src="/console/console.js" defer></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "no inline script");
    assert!(!html.contains("style="), "no inline style");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    let js = admin_text(&c, "/console/console.js").await;
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "the script never uses {sink}");
    }
    assert!(!js.contains("localStorage"), "the token stays in sessionStorage");
}

/// The body of `GET {path}` on the admin listener, without a token.
async fn admin_text(c: &Container, path: &str) -> String {
    let response = c.client().get(c.admin_url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_data_needs_the_token() {
    let c = Container::builder().start();
    let response = c.client().get(c.admin_url("/console/data")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = c
        .client()
        .get(c.admin_url("/console/data"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = response.text().await.unwrap();
    assert!(!body.contains("resident_bytes"), "no data with a wrong token: {body}");
    let (status, json) = c.admin_call(c.admin(Method::GET, "/console/data")).await;
    assert_eq!(status, 200, "{json}");
}

/// Polls `GET /console/data` (each call may take a reading) until `ready`
/// holds for it, for at most `timeout`.
async fn data_until(c: &Container, timeout: Duration, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, json) = c.admin_call(c.admin(Method::GET, "/console/data")).await;
        assert_eq!(status, 200, "{json}");
        if ready(&json) {
            return json;
        }
        assert!(Instant::now() < deadline, "timed out; last answer: {json}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_counts_requests_errors_and_latency_of_each_app() {
    let c = Container::builder()
        .deploy(&module("hello"), "hello.so")
        .deploy(&module("probe"), "probe.so")
        .start();
    // The first reading: the base of the first point.
    let first = data_until(&c, Duration::from_secs(5), |_| true).await;
    assert_eq!(first["container"]["sample_seconds"], 5);
    assert_eq!(first["container"]["window_seconds"], 600);
    assert!(first["container"]["resident_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(first["container"]["images"].as_u64().unwrap() >= 2);
    assert!(first["container"]["version"].is_string());
    assert_eq!(first["apps"]["hello"]["history"], serde_json::json!([]));

    for _ in 0..20 {
        assert_eq!(c.get("/hello/").await.0, 200);
    }
    assert_eq!(c.get("/probe/panic").await.0, 500);
    for _ in 0..3 {
        assert_eq!(c.get("/probe/sleep?ms=30").await.0, 200);
    }

    let data = data_until(&c, Duration::from_secs(20), |d| {
        d["apps"]["hello"]["history"].as_array().is_some_and(|h| !h.is_empty())
    })
    .await;
    let hello = &data["apps"]["hello"];
    assert_eq!(hello["requests"], 20, "{hello}");
    assert_eq!(hello["errors"], 0, "{hello}");
    let points = hello["history"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{hello}");
    let point = &points[0];
    assert_eq!(point["requests"], 20, "{point}");
    assert_eq!(point["errors"], 0, "{point}");
    let seconds = point["seconds"].as_f64().unwrap();
    assert!((5.0..20.0).contains(&seconds), "{point}");
    let rate = point["rate"].as_f64().unwrap();
    assert!((rate - 20.0 / seconds).abs() < 1e-6, "{point}");
    let (p50, p99) = (point["p50_ms"].as_f64().unwrap(), point["p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{point}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let t = point["t"].as_u64().unwrap();
    assert!(t <= now_ms && now_ms - t < 20_000, "{point}");

    // The probe panicked once (a 500 is an error), then slept 30 ms three
    // times on the host timer: its median says so.
    assert_eq!(
        data["apps"]["probe"]["errors"], 1,
        "the panic's 500 is an error: {data}"
    );
    let probe = &data["apps"]["probe"]["history"][0];
    assert_eq!(
        (&probe["requests"], &probe["errors"]),
        (&4.into(), &1.into()),
        "{probe}"
    );
    let p50 = probe["p50_ms"].as_f64().unwrap();
    assert!(
        (25.6..=60.0).contains(&p50),
        "30 ms lies in the 25.6-51.2 ms bucket: {probe}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crabcat_status_shows_the_consoles_columns() {
    let c = Container::builder()
        .deploy(&module("probe"), "probe.so")
        .config("[apps.broken.config]\ninit = \"error\"\nerror = \"bad\\nconfig\"\n")
        .deploy(&module("probe"), "broken.so")
        .start();
    assert_eq!(c.get("/probe/").await.0, 200);
    assert_eq!(c.get("/probe/panic").await.0, 500);
    let output = Command::new(crabcat_bin())
        .args(["status", "--admin"])
        .arg(c.admin_url(""))
        .env("CRABCAT_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run crabcat status");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("crabcat ") && lines[0].contains("memory (RSS, whole process) "),
        "{stdout}"
    );
    let cells = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        cells(lines[1]),
        [
            "NAME",
            "STATE",
            "VERSION",
            "CONTEXT",
            "REQUESTS",
            "IN-FLIGHT",
            "ERRORS",
            "SESSIONS",
            "IMAGES-KEPT",
            "LAST-ERROR"
        ],
        "{stdout}"
    );
    let broken = cells(lines[2]);
    assert_eq!(broken[..2], ["broken", "failed"], "{stdout}");
    assert!(lines[2].ends_with("bad config"), "the error on one line: {stdout}");
    let probe = cells(lines[3]);
    assert_eq!(probe[0], "probe", "{stdout}");
    assert_eq!(probe[1], "running", "{stdout}");
    assert_eq!(probe[3], "/probe", "{stdout}");
    assert_eq!(probe[4..], ["2", "0", "1", "0", "0"], "{stdout}");
}
