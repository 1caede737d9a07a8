//! The DB-backed sample apps, on SQLite and (when configured) PostgreSQL
//! and MySQL/MariaDB.

use std::sync::Arc;

use crabcat_tests::{Container, MyDb, PgDb, module, problem};

const CLIENTS: usize = 16;
const TRANSFERS: usize = 200;
const ACCOUNTS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn bank(url: Option<&str>) -> Container {
    let mut builder = Container::builder()
        .deploy(&module("bank"), "bank.so")
        .config("[server]\naccess_log = false\n");
    if let Some(url) = url {
        builder = builder.datasource(url);
    }
    builder.start()
}

async fn balances(c: &Container) -> Vec<(String, i64)> {
    let (status, body) = c.get("/bank/accounts").await;
    assert_eq!(status, 200, "{body}");
    let accounts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    accounts
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a["balance"].as_i64().unwrap()))
        .collect()
}

/// 200 transfers from 16 concurrent clients between five accounts: the
/// total is unchanged, no balance is negative, every success is audited.
async fn concurrent_transfers(url: Option<&str>) {
    let c = Arc::new(bank(url));
    let before: i64 = balances(&c).await.iter().map(|(_, b)| b).sum();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in (client..TRANSFERS).step_by(CLIENTS) {
                    let seed = (i as u64)
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = ACCOUNTS[(seed >> 33) as usize % 5];
                    let to = ACCOUNTS[((seed >> 40) as usize % 4 + 1 + (seed >> 33) as usize % 5) % 5];
                    let amount = (seed >> 20) % 400 + 1;
                    let body = serde_json::json!({"from": from, "to": to, "amount": amount});
                    let response = c
                        .client()
                        .post(c.url("/bank/transfer"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    outcomes.push((status, response.text().await.unwrap()));
                }
                outcomes
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        for (status, body) in task.await.unwrap() {
            assert!(status == 200 || status == 409, "{status} {body}");
            ok += usize::from(status == 200);
        }
    }
    let after = balances(&c).await;
    assert_eq!(
        after.iter().map(|(_, b)| b).sum::<i64>(),
        before,
        "money was created or lost: {after:?}"
    );
    assert!(after.iter().all(|(_, b)| *b >= 0), "{after:?}");
    assert!(ok > TRANSFERS / 4, "only {ok} transfers succeeded");
    let (_, audit) = c.get("/bank/audit?limit=100").await;
    let audit: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit.len(), ok.min(100), "one audit row per successful transfer");
    eprintln!("{ok} of {TRANSFERS} transfers succeeded, the rest were refused for insufficient funds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_under_concurrency_on_sqlite() {
    concurrent_transfers(None).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_under_concurrency_on_postgres() {
    {
        let db = PgDb::create("bank_transfers_under_concurrency_on_postgres").await;
        concurrent_transfers(Some(&db.url)).await;
    }
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_under_concurrency_on_mysql() {
    let db = MyDb::create("bank_transfers_under_concurrency_on_mysql").await;
    concurrent_transfers(Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_transfers_roll_back_entirely_on_sqlite() {
    failed_transfers_roll_back_entirely(None).await;
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn failed_transfers_roll_back_entirely_on_mysql() {
    let db = MyDb::create("failed_transfers_roll_back_entirely_on_mysql").await;
    failed_transfers_roll_back_entirely(Some(&db.url)).await;
}

async fn failed_transfers_roll_back_entirely(url: Option<&str>) {
    let c = bank(url);
    let transfer = |from: &str, to: &str, amount: i64| {
        c.client()
            .post(c.url("/bank/transfer"))
            .json(&serde_json::json!({"from": from, "to": to, "amount": amount}))
            .send()
    };
    let refused = transfer("alice", "bob", 5000).await.unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert_eq!(
        problem(&refused.text().await.unwrap()),
        (409, "insufficient funds".into())
    );
    // The debit of alice succeeds before the credit of "zed" fails: rolled back.
    assert_eq!(transfer("alice", "zed", 10).await.unwrap().status(), 404);
    assert_eq!(transfer("nobody", "bob", 10).await.unwrap().status(), 404);
    assert_eq!(transfer("alice", "alice", 10).await.unwrap().status(), 422);
    assert_eq!(transfer("alice", "bob", -5).await.unwrap().status(), 422);
    assert!(balances(&c).await.iter().all(|(_, b)| *b == 1000));
    let (_, audit) = c.get("/bank/audit").await;
    assert_eq!(audit.trim(), "[]", "no audit rows for failed transfers");
    let response = transfer("alice", "bob", 250).await.unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (json["from_balance"].as_i64(), json["to_balance"].as_i64()),
        (Some(750), Some(1250))
    );
    let (status, report) = c.get("/bank/report").await;
    assert_eq!(status, 200);
    assert!(report.contains("total:     5000"), "{report}");
    assert!(report.contains("transfers: 1 (moving 250 in all)"), "{report}");
    let (status, balance) = c.get("/bank/balance").await;
    assert_eq!((status, balance.as_str()), (200, r#"{"total":5000,"accounts":5}"#));
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_reads_json_or_forms_and_answers_problems() {
    let c = bank(None);
    let post = |content_type: &'static str, body: &'static str| {
        c.client()
            .post(c.url("/bank/transfer"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let form = post("application/x-www-form-urlencoded", "from=bob&to=carol&amount=100")
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let receipt: serde_json::Value = form.json().await.unwrap();
    assert_eq!(
        (receipt["from_balance"].as_i64(), receipt["to_balance"].as_i64()),
        (Some(900), Some(1100))
    );
    for (content_type, body, status) in [
        (
            "application/x-www-form-urlencoded",
            "from=bob&to=carol&amount=lots",
            422,
        ),
        ("application/json", r#"{"from":"bob","to":"carol","amount":1.5}"#, 422),
        ("application/json", r#"{"from":"bob","to":"carol""#, 400),
        ("text/plain", "from=bob&to=carol&amount=1", 415),
    ] {
        let response = post(content_type, body).await.unwrap();
        assert_eq!(response.status(), status, "{content_type} {body}");
        assert_eq!(problem(&response.text().await.unwrap()).0, status);
    }
    let (status, body) = c.get("/bank/accounts/zed").await;
    assert_eq!((status, problem(&body)), (404, (404, "unknown account zed".into())));
    assert_eq!(c.get("/bank/audit?limit=0").await.0, 400);
    assert_eq!(c.get("/bank/audit?limit=x").await.0, 400);
    let (_, audit) = c.get("/bank/audit?limit=").await;
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit[0]["from"], "bob", "the one transfer, from the form");
    let (_, balance) = c.get("/bank/balance").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&balance).unwrap(),
        serde_json::json!({"total": 5000, "accounts": 5})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guestbook_escapes_validates_and_pages_on_sqlite() {
    guestbook_escapes_validates_and_pages(None).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn guestbook_escapes_validates_and_pages_on_postgres() {
    let db = PgDb::create("guestbook_escapes_validates_and_pages_on_postgres").await;
    guestbook_escapes_validates_and_pages(Some(&db.url)).await;
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn guestbook_escapes_validates_and_pages_on_mysql() {
    let db = MyDb::create("guestbook_escapes_validates_and_pages_on_mysql").await;
    guestbook_escapes_validates_and_pages(Some(&db.url)).await;
}

/// A browser on the guestbook: keeps its session cookie, and posts the
/// form with the CSRF token of the page it last loaded.
struct Guest<'c> {
    c: &'c Container,
    cookie: Option<String>,
    csrf: String,
}

impl<'c> Guest<'c> {
    fn new(c: &'c Container) -> Self {
        Guest {
            c,
            cookie: None,
            csrf: String::new(),
        }
    }

    fn keep_cookie(&mut self, response: &reqwest::Response) {
        if let Some(set) = response.headers().get("set-cookie") {
            self.cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
    }

    /// Loads the page (and its form's token).
    async fn page(&mut self, path: &str) -> (u16, String) {
        let mut request = self.c.client().get(self.c.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.keep_cookie(&response);
        let status = response.status().as_u16();
        let page = response.text().await.unwrap();
        if let Some(rest) = page.split("name=\"csrf\" value=\"").nth(1) {
            self.csrf = rest.split('"').next().unwrap().to_owned();
        }
        (status, page)
    }

    async fn sign(&mut self, name: &str, message: &str) -> reqwest::Response {
        let form = [("name", name), ("message", message), ("csrf", &self.csrf)];
        let mut request = self.c.client().post(self.c.url("/guestbook/entries")).form(&form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.keep_cookie(&response);
        response
    }
}

async fn guestbook_escapes_validates_and_pages(url: Option<&str>) {
    let mut builder = Container::builder().deploy(&module("guestbook"), "guestbook.so");
    if let Some(url) = url {
        builder = builder.datasource(url);
    }
    let c = builder.start();
    let mut guest = Guest::new(&c);
    guest.page("/guestbook/").await;
    let response = guest.sign("<script>alert(1)</script>", "a & b \"quoted\"").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/guestbook/");
    let (status, page) = guest.page("/guestbook/").await;
    assert_eq!(status, 200);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    assert!(!page.contains("<script>alert"), "user input reached the page unescaped");
    assert!(page.contains("a &amp; b &quot;quoted&quot;"));

    let response = guest.sign("", "<b>kept</b>").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("&lt;b&gt;kept&lt;/b&gt;"), "the input is kept, escaped");

    for i in 0..11 {
        assert_eq!(guest.sign(&format!("writer {i}"), "hello").await.status(), 303);
    }
    let (_, json) = c.get("/guestbook/entries.json?page=1").await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["total"], 12);
    assert_eq!(json["entries"].as_array().unwrap().len(), 10);
    assert_eq!(json["entries"][0]["name"], "writer 10", "newest first");
    let (_, json) = c.get("/guestbook/entries.json?page=2").await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["entries"][1]["name"], "<script>alert(1)</script>",
        "JSON carries the raw text"
    );
    assert_eq!(c.get("/guestbook/entries.json?page=x").await.0, 400);
    assert_eq!(c.get("/guestbook/entries.json?page=0").await.0, 400);
    assert_eq!(c.get("/guestbook/?page=").await.0, 200, "an empty page is the first");
}

#[tokio::test(flavor = "multi_thread")]
async fn guestbook_remembers_the_name_flashes_once_and_refuses_posts_without_the_token() {
    let static_dir = crabcat_tests::repo_root().join("apps/guestbook/static");
    let config = format!(
        "[apps.guestbook]\nstatic_dir = {:?}\n",
        static_dir.display().to_string()
    );
    let c = Container::builder()
        .deploy(&module("guestbook"), "guestbook.so")
        .config(&config)
        .start();
    let mut guest = Guest::new(&c);
    let (_, page) = guest.page("/guestbook/").await;
    assert!(
        page.contains("<link rel=\"stylesheet\" href=\"/guestbook/static/style.css\">"),
        "{page}"
    );
    let (status, css) = c.get("/guestbook/static/style.css").await;
    assert_eq!(status, 200);
    assert!(css.contains(".flash"), "{css}");
    assert_eq!(guest.csrf.len(), 64, "the form carries the session's token");

    // No token, a wrong token, another visitor's token, no cookie: 403,
    // and nothing stored.
    let good = guest.csrf.clone();
    for csrf in ["", "0".repeat(64).as_str()] {
        guest.csrf = csrf.to_owned();
        assert_eq!(guest.sign("Mallory", "forged").await.status(), 403, "token {csrf:?}");
    }
    let mut other = Guest::new(&c);
    other.page("/guestbook/").await;
    other.csrf = good.clone();
    assert_eq!(other.sign("Mallory", "stolen token").await.status(), 403);
    let mut no_cookie = Guest::new(&c);
    no_cookie.csrf = good.clone();
    assert_eq!(no_cookie.sign("Mallory", "no session").await.status(), 403);
    assert!(
        !c.get("/guestbook/entries.json").await.1.contains("Mallory"),
        "nothing forged was stored"
    );

    guest.csrf = good;
    assert_eq!(guest.sign("Ferris", "Hello!").await.status(), 303);
    let (_, page) = guest.page("/guestbook/").await;
    assert!(
        page.contains("<p class=\"flash\" role=\"status\">Thank you for signing, Ferris!</p>"),
        "{page}"
    );
    assert!(
        page.contains("name=\"name\" maxlength=\"80\" required value=\"Ferris\""),
        "name remembered: {page}"
    );
    let (_, page) = guest.page("/guestbook/").await;
    assert!(!page.contains("class=\"flash\""), "a flash shows once");

    // The name is still remembered after the app is reloaded.
    let (status, body) = c
        .admin_call(c.admin(reqwest::Method::POST, "/apps/guestbook/reload"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, page) = guest.page("/guestbook/").await;
    assert!(page.contains("required value=\"Ferris\""), "after a reload: {page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guestbook_json_api_answers_problems() {
    let c = Container::builder()
        .deploy(&module("guestbook"), "guestbook.so")
        .start();
    let post = |body: serde_json::Value| c.client().post(c.url("/guestbook/entries.json")).json(&body).send();
    let created = post(serde_json::json!({"name": " Ferris ", "message": "Hi"}))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let entry: serde_json::Value = created.json().await.unwrap();
    assert_eq!(
        (entry["name"].as_str(), entry["id"].as_i64()),
        (Some("Ferris"), Some(1))
    );

    let refused = post(serde_json::json!({"name": "", "message": ""})).await.unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"],
        serde_json::json!(["name is required", "message is required"])
    );
    assert_eq!(body["detail"], "name is required; message is required");

    assert_eq!(
        post(serde_json::json!({"name": 1})).await.unwrap().status(),
        422,
        "wrong shape"
    );
    let not_json = c
        .client()
        .post(c.url("/guestbook/entries.json"))
        .body("{\"name\":")
        .send();
    assert_eq!(not_json.await.unwrap().status(), 415, "no content type");
}
