//! `POST /transfer`: reading the request, and moving the money.
//!
//! The handler runs in a container-managed transaction (the route is
//! `transactional`), so every query here joins it and nothing is committed
//! by hand: a response below 400 commits, an error status rolls back, which
//! undoes a debit whose credit failed (or the other way round).

use std::time::{SystemTime, UNIX_EPOCH};

use crabcat_sdk::{Request, StatusCode, log};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The largest amount one transfer may move. Far above any balance, it only
/// keeps `balance + amount` well inside BIGINT when the credit runs first.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// The body as sent: JSON `{"from","to","amount"}` (amount a JSON integer)
/// or a form (amount text). Missing fields are caught by validation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTransfer<A> {
    from: String,
    to: String,
    amount: Option<A>,
}

/// A valid transfer request.
#[derive(Debug)]
pub struct Transfer {
    from: String,
    to: String,
    amount: i64,
}

/// What a successful transfer answers.
#[derive(Debug, Serialize)]
pub struct Receipt {
    from: String,
    to: String,
    amount: i64,
    from_balance: i64,
    to_balance: i64,
}

impl Transfer {
    /// Reads a form body if the content type says so, JSON otherwise.
    ///
    /// # Errors
    /// `400` for a body that does not parse, `422` for invalid values.
    pub fn from_request(req: &Request) -> Result<Transfer, ApiError> {
        if is_form(req) {
            let raw: RawTransfer<String> = req.form()?;
            let amount = raw.amount.as_deref().map(|a| a.trim().parse::<i64>().ok());
            Transfer::validate(raw.from, raw.to, amount)
        } else {
            let raw: RawTransfer<serde_json::Value> = req.json()?;
            let amount = raw.amount.as_ref().map(serde_json::Value::as_i64);
            Transfer::validate(raw.from, raw.to, amount)
        }
    }

    /// `amount` is `None` when missing, `Some(None)` when not an integer.
    fn validate(from: String, to: String, amount: Option<Option<i64>>) -> Result<Transfer, ApiError> {
        let (from, to) = (from.trim().to_owned(), to.trim().to_owned());
        let invalid = |message: &str| Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message));
        if from.is_empty() || to.is_empty() {
            return invalid("from and to are required");
        }
        if from == to {
            return invalid("from and to must be different accounts");
        }
        match amount.flatten() {
            Some(amount) if (1..=MAX_AMOUNT).contains(&amount) => Ok(Transfer { from, to, amount }),
            _ => invalid("amount must be a positive integer (at most 10^15)"),
        }
    }

    /// Debits `from`, credits `to`, writes the audit row and reads both
    /// balances back.
    ///
    /// The two updates run in ascending account-id order, whichever is the
    /// debit: concurrent transfers between the same accounts then lock the
    /// rows in the same order on PostgreSQL and cannot deadlock. (SQLite
    /// serialises writers anyway.)
    ///
    /// # Errors
    /// `404` for an unknown account, `409` for insufficient funds, the
    /// mapped status for a database error. The container rolls back.
    pub async fn execute(&self, req: &Request) -> Result<Receipt, ApiError> {
        if self.from < self.to {
            self.debit(req).await?;
            self.credit(req).await?;
        } else {
            self.credit(req).await?;
            self.debit(req).await?;
        }
        self.audit(req).await?;
        log::info!("transfer of {} from {} to {}", self.amount, self.from, self.to);
        self.receipt(req).await
    }

    async fn debit(&self, req: &Request) -> Result<(), ApiError> {
        let done = req
            .db()
            .query("UPDATE bank_accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1")
            .bind(self.amount)
            .bind(&self.from)
            .execute()
            .await?;
        if done.rows_affected > 0 {
            Ok(())
        } else if account_exists(req, &self.from).await? {
            Err(ApiError::new(StatusCode::CONFLICT, "insufficient funds"))
        } else {
            Err(ApiError::unknown_account(&self.from))
        }
    }

    async fn credit(&self, req: &Request) -> Result<(), ApiError> {
        let done = req
            .db()
            .query("UPDATE bank_accounts SET balance = balance + $1 WHERE id = $2")
            .bind(self.amount)
            .bind(&self.to)
            .execute()
            .await?;
        if done.rows_affected > 0 {
            Ok(())
        } else {
            Err(ApiError::unknown_account(&self.to))
        }
    }

    async fn audit(&self, req: &Request) -> Result<(), ApiError> {
        req.db()
            .query("INSERT INTO bank_audit (from_account, to_account, amount, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&self.from)
            .bind(&self.to)
            .bind(self.amount)
            .bind(unix_now())
            .execute()
            .await?;
        Ok(())
    }

    /// The new balances, read inside the same transaction.
    async fn receipt(&self, req: &Request) -> Result<Receipt, ApiError> {
        let rows = req
            .db()
            .query("SELECT id, balance FROM bank_accounts WHERE id IN ($1, $2)")
            .bind(&self.from)
            .bind(&self.to)
            .fetch_all()
            .await?;
        let (mut from_balance, mut to_balance) = (None, None);
        for row in &rows {
            let id: String = row.get("id")?;
            let balance: i64 = row.get("balance")?;
            if id == self.from {
                from_balance = Some(balance);
            } else if id == self.to {
                to_balance = Some(balance);
            }
        }
        match (from_balance, to_balance) {
            (Some(from_balance), Some(to_balance)) => Ok(Receipt {
                from: self.from.clone(),
                to: self.to.clone(),
                amount: self.amount,
                from_balance,
                to_balance,
            }),
            _ => Err(ApiError::internal("an account vanished during the transfer")),
        }
    }
}

async fn account_exists(req: &Request, id: &str) -> Result<bool, ApiError> {
    let row = req
        .db()
        .query("SELECT id FROM bank_accounts WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

fn is_form(req: &Request) -> bool {
    req.header("content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Seconds since the Unix epoch (the SQL has no portable clock function).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
