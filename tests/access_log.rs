//! The access log: one line per request in the documented format, written
//! off the request path, every line in the file after a graceful shutdown.

use std::time::Duration;

use crabcat_tests::{Container, module};

#[tokio::test(flavor = "multi_thread")]
async fn lines_are_in_the_combined_format_by_default() {
    let c = Container::builder().deploy(&module("hello"), "hello.so").start();
    let response = c
        .client()
        .get(c.url("/hello/greet/log?x=1"))
        .header("referer", "http://ref.example/")
        .header("user-agent", "crabcat-test/1 \"quoted\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert_eq!(c.get("/nowhere").await.0, 404);

    let line = c
        .wait_for_log("\"GET /hello/greet/log?x=1 HTTP/1.1\"", Duration::from_secs(5))
        .expect("an access log line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let tail = format!(
        "] \"GET /hello/greet/log?x=1 HTTP/1.1\" 200 {} \"http://ref.example/\" \"crabcat-test/1 \\x22quoted\\x22\"",
        body.len()
    );
    assert!(line.ends_with(&tail), "{line}\ndoes not end with\n{tail}");
    let line = c
        .wait_for_log("\"GET /nowhere HTTP/1.1\"", Duration::from_secs(5))
        .expect("a line for the 404");
    assert!(line.contains("\" 404 "), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_line_reaches_the_file_on_shutdown() {
    let builder = Container::builder();
    let file = builder.scratch().join("logs").join("access.log");
    let mut c = builder
        .deploy(&module("hello"), "hello.so")
        .config(&format!(
            "[server]\naccess_log_file = {:?}\naccess_log_format = \"extended\"\n",
            file.display().to_string()
        ))
        .start();
    const REQUESTS: usize = 500;
    for i in 0..REQUESTS {
        assert_eq!(c.get(&format!("/hello/greet/n{i}")).await.0, 200);
    }
    // At once: the lines are still in the writer's buffer (flushed every
    // second), and the shutdown must write them out.
    assert!(c.terminate().success(), "{}", c.logs());
    let text = std::fs::read_to_string(&file).expect("the access log file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), REQUESTS, "{}", c.logs());
    for (i, line) in lines.iter().enumerate() {
        let request = format!("\"GET /hello/greet/n{i} HTTP/1.1\" 200 ");
        assert!(line.contains(&request), "line {i}: {line}");
        // extended: combined, then the app and the request time in seconds
        let fields: Vec<&str> = line.rsplitn(3, ' ').collect();
        assert_eq!(fields[1], "hello", "{line}");
        assert!(fields[0].parse::<f64>().is_ok_and(|t| t >= 0.0), "{line}");
    }
    assert!(
        !c.logs().contains("GET /hello/greet"),
        "the lines went to the file, not stderr"
    );
}
