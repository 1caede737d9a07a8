//! The data API against a real SQLite file and (when
//! `CRABCAT_TEST_POSTGRES_URL` / `CRABCAT_TEST_MYSQL_URL` are set) a real
//! PostgreSQL and MySQL/MariaDB database: every call and type, both
//! transaction styles, leak cleanup, permissions, migrations, and faults.

use std::time::{Duration, Instant};

use crabcat_tests::{Container, MyDb, PgDb, module, problem};
use reqwest::Method;

fn probe(url: Option<&str>, extra: &str) -> Container {
    let mut builder = Container::builder()
        .deploy(&module("dataprobe"), "probe.so")
        .config(extra);
    if let Some(url) = url {
        builder = builder.datasource(url);
    }
    builder.start()
}

async fn post(c: &Container, path: &str) -> (u16, String) {
    let response = c.client().post(c.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn data_api(url: Option<&str>) {
    let c = probe(url, "");
    let (status, body) = c.get("/probe/types").await;
    assert_eq!(status, 200, "{body}\n{}", c.logs());
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let full = &json["rows"][0];
    assert_eq!(full["name"], "full");
    assert_eq!(full["score"], -42);
    assert_eq!(full["ratio"], 2.5);
    assert_eq!(full["flag"], true);
    assert_eq!(full["data"], serde_json::json!([0, 1, 255]));
    assert_eq!(full["note"], "ünïcode");
    let empty = &json["rows"][1];
    for column in ["score", "ratio", "flag", "data", "note"] {
        assert_eq!(empty[column], serde_json::Value::Null, "{column}");
    }
    assert_eq!(json["missing_is_none"], true);
    assert_eq!(json["rows_affected"], 1);
    assert_eq!(
        json["columns"],
        serde_json::json!(["id", "name", "score", "ratio", "flag", "data", "note"])
    );

    assert_eq!(post(&c, "/probe/items/unique").await.0, 201);
    let (status, body) = post(&c, "/probe/items/unique").await;
    assert_eq!(
        (status, problem(&body)),
        (409, (409, "conflict".into())),
        "unique violation"
    );
    let (status, body) = c.get("/probe/items/nobody").await;
    assert_eq!(
        (status, problem(&body)),
        (404, (404, "not found".into())),
        "fetch_one of nothing"
    );
    let (status, body) = c.get("/probe/count-blocking").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "3"),
        "blocking API; its own transaction was rolled back"
    );
    assert_eq!(c.get("/probe/count").await, (200, "3".into()));
    let errors = c.log_lines_with(&["database error", "app=\"probe\""]);
    assert!(
        errors.iter().all(|l| !l.contains("INSERT")),
        "SQL stays out of the log line head: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn data_api_on_sqlite() {
    data_api(None).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn data_api_on_postgres() {
    {
        let db = PgDb::create("data_api_on_postgres").await;
        data_api(Some(&db.url)).await;
    }
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn data_api_on_mysql() {
    let db = MyDb::create("data_api_on_mysql").await;
    data_api(Some(&db.url)).await;
}

async fn transactions(url: Option<&str>) {
    let c = probe(url, "");
    let exists = |name: &'static str| {
        let c = &c;
        async move { c.get(&format!("/probe/items/{name}")).await.0 == 200 }
    };
    for (mode, kept) in [("commit", true), ("rollback", false), ("drop", false)] {
        let (status, body) = post(&c, &format!("/probe/tx/{mode}/tx-{mode}")).await;
        assert_eq!(status, 200, "{mode}: {body}");
        let name: &'static str = Box::leak(format!("tx-{mode}").into_boxed_str());
        assert_eq!(exists(name).await, kept, "programmatic {mode}");
    }
    assert_eq!(post(&c, "/probe/tx/leak/tx-leak").await.0, 200);
    assert!(
        !exists("tx-leak").await,
        "a leaked transaction is rolled back at the end of the request"
    );
    assert_eq!(
        c.wait_for_log_lines(&["left transactions open", "leaked=1"], 1, Duration::from_secs(5))
            .len(),
        1,
        "{}",
        c.logs()
    );

    for (mode, status, kept) in [
        ("ok", 200, true),
        ("fail", 400, false),
        ("err", 500, false),
        ("panic", 500, false),
    ] {
        let (got, body) = post(&c, &format!("/probe/managed/{mode}/m-{mode}")).await;
        assert_eq!(got, status, "managed {mode}: {body}");
        let name: &'static str = Box::leak(format!("m-{mode}").into_boxed_str());
        assert_eq!(exists(name).await, kept, "managed {mode}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_on_sqlite() {
    transactions(None).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn transactions_on_postgres() {
    {
        let db = PgDb::create("transactions_on_postgres").await;
        transactions(Some(&db.url)).await;
    }
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn transactions_on_mysql() {
    let db = MyDb::create("transactions_on_mysql").await;
    // `mariadb://` is an alias of `mysql://`.
    let url = db.url.replacen("mysql://", "mariadb://", 1);
    transactions(Some(&url)).await;
}

/// Runs `sql` with `params` through the probe's `/sql` route.
async fn sql(c: &Container, sql: &str, params: serde_json::Value, execute: bool) -> serde_json::Value {
    let body = serde_json::json!({ "sql": sql, "params": params, "execute": execute });
    let response = c.client().post(c.url("/probe/sql")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// What only MySQL has: the `$N` → `?` rewrite end to end, its column
/// types (unsigned, TINYINT(1), binary collations, ENUM, YEAR; DECIMAL and
/// DATETIME refused with a hint), and `last_insert_id`.
#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn mysql_placeholders_and_types() {
    let db = MyDb::create("mysql_placeholders_and_types").await;
    let c = probe(Some(&db.url), "");
    let create = "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, u BIGINT UNSIGNED, i INT UNSIGNED, \
                  b TINYINT(1), d DECIMAL(10, 2), at DATETIME, bin VARCHAR(9) COLLATE utf8mb4_bin, vb VARBINARY(4), \
                  e ENUM('a', 'b'), y YEAR, f FLOAT)";
    assert_eq!(sql(&c, create, serde_json::json!([]), true).await["rows_affected"], 0);
    let insert = "INSERT INTO t (u, i, b, d, at, bin, vb, e, y, f) \
                  VALUES ($1, $2, $3, 1.5, '2024-01-02 03:04:05', $4, X'00FF', 'b', 2024, $5)";
    for (id, b) in [(1, 1), (2, 2)] {
        let done = sql(&c, insert, serde_json::json!([5, 4294967295u64, b, "Ab", 1.5]), true).await;
        assert_eq!(
            done,
            serde_json::json!({"rows_affected": 1, "last_insert_id": id}),
            "{done}"
        );
    }
    let rows = sql(
        &c,
        "SELECT u, i, b, bin, vb, e, y, f FROM t ORDER BY id",
        serde_json::json!([]),
        false,
    )
    .await;
    assert_eq!(
        rows["rows"],
        serde_json::json!([
            [5, 4294967295u64, true, "Ab", {"bytes": [0, 255]}, "b", 2024, 1.5],
            [5, 4294967295u64, 2, "Ab", {"bytes": [0, 255]}, "b", 2024, 1.5],
        ]),
        "{rows}"
    );
    for (column, kind) in [("d", "DECIMAL"), ("at", "DATETIME")] {
        let got = sql(&c, &format!("SELECT {column} FROM t"), serde_json::json!([]), false).await;
        assert_eq!(got["error"], "Decode", "{got}");
        let message = got["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("type {kind} is not supported; cast it")),
            "{message}"
        );
    }
    let got = sql(
        &c,
        "SELECT CAST(18446744073709551615 AS UNSIGNED) AS big",
        serde_json::json!([]),
        false,
    )
    .await;
    assert!(got["message"].as_str().unwrap().contains("does not fit"), "{got}");

    let reordered = "SELECT $2 AS a, '$1' AS lit, `id` AS `$1`, $1 AS b /* $3 */, $2 AS c -- $3\n FROM t WHERE id = 1";
    let got = sql(&c, reordered, serde_json::json!(["x", "y"]), false).await;
    assert_eq!(got["rows"], serde_json::json!([["y", "$1", 1, "x", "y"]]), "{got}");
    for (bad, params, says) in [
        ("SELECT ?", serde_json::json!([1]), "not ?"),
        ("SELECT $2", serde_json::json!([1]), "uses $2 but 1 values were bound"),
        ("SELECT $0", serde_json::json!([]), "start at $1"),
    ] {
        let got = sql(&c, bad, params, false).await;
        assert_eq!(got["error"], "Other", "{bad}: {got}");
        assert!(got["message"].as_str().unwrap().contains(says), "{bad}: {got}");
    }
}

/// `statement_timeout` reaches MariaDB (`max_statement_time`), and a
/// statement it cancels is a `Timeout`.
#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn mysql_statement_timeout_is_a_timeout() {
    let db = MyDb::create("mysql_statement_timeout_is_a_timeout").await;
    let c = probe(Some(&db.url), "[datasources.default]\nstatement_timeout = \"300ms\"\n");
    let started = Instant::now();
    let got = sql(&c, "SELECT SLEEP(5) AS slept", serde_json::json!([]), false).await;
    assert_eq!(got["error"], "Timeout", "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn apps_may_only_use_granted_datasources() {
    let dir = tempfile::tempdir().unwrap();
    let other = format!("sqlite://{}/other.db", dir.path().display());
    let c = probe(None, &format!("[datasources.other]\nurl = {other:?}\n"));
    let (status, body) = c.get("/probe/other").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("denied: app probe is not granted other"), "{body}");

    let c = probe(
        None,
        &format!("[datasources.other]\nurl = {other:?}\n[apps.probe]\ndatasources = [\"default\", \"other\"]\n"),
    );
    assert_eq!(c.get("/probe/other").await, (200, "allowed".into()));
}

async fn migrations(url: Option<&str>) {
    let builder = Container::builder().deploy(&module("dataprobe"), "probe.so");
    let mut builder = builder;
    if let Some(url) = url {
        builder = builder.datasource(url);
    }
    let c = builder.start();
    assert_eq!(post(&c, "/probe/items/kept").await.0, 201);

    let upload = |package: &str| {
        c.admin(Method::PUT, "/apps/probe")
            .body(std::fs::read(module(package)).unwrap())
    };
    let (status, json) = c.admin_call(upload("dataprobe-edited")).await;
    assert_eq!(status, 400);
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("migration 1 (create probe_items) of app probe was edited after it was applied"),
        "{error}"
    );

    let (status, json) = c.admin_call(upload("dataprobe-failing")).await;
    assert_eq!(status, 400);
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("migration 2 (half a migration) of app probe failed"),
        "{error}"
    );
    assert_eq!(
        c.get("/probe/items/kept").await.0,
        200,
        "the old version and its data are untouched"
    );

    // Nothing of the failed migration stayed: its table does not exist.
    let (status, _) = c.get("/probe/count").await;
    assert_eq!(status, 200);
    let (_, json) = c.admin_call(upload("dataprobe-failing")).await;
    assert!(
        json["error"].as_str().unwrap().contains("migration 2"),
        "still pending, not half-applied: {json}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_on_sqlite() {
    migrations(None).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn migrations_on_postgres() {
    {
        let db = PgDb::create("migrations_on_postgres").await;
        migrations(Some(&db.url)).await;
    }
}

#[cfg_attr(not(mysql_tests), ignore = "set CRABCAT_TEST_MYSQL_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn migrations_on_mysql() {
    let db = MyDb::create("migrations_on_mysql").await;
    migrations(Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_answers_503_after_the_acquire_timeout() {
    let c = probe(
        None,
        "[datasources.default]\nmax_connections = 1\nacquire_timeout = \"300ms\"\n",
    );
    let holder = {
        let (client, url) = (c.client().clone(), c.url("/probe/hold?ms=3000"));
        tokio::spawn(async move { client.post(url).send().await.unwrap().status().as_u16() })
    };
    // Wait until the holder has the only connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let response = c.client().get(c.url("/probe/count")).send().await.unwrap();
        let status = response.status().as_u16();
        if status == 503 {
            assert_eq!(
                response.headers()["retry-after"],
                "1",
                "a pool timeout says when to retry"
            );
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_millis(250),
                "answered after {waited:?}, before the acquire timeout"
            );
            assert!(waited < Duration::from_secs(3), "answered after {waited:?}");
            break;
        }
        assert!(Instant::now() < deadline, "never exhausted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(holder.await.unwrap(), 200);
    assert_eq!(c.get("/probe/count").await.0, 200, "the pool serves again");
}

#[tokio::test]
async fn an_unreachable_database_fails_only_the_apps_that_need_it() {
    let c = Container::builder()
        .deploy(&module("dataprobe"), "probe.so")
        .deploy(&module("hello"), "hello.so")
        .datasource("postgres://postgres@127.0.0.1:1/nowhere")
        .config("[datasources.default]\nacquire_timeout = \"500ms\"\n")
        .start();
    assert_eq!(c.get("/hello/").await.0, 200);
    assert_eq!(c.get("/probe/count").await.0, 503);
    let line = c.log_lines_with(&["deployment failed", "probe.so"]);
    assert_eq!(line.len(), 1, "{}", c.logs());
    assert!(
        line[0].contains("migrations failed") && line[0].contains("cannot prepare datasource default"),
        "{}",
        line[0]
    );
}

#[cfg_attr(not(postgres_tests), ignore = "set CRABCAT_TEST_POSTGRES_URL to run it")]
#[tokio::test(flavor = "multi_thread")]
async fn requests_get_503_while_postgres_is_gone_and_recover() {
    let db = PgDb::create("requests_get_503_while_postgres_is_gone_and_recover").await;
    let c = Container::builder()
        .deploy(&module("dataprobe"), "probe.so")
        .deploy(&module("hello"), "hello.so")
        .datasource(&db.url)
        .config("[datasources.default]\nacquire_timeout = \"1s\"\n")
        .start();
    assert_eq!(c.get("/probe/count").await, (200, "0".into()));

    // The database goes away: no new connections, existing ones killed.
    db.execute("ALTER DATABASE {db} ALLOW_CONNECTIONS false").await;
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        .await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = c.get("/probe/count").await;
        assert_eq!((status, problem(&body)), (503, (503, "database unavailable".into())));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(c.get("/hello/").await.0, 200, "other apps serve on");
    assert!(
        !c.wait_for_log_lines(&["database error", "app=\"probe\""], 1, Duration::from_secs(5))
            .is_empty()
    );

    // It comes back: the pool recovers by itself.
    db.execute("ALTER DATABASE {db} ALLOW_CONNECTIONS true").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = c.get("/probe/count").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the pool did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
