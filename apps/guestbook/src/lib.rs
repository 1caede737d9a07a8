//! # guestbook — a database-backed Crabcat app
//!
//! Shows the data API from async handlers: an app migration (with a
//! PostgreSQL variant) applied by the container before `init`, parameterised
//! queries, `INSERT … RETURNING id`, paging with `LIMIT`/`OFFSET`, an HTML
//! form with server-side validation (post/redirect/get, `422` with the
//! input kept on errors, every visitor string HTML-escaped), and the same
//! data as a JSON API. It uses the app's default datasource (embedded
//! SQLite unless configured otherwise); the SQL runs unchanged on SQLite and
//! PostgreSQL.
//!
//! Build and deploy (from the repository root):
//!
//! ```text
//! cargo build -p guestbook && cp target/debug/libguestbook.so deploy/.guestbook.so.tmp && mv deploy/.guestbook.so.tmp deploy/guestbook.so
//! ```
//!
//! Then open <http://localhost:8080/guestbook/> in a browser, or:
//!
//! ```text
//! curl localhost:8080/guestbook/                                    # the HTML page, newest entries first
//! curl 'localhost:8080/guestbook/?page=2'                           # older entries (10 per page)
//! curl -i -d name=Ferris -d 'message=Hello!' localhost:8080/guestbook/entries
//!                                                                   # 303, location: /guestbook/
//! curl -i -d name= -d message=hi localhost:8080/guestbook/entries   # 422, the page with "name is required"
//! curl 'localhost:8080/guestbook/entries.json?page=1'
//!     # {"page":1,"per_page":10,"total":1,"entries":[{"id":1,"name":"Ferris","message":"Hello!","created_at":1714567890}]}
//! curl -i -H 'content-type: application/json' -d '{"name":"Ferris","message":"Hi again"}' localhost:8080/guestbook/entries.json
//!     # 201 {"id":2,"name":"Ferris","message":"Hi again","created_at":1714567999}
//! curl -i -H 'content-type: application/json' -d '{"name":"","message":""}' localhost:8080/guestbook/entries.json
//!     # 422 {"errors":["name is required","message is required"]}
//! ```
//!
//! Rules: `name` is 1 to 80 characters and `message` 1 to 1000 characters
//! after trimming (stored trimmed), without control characters (line breaks
//! and tabs are fine in a message). `?page=N` counts from 1; a missing or
//! empty `page` means 1, anything that is not a positive integer is a `400`
//! (`{"errors":[…]}` on the JSON route). A page past the end is empty, not
//! an error. `created_at` is Unix seconds (UTC).

#![forbid(unsafe_code)]

mod entries;
mod page;

use std::sync::Arc;

use crabcat_sdk::prelude::*;
use serde_json::json;

use entries::{EntryInput, Listing};
use page::FormState;

struct Guestbook;

impl App for Guestbook {
    const MIGRATIONS: &'static [Migration] = &[Migration::new(
        1,
        "create guestbook_entries",
        include_str!("../migrations/0001_create_entries.sql"),
    )
    .postgres(include_str!("../migrations/0001_create_entries.postgres.sql"))];

    fn init(ctx: &InitContext) -> Result<Self> {
        log::info!("guestbook initialised at {:?}", ctx.context_path());
        Ok(Guestbook)
    }

    fn routes(routes: &mut Routes<Self>) {
        routes
            .get("/", Self::index)
            .post("/entries", Self::create)
            .get("/entries.json", Self::list_json)
            .post("/entries.json", Self::create_json);
    }

    fn destroy(&self) {
        log::info!("guestbook destroyed");
    }
}

impl Guestbook {
    /// `GET /?page=N`: the page with an empty form.
    async fn index(self: Arc<Self>, req: Request) -> Result<Html<String>> {
        let page = page_param(&req).map_err(Error::bad_request)?;
        let listing = entries::load_page(&req, page).await?;
        Ok(Html(page::render(req.context_path(), &listing, &FormState::default())))
    }

    /// `POST /entries` (form): stores the entry and redirects to the first
    /// page, or shows the first page again with the errors and the input.
    async fn create(self: Arc<Self>, req: Request) -> Result<Response> {
        let input: EntryInput = req.form()?;
        let errors = match input.validate() {
            Ok(entry) => {
                entries::insert(&req, entry).await?;
                return Ok(Response::redirect(format!("{}/", req.context_path())));
            }
            Err(errors) => errors,
        };
        let listing = entries::load_page(&req, 1).await?;
        let form = FormState {
            name: &input.name,
            message: &input.message,
            errors: &errors,
        };
        let html = page::render(req.context_path(), &listing, &form);
        Ok(Response::html(html).with_status(StatusCode::UNPROCESSABLE_ENTITY))
    }

    /// `GET /entries.json?page=N`.
    async fn list_json(self: Arc<Self>, req: Request) -> Result<Json<Listing>, ApiError> {
        let page = page_param(&req).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, vec![e]))?;
        Ok(Json(entries::load_page(&req, page).await?))
    }

    /// `POST /entries.json` with `{"name": …, "message": …}`: `201` and the
    /// stored entry, or `422` and the problems.
    async fn create_json(self: Arc<Self>, req: Request) -> Result<Response, ApiError> {
        let input: EntryInput = req.json()?;
        let entry = input
            .validate()
            .map_err(|errors| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, errors))?;
        let stored = entries::insert(&req, entry).await?;
        Ok((StatusCode::CREATED, Json(stored)).into_response())
    }
}

/// The `page` query parameter: missing or empty is 1.
fn page_param(req: &Request) -> Result<u32, String> {
    match req.query("page").as_deref().map(str::trim) {
        None | Some("") => Ok(1),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|&page| page >= 1)
            .ok_or_else(|| "page must be a positive integer".to_owned()),
    }
}

/// An error of the JSON API: `{"errors": […]}` with a status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    errors: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, errors: Vec<String>) -> Self {
        ApiError { status, errors }
    }
}

impl From<Error> for ApiError {
    /// Keeps the status and public message; the detail (`Display`) goes to the log.
    fn from(error: Error) -> Self {
        if error.status().is_server_error() {
            log::error!("{} {}: {error}", error.status().as_u16(), error.message());
        }
        ApiError::new(error.status(), vec![error.message().to_owned()])
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        Error::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "errors": self.errors }))).into_response()
    }
}

crabcat_sdk::export_app!(Guestbook);
