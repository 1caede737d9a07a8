//! The listener against hostile clients: a slow request head, an idle
//! keep-alive connection and a connection that sends nothing are closed
//! after the header read timeout (a slow handler or a slow stream is not),
//! an oversized head gets 431 and an oversized target 414, and past the
//! connection limit new connections wait until one closes. Another client
//! is served meanwhile.

use std::time::{Duration, Instant};

use crabcat_tests::{Container, module};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hello(config: &str) -> Container {
    Container::builder()
        .deploy(&module("hello"), "hello.so")
        .config(config)
        .start()
}

/// Reads until the peer closes the connection; `None` if it is still open
/// after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_request_head_is_cut_off_and_others_are_served() {
    let c = hello("[server]\nheader_read_timeout = \"1s\"\n");
    let mut slow = TcpStream::connect(c.addr()).await.unwrap();
    slow.write_all(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let writer = async {
        // One header byte every 200 ms, never finishing the head.
        for _ in 0..50 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (_, (status, _)) = tokio::join!(writer, c.get("/hello/"));
    assert_eq!(status, 200, "another client is served meanwhile");
    let mut slow = slow;
    assert!(
        closed_within(&mut slow, Duration::from_secs(1)).await.is_some(),
        "the slow client was disconnected before it finished writing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed() {
    let c = hello("[server]\nheader_read_timeout = \"1s\"\n");
    let mut idle = TcpStream::connect(c.addr()).await.unwrap();
    idle.write_all(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = vec![0u8; 1024];
    let n = idle.read(&mut response).await.unwrap();
    assert!(
        response[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response[..n])
    );
    let closed = closed_within(&mut idle, Duration::from_secs(10)).await;
    let after = closed.expect("the idle connection was not closed");
    assert!(
        after >= Duration::from_millis(500),
        "closed after {after:?}, before the timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_head_gets_431_and_an_oversized_target_414() {
    let c = hello("");
    let big = "x".repeat(100 * 1024);
    let response = c
        .client()
        .get(c.url("/hello/"))
        .header("x-big", &big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let long = format!("/hello/?q={}", "y".repeat(20 * 1024));
    assert_eq!(c.get(&long).await.0, 414);
    // Just under the limits: served.
    let fits = format!("/hello/?q={}", "y".repeat(7 * 1024));
    assert_eq!(c.get(&fits).await.0, 200);
    let response = c
        .client()
        .get(c.url("/hello/"))
        .header("x-big", "x".repeat(6 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_limit_new_connections_wait() {
    let c = hello("[server]\nmax_connections = 2\nheader_read_timeout = \"30s\"\n");
    let first = TcpStream::connect(c.addr()).await.unwrap();
    let _second = TcpStream::connect(c.addr()).await.unwrap();
    // Both accepted: a request on the third is not answered...
    let mut third = TcpStream::connect(c.addr()).await.unwrap();
    third
        .write_all(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = vec![0u8; 1024];
    let waited = tokio::time::timeout(Duration::from_millis(700), third.read(&mut response)).await;
    assert!(waited.is_err(), "answered past the limit");
    // ...until one of the others closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut response))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(
        response[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response[..n])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keep_alive_connection_is_closed_after_its_most_requests() {
    let c = hello("[server]\nmax_requests_per_connection = 3\n");
    let mut stream = TcpStream::connect(c.addr()).await.unwrap();
    let mut heads = Vec::new();
    for _ in 0..3 {
        stream
            .write_all(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = vec![0u8; 4096];
        let n = stream.read(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response[..n]).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{text}");
        heads.push(text);
    }
    assert!(!heads[0].contains("connection: close"), "{}", heads[0]);
    assert!(!heads[1].contains("connection: close"), "{}", heads[1]);
    assert!(heads[2].contains("connection: close"), "{}", heads[2]);
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await.is_some(),
        "closed after the third response"
    );
    assert_eq!(c.get("/hello/").await.0, 200, "a new connection is served");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_sends_a_byte_is_closed() {
    let c = hello("[server]\nheader_read_timeout = \"1s\"\n");
    let mut silent = TcpStream::connect(c.addr()).await.unwrap();
    let closed = closed_within(&mut silent, Duration::from_secs(10)).await;
    let after = closed.expect("the silent connection was not closed");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}, before the timeout"
    );
    assert_eq!(c.get("/hello/").await.0, 200, "a new connection is served");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_handler_and_a_slow_stream_outlast_the_header_read_timeout() {
    let c = Container::builder()
        .deploy(&module("probe"), "probe.so")
        .deploy(&module("tour"), "tour.so")
        .config("[server]\nheader_read_timeout = \"400ms\"\n")
        .start();
    let mut stream = TcpStream::connect(c.addr()).await.unwrap();
    stream
        .write_all(b"GET /probe/sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = vec![0u8; 4096];
    let n = stream.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("slept 1500"),
        "{text}"
    );
    // One event a second: the body keeps its request busy between them.
    stream
        .write_all(b"GET /tour/sse/clock HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    while seen.matches("event: tick").count() < 3 {
        let n = stream.read(&mut response).await.unwrap();
        assert!(n > 0, "the stream was cut off after {seen}");
        seen.push_str(&String::from_utf8_lossy(&response[..n]));
    }
}
