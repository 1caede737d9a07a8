//! The pure parts of dispatch: how a refusal is answered, and the small
//! readings of the request it relies on.

use std::net::IpAddr;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use crabcat_sdk::abi::wire::ErrorKind;
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, LOCATION, RETRY_AFTER, UPGRADE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use super::Reject;
use super::admit::{forwarded_https, with_slash};
use super::reject::body_error;
use crate::abi::CallError;
use crate::lifecycle::ServeError;

async fn answer(reject: Reject) -> (StatusCode, HeaderMap, String) {
    let response: Response = reject.into_response();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 16).await.unwrap();
    (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
}

/// Every refusal, its status and its body. The body never carries more
/// than the one line: the detail (a module's error, a database message)
/// stays in the log.
fn every_refusal() -> Vec<(Reject, StatusCode, &'static str)> {
    use StatusCode as S;
    vec![
        (Reject::NotFound, S::NOT_FOUND, "not found\n"),
        (Reject::UriTooLong, S::URI_TOO_LONG, "request target too long\n"),
        (Reject::Busy, S::SERVICE_UNAVAILABLE, "application busy\n"),
        (Reject::Stalled, S::SERVICE_UNAVAILABLE, "application stalled\n"),
        (Reject::AddSlash("/shop/".into()), S::PERMANENT_REDIRECT, "moved\n"),
        (
            Reject::Unavailable,
            S::SERVICE_UNAVAILABLE,
            "application not available\n",
        ),
        (
            Reject::MethodNotAllowed("GET, HEAD".into()),
            S::METHOD_NOT_ALLOWED,
            "method not allowed\n",
        ),
        (Reject::BadParam, S::BAD_REQUEST, "bad path parameter\n"),
        (Reject::BodyTooLarge, S::PAYLOAD_TOO_LARGE, "request body too large\n"),
        (Reject::BadBody, S::BAD_REQUEST, "could not read request body\n"),
        (Reject::Timeout, S::GATEWAY_TIMEOUT, "request timed out\n"),
        (
            Reject::UpgradeRequired,
            S::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint\n",
        ),
        (
            Reject::OriginForbidden,
            S::FORBIDDEN,
            "origin not allowed to open a WebSocket here\n",
        ),
        (
            Reject::Transaction(
                ErrorKind::ConnectionLost,
                "connection refused by db.internal:5432".into(),
            ),
            S::SERVICE_UNAVAILABLE,
            "database unavailable\n",
        ),
        (
            Reject::Failed(ServeError::Cancelled),
            S::SERVICE_UNAVAILABLE,
            "application stopping\n",
        ),
        (
            Reject::Failed(ServeError::Call(CallError::Panicked)),
            S::INTERNAL_SERVER_ERROR,
            "internal server error\n",
        ),
        (Reject::BadPath, S::BAD_REQUEST, "bad path\n"),
        (Reject::FileError, S::INTERNAL_SERVER_ERROR, "internal server error\n"),
    ]
}

#[tokio::test]
async fn each_refusal_has_its_status_and_a_one_line_body() {
    for (reject, status, body) in every_refusal() {
        let what = format!("{reject:?}");
        let (got_status, headers, got_body) = answer(reject).await;
        assert_eq!(got_status, status, "{what}");
        assert_eq!(got_body, body, "{what}");
        if status != StatusCode::UPGRADE_REQUIRED {
            assert_eq!(headers[CONTENT_TYPE], "text/plain; charset=utf-8", "{what}");
        }
    }
}

#[tokio::test]
async fn every_503_says_when_to_retry_and_nothing_else_does() {
    let mut unavailable = 0;
    for (reject, _, _) in every_refusal() {
        let what = format!("{reject:?}");
        let (status, headers, _) = answer(reject).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            unavailable += 1;
            assert_eq!(
                headers.get(RETRY_AFTER).map(HeaderValue::as_bytes),
                Some(&b"1"[..]),
                "{what}"
            );
        } else {
            assert!(!headers.contains_key(RETRY_AFTER), "{what}");
        }
    }
    assert_eq!(unavailable, 5, "busy, stalled, not available, database, stopping");
}

#[tokio::test]
async fn redirects_and_405s_carry_their_header() {
    let (_, headers, _) = answer(Reject::AddSlash("/shop/?q=1".into())).await;
    assert_eq!(headers[LOCATION], "/shop/?q=1");
    let (_, headers, _) = answer(Reject::MethodNotAllowed("GET, HEAD, POST".into())).await;
    assert_eq!(headers[ALLOW], "GET, HEAD, POST");
    // A value that is not a valid header is left out rather than sent.
    let (status, headers, _) = answer(Reject::AddSlash("/shop\n/".into())).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert!(!headers.contains_key(LOCATION));
    let (_, headers, _) = answer(Reject::UpgradeRequired).await;
    assert_eq!(headers[UPGRADE], "websocket");
    assert_eq!(headers[CONNECTION], "upgrade");
}

fn proto(value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-proto", HeaderValue::from_static(value));
    headers
}

#[test]
fn only_a_listed_proxy_is_believed_about_https() {
    let proxy: IpAddr = "10.0.0.5".parse().unwrap();
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    let trusted = [proxy, "::1".parse().unwrap()];
    assert!(forwarded_https(&trusted, proxy, &proto("https")));
    assert!(
        forwarded_https(&trusted, proxy, &proto("HTTPS")),
        "the scheme is case-insensitive"
    );
    assert!(forwarded_https(&trusted, "::1".parse().unwrap(), &proto("https")));
    assert!(
        !forwarded_https(&trusted, client, &proto("https")),
        "anyone can send the header"
    );
    assert!(
        !forwarded_https(&[], proxy, &proto("https")),
        "no proxies configured: no one is believed"
    );
    assert!(!forwarded_https(&trusted, proxy, &proto("http")));
    assert!(
        !forwarded_https(&trusted, proxy, &proto("https, http")),
        "a list is not https"
    );
    assert!(!forwarded_https(&trusted, proxy, &HeaderMap::new()));
}

#[test]
fn the_added_slash_keeps_the_query() {
    assert_eq!(with_slash(&Uri::from_static("/shop")), "/shop/");
    assert_eq!(with_slash(&Uri::from_static("/shop?q=1&r=2")), "/shop/?q=1&r=2");
    assert_eq!(with_slash(&Uri::from_static("http://example.com/shop?q")), "/shop/?q");
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large_and_any_other_failure_bad() {
    let over = axum::body::to_bytes(Body::from(vec![b'x'; 11]), 10).await.unwrap_err();
    assert!(matches!(body_error(over), Reject::BodyTooLarge));
    let at = axum::body::to_bytes(Body::from(vec![b'x'; 10]), 10).await.unwrap();
    assert_eq!(at.len(), 10, "the limit itself is allowed");
    let cut = futures_util::stream::iter([
        Ok(axum::body::Bytes::from_static(b"half")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let error = axum::body::to_bytes(Body::from_stream(cut), 10).await.unwrap_err();
    assert!(matches!(body_error(error), Reject::BadBody));
}
