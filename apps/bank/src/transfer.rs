//! `POST /transfer`: checking the request, and moving the money.
//!
//! The handler runs in a container-managed transaction (the route is
//! `transactional`), so every query here joins it and nothing is committed
//! by hand: the handler's `Ok` commits and its `Err` rolls back, which
//! undoes a debit whose credit failed (or the other way round).

use std::time::{SystemTime, UNIX_EPOCH};

use crabcat_sdk::{Error, Request, Result, log};
use serde::{Deserialize, Serialize};

use crate::unknown_account;

/// The largest amount one transfer may move. Far above any balance, it only
/// keeps `balance + amount` well inside BIGINT when the credit runs first.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// The body as sent, as JSON (`amount` a JSON integer) or as a form
/// (`amount` text that parses as one). Missing fields are caught by
/// [`validate`](Self::validate); an amount that is not an integer never
/// gets this far (`422`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TransferInput {
    from: String,
    to: String,
    amount: Option<i64>,
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

impl TransferInput {
    /// Trims the accounts and checks every field.
    ///
    /// # Errors
    /// `422` for missing or equal accounts, or an amount outside 1 to 10^15.
    pub fn validate(self) -> Result<Transfer> {
        let (from, to) = (self.from.trim().to_owned(), self.to.trim().to_owned());
        if from.is_empty() || to.is_empty() {
            return Err(Error::unprocessable("from and to are required"));
        }
        if from == to {
            return Err(Error::unprocessable("from and to must be different accounts"));
        }
        match self.amount {
            Some(amount) if (1..=MAX_AMOUNT).contains(&amount) => Ok(Transfer { from, to, amount }),
            _ => Err(Error::unprocessable(
                "amount must be a positive integer (at most 10^15)",
            )),
        }
    }
}

impl Transfer {
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
    pub async fn execute(&self, req: &Request) -> Result<Receipt> {
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

    async fn debit(&self, req: &Request) -> Result<()> {
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
            Err(Error::conflict("insufficient funds"))
        } else {
            Err(unknown_account(&self.from))
        }
    }

    async fn credit(&self, req: &Request) -> Result<()> {
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
            Err(unknown_account(&self.to))
        }
    }

    async fn audit(&self, req: &Request) -> Result<()> {
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
    async fn receipt(&self, req: &Request) -> Result<Receipt> {
        let balances: Vec<(String, i64)> = req
            .db()
            .query("SELECT id, balance FROM bank_accounts WHERE id IN ($1, $2)")
            .bind(&self.from)
            .bind(&self.to)
            .fetch_all_as()
            .await?;
        let (mut from_balance, mut to_balance) = (None, None);
        for (id, balance) in balances {
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
            _ => Err(Error::internal("an account vanished during the transfer")),
        }
    }
}

async fn account_exists(req: &Request, id: &str) -> Result<bool> {
    let row = req
        .db()
        .query("SELECT id FROM bank_accounts WHERE id = $1")
        .bind(id)
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

/// Seconds since the Unix epoch (the SQL has no portable clock function).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
