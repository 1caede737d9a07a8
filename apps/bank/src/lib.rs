//! # bank — transfers in a container-managed transaction
//!
//! Shows the data API where correctness matters: migrations (schema, then
//! seed data), a `transactional` route whose queries all run in one
//! transaction that the handler's `Ok` commits and its `Err` rolls back, a guarded debit (`… AND balance >= $1`) that cannot
//! overdraw, row-lock ordering against deadlocks, an audit trail, rows
//! decoded into structs with serde, one body type read from JSON or a form
//! (`JsonOrForm`), errors as RFC 9457 problem documents with fitting
//! statuses, and a `blocking` route using the `_blocking` query variants. It uses the app's default datasource
//! (embedded SQLite unless configured otherwise); the queries run unchanged
//! on SQLite, PostgreSQL and MySQL/MariaDB (where the backends differ, the
//! migrations have variants: the DDL, and the views of the totals).
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
//! curl localhost:8080/bank/accounts/zed      # 404 {"type":"about:blank","title":"Not Found","status":404,"detail":"unknown account zed"}
//! curl localhost:8080/bank/balance           # {"total":5000,"accounts":5}
//! curl -H 'content-type: application/json' -d '{"from":"alice","to":"bob","amount":250}' localhost:8080/bank/transfer
//!     # {"from":"alice","to":"bob","amount":250,"from_balance":750,"to_balance":1250}
//! curl -d from=bob -d to=carol -d amount=100 localhost:8080/bank/transfer   # the same as a form
//! curl -H 'content-type: application/json' -d '{"from":"alice","to":"bob","amount":5000}' localhost:8080/bank/transfer
//!     # 409 {"type":"about:blank","title":"Conflict","status":409,"detail":"insufficient funds"}, nothing changed
//! curl -H 'content-type: application/json' -d '{"from":"alice","to":"zed","amount":1}' localhost:8080/bank/transfer
//!     # 404 {…,"status":404,"detail":"unknown account zed"}, alice's debit rolled back
//! curl 'localhost:8080/bank/audit?limit=5'   # [{"id":2,"from":"bob","to":"carol","amount":100,"created_at":1714567890},…]
//! curl localhost:8080/bank/report            # plain-text totals, from a blocking handler
//! ```
//!
//! `POST /transfer` takes JSON (`content-type: application/json`, `amount`
//! a JSON integer) or a form (`application/x-www-form-urlencoded`); another
//! content type is a `415`. A JSON body that does not parse is a `400`;
//! values of the wrong type (an `amount` that is not an integer), missing
//! accounts, `from` equal to `to`, or an amount outside 1 to 10^15 are a
//! `422`. `GET /audit?limit=N` takes 1 to 100 (default 20), else `400`.
//! Every error is an `application/problem+json` document. `created_at` is
//! Unix seconds (UTC).

#![forbid(unsafe_code)]

mod transfer;

use std::fmt::Write as _;

use crabcat_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use transfer::{Receipt, TransferInput};

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
        .postgres(include_str!("../migrations/0001_create_tables.postgres.sql"))
        .mysql(include_str!("../migrations/0001_create_tables.mysql.sql")),
        Migration::new(
            2,
            "seed five accounts",
            include_str!("../migrations/0002_seed_accounts.sql"),
        ),
        Migration::new(
            3,
            "views of the totals",
            include_str!("../migrations/0003_totals_views.sql"),
        )
        .mysql(include_str!("../migrations/0003_totals_views.mysql.sql")),
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

/// An account, as stored and as listed.
#[derive(Debug, Deserialize, Serialize)]
struct Account {
    id: String,
    owner: String,
    balance: i64,
}

/// One audit row.
#[derive(Debug, Deserialize, Serialize)]
struct AuditEntry {
    id: i64,
    #[serde(rename(deserialize = "from_account"))]
    from: String,
    #[serde(rename(deserialize = "to_account"))]
    to: String,
    amount: i64,
    created_at: i64,
}

/// The money in the bank.
#[derive(Debug, Deserialize, Serialize)]
struct Balance {
    total: i64,
    accounts: i64,
}

/// `GET /audit?limit=N`.
#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
}

const ACCOUNTS_SQL: &str = "SELECT id, owner, balance FROM bank_accounts ORDER BY id";

/// `404`: no account `id`.
pub(crate) fn unknown_account(id: &str) -> Error {
    Error::not_found(format!("unknown account {id}"))
}

impl Bank {
    /// `GET /accounts`: every account, by id.
    async fn accounts(req: Request) -> Result<Json<Vec<Account>>> {
        Ok(Json(req.db().query(ACCOUNTS_SQL).fetch_all_as().await?))
    }

    /// `GET /accounts/{id}`: one account, or `404`.
    async fn account(Path(id): Path<String>, req: Request) -> Result<Json<Account>> {
        let account = req
            .db()
            .query("SELECT id, owner, balance FROM bank_accounts WHERE id = $1")
            .bind(&id)
            .fetch_optional_as()
            .await?;
        account.map(Json).ok_or_else(|| unknown_account(&id))
    }

    /// `GET /balance`: the money in the bank and the number of accounts.
    async fn balance(req: Request) -> Result<Json<Balance>> {
        // A view (migration 3): SUM(BIGINT) is NUMERIC on PostgreSQL and
        // DECIMAL on MySQL, cast back to BIGINT in each backend's spelling.
        let balance = req
            .db()
            .query("SELECT total, accounts FROM bank_totals")
            .fetch_one_as()
            .await?;
        Ok(Json(balance))
    }

    /// `POST /transfer`, in a container-managed transaction: `Ok` commits,
    /// and any `Err` returned here rolls back everything it did.
    async fn transfer(JsonOrForm(input): JsonOrForm<TransferInput>, req: Request) -> Result<Json<Receipt>> {
        let transfer = input.validate()?;
        Ok(Json(transfer.execute(&req).await?))
    }

    /// `GET /audit?limit=N`: the latest transfers, newest first.
    async fn audit(Query(query): Query<AuditQuery>, req: Request) -> Result<Json<Vec<AuditEntry>>> {
        let limit = query.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
        if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
            return Err(Error::bad_request("limit must be an integer from 1 to 100"));
        }
        let entries = req
            .db()
            .query("SELECT id, from_account, to_account, amount, created_at FROM bank_audit ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all_as()
            .await?;
        Ok(Json(entries))
    }

    /// `GET /report`: plain-text totals. A blocking handler, so it uses the
    /// `_blocking` query variants. The totals are summed from the very rows
    /// listed, so they agree even while transfers run.
    fn report(req: Request) -> Result<String> {
        let db = req.db();
        let accounts: Vec<Account> = db.query(ACCOUNTS_SQL).fetch_all_as_blocking()?;
        let (count, volume) = db
            .query("SELECT transfers, volume FROM bank_audit_totals")
            .fetch_one_as_blocking()?;
        Ok(report_text(&accounts, count, volume))
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

crabcat_sdk::export_app!(Bank);
