//! A database of its own for each PostgreSQL and MySQL test, on the
//! servers of `CRABCAT_TEST_POSTGRES_URL` and `CRABCAT_TEST_MYSQL_URL`,
//! dropped afterwards.

/// The PostgreSQL server the tests use, from `CRABCAT_TEST_POSTGRES_URL`
/// (e.g. `postgres://postgres@127.0.0.1:5432/test`).
pub fn postgres_url() -> Option<String> {
    std::env::var("CRABCAT_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A database of its own for one test, dropped afterwards.
pub struct PgDb {
    /// Where to reach it.
    pub url: String,
    name: String,
    server: String,
}

impl PgDb {
    /// A fresh database for test `test` on the server of
    /// `CRABCAT_TEST_POSTGRES_URL`. The PostgreSQL tests are ignored when
    /// it is not set (see `tests/build.rs`); when it is, an unreachable
    /// server fails them: CI must fail, not skip.
    ///
    /// # Panics
    /// If the variable is unset or the server cannot be reached.
    pub async fn create(test: &str) -> PgDb {
        let Some(server) = postgres_url() else {
            panic!("{test} needs CRABCAT_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)");
        };
        let name = unique_name();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("CRABCAT_TEST_POSTGRES_URL={server} is not reachable: {e}"));
        sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        let url = url_with_database(&server, &name);
        PgDb { url, name, server }
    }

    /// Runs one statement in this database (for fault injection).
    pub async fn execute(&self, sql: &str) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.server)
            .await
            .expect("connect");
        let sql = sql.replace("{db}", &self.name);
        sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql))
            .await
            .expect("statement");
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        execute_detached::<sqlx::PgConnection>(self.server.clone(), sql);
    }
}

/// The MySQL or MariaDB server the tests use, from `CRABCAT_TEST_MYSQL_URL`
/// (e.g. `mysql://root@127.0.0.1:3306/test`).
pub fn mysql_url() -> Option<String> {
    std::env::var("CRABCAT_TEST_MYSQL_URL").ok().filter(|s| !s.is_empty())
}

/// A MySQL/MariaDB database of its own for one test, dropped afterwards.
pub struct MyDb {
    /// Where to reach it.
    pub url: String,
    name: String,
    server: String,
}

impl MyDb {
    /// A fresh database for test `test` on the server of
    /// `CRABCAT_TEST_MYSQL_URL`. The MySQL tests are ignored when it is
    /// not set (see `tests/build.rs`); when it is, an unreachable server
    /// fails them: CI must fail, not skip.
    ///
    /// # Panics
    /// If the variable is unset or the server cannot be reached.
    pub async fn create(test: &str) -> MyDb {
        let Some(server) = mysql_url() else {
            panic!("{test} needs CRABCAT_TEST_MYSQL_URL (e.g. mysql://root@127.0.0.1:3306/test)");
        };
        let name = unique_name();
        let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("CRABCAT_TEST_MYSQL_URL={server} is not reachable: {e}"));
        sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        let url = url_with_database(&server, &name);
        MyDb { url, name, server }
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        execute_detached::<sqlx::MySqlConnection>(self.server.clone(), sql);
    }
}

/// A database name no other test (or test run) uses.
fn unique_name() -> String {
    format!("crabcat_t_{}_{:08x}", std::process::id(), rand_u32())
}

/// `server` with its database replaced by `name` (the query string kept).
fn url_with_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, ""), |(b, q)| (b, q));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

/// Runs `sql` on `server` from a thread of its own (for `Drop`, which runs
/// inside a test's runtime), ignoring errors.
fn execute_detached<C: sqlx::Connection>(server: String, sql: String)
where
    for<'c> &'c mut C: sqlx::Executor<'c>,
{
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            if let Ok(mut conn) = C::connect(&server).await {
                let _ = sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql)).await;
            }
        });
    })
    .join();
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    h.finish() as u32
}
