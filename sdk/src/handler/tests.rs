//! Handlers called as the container calls them, through the test host.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use super::wrappers::AsTransaction;
use super::*;
use crate::abi::ROUTE_BLOCKING;
use crate::abi::ROUTE_TRANSACTIONAL;
use crate::error::Error;
use crate::extract::{Path, Query, State};
use crate::ffi::testing::{TestRequest, serve};
use crate::response::Json;
use crate::routing::Routes;
use http::StatusCode;

struct Greeter {
    greeting: &'static str,
    calls: AtomicUsize,
}

#[derive(Deserialize)]
struct Terms {
    a: i64,
    b: i64,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

impl Greeter {
    async fn greet(app: State<Self>, Path(name): Path<String>) -> String {
        app.calls.fetch_add(1, Ordering::Relaxed);
        format!("{}, {name}!", app.greeting)
    }

    async fn old_style(self: Arc<Self>, req: Request) -> String {
        format!("{} at {}", self.greeting, req.path())
    }

    async fn method(self: Arc<Self>, Path(name): Path<String>) -> String {
        format!("{}, {name}, from a method", self.greeting)
    }

    fn old_blocking(&self, req: Request) -> String {
        format!("{} blocking at {}", self.greeting, req.path())
    }

    fn sum(Query(terms): Query<Terms>) -> String {
        (terms.a + terms.b).to_string()
    }

    async fn create(Json(note): Json<NewNote>, req: Request) -> (StatusCode, String) {
        (StatusCode::CREATED, format!("{} via {}", note.text, req.method()))
    }
}

/// Serves `request` on route 0 of `routes`; the route's flags too.
fn call(routes: &mut Routes<Greeter>, request: TestRequest) -> (Response, u32) {
    let app = Arc::new(Greeter {
        greeting: "Howdy",
        calls: AtomicUsize::new(0),
    });
    let handler = routes.handler(0).unwrap();
    let response = serve(handler, &app, request.build()).expect("the handler panicked");
    let flags = routes.table().next().unwrap().2;
    (response, flags)
}

fn routes() -> Routes<Greeter> {
    Routes::new()
}

fn text(response: &Response) -> &str {
    std::str::from_utf8(response.body()).unwrap()
}

fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response
        .headers()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref())
}

#[test]
fn extractors_reach_the_handler() {
    let (response, flags) = call(
        routes().get("/greet/{name}", Greeter::greet),
        TestRequest::get("/greet/x").param("name", "Ferris"),
    );
    assert_eq!((response.status().as_u16(), text(&response)), (200, "Howdy, Ferris!"));
    assert_eq!(flags, 0);
    let (response, _) = call(
        routes().post("/notes", Greeter::create),
        TestRequest::post("/notes")
            .header("content-type", "application/json")
            .body(r#"{"text":"hi"}"#),
    );
    assert_eq!((response.status().as_u16(), text(&response)), (201, "hi via POST"));
}

#[test]
fn a_rejection_answers_and_the_handler_does_not_run() {
    let app = Arc::new(Greeter {
        greeting: "Howdy",
        calls: AtomicUsize::new(0),
    });
    let mut routes = routes();
    routes.get(
        "/greet/{name}/{n}",
        |app: State<Greeter>, Path((name, n)): Path<(String, u8)>| async move {
            app.calls.fetch_add(1, Ordering::Relaxed);
            format!("{name} {n}")
        },
    );
    let request = TestRequest::get("/").param("name", "a").param("n", "300").build();
    let response = serve(routes.handler(0).unwrap(), &app, request).unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(header(&response, "content-type"), Some("application/problem+json"));
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["title"], "Bad Request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("invalid path parameter: cannot parse \"300\"")
    );
    assert_eq!(app.calls.load(Ordering::Relaxed), 0, "the handler never ran");

    let (response, _) = call(
        self::routes().post("/notes", Greeter::create),
        TestRequest::post("/notes").body(r#"{"text":"hi"}"#),
    );
    assert_eq!(response.status().as_u16(), 415, "no content type");
}

#[test]
fn the_older_forms_still_work() {
    let (response, _) = call(routes().get("/old", Greeter::old_style), TestRequest::get("/old"));
    assert_eq!(text(&response), "Howdy at /old");
    let (response, flags) = call(
        routes().get("/old", blocking(Greeter::old_blocking)),
        TestRequest::get("/old"),
    );
    assert_eq!(text(&response), "Howdy blocking at /old");
    assert_eq!(flags, ROUTE_BLOCKING);
    let (response, _) = call(
        routes().get("/{name}", Greeter::method),
        TestRequest::get("/x").param("name", "Ferris"),
    );
    assert_eq!(text(&response), "Howdy, Ferris, from a method");
}

#[test]
fn blocking_handlers_take_extractors_too() {
    let (response, flags) = call(
        routes().get("/sum", blocking(Greeter::sum)),
        TestRequest::get("/sum").query("a=2&b=40"),
    );
    assert_eq!((text(&response), flags), ("42", ROUTE_BLOCKING));
    let (response, _) = call(
        routes().get("/sum", blocking(Greeter::sum)),
        TestRequest::get("/sum").query("a=2"),
    );
    assert_eq!(response.status().as_u16(), 400);
    let (response, _) = call(routes().get("/", blocking(|| "no arguments")), TestRequest::get("/"));
    assert_eq!(text(&response), "no arguments");
}

#[test]
fn closures_of_no_arguments() {
    let (response, _) = call(routes().get("/", || async { "hi" }), TestRequest::get("/"));
    assert_eq!(text(&response), "hi");
}

/// What a transactional route answers for each outcome of its handler.
#[test]
fn transactional_handlers_ok_commits_err_rolls_back() {
    async fn outcome(Path(mode): Path<String>) -> Result<Response, Error> {
        match mode.as_str() {
            "created" => Ok(StatusCode::CREATED.into_response()),
            "refused" => Ok(Response::error(StatusCode::BAD_REQUEST, "no")),
            "conflict" => Err(Error::conflict("taken")),
            _ => Err(Error::new(StatusCode::SEE_OTHER, "an error that looks like a success")),
        }
    }
    let status = |mode: &str| {
        let (response, flags) = call(
            routes().post("/{mode}", transactional(outcome)),
            TestRequest::post("/").param("mode", mode),
        );
        assert_eq!(flags, ROUTE_TRANSACTIONAL);
        response.status().as_u16()
    };
    // The container commits below 400 and rolls back from 400 up.
    assert_eq!(status("created"), 201, "Ok: committed");
    assert_eq!(status("refused"), 400, "Ok with an error status: rolled back");
    assert_eq!(status("conflict"), 409, "Err: rolled back");
    assert_eq!(status("redirect"), 500, "an Err is never sent with a committing status");
}

#[test]
fn transactional_blocking_handlers() {
    fn pay(Query(terms): Query<Terms>) -> Result<String, Error> {
        if terms.a < terms.b {
            return Err(Error::conflict("not enough"));
        }
        Ok("paid".into())
    }
    let (response, flags) = call(
        routes().post("/pay", transactional(blocking(pay))),
        TestRequest::post("/pay").query("a=1&b=2"),
    );
    assert_eq!(
        (response.status().as_u16(), flags),
        (409, ROUTE_BLOCKING | ROUTE_TRANSACTIONAL)
    );
}

#[test]
fn the_conclusion_of_a_transaction() {
    let ok: Result<&str, Error> = Ok("done");
    assert_eq!(AsTransaction::conclude(ok).status().as_u16(), 200);
    let err: Result<&str, StatusCode> = Err(StatusCode::NO_CONTENT);
    assert_eq!(AsTransaction::conclude(err).status().as_u16(), 500);
    let err: Result<&str, StatusCode> = Err(StatusCode::NOT_FOUND);
    assert_eq!(AsTransaction::conclude(err).status().as_u16(), 404);
}
