//! Several containers sharing deployments through PostgreSQL: a deploy
//! through one node reaches every node, a node started later catches up,
//! undeploys propagate, and a damaged copy is refused while the old
//! version keeps serving; sessions and the hub's messages are shared.
//! Needs `CRABCAT_TEST_POSTGRES_URL`.

use std::time::{Duration, Instant};

use crabcat_tests::{ADMIN_TOKEN, Container, PgDb, crabcat_bin, module};
use reqwest::Method;

fn node(db: &PgDb, name: &str) -> Container {
    Container::builder()
        .config(&format!(
            "[datasources.cluster]\nurl = {:?}\n\n[cluster]\ndatasource = \"cluster\"\nnode = {name:?}\n",
            db.url
        ))
        .start()
}

/// Waits until `path` on `c` answers `want`; how long it took.
async fn until_served(c: &Container, path: &str, want: (u16, &str)) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = c.get(path).await;
        if (status, body.as_str()) == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{path} answers {status} {body:?}, not {want:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn upload(c: &Container, app: &str, package: &str) {
    let bytes = std::fs::read(module(package)).unwrap();
    let (status, body) = c
        .admin_call(c.admin(Method::PUT, &format!("/apps/{app}")).body(bytes))
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn a_deploy_through_one_node_reaches_every_node() {
    let db = PgDb::create("a_deploy_through_one_node_reaches_every_node").await;
    let nodes = [node(&db, "node-1"), node(&db, "node-2"), node(&db, "node-3")];

    upload(&nodes[0], "demo", "versioned-a").await;
    for (i, c) in nodes.iter().enumerate() {
        let took = until_served(c, "/demo/", (200, "version a\n")).await;
        println!("node-{}: version a served {took:?} after the deploy returned", i + 1);
        assert!(took < Duration::from_secs(2), "node-{} took {took:?}", i + 1);
    }

    // A reload through another node, the same way.
    upload(&nodes[1], "demo", "versioned-b").await;
    for c in &nodes {
        let took = until_served(c, "/demo/", (200, "version b\n")).await;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    // Every node reports what it runs.
    let (status, cluster) = nodes[2].admin_call(nodes[2].admin(Method::GET, "/cluster")).await;
    assert_eq!(status, 200, "{cluster}");
    assert_eq!(cluster["node"], "node-3");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, cluster) = nodes[2].admin_call(nodes[2].admin(Method::GET, "/cluster")).await;
        let rows = cluster["apps"].as_array().unwrap().clone();
        let demo: Vec<_> = rows.iter().filter(|r| r["app"] == "demo").collect();
        let shas: std::collections::BTreeSet<_> = demo.iter().map(|r| r["sha256"].to_string()).collect();
        if demo.len() == 3 && demo.iter().all(|r| r["state"] == "running") && shas.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{cluster}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The same from the command line.
    let output = std::process::Command::new(crabcat_bin())
        .args(["apps", "--cluster", "--admin", &nodes[0].admin_url("")])
        .env("CRABCAT_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.starts_with("APP   NODE    STATE    VERSION  SHA256"), "{out}");
    for n in ["node-1", "node-2", "node-3"] {
        let line = out
            .lines()
            .find(|l| l.contains(n))
            .unwrap_or_else(|| panic!("{n} missing: {out}"));
        assert!(line.starts_with("demo") && line.contains("running  0.1.0"), "{line}");
    }

    // A node that starts later catches up from the table.
    let late = node(&db, "node-4");
    until_served(&late, "/demo/", (200, "version b\n")).await;

    // Undeploy through one node: gone everywhere.
    let (status, body) = nodes[0].admin_call(nodes[0].admin(Method::DELETE, "/apps/demo")).await;
    assert_eq!(status, 200, "{body}");
    for c in nodes.iter().chain([&late]) {
        until_served(c, "/demo/", (404, "not found\n")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn a_damaged_copy_is_refused_and_the_old_version_keeps_serving() {
    let db = PgDb::create("a_damaged_copy_is_refused_and_the_old_version_keeps_serving").await;
    let (one, two) = (node(&db, "node-1"), node(&db, "node-2"));
    upload(&one, "demo", "versioned-a").await;
    until_served(&two, "/demo/", (200, "version a\n")).await;

    // Someone damages the stored bytes (the hash stays) and announces them.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let bytes = std::fs::read(module("versioned-b")).unwrap();
    let sha = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    sqlx::query("UPDATE crabcat_cluster_apps SET sha256 = $1, bytes = $2 WHERE app = 'demo'")
        .bind(&sha)
        .bind(&bytes[..bytes.len() / 2])
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("SELECT pg_notify('crabcat_cluster', 'demo')")
        .execute(&mut conn)
        .await
        .unwrap();

    let line = two.wait_for_log("damaged", Duration::from_secs(10));
    assert!(line.is_some_and(|l| l.contains("app=\"demo\"")), "{}", two.logs());
    assert_eq!(
        two.get("/demo/").await,
        (200, "version a\n".into()),
        "the old version stays"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, cluster) = two.admin_call(two.admin(Method::GET, "/cluster")).await;
        let failed = cluster["apps"].as_array().unwrap().iter().any(|r| {
            r["node"] == "node-2"
                && r["state"] == "failed"
                && r["error"].as_str().is_some_and(|e| e.contains("damaged"))
        });
        if failed {
            break;
        }
        assert!(Instant::now() < deadline, "{cluster}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn a_node_whose_install_failed_tries_again() {
    let db = PgDb::create("a_node_whose_install_failed_tries_again").await;
    let one = node(&db, "node-1");
    // Node 2's probe needs a file that is not there yet: its init fails.
    let scratch = tempfile::tempdir().unwrap();
    let needed = scratch.path().join("ready");
    let two = Container::builder()
        .config(&format!(
            "[datasources.cluster]\nurl = {:?}\n\n[cluster]\ndatasource = \"cluster\"\nnode = \"node-2\"\n\
             retry = \"300ms\"\n\n[apps.probe.config]\nrequire_file = {needed:?}\n",
            db.url
        ))
        .start();
    upload(&one, "probe", "probe").await;
    let failed = two.wait_for_log("could not apply the cluster's deployment", Duration::from_secs(10));
    assert!(failed.is_some_and(|l| l.contains("needs")), "{}", two.logs());
    assert_eq!(two.get("/probe/").await.0, 404);
    std::fs::write(&needed, "").unwrap();
    let took = until_served(&two, "/probe/", (200, "probe probe at \"/probe\"\n")).await;
    println!("installed {took:?} after the file appeared");
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn any_node_serves_any_session_through_the_shared_datasource() {
    let db = PgDb::create("any_node_serves_any_session_through_the_shared_datasource").await;
    let shared = |name: &str| {
        Container::builder()
            .deploy(&module("probe"), "probe.so")
            .config(&format!(
                "[datasources.cluster]\nurl = {:?}\n\n[cluster]\ndatasource = \"cluster\"\nnode = {name:?}\n\n\
                 [sessions]\ndatasource = \"cluster\"\n",
                db.url
            ))
            .start()
    };
    let (one, two) = (shared("node-1"), shared("node-2"));
    let visit = |c: &Container, cookie: Option<String>| {
        let mut request = c.client().get(c.url("/probe/session"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move {
            let response = request.send().await.unwrap();
            let cookie = response
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
            let body: serde_json::Value = response.json().await.unwrap();
            (body["visits"].as_u64().unwrap(), cookie)
        }
    };
    let (visits, cookie) = visit(&one, None).await;
    assert_eq!(visits, 1);
    let cookie = cookie.expect("a new session sets its cookie");
    // No sticky sessions: the next requests go to either node.
    assert_eq!(visit(&two, Some(cookie.clone())).await, (2, None));
    assert_eq!(visit(&one, Some(cookie.clone())).await, (3, None));
    drop(one);
    assert_eq!(
        visit(&two, Some(cookie)).await,
        (4, None),
        "the session outlives the node that made it"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn a_message_published_on_one_node_reaches_subscribers_on_the_others_in_order() {
    let db = PgDb::create("a_message_published_on_one_node_reaches_subscribers_on_the_others").await;
    let realtime = |name: &str| {
        Container::builder()
            .deploy(&module("realtime"), "realtime.so")
            .config(&format!(
                "[datasources.cluster]\nurl = {:?}\n\n[cluster]\ndatasource = \"cluster\"\nnode = {name:?}\n",
                db.url
            ))
            .start()
    };
    let (one, two) = (realtime("node-1"), realtime("node-2"));
    let url = two.url("/realtime/ws/room/x").replacen("http://", "ws://", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let publish = |body: String| {
        let request = one.client().post(one.url("/realtime/publish/x")).body(body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let local: u32 = response.text().await.unwrap().trim().parse().unwrap();
            assert_eq!(local, 0, "node 1 has no subscriber of its own");
        }
    };
    // Until node 2 subscribes and listens, a message can miss it.
    let mut reached = false;
    for _ in 0..100 {
        publish("ping".into()).await;
        if tokio::time::timeout(Duration::from_millis(50), next_text(&mut socket))
            .await
            .is_ok()
        {
            reached = true;
            break;
        }
    }
    assert!(
        reached,
        "nothing published on node 1 reached node 2 in 5 s\n{}\n{}",
        one.logs(),
        two.logs()
    );
    publish("start".into()).await;
    while next_text(&mut socket).await != "start" {} // pings still on their way
    // Larger than a notification (8,000 bytes): carried through the table.
    let large = "🦀".repeat(5_000);
    let sent: Vec<String> = (0..30)
        .map(|i| {
            if i % 10 == 5 {
                format!("{i} {large}")
            } else {
                format!("{i}")
            }
        })
        .collect();
    for body in &sent {
        publish(body.clone()).await;
    }
    for want in &sent {
        assert_eq!(&next_text(&mut socket).await, want, "in the order published");
    }
}

/// The next text message on `socket`.
async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> String {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
        match frame.expect("no message within 5 s").unwrap().unwrap() {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_not_in_a_cluster_says_so() {
    let c = Container::builder().start();
    let (status, body) = c.admin_call(c.admin(Method::GET, "/cluster")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not in a cluster"), "{body}");
}
