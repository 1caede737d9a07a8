//! # bank — transfers in a container-managed transaction
//!
//! Shows the data API where correctness matters: migrations (schema, then
//! seed data), a `transactional` route whose queries all run in one
//! transaction that the container commits on success and rolls back on an
//! error status, a guarded debit (`… AND balance >= $1`) that cannot
//! overdraw, row-lock ordering against deadlocks, an audit trail, JSON
//! errors with fitting statuses, and a `blocking` route using the
//! `_blocking` query variants. It uses the app's default datasource
//! (embedded SQLite unless configured otherwise); the SQL runs unchanged on
//! SQLite and PostgreSQL.
//!
//! Money is whole units (think cents): balances and amounts are integers,
//! never fractions. Five accounts are seeded — `alice`, `bob`, `carol`,
//! `dave` and `erin` — with 1000 each; no route creates money, so the total
//! stays 5000.
//!
//! Build and deploy (from the repository root):
//!
//! ```text
//! cargo build -p bank && cp target/debug/libbank.so deploy/.bank.so.tmp && mv deploy/.bank.so.tmp deploy/bank.so
//! ```
//!
//! Then:
//!
//! ```text
//! curl localhost:8080/bank/accounts          # [{"id":"alice","owner":"Alice","balance":1000},…]
//! curl localhost:8080/bank/accounts/alice    # {"id":"alice","owner":"Alice","balance":1000}
//! curl localhost:8080/bank/accounts/zed      # 404 {"error":"unknown account zed"}
//! curl localhost:8080/bank/balance           # {"total":5000,"accounts":5}
//! curl -H 'content-type: application/json' -d '{"from":"alice","to":"bob","amount":250}' localhost:8080/bank/transfer
//!     # {"from":"alice","to":"bob","amount":250,"from_balance":750,"to_balance":1250}
//! curl -d from=bob -d to=carol -d amount=100 localhost:8080/bank/transfer   # the same as a form
//! curl -H 'content-type: application/json' -d '{"from":"alice","to":"bob","amount":5000}' localhost:8080/bank/transfer
//!     # 409 {"error":"insufficient funds"}, nothing changed
//! curl -H 'content-type: application/json' -d '{"from":"alice","to":"zed","amount":1}' localhost:8080/bank/transfer
//!     # 404 {"error":"unknown account zed"}, alice's debit rolled back
//! curl 'localhost:8080/bank/audit?limit=5'   # [{"id":2,"from":"bob","to":"carol","amount":100,"created_at":1714567890},…]
//! curl localhost:8080/bank/report            # plain-text totals, from a blocking handler
//! ```
//!
//! `POST /transfer` takes JSON (`amount` a JSON integer) or, with
//! `content-type: application/x-www-form-urlencoded`, a form. A body that
//! does not parse is a `400`; missing accounts, `from` equal to `to`, or an
//! amount that is not an integer from 1 to 10^15 are a `422`. Every error is
//! `{"error": "…"}`. `created_at` is Unix seconds (UTC).

#![forbid(unsafe_code)]

mod transfer;

use std::fmt::Write as _;
use std::sync::Arc;

use crabcat_sdk::prelude::*;
use serde::Serialize;
use serde_json::json;

use transfer::{Receipt, Transfer};

/// `GET /audit` without `limit`.
const DEFAULT_AUDIT_LIMIT: i64 = 20;
/// The most rows `GET /audit` returns.
const MAX_AUDIT_LIMIT: i64 = 100;

struct Bank;

impl App for Bank {
    const MIGRATIONS: &'static [Migration] = &[
        Migration::new(
            1,
            "create bank_accounts and bank_audit",
            include_str!("../migrations/0001_create_tables.sql"),
        )
        .postgres(include_str!("../migrations/0001_create_tables.postgres.sql")),
        Migration::new(
            2,
            "seed five accounts",
            include_str!("../migrations/0002_seed_accounts.sql"),
        ),
    ];

    fn init(ctx: &InitContext) -> Result<Self> {
        log::info!("bank initialised at {:?}", ctx.context_path());
        Ok(Bank)
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/accounts", Self::accounts)
            .get("/accounts/{id}", Self::account)
            .get("/balance", Self::balance)
            .post("/transfer", transactional(Self::transfer))
            .get("/audit", Self::audit)
            .get("/report", blocking(Self::report));
    }

    fn destroy(&self) {
        log::info!("bank destroyed");
    }
}

/// An account, as listed.
#[derive(Debug, Serialize)]
struct Account {
    id: String,
    owner: String,
    balance: i64,
}

impl Account {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Account {
            id: row.get("id")?,
            owner: row.get("owner")?,
            balance: row.get("balance")?,
        })
    }
}

/// One audit row.
#[derive(Debug, Serialize)]
struct AuditEntry {
    id: i64,
    from: String,
    to: String,
    amount: i64,
    created_at: i64,
}

impl AuditEntry {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(AuditEntry {
            id: row.get("id")?,
            from: row.get("from_account")?,
            to: row.get("to_account")?,
            amount: row.get("amount")?,
            created_at: row.get("created_at")?,
        })
    }
}

const ACCOUNTS_SQL: &str = "SELECT id, owner, balance FROM bank_accounts ORDER BY id";

impl Bank {
    /// `GET /accounts`: every account, by id.
    async fn accounts(self: Arc<Self>, req: Request) -> Result<Json<Vec<Account>>, ApiError> {
        let rows = req.db().query(ACCOUNTS_SQL).fetch_all().await?;
        let accounts = rows.iter().map(Account::from_row).collect::<Result<_, _>>()?;
        Ok(Json(accounts))
    }

    /// `GET /accounts/{id}`: one account, or `404`.
    async fn account(self: Arc<Self>, req: Request) -> Result<Json<Account>, ApiError> {
        let id = req.param("id").unwrap_or_default();
        let row = req
            .db()
            .query("SELECT id, owner, balance FROM bank_accounts WHERE id = $1")
            .bind(id)
            .fetch_optional()
            .await?
            .ok_or_else(|| ApiError::unknown_account(id))?;
        Ok(Json(Account::from_row(&row)?))
    }

    /// `GET /balance`: the money in the bank and the number of accounts.
    async fn balance(self: Arc<Self>, req: Request) -> Result<Json<serde_json::Value>, ApiError> {
        // SUM(BIGINT) is NUMERIC on PostgreSQL: cast it back.
        let row = req
            .db()
            .query("SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS total, COUNT(*) AS accounts FROM bank_accounts")
            .fetch_one()
            .await?;
        let total: i64 = row.get("total")?;
        let accounts: i64 = row.get("accounts")?;
        Ok(Json(json!({ "total": total, "accounts": accounts })))
    }

    /// `POST /transfer`, in a container-managed transaction: any error
    /// status returned here rolls back everything it did.
    async fn transfer(self: Arc<Self>, req: Request) -> Result<Json<Receipt>, ApiError> {
        let transfer = Transfer::from_request(&req)?;
        Ok(Json(transfer.execute(&req).await?))
    }

    /// `GET /audit?limit=N`: the latest transfers, newest first.
    async fn audit(self: Arc<Self>, req: Request) -> Result<Json<Vec<AuditEntry>>, ApiError> {
        let limit = audit_limit(&req)?;
        let rows = req
            .db()
            .query("SELECT id, from_account, to_account, amount, created_at FROM bank_audit ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all()
            .await?;
        let entries = rows.iter().map(AuditEntry::from_row).collect::<Result<_, _>>()?;
        Ok(Json(entries))
    }

    /// `GET /report`: plain-text totals. A blocking handler, so it uses the
    /// `_blocking` query variants. The totals are summed from the very rows
    /// listed, so they agree even while transfers run.
    fn report(&self, req: Request) -> Result<Response> {
        let db = req.db();
        let accounts = db
            .query(ACCOUNTS_SQL)
            .fetch_all_blocking()?
            .iter()
            .map(Account::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let transfers = db
            .query("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS volume FROM bank_audit")
            .fetch_one_blocking()?;
        let (count, volume): (i64, i64) = (transfers.get("n")?, transfers.get("volume")?);
        Ok(Response::text(report_text(&accounts, count, volume)))
    }
}

fn report_text(accounts: &[Account], transfers: i64, volume: i64) -> String {
    let total: i64 = accounts.iter().map(|a| a.balance).sum();
    let mut text = format!(
        "accounts:  {}\ntotal:     {total}\ntransfers: {transfers} (moving {volume} in all)\n\n",
        accounts.len()
    );
    for account in accounts {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{:<12} {:<16} {:>12}", account.id, account.owner, account.balance);
    }
    text
}

/// The `limit` query parameter: 1 to 100, 20 if missing or empty.
fn audit_limit(req: &Request) -> Result<i64, ApiError> {
    match req.query("limit").as_deref().map(str::trim) {
        None | Some("") => Ok(DEFAULT_AUDIT_LIMIT),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_LIMIT).contains(n))
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "limit must be an integer from 1 to 100")),
    }
}

/// An error of the JSON API: `{"error": "…"}` with a status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// `404 {"error": "unknown account ID"}`.
    pub(crate) fn unknown_account(id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("unknown account {id}"))
    }

    /// `500` with a generic message; `detail` goes to the log only.
    pub(crate) fn internal(detail: &str) -> Self {
        log::error!("500: {detail}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
}

impl From<Error> for ApiError {
    /// Keeps the status and public message; the detail (`Display`) goes to the log.
    fn from(error: Error) -> Self {
        if error.status().is_server_error() {
            log::error!("{} {}: {error}", error.status().as_u16(), error.message());
        } else {
            log::info!("{} {}: {error}", error.status().as_u16(), error.message());
        }
        ApiError::new(error.status(), error.message())
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        Error::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

crabcat_sdk::export_app!(Bank);
