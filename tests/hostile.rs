//! A module that misuses the host gets an error for that call or request;
//! the container keeps serving it and every other app.

use std::time::Duration;

use crabcat_tests::{Container, module};

fn hostile_and_hello() -> Container {
    Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .deploy(&module("hello"), "hello.so")
        .start()
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_response_headers_get_500_and_the_container_keeps_serving() {
    let c = hostile_and_hello();
    let response = c.client().get(c.url("/hostile/headers?n=10")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get_all("x-many").iter().count(), 10);

    // Past the cap (and far past what a HeaderMap holds: this used to abort
    // the whole process).
    assert_eq!(c.get("/hostile/headers?n=40000").await.0, 500, "{}", c.logs());
    let line = c
        .wait_for_log("more than 1000 response headers", Duration::from_secs(5))
        .expect("a log line");
    assert!(line.contains("app=\"hostile\""), "{line}");
    assert_eq!(c.get("/hello/").await.0, 200);
    assert_eq!(c.get("/hostile/headers?n=3").await.0, 200, "the app itself goes on");
}

#[tokio::test(flavor = "multi_thread")]
async fn null_pointers_from_a_module_get_errors_not_a_crash() {
    let c = hostile_and_hello();
    let (status, body) = c.get("/hostile/null").await;
    assert_eq!(status, 200, "{}", c.logs());
    assert_eq!(
        body,
        "part null true, header null true, header_at false, param_at false, appended false, db error true\n"
    );
    assert!(
        c.wait_for_log("null pointer argument", Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(c.get("/hello/").await.0, 200);
}

const LIMITS: &str = "[apps.hostile]\nmax_blocking = 2\nmax_tasks = 100\nmax_response_bytes = 1048576\n";

#[tokio::test(flavor = "multi_thread")]
async fn blocking_calls_past_the_app_quota_get_503_and_other_apps_are_served() {
    let c = Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .deploy(&module("tour"), "tour.so")
        .config(LIMITS)
        .start();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (c.client().clone(), c.url("/hostile/block?ms=3000"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    // Wait until both hold their threads.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/hostile")).await;
        if app["requests_in_flight"].as_u64() == Some(2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{app}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let response = c.client().get(c.url("/hostile/block?ms=10")).send().await.unwrap();
    assert_eq!(response.status(), 503, "the third blocking call is refused at once");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        c.get("/tour/blocking?n=10").await.0,
        200,
        "another app's blocking route"
    );
    assert_eq!(c.get("/hostile/headers?n=1").await.0, 200, "the app's async routes");
    for handle in held {
        assert_eq!(handle.await.unwrap(), 200);
    }
    assert_eq!(c.get("/hostile/block?ms=10").await.0, 200, "permits come back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_blocking_call_counts_as_in_flight_until_its_thread_returns() {
    let c = Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .config("[server]\nrequest_timeout = \"300ms\"\n")
        .config(LIMITS)
        .start();
    assert_eq!(c.get("/hostile/block?ms=2000").await.0, 504);
    let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/hostile")).await;
    assert_eq!(app["requests_in_flight"], 1, "the thread still runs: {app}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/hostile")).await;
        if app["requests_in_flight"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{app}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spawned_tasks_and_response_bodies_are_capped_per_app() {
    let c = Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .config(LIMITS)
        .start();
    assert_eq!(c.get("/hostile/spawn?n=5000").await.0, 200);
    let line = c
        .wait_for_log("further spawns are dropped", Duration::from_secs(5))
        .expect("the refusal is logged");
    assert!(line.contains("app=\"hostile\""), "{line}");
    assert_eq!(
        c.log_lines_with(&["further spawns are dropped"]).len(),
        1,
        "logged once, not per refused spawn"
    );

    assert_eq!(c.get("/hostile/big?bytes=1000000").await.0, 200);
    assert_eq!(c.get("/hostile/big?bytes=2000000").await.0, 500);
    assert!(
        c.wait_for_log("max_response_bytes", Duration::from_secs(5)).is_some(),
        "{}",
        c.logs()
    );
}

/// Waits until `/apps/hostile` says `stalled_threads` is `n`.
async fn wait_for_stalled(c: &Container, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/hostile")).await;
        if app["stalled_threads"].as_u64() == Some(n) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{app}\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_never_yields_is_reported_and_its_app_refused_until_it_returns() {
    let c = Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .deploy(&module("hello"), "hello.so")
        .config("[server]\nstall_timeout = \"300ms\"\n")
        .start();
    assert_eq!(c.get("/hostile/spin?ms=1").await.0, 200, "short polls are fine");
    let spinning = {
        let (client, url) = (c.client().clone(), c.url("/hostile/spin?ms=4000"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
    };
    let line = c
        .wait_for_log("has run without yielding", Duration::from_secs(10))
        .expect("the stall is reported");
    assert!(line.contains("app=\"hostile\""), "{line}");
    wait_for_stalled(&c, 1).await;

    // While it spins: its app refuses at once, every other app answers.
    let refused = c.client().get(c.url("/hostile/spin?ms=1")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(c.get("/hello/").await.0, 200);
    assert_eq!(
        c.metric("crabcat_app_stalled_threads{app=\"hostile\"}").await,
        Some(1.0)
    );
    assert_eq!(c.metric("crabcat_app_stalled_threads{app=\"hello\"}").await, Some(0.0));

    assert_eq!(spinning.await.unwrap(), 200, "it finishes: nothing can pre-empt it");
    wait_for_stalled(&c, 0).await;
    assert!(
        c.wait_for_log("the stalled handler returned", Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(c.get("/hostile/spin?ms=1").await.0, 200, "served again");
    assert_eq!(c.metric("crabcat_app_stalls{app=\"hostile\"}").await, Some(1.0));
    assert_eq!(c.metric("crabcat_app_stalls{app=\"hello\"}").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spawned_task_that_never_yields_is_reported_as_its_app() {
    let c = Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .deploy(&module("hello"), "hello.so")
        .config("[server]\nstall_timeout = \"300ms\"\n")
        .start();
    assert_eq!(c.get("/hostile/spin-task?ms=3000").await.0, 200);
    let line = c
        .wait_for_log("has run without yielding", Duration::from_secs(10))
        .expect("the stall is reported");
    assert!(line.contains("app=\"hostile\""), "{line}");
    assert_eq!(c.get("/hello/").await.0, 200);
    wait_for_stalled(&c, 0).await;
    assert_eq!(c.get("/hostile/spin?ms=1").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_on_threads_of_its_own_stalls_only_itself_and_its_requests_still_time_out() {
    let c = Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .deploy(&module("tour"), "tour.so")
        .config(
            "[server]\nrequest_timeout = \"1s\"\nstall_timeout = \"300ms\"\n\
             [apps.hostile]\nworker_threads = 1\n[apps.tour]\nworker_threads = 1\n",
        )
        .start();
    assert_eq!(c.get("/hostile/spin?ms=1").await.0, 200);
    // Two of them would hold both of the container's shared workers (on a
    // 2-core machine): here they queue for the app's one thread.
    let spinning: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (c.client().clone(), c.url("/hostile/spin?ms=3000"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let line = c
        .wait_for_log("has run without yielding", Duration::from_secs(10))
        .expect("the stall is reported");
    assert!(line.contains("app=\"hostile\""), "{line}");
    assert!(line.contains("app-hostile"), "on the app's own thread: {line}");
    assert_eq!(c.get("/tour/").await.0, 200, "another app is served meanwhile");
    for spin in spinning {
        assert_eq!(spin.await.unwrap(), 504, "the request timeout still answers");
    }

    // The own runtime carries streamed bodies too.
    let mut clock = c.client().get(c.url("/tour/sse/clock")).send().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), clock.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"id: "), "{first:?}");
    drop(clock);

    wait_for_stalled(&c, 0).await;
    assert_eq!(c.get("/hostile/spin?ms=1").await.0, 200, "served again");
}
