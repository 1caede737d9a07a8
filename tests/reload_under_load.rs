//! Zero-downtime reload: eight clients send requests without pause while
//! the app is reloaded 20 times through the API and 20 times by replacing
//! its file. Not one request may fail.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crabcat_tests::{Container, module};
use reqwest::Method;

const CLIENTS: usize = 8;
const RELOADS: usize = 20;
const WAIT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

async fn client_loop(c: Arc<Container>, stop: Arc<AtomicBool>, tally: Arc<Tally>, n: usize) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Every fourth request stays in flight for a while, across swaps.
        let path = if (i + n as u64).is_multiple_of(4) {
            "/app/slow?ms=30"
        } else {
            "/app/"
        };
        i += 1;
        match c.client().get(c.url(path)).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                if status == 200 && body.starts_with("version ") {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("{path}: {status} {body:?}"));
                }
            }
            Err(error) => tally.failures.lock().unwrap().push(format!("{path}: {error}")),
        }
    }
}

fn drop_in(dir: &Path, from: &Path) {
    let tmp = dir.join(".app.so.tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("app.so")).unwrap();
}

fn destroys(marker: &Path) -> usize {
    std::fs::read_to_string(marker).unwrap_or_default().lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_reloads_under_load_drop_no_request() {
    let builder = Container::builder();
    let marker = builder.scratch().join("destroyed.txt");
    let config = format!(
        "[deploy]\nsettle_time = \"100ms\"\nscan_interval = \"200ms\"\n[server]\naccess_log = false\n\
         [apps.app.config]\ndestroy_marker = {:?}\n",
        marker.display().to_string()
    );
    let c = Arc::new(builder.deploy(&module("versioned-a"), "app.so").config(&config).start());
    let versions = [
        ("a", std::fs::read(module("versioned-a")).unwrap()),
        ("b", std::fs::read(module("versioned-b")).unwrap()),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client_loop(Arc::clone(&c), Arc::clone(&stop), Arc::clone(&tally), n)))
        .collect();

    for i in 0..RELOADS {
        let (version, bytes) = &versions[(i + 1) % 2];
        let (status, json) = c
            .admin_call(c.admin(Method::PUT, "/apps/app").body(bytes.clone()))
            .await;
        assert_eq!((status, json["outcome"].as_str()), (200, Some("reloaded")), "{json}");
        assert_eq!(
            c.get("/app/").await,
            (200, format!("version {version}\n")),
            "right after reload {i}"
        );
    }
    for i in 0..RELOADS {
        let (version, _) = versions[(i + 1) % 2];
        drop_in(&c.deploy_dir(), &module(&format!("versioned-{version}")));
        let expected = format!("version {version}\n");
        c.wait_for_answer("/app/", WAIT, |s, b| s == 200 && b == expected).await;
    }

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    let ok = tally.ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 100, "only {ok} requests were made");
    eprintln!("{ok} requests during {} reloads, none failed", 2 * RELOADS);

    // Each of the 40 old instances is destroyed exactly once, after draining.
    let deadline = Instant::now() + WAIT;
    while destroys(&marker) < 2 * RELOADS {
        assert!(Instant::now() < deadline, "{} destroys", destroys(&marker));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, app) = c.admin_call(c.admin(Method::GET, "/apps/app")).await;
    assert_eq!(app["reloads"], 2 * RELOADS);
    assert_eq!(
        destroys(&marker),
        2 * RELOADS,
        "no instance destroyed twice, the running one not at all"
    );
}
