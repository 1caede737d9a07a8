//! HTTP sessions kept by the container, through the probe fixture's
//! session routes: the cookie, what survives a reload, a stop/start and a
//! restart, renew and invalidate, bad cookies, concurrent requests, the
//! size limit, expiry and sweeping, the admin API and CLI, and the same on
//! PostgreSQL and MariaDB.

use std::process::Command;
use std::time::Duration;

use crabcat_tests::{ADMIN_TOKEN, Container, ContainerBuilder, MyDb, PgDb, crabcat_bin, module};
use reqwest::header::{COOKIE, SET_COOKIE};

/// A client that keeps the session cookie, as a browser does.
struct Visitor<'c> {
    c: &'c Container,
    cookie: Option<String>,
}

/// A response's status, its `Set-Cookie` (if any) and its body.
struct Answer {
    status: u16,
    set_cookie: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl<'c> Visitor<'c> {
    fn new(c: &'c Container) -> Self {
        Visitor { c, cookie: None }
    }

    fn with_cookie(c: &'c Container, cookie: &str) -> Self {
        Visitor {
            c,
            cookie: Some(cookie.to_owned()),
        }
    }

    async fn send(&mut self, method: reqwest::Method, path: &str) -> Answer {
        let mut request = self.c.client().request(method, self.c.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let set_cookie = response
            .headers()
            .get(SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        if let Some(set) = &set_cookie {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!set.contains("Max-Age=0")).then_some(pair);
        }
        let body = response.text().await.unwrap();
        Answer {
            status,
            set_cookie,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path).await
    }

    async fn post(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::POST, path).await
    }

    async fn visits(&mut self) -> u64 {
        let answer = self.get("/probe/session").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["visits"].as_u64().unwrap()
    }
}

fn probe() -> ContainerBuilder {
    Container::builder().deploy(&module("probe"), "probe.so")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cookie_is_http_only_lax_scoped_to_the_app_and_set_once() {
    let c = probe().start();
    let mut visitor = Visitor::new(&c);
    let first = visitor.get("/probe/session").await;
    assert_eq!(first.json()["visits"], 1);
    let cookie = first.set_cookie.expect("a new session sets its cookie");
    let (pair, attributes) = cookie.split_once("; ").unwrap();
    let (name, id) = pair.split_once('=').unwrap();
    assert_eq!(name, "CRABCAT_SESSION");
    assert_eq!(id.len(), 64, "256 bits in hex: {id}");
    assert_eq!(
        attributes, "Path=/probe; HttpOnly; SameSite=Lax",
        "plain HTTP: no Secure"
    );

    let second = visitor.get("/probe/session").await;
    assert_eq!(second.json()["visits"], 2);
    assert_eq!(second.set_cookie, None, "a known session needs no new cookie");

    let mut blocking = Visitor::with_cookie(&c, visitor.cookie.as_deref().unwrap());
    let answer = blocking.get("/probe/session/blocking").await;
    assert_eq!(
        answer.json()["visits"],
        3,
        "blocking handlers share the session: {}",
        answer.body
    );

    // A route that never asks for the session gets no cookie.
    let answer = Visitor::new(&c).get("/probe/query").await;
    assert_eq!((answer.status, answer.set_cookie), (200, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_survives_reload_stop_start_and_restart() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("sessions.db").display());
    let c = probe().datasource(&url).start();
    let mut visitor = Visitor::new(&c);
    assert_eq!(visitor.visits().await, 1);

    let (status, body) = c.admin_call(c.admin(reqwest::Method::POST, "/apps/probe/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(visitor.visits().await, 2, "after a reload");

    for action in ["stop", "start"] {
        let (status, body) = c
            .admin_call(c.admin(reqwest::Method::POST, &format!("/apps/probe/{action}")))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(visitor.visits().await, 3, "after a stop and a start");

    let cookie = visitor.cookie.clone().unwrap();
    drop(c);
    let c = probe().datasource(&url).start();
    let mut visitor = Visitor::with_cookie(&c, &cookie);
    assert_eq!(visitor.visits().await, 4, "after a restart of the container");
}

#[tokio::test(flavor = "multi_thread")]
async fn renew_changes_the_id_keeps_the_data_and_kills_the_old_id() {
    let c = probe().start();
    let mut visitor = Visitor::new(&c);
    visitor.post("/probe/session/set?key=user&value=ada").await;
    let old = visitor.cookie.clone().unwrap();

    let answer = visitor.post("/probe/session/renew").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let renewed = visitor.cookie.clone().expect("renew sets a new cookie");
    assert_ne!(old, renewed);
    assert_eq!(visitor.get("/probe/session/get?key=user").await.json()["value"], "ada");

    let mut attacker = Visitor::with_cookie(&c, &old);
    let answer = attacker.get("/probe/session/get?key=user").await;
    assert_eq!(
        answer.json()["value"],
        serde_json::Value::Null,
        "the old id opens nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalidate_forgets_the_session_and_clears_the_cookie() {
    let c = probe().start();
    let mut visitor = Visitor::new(&c);
    assert_eq!(visitor.visits().await, 1);
    let cookie = visitor.cookie.clone().unwrap();
    let answer = visitor.post("/probe/session/invalidate").await;
    let cleared = answer.set_cookie.expect("the client is told to forget the cookie");
    assert!(
        cleared.starts_with("CRABCAT_SESSION=;") && cleared.ends_with("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(
        Visitor::with_cookie(&c, &cookie).visits().await,
        1,
        "the old cookie starts anew"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tampered_and_garbage_cookies_start_a_new_session_silently() {
    let c = probe().start();
    let mut visitor = Visitor::new(&c);
    assert_eq!(visitor.visits().await, 1);
    assert_eq!(visitor.visits().await, 2);
    let cookie = visitor.cookie.clone().unwrap();
    let (name, id) = cookie.split_once('=').unwrap();
    let flipped = format!("{name}={}{}", if id.starts_with('0') { '1' } else { '0' }, &id[1..]);
    let unknown = format!("{name}={}", "ab".repeat(32));
    for bad in [
        flipped,
        unknown,
        format!("{name}=../../etc/passwd"),
        format!("{name}={id}x"),
        format!("{name}=%00"),
        format!("{name}="),
    ] {
        let mut stranger = Visitor::with_cookie(&c, &bad);
        let answer = stranger.get("/probe/session").await;
        assert_eq!(answer.status, 200, "{bad}: {}", answer.body);
        assert_eq!(answer.json()["visits"], 1, "{bad} opened a session");
        assert!(answer.set_cookie.is_some(), "{bad}: a new session, a new cookie");
    }
    assert_eq!(visitor.visits().await, 3, "the real session is untouched");
    assert!(!c.logs().contains("ERROR"), "bad cookies are not errors:\n{}", c.logs());

    // A cookie header past the container's head limit is refused before
    // any app sees it, and the container keeps serving.
    let huge = format!("{name}={}", "a".repeat(100 * 1024));
    let status = c
        .client()
        .get(c.url("/probe/session"))
        .header(COOKIE, huge)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 431);
    assert_eq!(visitor.visits().await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_past_its_size_limit_is_refused_with_a_clear_error() {
    let c = probe().config("[sessions]\nmax_bytes = 1000").start();
    let mut visitor = Visitor::new(&c);
    let answer = visitor.post("/probe/session/set?key=a&bytes=500").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = visitor.post("/probe/session/set?key=b&bytes=600").await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(answer.body.contains("sessions.max_bytes"), "{}", answer.body);
    let a = visitor.get("/probe/session/get?key=a").await.json();
    assert_eq!(a["value"].as_str().map(str::len), Some(500), "the earlier write stays");
    let b = visitor.get("/probe/session/get?key=b").await.json();
    assert_eq!(b["value"], serde_json::Value::Null, "the refused write left nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_of_one_session_keep_every_attribute_each_wrote() {
    let c = probe().start();
    let mut visitor = Visitor::new(&c);
    assert_eq!(visitor.visits().await, 1);
    let cookie = visitor.cookie.clone().unwrap();
    let writes = (0..16).map(|i| {
        let request = c
            .client()
            .post(c.url(&format!("/probe/session/set?key=k{i}&value=v{i}")))
            .header(COOKIE, &cookie);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for i in 0..16 {
        let value = visitor.get(&format!("/probe/session/get?key=k{i}")).await.json();
        assert_eq!(
            value["value"],
            format!("v{i}"),
            "k{i}: the last write of each attribute wins"
        );
    }
    assert_eq!(
        visitor.visits().await,
        2,
        "and the attribute no one else wrote is intact"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cookie_is_secure_behind_a_trusted_proxy_only() {
    let forwarded = |c: &Container| {
        c.client()
            .get(c.url("/probe/session"))
            .header("x-forwarded-proto", "https")
            .send()
    };
    let c = probe().start();
    let cookie = forwarded(&c).await.unwrap().headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        !cookie.contains("Secure"),
        "an untrusted peer's header is ignored: {cookie}"
    );

    let c = probe().config("[server]\ntrusted_proxies = [\"127.0.0.1\"]").start();
    let cookie = forwarded(&c).await.unwrap().headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    let c = probe().config("[apps.probe]\nsession_cookie_secure = true").start();
    let (_, cookie) = {
        let response = c.client().get(c.url("/probe/session")).send().await.unwrap();
        (
            response.status(),
            response.headers()[SET_COOKIE].to_str().unwrap().to_owned(),
        )
    };
    assert!(
        cookie.ends_with("; Secure"),
        "apps.NAME.session_cookie_secure: {cookie}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_sessions_are_gone_and_swept_in_the_background() {
    let c = probe()
        .config("[sessions]\nidle_timeout = \"1s\"\nsweep_interval = \"500ms\"")
        .start();
    let mut visitor = Visitor::new(&c);
    assert_eq!(visitor.visits().await, 1);
    let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/probe")).await;
    assert_eq!(app["sessions"], 1, "{app}");
    let line = c.wait_for_log("deleted expired sessions", Duration::from_secs(10));
    assert!(line.is_some_and(|l| l.contains("swept=1")), "{}", c.logs());
    assert_eq!(visitor.visits().await, 1, "expired: a new session");
}

/// `crabcat ARGS --admin URL` with the token; exit code and stdout.
fn crabcat(c: &Container, args: &[&str]) -> (i32, String) {
    let output = Command::new(crabcat_bin())
        .args(args)
        .arg("--admin")
        .arg(c.admin_url(""))
        .env("CRABCAT_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run crabcat");
    let err = String::from_utf8_lossy(&output.stderr);
    (
        output.status.code().unwrap_or(-1),
        format!("{}{err}", String::from_utf8_lossy(&output.stdout)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_and_cli_count_and_expire_sessions() {
    let c = probe().start();
    let mut visitors: Vec<Visitor<'_>> = (0..3).map(|_| Visitor::new(&c)).collect();
    for visitor in &mut visitors {
        assert_eq!(visitor.visits().await, 1);
    }
    let (_, apps) = c.admin_call(c.admin(reqwest::Method::GET, "/apps")).await;
    let probe = apps.as_array().unwrap().iter().find(|a| a["name"] == "probe").unwrap();
    assert_eq!(probe["sessions"], 3, "{apps}");
    assert_eq!(
        crabcat(&c, &["sessions", "probe"]),
        (0, "probe: 3 live sessions\n".to_owned())
    );

    let (status, body) = c
        .admin_call(c.admin(reqwest::Method::POST, "/apps/probe/sessions/expire?idle=10"))
        .await;
    assert_eq!(
        (status, &body["expired"], &body["sessions"]),
        (200, &0.into(), &3.into()),
        "{body}"
    );
    assert_eq!(
        crabcat(&c, &["sessions", "probe", "--expire"]),
        (0, "probe: 3 sessions expired, 0 left\n".to_owned())
    );
    assert_eq!(visitors[0].visits().await, 1, "expired: a new session");

    let (status, body) = c
        .admin_call(c.admin(reqwest::Method::POST, "/apps/nope/sessions/expire"))
        .await;
    assert_eq!(
        (status, &body["expired"]),
        (200, &0.into()),
        "no sessions of an unknown app: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_sessions_off_the_app_gets_a_clear_error() {
    let c = probe().config("[sessions]\ndatasource = \"\"").start();
    let answer = Visitor::new(&c).get("/probe/session").await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    let line = c.wait_for_log("sessions are turned off", Duration::from_secs(5));
    assert!(line.is_some(), "the log says why: {}", c.logs());
    let (status, body) = c
        .admin_call(c.admin(reqwest::Method::POST, "/apps/probe/sessions/expire"))
        .await;
    assert_eq!(status, 404, "{body}");
}

async fn sessions_on(url: &str) {
    let c = probe().datasource(url).config("[sessions]\nmax_bytes = 262144").start();
    let mut visitor = Visitor::new(&c);
    assert_eq!(visitor.visits().await, 1);
    assert_eq!(visitor.visits().await, 2);
    visitor.post("/probe/session/renew").await;
    assert_eq!(visitor.visits().await, 3, "renewed, data kept");
    let answer = visitor
        .post(&format!("/probe/session/set?key=big&bytes={}", 100 * 1024))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let big = visitor.get("/probe/session/get?key=big").await.json();
    assert_eq!(
        big["value"].as_str().map(str::len),
        Some(100 * 1024),
        "larger than MySQL's TEXT"
    );
    let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/probe")).await;
    assert_eq!(app["sessions"], 1, "{app}");
    visitor.post("/probe/session/invalidate").await;
    assert_eq!(visitor.visits().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
async fn sessions_on_postgres() {
    let db = PgDb::create("sessions_on_postgres").await;
    sessions_on(&db.url).await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
async fn sessions_on_mysql() {
    let db = MyDb::create("sessions_on_mysql").await;
    sessions_on(&db.url).await;
}
