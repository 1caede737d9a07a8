//! The admin API against misuse: wrong tokens back off per address (429
//! with Retry-After), uploads are streamed to disk within a size limit.

use std::time::Duration;

use crabcat_tests::Container;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_back_off_per_address_and_a_right_one_clears_it() {
    let c = Container::builder().start();
    let wrong = |c: &Container| {
        c.client()
            .get(c.admin_url("/apps"))
            .bearer_auth("wrong-token-0123456789")
            .send()
    };
    for _ in 0..5 {
        assert_eq!(wrong(&c).await.unwrap().status(), 401);
    }
    // Blocked now, whatever the token.
    let response = c.admin(Method::GET, "/apps").send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 1, "the first block is one second");
    let line = c
        .wait_for_log("address blocked", Duration::from_secs(5))
        .expect("a warning");
    assert!(
        line.contains("client=127.0.0.1:"),
        "the client address is logged: {line}"
    );
    // The health check is not behind the token.
    let health = c.client().get(c.admin_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let response = c.admin(Method::GET, "/apps").send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the block ran out; a right token clears the record"
    );
    assert_eq!(wrong(&c).await.unwrap().status(), 401, "counting starts again");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_limit_gets_413_and_leaves_nothing_behind() {
    let c = Container::builder()
        .config("[admin]\nmax_upload_bytes = 1048576\n")
        .start();
    let body = vec![7u8; 2 * 1024 * 1024];
    let (status, json) = c.admin_call(c.admin(Method::PUT, "/apps/big").body(body)).await;
    assert_eq!(status, 413, "{json}");
    assert!(json["error"].as_str().unwrap().contains("max_upload_bytes"), "{json}");
    let left: Vec<_> = std::fs::read_dir(c.deploy_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_upload_is_streamed_not_held_in_memory() {
    let c = Container::builder().start();
    let before = peak_rss_kb(c.pid());
    const SIZE: usize = 128 * 1024 * 1024;
    let body = vec![0x5au8; SIZE];
    let (status, json) = c.admin_call(c.admin(Method::PUT, "/apps/garbage").body(body)).await;
    assert_eq!(status, 400, "not a library: {json}");
    let growth_kb = peak_rss_kb(c.pid()).saturating_sub(before);
    assert!(
        growth_kb < (SIZE / 1024 / 4) as u64,
        "peak RSS grew by {growth_kb} kB for a {} kB upload",
        SIZE / 1024
    );
}
