//! A cluster as `scripts/cluster.sh` runs it: three nodes on loopback
//! behind nginx (installed by the script if missing), sharing one
//! PostgreSQL. A deploy through node 1 reaches every node within 2 s; under
//! a bounded load of 8 clients one node is SIGKILLed: fewer than 0.1 % of
//! the requests fail, a session keeps working through the other nodes,
//! chat clients reconnect and keep their room and history, and the killed
//! node, started again, catches up with what was deployed while it was
//! down. Needs `CRABCAT_TEST_POSTGRES_URL`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crabcat_tests::{PgDb, crabcat_bin, module, repo_root};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const NODES: u16 = 3;

/// The cluster `scripts/cluster.sh up` started; `down` when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    database: String,
    port: u16,
    base: u16,
    http: reqwest::Client,
}

impl Cluster {
    fn up(database: &str) -> Cluster {
        let (port, base) = free_ports();
        let cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            database: database.to_owned(),
            port,
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        cluster.script(&["up", &NODES.to_string()]);
        cluster
    }

    /// Runs `scripts/cluster.sh ARGS` on this cluster; panics if it fails.
    fn script(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join("scripts/cluster.sh"))
            .args(args)
            .env("CLUSTER_DATABASE_URL", &self.database)
            .env("CLUSTER_PORT", self.port.to_string())
            .env("CLUSTER_BASE_PORT", self.base.to_string())
            .env("CLUSTER_DIR", self.dir.path())
            .env("CLUSTER_BUILD", "0")
            .env("CRABCAT_BIN", crabcat_bin())
            .env("CLUSTER_APPS", "hello chat guestbook")
            .output()
            .unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "scripts/cluster.sh {args:?} failed:\n{out}\n{}",
            self.logs()
        );
        out
    }

    /// A URL through nginx.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A URL of node `k` itself.
    fn node_url(&self, k: u16, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.base + k)
    }

    fn node_dir(&self, k: u16) -> PathBuf {
        self.dir.path().join(format!("node-{k}"))
    }

    fn kill(&self, k: u16) {
        let pid = std::fs::read_to_string(self.node_dir(k).join("pid")).unwrap();
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
        assert!(status.success());
    }

    /// Deploys fixture `package` as app `app` through node 1's admin API.
    async fn deploy(&self, app: &str, package: &str) {
        let token = std::fs::read_to_string(self.dir.path().join("admin.token")).unwrap();
        let url = format!("http://127.0.0.1:{}/apps/{app}", self.base + 101);
        let response = self
            .http
            .put(url)
            .bearer_auth(token.trim())
            .body(std::fs::read(module(package)).unwrap())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    }

    async fn get(&self, url: &str) -> Option<(u16, String)> {
        let response = self.http.get(url).send().await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    }

    /// Waits until `url` answers 200 with `body` (any body if empty); how
    /// long it took.
    async fn until_serves(&self, url: &str, body: &str) -> Duration {
        let start = Instant::now();
        loop {
            let got = self.get(url).await;
            if got.is_some_and(|(status, got)| status == 200 && (body.is_empty() || got == body)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{url} never served {body:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn logs(&self) -> String {
        let mut logs = String::new();
        for k in 1..=NODES {
            let log = std::fs::read_to_string(self.node_dir(k).join("crabcat.log")).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(30).collect();
            logs += &format!(
                "--- node {k} (last lines)\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        logs + &std::fs::read_to_string(self.dir.path().join("nginx/error.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/cluster.sh"))
            .arg("down")
            .env("CLUSTER_DIR", self.dir.path())
            .env("CRABCAT_BIN", crabcat_bin())
            .output();
    }
}

/// nginx's port and a base port with BASE+1..=BASE+3 and BASE+101..=BASE+103
/// free, below Linux's ephemeral ports (32768 and up), which outgoing
/// connections may take at any time.
fn free_ports() -> (u16, u16) {
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    for _ in 0..200 {
        let base = 20_000 + (rand_u16() % 120) * 100;
        let port = base + 99;
        if free(port) && (1..=NODES).all(|k| free(base + k) && free(base + 100 + k)) {
            return (port, base);
        }
    }
    panic!("no free ports");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (nanos ^ std::process::id()) as u16
}

/// A chat client through nginx: its socket and the ids of the messages it got.
struct ChatClient {
    nick: String,
    socket: Socket,
    seen: Vec<String>,
}

impl ChatClient {
    /// Joins the lobby; returns the client and the texts of the history it got.
    async fn join(cluster: &Cluster, nick: &str) -> (ChatClient, Vec<String>) {
        let url = cluster
            .url(&format!("/chat/ws/lobby?nick={nick}"))
            .replacen("http://", "ws://", 1);
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut client = ChatClient {
            nick: nick.to_owned(),
            socket,
            seen: Vec::new(),
        };
        loop {
            let event = client.event().await.expect("the history comes first");
            if event["type"] == "history" {
                let texts = event["messages"].as_array().unwrap().iter();
                let history = texts.map(|m| m["text"].as_str().unwrap().to_owned()).collect();
                return (client, history);
            }
        }
    }

    /// The next JSON event, or `None` when the connection ended or nothing came in 5 s.
    async fn event(&mut self) -> Option<serde_json::Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.socket.next())
                .await
                .ok()??;
            match frame.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    async fn say(&mut self, text: &str) {
        let event = serde_json::json!({"type": "message", "text": text}).to_string();
        self.socket.send(Message::text(event)).await.unwrap();
    }

    /// Reads until every text of `want` arrived as a chat message.
    async fn expect(&mut self, want: &[String]) {
        while !want.iter().all(|w| self.seen.contains(w)) {
            let event = self.event().await;
            let event = event.unwrap_or_else(|| panic!("{} got {:?} of {want:?}", self.nick, self.seen));
            if event["type"] == "message" {
                self.seen.push(event["text"].as_str().unwrap().to_owned());
            }
        }
    }
}

/// The session cookie and CSRF token of a new guestbook visitor.
async fn guestbook_visit(cluster: &Cluster, cookie: Option<&str>) -> (Option<String>, String, String) {
    let mut request = cluster.http.get(cluster.url("/guestbook/"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let page = response.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (set_cookie, csrf, page)
}

async fn sign(cluster: &Cluster, cookie: &str, csrf: &str, message: &str) -> u16 {
    let form = [("csrf", csrf), ("name", "Ferris"), ("message", message)];
    let response = cluster
        .http
        .post(cluster.url("/guestbook/entries"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn three_nodes_behind_nginx_survive_losing_one() {
    let db = PgDb::create("three_nodes_behind_nginx").await;
    let cluster = Cluster::up(&db.url);
    for k in 1..=NODES {
        cluster.until_serves(&cluster.node_url(k, "/hello/"), "").await;
    }

    // A deploy through node 1 reaches every node within 2 s.
    cluster.deploy("demo", "versioned-a").await;
    for k in 1..=NODES {
        let took = cluster
            .until_serves(&cluster.node_url(k, "/demo/"), "version a\n")
            .await;
        println!("node {k}: the new version served {took:?} after the deploy returned");
        assert!(took < Duration::from_secs(2), "node {k} took {took:?}");
    }

    // A visitor signs the guestbook: the session remembers the name.
    let (cookie, csrf, _) = guestbook_visit(&cluster, None).await;
    let cookie = cookie.expect("a session cookie");
    assert_eq!(sign(&cluster, &cookie, &csrf, "before").await, 303);

    // Six chat clients in one room, spread over the nodes by nginx: a
    // message said on any node reaches everyone.
    let mut chat = Vec::new();
    for i in 0..6 {
        chat.push(ChatClient::join(&cluster, &format!("c{i}")).await.0);
    }
    let before: Vec<String> = (0..6).map(|i| format!("before {i}")).collect();
    for (client, text) in chat.iter_mut().zip(&before) {
        client.say(text).await;
    }
    for client in &mut chat {
        client.expect(&before).await;
    }

    // A bounded load of 8 clients; node 2 is SIGKILLed in the middle.
    let stop = Arc::new(AtomicBool::new(false));
    let (total, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for i in 0..8 {
        let (stop, total, failed) = (Arc::clone(&stop), Arc::clone(&total), Arc::clone(&failed));
        let (http, url) = (
            reqwest::Client::new(),
            cluster.url(if i % 2 == 0 {
                "/hello/"
            } else {
                "/chat/rooms/lobby/messages"
            }),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = match http.get(&url).send().await {
                    Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                total.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (total, failed) = (total.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("load through nginx: {total} requests, {failed} failed, node 2 killed after 2 s of 6");
    assert!(total >= 1_000, "only {total} requests in 6 s");
    assert!(
        failed * 1_000 < total,
        "{failed} of {total} requests failed\n{}",
        cluster.logs()
    );

    // The session works through the nodes left.
    for _ in 0..3 {
        let (renewed, same_csrf, page) = guestbook_visit(&cluster, Some(&cookie)).await;
        assert_eq!(renewed, None, "the session was found, not started again");
        assert_eq!(same_csrf, csrf);
        assert!(page.contains("value=\"Ferris\""), "the name is remembered");
    }
    assert_eq!(
        sign(&cluster, &cookie, &csrf, "after").await,
        303,
        "its CSRF token still holds"
    );

    // The clients on the killed node reconnect, to the same room and history.
    let mut reconnected = 0;
    for client in &mut chat {
        let lost = tokio::time::timeout(Duration::from_millis(500), client.socket.next())
            .await
            .is_ok_and(|frame| frame.is_none_or(|f| f.is_err() || matches!(f, Ok(Message::Close(_)))));
        if lost {
            let (again, history) = ChatClient::join(&cluster, &client.nick).await;
            assert!(before.iter().all(|b| history.contains(b)), "{history:?}");
            *client = again;
            reconnected += 1;
        }
    }
    println!("{reconnected} of 6 chat clients reconnected");
    assert!(reconnected >= 1, "nginx put no chat client on node 2");
    let after: Vec<String> = (0..6).map(|i| format!("after {i}")).collect();
    for (client, text) in chat.iter_mut().zip(&after) {
        client.say(text).await;
    }
    for client in &mut chat {
        client.expect(&after).await;
    }

    // Deployed while node 2 is down; node 2, started again, catches up.
    cluster.deploy("demo", "versioned-b").await;
    for k in [1, 3] {
        cluster
            .until_serves(&cluster.node_url(k, "/demo/"), "version b\n")
            .await;
    }
    cluster.script(&["node", "2"]);
    let took = cluster
        .until_serves(&cluster.node_url(2, "/demo/"), "version b\n")
        .await;
    println!("node 2 caught up {took:?} after it answered its health check");
    cluster.until_serves(&cluster.node_url(2, "/hello/"), "").await;
}
