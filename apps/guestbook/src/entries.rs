//! Guestbook entries: validation, and the queries that read and write them.
//!
//! The SQL is the same on SQLite, PostgreSQL and MariaDB: `$n` placeholders, integers
//! bound as `i64` (BIGINT), `RETURNING id` for the new key.

use std::time::{SystemTime, UNIX_EPOCH};

use crabcat_sdk::{DbError, Request, log};
use serde::{Deserialize, Serialize};

/// Entries per page, on the HTML page and in the JSON API.
pub const PER_PAGE: u32 = 10;
/// Longest name, in characters, after trimming.
pub const NAME_MAX: usize = 80;
/// Longest message, in characters, after trimming.
pub const MESSAGE_MAX: usize = 1000;

/// A stored entry, decoded from its row by column name; also its JSON form.
#[derive(Debug, Deserialize, Serialize)]
pub struct Entry {
    pub id: i64,
    pub name: String,
    pub message: String,
    /// Unix seconds (UTC).
    pub created_at: i64,
}

/// One page of entries, newest first; also the JSON answer of `GET /entries.json`.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub page: u32,
    pub per_page: u32,
    /// Entries in the whole guestbook.
    pub total: i64,
    pub entries: Vec<Entry>,
}

impl Listing {
    /// Whether a page of more recent entries exists.
    pub fn has_newer(&self) -> bool {
        self.page > 1
    }

    /// Whether a page of older entries exists.
    pub fn has_older(&self) -> bool {
        i64::from(self.page) * i64::from(self.per_page) < self.total
    }

    /// The number of pages (at least 1, even when the guestbook is empty).
    pub fn pages(&self) -> i64 {
        let per_page = i64::from(self.per_page);
        ((self.total + per_page - 1) / per_page).max(1)
    }
}

/// What a visitor submitted (form or JSON). Missing fields are empty, so
/// they fail validation (422) instead of parsing (400).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EntryInput {
    pub name: String,
    pub message: String,
    /// The form's CSRF token (the HTML form sends it; the JSON API, which
    /// a page of another site cannot call without CORS, does not need it).
    pub csrf: String,
}

/// A validated entry, ready to store.
#[derive(Debug)]
pub struct NewEntry {
    name: String,
    message: String,
}

impl EntryInput {
    /// Trims both fields and checks them; the error lists every problem.
    ///
    /// # Errors
    /// One message per problem, in form order.
    pub fn validate(&self) -> Result<NewEntry, Vec<String>> {
        let mut errors = Vec::new();
        let name = checked_field("name", &self.name, NAME_MAX, false, &mut errors);
        let message = checked_field("message", &self.message, MESSAGE_MAX, true, &mut errors);
        if errors.is_empty() {
            Ok(NewEntry { name, message })
        } else {
            Err(errors)
        }
    }
}

/// Trims `value` and records what is wrong with it in `errors`.
/// Control characters are refused (PostgreSQL cannot store NUL in TEXT),
/// except line breaks and tabs in multi-line fields.
fn checked_field(label: &str, value: &str, max: usize, multiline: bool, errors: &mut Vec<String>) -> String {
    let value = value.trim();
    let chars = value.chars().count();
    if chars == 0 {
        errors.push(format!("{label} is required"));
    } else if chars > max {
        errors.push(format!("{label} must be at most {max} characters (it has {chars})"));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        errors.push(format!("{label} must not contain control characters"));
    }
    value.to_owned()
}

/// Page `page` (from 1) of the entries, newest first, and the total count.
///
/// # Errors
/// Any database error.
pub async fn load_page(req: &Request, page: u32) -> Result<Listing, DbError> {
    let db = req.db();
    let total: i64 = db
        .query("SELECT COUNT(*) FROM guestbook_entries")
        .fetch_one_as()
        .await?;
    let offset = i64::from(page.saturating_sub(1)) * i64::from(PER_PAGE);
    let entries = db
        .query("SELECT id, name, message, created_at FROM guestbook_entries ORDER BY id DESC LIMIT $1 OFFSET $2")
        .bind(i64::from(PER_PAGE))
        .bind(offset)
        .fetch_all_as()
        .await?;
    Ok(Listing {
        page,
        per_page: PER_PAGE,
        total,
        entries,
    })
}

/// Stores `entry`, stamped with the current time.
///
/// # Errors
/// Any database error.
pub async fn insert(req: &Request, entry: NewEntry) -> Result<Entry, DbError> {
    let created_at = unix_now();
    let id: i64 = req
        .db()
        .query("INSERT INTO guestbook_entries (name, message, created_at) VALUES ($1, $2, $3) RETURNING id")
        .bind(&entry.name)
        .bind(&entry.message)
        .bind(created_at)
        .fetch_one_as()
        .await?;
    log::info!("guestbook entry {id} stored");
    Ok(Entry {
        id,
        name: entry.name,
        message: entry.message,
        created_at,
    })
}

/// Seconds since the Unix epoch (the SQL has no portable clock function).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
