//! Routing and HTTP behaviour, against the real binary and real modules.

use std::time::Duration;

use crabcat_tests::{Container, module, problem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tour_and_probe() -> Container {
    Container::builder()
        .deploy(&module("tour"), "tour.so")
        .deploy(&module("probe"), "libprobe.so")
        .config(
            r#"
            [server]
            max_body_bytes = 1024
            request_timeout = "500ms"

            [apps.tour.config]
            greeting = "Howdy"

            [apps.probe]
            context_path = "/"
            "#,
        )
        .start()
}

#[tokio::test]
async fn routes_params_and_config_reach_the_app() {
    let c = tour_and_probe();
    assert_eq!(c.get("/tour/").await, (200, "Howdy from Crabcat!\n".into()));
    assert_eq!(
        c.get("/tour/greet/J%C3%BCrgen%20X").await,
        (200, "Howdy, Jürgen X!\n".into())
    );
    let (status, body) = c.get("/tour/config").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json, serde_json::json!({"greeting": "Howdy", "app": "tour"}));
    // The root app gets every path no other app claims, with an empty context path.
    assert_eq!(c.get("/").await, (200, "probe probe at \"\"\n".into()));
}

#[tokio::test]
async fn request_parts_cross_the_boundary() {
    let c = tour_and_probe();
    let response = c
        .client()
        .post(c.url("/tour/echo"))
        .header("content-type", "text/x-test")
        .body("some bytes \u{0} and more")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/x-test");
    assert_eq!(response.text().await.unwrap(), "some bytes \u{0} and more");

    let (status, body) = c.get("/query?a=42&b=x%20y&b=second").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["raw"], "a=42&b=x%20y&b=second");
    assert_eq!(json["b"], "x y");
    assert_eq!(
        json["typed_a"],
        serde_json::Value::Null,
        "duplicate b makes the typed parse fail"
    );

    let response = c
        .client()
        .get(c.url("/headers"))
        .header("User-Agent", "crabcat-test")
        .header("X-Extra", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-probe-agent"], "crabcat-test");
    let names = response.text().await.unwrap();
    assert!(names.split(',').any(|h| h == "x-extra"), "{names}");

    let response = c
        .client()
        .put(c.url("/items/7/a/b%2Fc"))
        .json(&serde_json::json!({"k": [1, 2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["params"], serde_json::json!([["id", "7"], ["rest", "a/b/c"]]));
    assert_eq!(json["body"], serde_json::json!({"k": [1, 2]}));
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["path"], "/items/7/a/b%2Fc");

    let response = c
        .client()
        .put(c.url("/items/7/x"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let (status, detail) = problem(&response.text().await.unwrap());
    assert_eq!(status, 400);
    assert!(detail.starts_with("invalid JSON body: expected ident"), "{detail}");
}

#[tokio::test]
async fn not_found_method_not_allowed_head_and_redirect() {
    let c = Container::builder().deploy(&module("hello"), "hello.so").start();
    assert_eq!(c.get("/nosuchapp/").await.0, 404);
    assert_eq!(c.get("/hello/no/such/route").await.0, 404);

    let response = c.client().delete(c.url("/hello/greet/x")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");

    let get = c.client().get(c.url("/hello/")).send().await.unwrap();
    let get_len = get.headers()["content-length"].clone();
    let head = c.client().head(c.url("/hello/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], get_len);
    assert_eq!(head.bytes().await.unwrap().len(), 0);

    let response = c.client().get(c.url("/hello?x=1")).send().await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "/hello/?x=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_routes_run_and_async_ones_keep_answering() {
    let c = Container::builder().deploy(&module("tour"), "tour.so").start();
    let (status, body) = c.get("/tour/blocking?n=25").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "fib(25) = 75025, computed on a blocking thread\n")
    );
    assert_eq!(c.get("/tour/blocking?n=x").await.0, 400);
    // More slow blocking handlers than the container has async workers
    // (one per core): if they ran on those workers, the async request
    // would wait for one of them to finish.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slow: Vec<_> = (0..workers + 2)
        .map(|_| {
            let (client, url) = (c.client().clone(), c.url("/tour/blocking?n=36"));
            tokio::spawn(async move {
                let response = client.get(url).send().await.unwrap();
                (response.status().as_u16(), std::time::Instant::now())
            })
        })
        .collect();
    // Wait until all of them are running in the app.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, app) = c.admin_call(c.admin(reqwest::Method::GET, "/apps/tour")).await;
        if app["requests_in_flight"].as_u64() == Some(workers as u64 + 2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not all running: {app}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.get("/tour/").await.0, 200);
    let fast_done = std::time::Instant::now();
    for handle in slow {
        let (status, done) = handle.await.unwrap();
        assert_eq!(status, 200);
        assert!(done > fast_done, "a blocking request finished before the async one");
    }
}

#[tokio::test]
async fn a_panicking_handler_gets_500_and_the_next_request_is_served() {
    let c = Container::builder().deploy(&module("probe"), "probe.so").start();
    for _ in 0..3 {
        let (status, body) = c.get("/probe/panic").await;
        assert_eq!((status, body.as_str()), (500, "internal server error\n"));
        assert_eq!(c.get("/probe/").await.0, 200);
    }
    let panic_lines = c.wait_for_log_lines(
        &["the /panic route panics on purpose", "app=\"probe\""],
        3,
        Duration::from_secs(5),
    );
    assert_eq!(panic_lines.len(), 3, "{}", c.logs());
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let c = tour_and_probe();
    let response = c
        .client()
        .post(c.url("/tour/echo"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // Without a content-length (chunked), the limit applies while reading.
    let chunks = futures_util::stream::iter([vec![b'y'; 700], vec![b'y'; 700]].map(Ok::<_, std::io::Error>));
    let response = c
        .client()
        .post(c.url("/tour/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = c
        .client()
        .post(c.url("/tour/echo"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A declared length over the limit is refused before any of the body
    // is read: the answer comes although none of it is ever sent.
    let head = b"POST /tour/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n";
    let answer = c.raw_answer(head, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn slow_requests_time_out_with_504() {
    let c = tour_and_probe();
    assert_eq!(c.get("/sleep?ms=5000").await.0, 504);
    assert_eq!(c.get("/sleep?ms=10").await.0, 200);
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_server_goes_on() {
    let c = tour_and_probe();
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /tour/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{garbage:?} got {reply:?}");
    }
    assert_eq!(c.get("/tour/").await.0, 200);
}

#[tokio::test]
async fn invalid_response_headers_are_dropped_and_logged() {
    let c = tour_and_probe();
    let response = c.client().get(c.url("/response-headers")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(response.text().await.unwrap(), "headers\n");
    assert_eq!(headers["x-static"], "kept", "a 'static value, kept by reference");
    assert_eq!(headers["x-owned"], "kept 2", "an owned value, copied");
    for dropped in ["x-bad-static", "x-bad-owned", "bad name"] {
        assert!(!headers.contains_key(dropped), "{dropped} should have been dropped");
    }
    for name in ["x-bad-static", "x-bad-owned", "bad name"] {
        c.wait_for_log(
            &format!("dropped invalid response header \"{name}\""),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("no warning for {name}"));
    }
}

#[tokio::test]
async fn environment_variables_override_the_config_file() {
    let mut c = Container::builder()
        .deploy(&module("tour"), "tour.so")
        .config("[apps.tour.config]\ngreeting = \"Howdy\"\n")
        .env("CRABCAT__APPS__TOUR__CONFIG__GREETING", "Hi")
        .env("CRABCAT__SERVER__ACCESS_LOG", "false")
        .start();
    assert_eq!(c.get("/tour/").await, (200, "Hi from Crabcat!\n".into()));
    // Stop it, so that every line it would have written has been read.
    assert!(c.terminate().success());
    assert!(c.wait_for_log("stopped", Duration::from_secs(5)).is_some());
    assert!(
        c.log_lines_with(&["\"GET /tour/ HTTP/1.1\" 200"]).is_empty(),
        "access log was disabled:\n{}",
        c.logs()
    );
}
