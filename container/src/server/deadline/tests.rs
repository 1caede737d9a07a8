use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use futures_util::stream;
use http::Version;
use tokio::io::AsyncWriteExt as _;

use super::{Activity, Deadline, Tracked};

const TIMEOUT: Duration = Duration::from_millis(200);

/// How long an idle connection behind a deadline of `TIMEOUT` lives; `None`
/// if it outlives `limit`.
async fn lifetime(activity: Arc<Activity>, limit: Duration) -> Option<Duration> {
    lifetime_ticking(activity, limit, None).await
}

/// As [`lifetime`], the deadline also ticking for `request_timeout`.
async fn lifetime_ticking(
    activity: Arc<Activity>,
    limit: Duration,
    request_timeout: Option<Duration>,
) -> Option<Duration> {
    let start = Instant::now();
    let deadline = Deadline::new(pending::<()>(), activity, TIMEOUT, request_timeout);
    tokio::time::timeout(limit, deadline).await.ok()?;
    Some(start.elapsed())
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_one_to_one_and_a_quarter_timeouts() {
    let lived = lifetime(Activity::new(), Duration::from_secs(5)).await.expect("closed");
    assert!(lived >= TIMEOUT, "closed after {lived:?}");
    assert!(
        lived < TIMEOUT * 5 / 4 + Duration::from_millis(100),
        "closed after {lived:?}"
    );
}

#[tokio::test]
async fn ticking_for_a_shorter_request_timeout_keeps_the_idle_timeout() {
    let activity = Activity::new();
    let lived = lifetime_ticking(Arc::clone(&activity), Duration::from_secs(5), Some(TIMEOUT / 8))
        .await
        .expect("closed");
    assert!(activity.ticks_for_requests());
    assert!(lived >= TIMEOUT, "closed after {lived:?}");
    assert!(
        lived < TIMEOUT * 5 / 4 + Duration::from_millis(100),
        "closed after {lived:?}"
    );
}

#[tokio::test]
async fn a_busy_request_keeps_its_connection_open() {
    let activity = Activity::new();
    let busy = activity.busy(Version::HTTP_11);
    assert_eq!(lifetime(Arc::clone(&activity), TIMEOUT * 3).await, None);
    drop(busy);
    let lived = lifetime(activity, Duration::from_secs(5))
        .await
        .expect("closed once done");
    assert!(lived >= TIMEOUT, "closed after {lived:?}");
}

#[tokio::test]
async fn writes_to_the_client_count_as_progress() {
    let activity = Activity::new();
    let (near, mut far) = tokio::io::duplex(64);
    let mut io = Tracked::new(near, Arc::clone(&activity));
    let writer = async {
        for _ in 0..15 {
            io.write_all(b"x").await.unwrap();
            tokio::time::sleep(TIMEOUT / 5).await;
        }
    };
    let reader = async {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut far, &mut sink).await;
    };
    let deadline = Deadline::new(pending::<()>(), activity, TIMEOUT, None);
    tokio::select! {
        () = deadline => panic!("closed while being written to"),
        () = writer => {}
        () = reader => panic!("the reader ended"),
    }
}

#[tokio::test]
async fn an_http2_connection_is_exempt() {
    let activity = Activity::new();
    drop(activity.busy(Version::HTTP_2));
    assert_eq!(lifetime(activity, TIMEOUT * 3).await, None);
}

#[tokio::test]
async fn a_streamed_body_holds_its_request_busy_until_it_ends() {
    let activity = Activity::new();
    let full = activity
        .busy(Version::HTTP_11)
        .hold_while_streamed(Response::new(Body::from("done")));
    assert_eq!(
        activity.busy.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a full body is done"
    );
    let chunks = stream::iter([Ok::<_, std::io::Error>("a"), Ok("b")]);
    let streamed = activity
        .busy(Version::HTTP_11)
        .hold_while_streamed(Response::new(Body::from_stream(chunks)));
    assert_eq!(activity.busy.load(std::sync::atomic::Ordering::Relaxed), 1);
    let body = axum::body::to_bytes(streamed.into_body(), 16).await.unwrap();
    assert_eq!(&body[..], b"ab");
    assert_eq!(
        activity.busy.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "dropped at its end"
    );
    drop(full);
}
