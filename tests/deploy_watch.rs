//! The deploy-directory watcher is quiet when nothing changes: an idle
//! container scans only on its period, two containers sharing a deploy
//! directory do not wake each other, and a real change still wakes it.

use std::time::Duration;

use crabcat_tests::{Container, module};

const CONFIG: &str = "[deploy]\nscan_interval = \"500ms\"\nsettle_time = \"100ms\"\n";
/// How long each test watches the counters.
const WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
struct Scans {
    event: f64,
    interval: f64,
    settle: f64,
}

async fn scans(c: &Container) -> Scans {
    let count = |trigger: &'static str| async move {
        c.metric(&format!("crabcat_deploy_scans_total{{trigger=\"{trigger}\"}}"))
            .await
            .unwrap_or(0.0)
    };
    Scans {
        event: count("event").await,
        interval: count("interval").await,
        settle: count("settle").await,
    }
}

/// Asserts that between `before` and `after` (one WINDOW apart) only the
/// periodic rescans ran: 6 at 500 ms over 3 s, give or take scheduling.
fn assert_only_periodic(before: Scans, after: Scans, c: &Container) {
    assert_eq!(after.event - before.event, 0.0, "{before:?} -> {after:?}\n{}", c.logs());
    assert_eq!(after.settle - before.settle, 0.0, "{before:?} -> {after:?}");
    let periodic = after.interval - before.interval;
    assert!(
        (2.0..=8.0).contains(&periodic),
        "{periodic} periodic scans in {WINDOW:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_container_scans_only_on_its_period() {
    let c = Container::builder()
        .deploy(&module("hello"), "hello.so")
        .config(CONFIG)
        .start();
    assert_eq!(c.get("/hello/").await.0, 200);
    let before = scans(&c).await;
    tokio::time::sleep(WINDOW).await;
    let after = scans(&c).await;
    assert_only_periodic(before, after, &c);

    // A library dropped in still wakes the watcher at once.
    std::fs::copy(module("hello"), c.deploy_dir().join("hello2.so")).unwrap();
    c.wait_for_answer("/hello2/", Duration::from_secs(10), |status, _| status == 200)
        .await;
    assert!(
        scans(&c).await.event > after.event,
        "the copy was seen through an event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_containers_on_one_deploy_directory_stay_quiet() {
    let first = Container::builder()
        .deploy(&module("hello"), "hello.so")
        .config(CONFIG)
        .start();
    let second = Container::builder()
        .shared_deploy_dir(&first.deploy_dir())
        .config(CONFIG)
        .start();
    for c in [&first, &second] {
        assert_eq!(c.get("/hello/").await.0, 200);
    }
    let before = [scans(&first).await, scans(&second).await];
    tokio::time::sleep(WINDOW).await;
    let after = [scans(&first).await, scans(&second).await];
    assert_only_periodic(before[0], after[0], &first);
    assert_only_periodic(before[1], after[1], &second);
}
