//! Hot deployment: the deploy-directory watcher, the admin API and its
//! authentication, stop/start, status markers, and bad uploads.

use std::path::Path;
use std::time::Duration;

use crabcat_tests::{ADMIN_TOKEN, Container, module};
use reqwest::Method;
use tokio::io::AsyncWriteExt;

const FAST_WATCH: &str = "[deploy]\nsettle_time = \"150ms\"\nscan_interval = \"300ms\"\n";
const WAIT: Duration = Duration::from_secs(15);

fn sha256_hex(path: &Path) -> String {
    crabcat::deploy::sha256_file(path).unwrap()
}

/// Copies `from` into the deploy directory as `name` the safe way.
fn drop_in(dir: &Path, from: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_replacing_and_deleting_files_deploys_reloads_and_undeploys() {
    let c = Container::builder().config(FAST_WATCH).start();
    let dir = c.deploy_dir();
    assert_eq!(c.get("/app/").await.0, 404);

    drop_in(&dir, &module("versioned-a"), "app.so");
    c.wait_for_answer("/app/", WAIT, |s, b| s == 200 && b == "version a\n")
        .await;
    let marker = std::fs::read_to_string(dir.join("app.so.deployed")).unwrap();
    assert!(marker.starts_with("versioned-a 0.1.0 sha256:"), "{marker}");

    drop_in(&dir, &module("versioned-b"), "app.so");
    c.wait_for_answer("/app/", WAIT, |s, b| s == 200 && b == "version b\n")
        .await;
    c.wait_for_log("reloaded", WAIT).expect("a reload log line");

    std::fs::write(dir.join("broken.so"), b"not a library").unwrap();
    let failed = dir.join("broken.so.failed");
    for _ in 0..500 {
        if failed.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reason = std::fs::read_to_string(&failed).expect("a .failed marker");
    assert!(reason.contains("not a loadable library"), "{reason}");

    std::fs::remove_file(dir.join("app.so")).unwrap();
    c.wait_for_answer("/app/", WAIT, |s, _| s == 404).await;
    assert!(!dir.join("app.so.deployed").exists(), "markers go with the app");
    let (status, _) = c.admin_call(c.admin(Method::GET, "/apps/app")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_still_being_written_is_not_loaded() {
    let c = Container::builder().config(FAST_WATCH).start();
    let bytes = std::fs::read(module("versioned-a")).unwrap();
    let path = c.deploy_dir().join("slow.so");
    let mut file = tokio::fs::File::create(&path).await.unwrap();
    // Written in pieces, each arriving sooner than the settle time.
    for chunk in bytes.chunks(bytes.len() / 10 + 1) {
        file.write_all(chunk).await.unwrap();
        file.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    drop(file);
    c.wait_for_answer("/slow/", WAIT, |s, b| s == 200 && b == "version a\n")
        .await;
    assert!(c.log_lines_with(&["deployment failed"]).is_empty(), "{}", c.logs());
    assert_eq!(c.log_lines_with(&["deployed", "app=\"slow\""]).len(), 1, "{}", c.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_reload_stop_start_undeploy_through_the_api() {
    let c = Container::builder().start();
    let a = std::fs::read(module("versioned-a")).unwrap();
    let b = std::fs::read(module("versioned-b")).unwrap();

    let (status, json) = c.admin_call(c.admin(Method::PUT, "/apps/demo").body(a.clone())).await;
    assert_eq!((status, json["outcome"].as_str()), (201, Some("deployed")), "{json}");
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));
    assert!(
        c.deploy_dir().join("demo.so").exists(),
        "the upload lands in the deploy directory"
    );

    let (status, json) = c.admin_call(c.admin(Method::PUT, "/apps/demo").body(a.clone())).await;
    assert_eq!((status, json["outcome"].as_str()), (200, Some("unchanged")), "{json}");

    let (status, json) = c.admin_call(c.admin(Method::PUT, "/apps/demo").body(b)).await;
    assert_eq!((status, json["outcome"].as_str()), (200, Some("reloaded")), "{json}");
    assert_eq!(c.get("/demo/").await, (200, "version b\n".into()));

    let (status, app) = c.admin_call(c.admin(Method::GET, "/apps/demo")).await;
    assert_eq!(status, 200);
    assert_eq!(app["name"], "demo");
    assert_eq!(app["state"], "running");
    assert_eq!(app["version"], "0.1.0");
    assert_eq!(app["context_path"], "/demo");
    assert_eq!(app["module"]["crate_name"], "versioned-b");
    assert_eq!(app["sha256"], sha256_hex(&module("versioned-b")));
    assert_eq!(app["reloads"], 1);
    assert_eq!(app["images"], 2);
    assert_eq!(app["images_kept_by_reloads"], 1);
    assert!(app["image_bytes"].as_u64().unwrap() > 0, "{app}");
    assert!(app["requests_served"].as_u64().unwrap() >= 2, "{app}");
    assert_eq!(app["requests_in_flight"], 0);
    assert!(app["loaded_at"].is_string(), "{app}");

    let (status, json) = c.admin_call(c.admin(Method::POST, "/apps/demo/reload")).await;
    assert_eq!(
        (status, json["outcome"].as_str()),
        (200, Some("reloaded")),
        "an explicit reload always reloads"
    );

    let (status, json) = c.admin_call(c.admin(Method::POST, "/apps/demo/stop")).await;
    assert_eq!((status, json["outcome"].as_str()), (200, Some("stopped")), "{json}");
    assert_eq!(json["app"]["state"], "stopped");
    assert_eq!(c.get("/demo/").await.0, 503);
    assert!(c.deploy_dir().join("demo.so.stopped").exists());
    let (status, _) = c.admin_call(c.admin(Method::POST, "/apps/demo/stop")).await;
    assert_eq!(status, 409, "stopping a stopped app");

    let (status, json) = c.admin_call(c.admin(Method::POST, "/apps/demo/start")).await;
    assert_eq!((status, json["outcome"].as_str()), (200, Some("started")), "{json}");
    assert_eq!(c.get("/demo/").await, (200, "version b\n".into()));

    let (status, list) = c.admin_call(c.admin(Method::GET, "/apps")).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, json) = c.admin_call(c.admin(Method::DELETE, "/apps/demo")).await;
    assert_eq!((status, json["outcome"].as_str()), (200, Some("undeployed")), "{json}");
    assert_eq!(c.get("/demo/").await.0, 404);
    assert!(!c.deploy_dir().join("demo.so").exists(), "undeploy removes the file");

    let metrics = c
        .admin(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("crabcat_requests_total{app=\"demo\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("crabcat_loaded_images "), "{metrics}");
    assert!(metrics.contains("crabcat_request_duration_seconds_bucket"), "{metrics}");
}

#[tokio::test]
async fn the_admin_api_needs_the_token_except_for_health() {
    let c = Container::builder().deploy(&module("hello"), "hello.so").start();
    let health = c.client().get(c.admin_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let missing = c.client().delete(c.admin_url("/apps/hello")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let wrong = c
        .client()
        .delete(c.admin_url("/apps/hello"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await;
    assert_eq!(wrong.unwrap().status(), 401);
    let prefix = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    let short = c
        .client()
        .get(c.admin_url("/apps"))
        .bearer_auth(prefix)
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 401);
    let metrics = c.client().get(c.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 401);
    assert_eq!(c.get("/hello/").await.0, 200, "a refused call changes nothing");
    assert!(c.deploy_dir().join("hello.so").exists());

    let (status, _) = c.admin_call(c.admin(Method::GET, "/apps")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_uploads_and_names_are_refused_and_change_nothing() {
    let c = Container::builder()
        .deploy(&module("versioned-a"), "app.so")
        .config("[apps.app.config]\nfail_version = \"b\"\n")
        .start();
    let upload = |bytes: Vec<u8>| c.admin(Method::PUT, "/apps/app").body(bytes);

    let (status, json) = c.admin_call(upload(b"garbage".to_vec())).await;
    assert_eq!(status, 400);
    assert!(
        json["error"].as_str().unwrap().contains("not a loadable library"),
        "{json}"
    );

    let (status, json) = c.admin_call(upload(std::fs::read(module("bad-abi")).unwrap())).await;
    assert_eq!(status, 400);
    assert!(
        json["error"].as_str().unwrap().contains("ABI major version 999"),
        "{json}"
    );

    let (status, json) = c
        .admin_call(upload(std::fs::read(module("versioned-b")).unwrap()))
        .await;
    assert_eq!(status, 400);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("version b was told to fail its init"),
        "{json}"
    );

    assert_eq!(
        c.get("/app/").await,
        (200, "version a\n".into()),
        "the running version is untouched"
    );
    let (_, app) = c.admin_call(c.admin(Method::GET, "/apps/app")).await;
    assert_eq!(app["state"], "running");
    assert_eq!(app["sha256"], sha256_hex(&module("versioned-a")));
    assert!(app["last_error"].as_str().unwrap().contains("version b"), "{app}");
    assert_eq!(
        sha256_hex(&c.deploy_dir().join("app.so")),
        sha256_hex(&module("versioned-a"))
    );
    let leftovers: Vec<_> = std::fs::read_dir(c.deploy_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("upload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let (status, _) = c
        .admin_call(c.admin(Method::PUT, "/apps/new").body(b"garbage".to_vec()))
        .await;
    assert_eq!(status, 400);
    let (status, _) = c.admin_call(c.admin(Method::GET, "/apps/new")).await;
    assert_eq!(status, 404, "a refused upload of a new app leaves no trace");

    for path in ["/apps/nope", "/apps/nope/reload", "/apps/nope/stop", "/apps/nope/start"] {
        let method = if path.ends_with("nope") {
            Method::GET
        } else {
            Method::POST
        };
        assert_eq!(c.admin_call(c.admin(method, path)).await.0, 404, "{path}");
    }
    assert_eq!(c.admin_call(c.admin(Method::DELETE, "/apps/nope")).await.0, 404);
    for tricky in ["..%2F..%2Fetc", "a%00b", "a.b", "x%2Fy", "%2E%2E%2F"] {
        let (status, _) = c
            .admin_call(c.admin(Method::PUT, &format!("/apps/{tricky}")).body(b"x".to_vec()))
            .await;
        assert_eq!(status, 400, "{tricky}");
    }
    let names: Vec<_> = std::fs::read_dir(c.deploy_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(names.len(), 2, "only app.so and its marker: {names:?}");
}

/// `versioned-a` deployed as `app`, and the file its `destroy` appends to.
fn versioned_app() -> (Container, std::path::PathBuf) {
    let builder = Container::builder();
    let marker = builder.scratch().join("destroyed.txt");
    let c = builder
        .deploy(&module("versioned-a"), "app.so")
        .config(&format!(
            "[apps.app.config]\ndestroy_marker = {:?}\n",
            marker.display().to_string()
        ))
        .start();
    (c, marker)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_reloads_of_one_app_are_serialised() {
    let (c, marker) = versioned_app();
    let b = std::fs::read(module("versioned-b")).unwrap();
    let reloads: Vec<_> = (0..4)
        .map(|_| c.admin_call(c.admin(Method::POST, "/apps/app/reload")))
        .collect();
    let upload = c.admin_call(c.admin(Method::PUT, "/apps/app").body(b));
    let (results, upload) = tokio::join!(futures_util::future::join_all(reloads), upload);
    for (status, json) in results.iter().chain([&upload]) {
        assert_eq!(*status, 200, "{json}");
    }
    let (_, app) = c.admin_call(c.admin(Method::GET, "/apps/app")).await;
    assert_eq!(app["reloads"], 5);
    assert_eq!(app["images"], 6);
    // Five old instances, each destroyed exactly once (in the background).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let lines = std::fs::read_to_string(&marker).unwrap_or_default().lines().count();
        if lines == 5 {
            break;
        }
        assert!(lines < 5 && std::time::Instant::now() < deadline, "{lines} destroys");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_drains_a_request_whose_body_is_still_arriving() {
    use tokio::io::AsyncReadExt;

    let (c, marker) = versioned_app();
    // Routed to version a; half of its body sent.
    let mut slow = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
    slow.write_all(b"GET /app/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab")
        .await
        .unwrap();
    // Routed: the request holds version a (it counts as in flight).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, app) = c.admin_call(c.admin(Method::GET, "/apps/app")).await;
        if app["requests_in_flight"].as_u64() == Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the request was not routed: {app}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let b = std::fs::read(module("versioned-b")).unwrap();
    let (status, json) = c.admin_call(c.admin(Method::PUT, "/apps/app").body(b)).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        c.get("/app/").await,
        (200, "version b\n".into()),
        "new requests go to b"
    );
    // Not a synchronisation: the window in which a wrong drain would
    // destroy version a under its in-flight request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap_or_default(),
        "",
        "version a is not destroyed while a request to it is in flight"
    );

    slow.write_all(b"cd").await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, slow.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("version a\n"),
        "{reply}"
    );
    let destroyed = c.wait_for_log_lines(&["destroyed", "app=\"app\""], 1, WAIT).len();
    assert_eq!(destroyed, 1, "{}", c.logs());
    assert!(
        c.log_lines_with(&["still referenced after draining"]).is_empty(),
        "the drain waited for the request instead of leaving it behind:\n{}",
        c.logs()
    );
}
