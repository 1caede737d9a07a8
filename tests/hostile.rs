//! A module that misuses the host gets an error for that call or request;
//! the container keeps serving it and every other app.

use std::time::Duration;

use crabcat_tests::{Container, module};

fn hostile_and_hello() -> Container {
    Container::builder()
        .deploy(&module("hostile"), "hostile.so")
        .deploy(&module("hello"), "hello.so")
        .start()
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_response_headers_get_500_and_the_container_keeps_serving() {
    let c = hostile_and_hello();
    let response = c.client().get(c.url("/hostile/headers?n=10")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get_all("x-many").iter().count(), 10);

    // Past the cap (and far past what a HeaderMap holds: this used to abort
    // the whole process).
    assert_eq!(c.get("/hostile/headers?n=40000").await.0, 500, "{}", c.logs());
    let line = c
        .wait_for_log("more than 1000 response headers", Duration::from_secs(5))
        .expect("a log line");
    assert!(line.contains("app=\"hostile\""), "{line}");
    assert_eq!(c.get("/hello/").await.0, 200);
    assert_eq!(c.get("/hostile/headers?n=3").await.0, 200, "the app itself goes on");
}

#[tokio::test(flavor = "multi_thread")]
async fn null_pointers_from_a_module_get_errors_not_a_crash() {
    let c = hostile_and_hello();
    let (status, body) = c.get("/hostile/null").await;
    assert_eq!(status, 200, "{}", c.logs());
    assert_eq!(
        body,
        "part null true, header null true, header_at false, param_at false, appended false, db error true\n"
    );
    assert!(
        c.wait_for_log("null pointer argument", Duration::from_secs(5))
            .is_some()
    );
    assert_eq!(c.get("/hello/").await.0, 200);
}
