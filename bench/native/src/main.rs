//! The native reference for `bench/run.sh` and `bench/ws.sh`: the same
//! endpoints, SQL and pool settings as `apps/bench`, and the same WebSocket
//! room (see `room.rs`), with no module boundary.
//!
//! `bench-native ADDR DATABASE_URL` (e.g. `127.0.0.1:9000 sqlite://bench.db`).
//! It applies the bench app's migrations itself if the tables are missing.

mod room;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, SERVER};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};

/// The same pools, with the same settings, as the container's datasources.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code on either pool.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

struct Bench {
    pool: Pool,
    seed: AtomicU64,
}

#[derive(Serialize)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

#[derive(Deserialize)]
struct Queries {
    queries: Option<String>,
}

fn count(q: &Queries) -> usize {
    q.queries
        .as_deref()
        .and_then(|q| q.parse().ok())
        .unwrap_or(1)
        .clamp(1, 500)
}

impl Bench {
    fn random_id(&self) -> i32 {
        let mut x = self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x % 10_000) as i32 + 1
    }

    async fn world(&self, id: i32) -> Result<World, sqlx::Error> {
        let sql = "SELECT id, randomnumber FROM world WHERE id = $1";
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sql).bind(id).fetch_one(p).await?;
            Ok(World {
                id: row.try_get(0)?,
                random_number: row.try_get(1)?,
            })
        })
    }
}

fn respond(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    ([(CONTENT_TYPE, content_type), (SERVER, "native")], body.into()).into_response()
}

fn json<T: Serialize>(value: &T) -> Response {
    respond("application/json", serde_json::to_vec(value).expect("serialisable"))
}

fn failed(error: sqlx::Error) -> Response {
    eprintln!("database error: {error}");
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
}

async fn plaintext() -> Response {
    respond("text/plain", "Hello, World!")
}

async fn json_message() -> Response {
    json(&serde_json::json!({"message": "Hello, World!"}))
}

async fn db(State(b): State<Arc<Bench>>) -> Response {
    b.world(b.random_id()).await.map_or_else(failed, |w| json(&w))
}

async fn queries(State(b): State<Arc<Bench>>, Query(q): Query<Queries>) -> Response {
    let mut worlds = Vec::with_capacity(count(&q));
    for _ in 0..worlds.capacity() {
        match b.world(b.random_id()).await {
            Ok(w) => worlds.push(w),
            Err(e) => return failed(e),
        }
    }
    json(&worlds)
}

async fn updates(State(b): State<Arc<Bench>>, Query(q): Query<Queries>) -> Response {
    let mut worlds = Vec::with_capacity(count(&q));
    for _ in 0..worlds.capacity() {
        match b.world(b.random_id()).await {
            Ok(mut w) => {
                w.random_number = b.random_id();
                worlds.push(w);
            }
            Err(e) => return failed(e),
        }
    }
    for w in &worlds {
        let sql = "UPDATE world SET randomnumber = $1 WHERE id = $2";
        let result =
            on_pool!(&b.pool, p => sqlx::query(sql).bind(w.random_number).bind(w.id).execute(p).await.map(drop));
        if let Err(e) = result {
            return failed(e);
        }
    }
    json(&worlds)
}

async fn fortunes(State(b): State<Arc<Bench>>) -> Response {
    let sql = "SELECT id, message FROM fortune";
    let rows: Result<Vec<(i64, String)>, sqlx::Error> = on_pool!(&b.pool, p => async {
        sqlx::query(sql)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| Ok((i64::from(r.try_get::<i32, _>(0)?), r.try_get(1)?)))
            .collect()
    }.await);
    let mut fortunes = match rows {
        Ok(rows) => rows,
        Err(e) => return failed(e),
    };
    fortunes.push((0, "Additional fortune added at request time.".to_owned()));
    fortunes.sort_by(|a, b| a.1.cmp(&b.1));
    let mut html = String::with_capacity(2048);
    html.push_str(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, message) in &fortunes {
        html.push_str(&format!("<tr><td>{id}</td><td>{}</td></tr>", escape(message)));
    }
    html.push_str("</table></body></html>");
    respond("text/html; charset=utf-8", html)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

async fn migrate(pool: &Pool) -> Result<(), sqlx::Error> {
    let probe = "SELECT 1 FROM world WHERE id = 1";
    if on_pool!(pool, p => sqlx::query(probe).fetch_optional(p).await.is_ok()) {
        return Ok(());
    }
    let world = match pool {
        Pool::Postgres(_) => include_str!("../../../apps/bench/migrations/0001_world.postgres.sql"),
        Pool::Sqlite(_) => include_str!("../../../apps/bench/migrations/0001_world.sql"),
    };
    for sql in [world, include_str!("../../../apps/bench/migrations/0002_fortune.sql")] {
        on_pool!(pool, p => sqlx::raw_sql(sql).execute(p).await.map(drop))?;
    }
    Ok(())
}

/// The container's default datasource settings.
fn connect(url: &str) -> Pool {
    use std::str::FromStr;
    let (max, acquire) = (10, Duration::from_secs(5));
    if url.starts_with("postgres") {
        let options = PgConnectOptions::from_str(url)
            .expect("a PostgreSQL URL")
            .options([("statement_timeout", "30000")]);
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(acquire)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1800))
            .connect_lazy_with(options);
        Pool::Postgres(pool)
    } else {
        let options = SqliteConnectOptions::from_str(url)
            .expect("a SQLite URL")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(acquire);
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(acquire)
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1800))
            .connect_lazy_with(options);
        Pool::Sqlite(pool)
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let url = args.next().unwrap_or_else(|| "sqlite://bench-native.db".to_owned());
    let pool = connect(&url);
    migrate(&pool).await.expect("create the tables");
    let state = Arc::new(Bench {
        pool,
        seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
    });
    let app = Router::new()
        .route("/plaintext", get(plaintext))
        .route("/json", get(json_message))
        .route("/db", get(db))
        .route("/queries", get(queries))
        .route("/updates", get(updates))
        .route("/fortunes", get(fortunes))
        .with_state(state)
        .route(
            "/ws/room/{room}",
            get(room::room).with_state(Arc::new(room::Rooms::default())),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!(
        "bench-native listening addr={}",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
}
