//! Connections that outlive a request: streamed bodies, Server-Sent Events,
//! WebSockets and the hub, through real modules and a real client.

use std::time::Duration;

use crabcat_tests::{Container, module};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn realtime() -> Container {
    Container::builder()
        .deploy(&module("realtime"), "realtime.so")
        .deploy(&module("tour"), "tour.so")
        .config("[server]\nwebsocket_max_message_bytes = 4096\n")
        .start()
}

fn ws_url(c: &Container, path: &str) -> String {
    c.url(path).replacen("http://", "ws://", 1)
}

async fn connect(c: &Container, path: &str) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(ws_url(c, path)).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// The next message that is not a ping or pong, within 10 s.
async fn next(socket: &mut Socket) -> Option<Message> {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a message within 10 s")
}

/// The close code the server sent.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        match next(socket).await {
            Some(Message::Close(Some(frame))) => return frame.code.into(),
            Some(Message::Close(None)) => return 1005,
            Some(_) => continue,
            None => panic!("the connection ended without a close frame"),
        }
    }
}

/// Publishes `body` to `room` through plain HTTP until it reaches
/// `subscribers` (a handler subscribes just after its handshake).
async fn publish_until_subscribed(c: &Container, room: &str, body: &'static str, subscribers: u32) {
    let mut reached = 0;
    for _ in 0..100 {
        let url = c.url(&format!("/realtime/publish/{room}"));
        let response = c.client().post(url).body(body).send().await.unwrap();
        reached = response.text().await.unwrap().trim().parse::<u32>().unwrap();
        if reached == subscribers {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{reached} of {subscribers} subscribers after 2 s");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_text_and_binary() {
    let c = realtime();
    let mut socket = connect(&c, "/tour/ws/echo").await;
    socket.send(Message::text("héllo")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("héllo")));
    socket.send(Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::binary(vec![0u8, 1, 2, 255])));
    socket
        .close(Some(tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, 1000, "the server answers the close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_to_a_websocket_route_gets_426_and_a_foreign_origin_403() {
    let c = realtime();
    assert_eq!(c.get("/tour/ws/echo").await.0, 426);
    let mut request = ws_url(&c, "/tour/ws/echo").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // The page's own origin may.
    let mut request = ws_url(&c, "/tour/ws/echo").into_client_request().unwrap();
    let origin = format!("http://{}", c.addr());
    request.headers_mut().insert("origin", origin.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_may_refuse_with_plain_http_before_accepting() {
    let c = realtime();
    match tokio_tungstenite::connect_async(ws_url(&c, "/realtime/ws/reject")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_big_is_1009_invalid_utf8_is_1007_a_panic_is_1011_and_others_carry_on() {
    let c = realtime();
    let mut other = connect(&c, "/tour/ws/echo").await;

    let mut big = connect(&c, "/tour/ws/echo").await;
    big.send(Message::binary(vec![7u8; 10_000])).await.unwrap();
    assert_eq!(close_code(&mut big).await, 1009);

    let mut bad = connect(&c, "/tour/ws/echo").await;
    let payload = vec![0xff, 0xfe, 0x41];
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    bad.send(Message::Frame(Frame::from_payload(header, payload.into())))
        .await
        .unwrap();
    assert_eq!(close_code(&mut bad).await, 1007);

    let mut panics = connect(&c, "/realtime/ws/panic").await;
    panics.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut panics).await, Some(Message::text("hi")), "{}", c.logs());
    assert_eq!(close_code(&mut panics).await, 1011);

    other.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut other).await, Some(Message::text("still here")));
    assert_eq!(c.get("/tour/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_fans_out_to_a_room_from_sockets_and_from_plain_http() {
    let c = realtime();
    let mut alice = connect(&c, "/realtime/ws/room/lobby").await;
    let mut bob = connect(&c, "/realtime/ws/room/lobby").await;
    let mut elsewhere = connect(&c, "/realtime/ws/room/other").await;
    // Subscribing happens in the handler, just after the handshake: wait
    // until both are in the room.
    publish_until_subscribed(&c, "lobby", "ping", 2).await;
    // Skip the pings that reached them while we waited.
    alice.send(Message::text("<b>hello</b> from alice")).await.unwrap();
    for socket in [&mut alice, &mut bob] {
        loop {
            match next(socket).await {
                Some(Message::Text(t)) if t.as_str() == "ping" => continue,
                other => {
                    assert_eq!(other, Some(Message::text("<b>hello</b> from alice")));
                    break;
                }
            }
        }
    }
    elsewhere.send(Message::text("anyone?")).await.unwrap();
    assert_eq!(
        next(&mut elsewhere).await,
        Some(Message::text("anyone?")),
        "only its own room"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_topic_goes_straight_to_the_client() {
    let c = realtime();
    let mut socket = connect(&c, "/realtime/ws/forward/f").await;
    publish_until_subscribed(&c, "f", "news", 1).await;
    assert_eq!(next(&mut socket).await, Some(Message::text("news")));
    // The handler still gets what the client says.
    socket.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("echo hi")));
    let bytes = c
        .client()
        .post(c.url("/realtime/publish/f"))
        .body(vec![0xffu8, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        bytes.status(),
        400,
        "the publish route takes text: {:?}",
        bytes.text().await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_closes_sockets_with_1012_and_the_new_instance_serves_the_reconnect() {
    let c = realtime();
    let mut socket = connect(&c, "/tour/ws/echo").await;
    socket.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("before")));
    let (status, body) = c.admin_call(c.admin(reqwest::Method::POST, "/apps/tour/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(close_code(&mut socket).await, 1012);
    let mut again = connect(&c, "/tour/ws/echo").await;
    again.send(Message::text("after")).await.unwrap();
    assert_eq!(next(&mut again).await, Some(Message::text("after")));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_sockets_with_1001_within_the_timeout() {
    let mut c = Container::builder()
        .deploy(&module("tour"), "tour.so")
        .config("[server]\nshutdown_timeout = \"5s\"\n")
        .start();
    let mut socket = connect(&c, "/tour/ws/echo").await;
    socket.send(Message::text("x")).await.unwrap();
    assert_eq!(next(&mut socket).await, Some(Message::text("x")));
    let started = std::time::Instant::now();
    let closing = tokio::spawn(async move { close_code(&mut socket).await });
    let status = tokio::task::spawn_blocking(move || {
        let status = c.terminate();
        (status, c.logs())
    })
    .await
    .unwrap();
    assert_eq!(closing.await.unwrap(), 1001);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(status.0.success(), "{}", status.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_drops_the_modules_stream() {
    let c = realtime();
    let mut response = c.client().get(c.url("/realtime/forever")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"line 0"), "{first:?}");
    assert_eq!(c.get("/realtime/streams").await.1, "1 0\n");
    drop(response);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = c.get("/realtime/streams").await.1;
        if seen == "1 1\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "1 1\n", "the producer was dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tours_count_arrives_line_by_line() {
    let c = realtime();
    let started = std::time::Instant::now();
    let mut response = c.client().get(c.url("/tour/count?n=3")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"1\n", "sent before the next line is produced");
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"2\n3\n");
    assert!(started.elapsed() >= Duration::from_millis(200), "100 ms between lines");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_events_arrive_one_by_one_and_resume_after_last_event_id() {
    let c = realtime();
    let mut response = c
        .client()
        .get(c.url("/tour/sse/clock"))
        .header("last-event-id", "41")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let mut text = String::new();
    while text.matches("\n\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("id: 42\nevent: tick\ndata: "), "{text}");
    assert!(text.contains("\n\nid: 43\nevent: tick\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_fails_cuts_the_body_off() {
    let c = realtime();
    // The head may or may not have left before the error: either way the
    // client sees an incomplete response, never a complete one.
    match c.client().get(c.url("/realtime/failing")).send().await {
        Ok(response) => assert!(response.text().await.is_err(), "an incomplete chunked body"),
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }
    assert!(c.wait_for_log("the disk went away", Duration::from_secs(5)).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_limit_refuses_larger_streamed_bodies() {
    let c = realtime();
    let ok = c
        .client()
        .post(c.url("/realtime/small-upload"))
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ok.status().as_u16(), ok.text().await.unwrap()),
        (200, "1000\n".to_owned())
    );
    let declared = c
        .client()
        .post(c.url("/realtime/small-upload"))
        .body(vec![1u8; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413, "refused by its Content-Length");
    let chunks = futures_util::stream::iter((0..3).map(|_| Ok::<_, std::io::Error>(vec![1u8; 600])));
    let streamed = c
        .client()
        .post(c.url("/realtime/small-upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413, "refused while streaming");
}

/// 1 GiB each way through the module, with the container's memory barely
/// moving: neither body is ever held whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_gigabyte_up_and_down_without_holding_it() {
    const GIB: u64 = 1 << 30;
    let c = realtime();
    assert_eq!(c.get("/realtime/streams").await.0, 200);
    let before = rss_kib(c.pid());
    let mut peak = before;

    let mut response = c
        .client()
        .get(c.url(&format!("/realtime/download?bytes={GIB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len() as u64;
        if received % (64 << 20) < chunk.len() as u64 {
            peak = peak.max(rss_kib(c.pid()));
        }
    }
    assert_eq!(received, GIB);

    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&sent);
    let chunks = futures_util::stream::unfold(0u64, move |n| {
        let counter = std::sync::Arc::clone(&counter);
        async move {
            (n < GIB).then(|| {
                counter.fetch_add(256 * 1024, std::sync::atomic::Ordering::Relaxed);
                (Ok::<_, std::io::Error>(vec![3u8; 256 * 1024]), n + 256 * 1024)
            })
        }
    });
    let pid = c.pid();
    let sampled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let sampled = std::sync::Arc::clone(&sampled);
        tokio::spawn(async move {
            loop {
                sampled.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let upload = c
        .client()
        .post(c.url("/realtime/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert_eq!(upload.text().await.unwrap(), format!("{GIB}\n"));
    sampler.abort();
    assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), GIB);
    peak = peak
        .max(rss_kib(c.pid()))
        .max(sampled.load(std::sync::atomic::Ordering::Relaxed));
    let grew = peak.saturating_sub(before);
    println!("RSS before {before} KiB, peak {peak} KiB, grew {grew} KiB over 1 GiB down and 1 GiB up");
    assert!(grew < 20 * 1024, "RSS grew {grew} KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_cuts_streamed_responses_after_the_connection_grace() {
    let c = Container::builder()
        .deploy(&module("realtime"), "realtime.so")
        .config("[deploy]\nconnection_grace = \"1s\"\n")
        .start();
    let mut response = c.client().get(c.url("/realtime/forever")).send().await.unwrap();
    assert!(response.chunk().await.unwrap().is_some());
    let (status, body) = c
        .admin_call(c.admin(reqwest::Method::POST, "/apps/realtime/reload"))
        .await;
    assert_eq!(status, 200, "{body}");
    let reloaded = std::time::Instant::now();
    // Lines keep coming during the grace, then the body is cut off.
    let mut lines_after = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap()
        {
            Ok(Some(_)) => lines_after += 1,
            Ok(None) => break "complete",
            Err(_) => break "cut off",
        }
    };
    let took = reloaded.elapsed();
    assert_eq!(ended, "cut off", "an aborted body, not a complete one");
    assert!(
        lines_after > 5,
        "the stream went on during the grace ({lines_after} lines)"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The old instance is destroyed once its last stream is gone.
    assert!(
        c.wait_for_log("destroyed", Duration::from_secs(5)).is_some(),
        "{}",
        c.logs()
    );
    assert_eq!(c.get("/realtime/streams").await.0, 200, "the new instance serves");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_open_websockets_and_hub_traffic() {
    let c = realtime();
    let mut a = connect(&c, "/realtime/ws/room/m").await;
    let _b = connect(&c, "/realtime/ws/room/m").await;
    a.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut a).await, Some(Message::text("hello")));
    assert_eq!(c.metric("crabcat_websocket_connections").await, Some(2.0));
    assert!(c.metric("crabcat_hub{what=\"published\"}").await >= Some(1.0));
    assert_eq!(c.metric("crabcat_hub{what=\"subscriptions\"}").await, Some(2.0));
    drop(a);
    let mut open = None;
    for _ in 0..100 {
        open = c.metric("crabcat_websocket_connections").await;
        if open == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, Some(1.0), "a client that went away is counted out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_upload_that_stalls_gets_408_after_the_request_timeout() {
    let c = Container::builder()
        .deploy(&module("realtime"), "realtime.so")
        .config("[server]\nrequest_timeout = \"1s\"\n")
        .start();
    let head = b"POST /realtime/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc";
    let started = std::time::Instant::now();
    let answer = c.raw_answer(head, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no request body data"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}
