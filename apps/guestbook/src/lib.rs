//! # guestbook — a database-backed Crabcat app
//!
//! Shows the data API from async handlers: an app migration (with
//! PostgreSQL and MySQL variants) applied by the container before `init`, parameterised
//! queries, rows decoded into structs with serde, `INSERT … RETURNING id`,
//! paging with `LIMIT`/`OFFSET`, an HTML form with server-side validation
//! (post/redirect/get, `422` with the input kept on errors, every visitor
//! string HTML-escaped), and the same data as a JSON API whose errors are
//! RFC 9457 problem documents. Handlers take extractors (`Query`, `Form`,
//! `Json`, the `Request` for the database). It uses the app's default datasource (embedded
//! SQLite unless configured otherwise); the queries run unchanged on SQLite,
//! PostgreSQL and MariaDB (≥ 10.5, for `RETURNING`).
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
//!     # 422 application/problem+json
//!     # {"type":"about:blank","title":"Unprocessable Entity","status":422,
//!     #  "detail":"name is required; message is required","errors":["name is required","message is required"]}
//! curl -i 'localhost:8080/guestbook/entries.json?page=0'
//!     # 400 {"type":"about:blank","title":"Bad Request","status":400,
//!     #      "detail":"invalid query string: cannot parse \"0\" as NonZero<u32>: number would be zero for non-zero type"}
//! ```
//!
//! Rules: `name` is 1 to 80 characters and `message` 1 to 1000 characters
//! after trimming (stored trimmed), without control characters (line breaks
//! and tabs are fine in a message). `?page=N` counts from 1; a missing or
//! empty `page` means 1, anything that is not a positive integer is a `400`.
//! A page past the end is empty, not an error. `POST /entries` takes a
//! form (`application/x-www-form-urlencoded`, as browsers send it) and
//! `POST /entries.json` takes `content-type: application/json`; another
//! content type is a `415`. On the JSON route, a body that is not JSON is a
//! `400`, JSON of the wrong shape (`"name": 1`) a `422`. Errors
//! are problem documents (`application/problem+json`); failed validation
//! lists every problem in `errors`. `created_at` is Unix seconds (UTC).
//!
//! The HTML side uses what the container keeps per visitor: its stylesheet
//! is a static file (`static/style.css`, served by the container at
//! `/guestbook/static/style.css`), and the visitor's session remembers the
//! name they signed with (the form is filled in next time, even after the
//! app is reloaded), carries a flash message to the page after a post
//! ("Thank you for signing…", shown once), and holds the CSRF token every
//! form carries: a post without the session's token gets `403`.

#![forbid(unsafe_code)]

mod entries;
mod page;

use std::num::NonZeroU32;

use crabcat_sdk::prelude::*;
use serde::Deserialize;

use entries::{Entry, EntryInput, Listing};
use page::{FormState, Visitor};

/// Session attribute: the name the visitor last signed with.
const NAME: &str = "name";
/// Session attribute: a message for the next page, shown once.
const FLASH: &str = "flash";

struct Guestbook;

impl App for Guestbook {
    const MIGRATIONS: &'static [Migration] = &[Migration::new(
        1,
        "create guestbook_entries",
        include_str!("../migrations/0001_create_entries.sql"),
    )
    .postgres(include_str!("../migrations/0001_create_entries.postgres.sql"))
    .mysql(include_str!("../migrations/0001_create_entries.mysql.sql"))];

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

/// `?page=N`, counting from 1: missing or empty is 1, and `0` or anything
/// but a number is refused (`400`) before a handler runs.
#[derive(Debug, Deserialize)]
struct Paging {
    page: Option<NonZeroU32>,
}

impl Paging {
    fn number(&self) -> u32 {
        self.page.map_or(1, NonZeroU32::get)
    }
}

impl Guestbook {
    /// `GET /?page=N`: the page, with the form filled in with the name
    /// the visitor signed with before, and the flash message if one waits.
    async fn index(Query(paging): Query<Paging>, req: Request) -> Result<Html<String>> {
        let session = req.session().await?;
        let remembered = session.get::<String>(NAME)?.unwrap_or_default();
        let visitor = Visitor {
            flash: session.take(FLASH)?,
            csrf: session.csrf_token()?,
        };
        let form = FormState {
            name: &remembered,
            ..FormState::default()
        };
        let listing = entries::load_page(&req, paging.number()).await?;
        Ok(Html(page::render(req.context_path(), &listing, &form, &visitor)))
    }

    /// `POST /entries` (form): checks the CSRF token (`403` without the
    /// session's), stores the entry, remembers the name and redirects to
    /// the first page with a flash message; or shows the first page again
    /// with the errors and the input.
    async fn create(Form(input): Form<EntryInput>, req: Request) -> Result<Response> {
        let session = req.session().await?;
        if !session.verify_csrf(&input.csrf) {
            let html = page::forbidden(req.context_path());
            return Ok(Response::html(html).with_status(StatusCode::FORBIDDEN));
        }
        let errors = match input.validate() {
            Ok(entry) => {
                let stored = entries::insert(&req, entry).await?;
                session.insert(NAME, &stored.name)?;
                session.insert(FLASH, &format!("Thank you for signing, {}!", stored.name))?;
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
        let visitor = Visitor {
            flash: None,
            csrf: session.csrf_token()?,
        };
        let html = page::render(req.context_path(), &listing, &form, &visitor);
        Ok(Response::html(html).with_status(StatusCode::UNPROCESSABLE_ENTITY))
    }

    /// `GET /entries.json?page=N`.
    async fn list_json(Query(paging): Query<Paging>, req: Request) -> Result<Json<Listing>> {
        Ok(Json(entries::load_page(&req, paging.number()).await?))
    }

    /// `POST /entries.json` with `{"name": …, "message": …}`: `201` and the
    /// stored entry, or `422` and every problem.
    async fn create_json(Json(input): Json<EntryInput>, req: Request) -> Result<(StatusCode, Json<Entry>)> {
        let entry = input
            .validate()
            .map_err(|errors| Error::unprocessable(errors.join("; ")).with_extension("errors", errors))?;
        let stored = entries::insert(&req, entry).await?;
        Ok((StatusCode::CREATED, Json(stored)))
    }
}

crabcat_sdk::export_app!(Guestbook);
