//! TLS on the HTTP listener, with certificates generated for `127.0.0.1`
//! at test time: HTTP/1.1 and HTTP/2 by ALPN, WebSockets over TLS, plain
//! HTTP and silent clients on the TLS port, certificate reload on SIGHUP
//! and on a file change, a bad certificate on reload, and a start with a
//! missing key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crabcat_tests::{Container, ContainerBuilder, module};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for `127.0.0.1` and `localhost`.
struct Cert {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
}

impl Cert {
    fn generate(name: &str) -> Cert {
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Cert {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `key.pem`, then `cert.pem`, into `dir` (a renewal tool's order).
    fn write_to(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("key.pem"), &self.key_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &self.pem).unwrap();
    }
}

/// `[server.tls]` for the files in `dir`, with `server` settings before it.
fn tls_config(dir: &Path, server: &str) -> String {
    format!(
        "[server]\n{server}\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    )
}

fn hello() -> ContainerBuilder {
    Container::builder()
        .deploy(&module("hello"), "hello.so")
        .deploy(&module("tour"), "tour.so")
}

/// A container serving `hello` (and `tour`, for its WebSocket) over TLS with `cert` (its files in
/// `scratch/tls`).
fn hello_tls(cert: &Cert, server: &str) -> (Container, PathBuf) {
    let builder = hello();
    let dir = builder.scratch().join("tls");
    cert.write_to(&dir);
    let c = builder.config(&tls_config(&dir, server)).start();
    (c, dir)
}

fn https(c: &Container, path: &str) -> String {
    format!("https://{}{path}", c.addr())
}

/// A client that trusts exactly `roots`, and reports the server's
/// certificate of each response.
fn client(roots: &[&Cert]) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .tls_info(true);
    for root in roots {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(&root.der).unwrap());
    }
    builder
}

/// The DER certificate the server presented for `response`.
fn served_cert(response: &reqwest::Response) -> Vec<u8> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    info.peer_certificate().expect("a peer certificate").to_vec()
}

/// The certificate a new connection gets, with a `200` for `/hello/`.
async fn cert_of_a_new_connection(c: &Container, roots: &[&Cert]) -> Vec<u8> {
    let client = client(roots).build().unwrap();
    let response = client.get(https(c, "/hello/")).send().await.expect("HTTPS request");
    assert_eq!(response.status(), 200);
    served_cert(&response)
}

/// Polls new connections until they get `expected`, up to 10 s.
async fn wait_for_cert(c: &Container, roots: &[&Cert], expected: &Cert) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cert_of_a_new_connection(c, roots).await != expected.der {
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send_signal(c: &Container, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(c.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Reads until the peer closes the connection; `None` if it is still open
/// after `limit`. Also returns what it read.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some((start.elapsed(), received)),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_serves_http1_and_http2_by_alpn() {
    let cert = Cert::generate("crabcat test");
    let (c, _) = hello_tls(&cert, "");
    let line = c.wait_for_log("listening addr=", Duration::from_secs(1)).unwrap();
    assert!(line.contains("scheme=https"), "{line}");

    let http1 = client(&[&cert]).http1_only().build().unwrap();
    let response = http1.get(https(&c, "/hello/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(served_cert(&response), cert.der);
    assert!(response.text().await.unwrap().starts_with("Hello"));

    // The client offers h2 and http/1.1; the server picks h2.
    let h2 = client(&[&cert]).build().unwrap();
    let response = h2.get(https(&c, "/hello/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);

    // The access log is as for plain HTTP.
    let lines = c.wait_for_log_lines(&["\"GET /hello/ HTTP/2.0\" 200"], 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "{}", c.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_listener_says_http() {
    let c = hello().start();
    let line = c.wait_for_log("listening addr=", Duration::from_secs(1)).unwrap();
    assert!(line.contains("scheme=http") && !line.contains("https"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_work_over_tls() {
    let cert = Cert::generate("crabcat test");
    let (c, _) = hello_tls(&cert, "");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone().into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(c.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let url = format!("wss://localhost:{}/tour/ws/echo", c.addr().port());
    let (mut socket, response) = tokio_tungstenite::client_async(url, tls).await.expect("upgrade");
    assert_eq!(response.status(), 101);
    socket.send(Message::text("over TLS")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("an answer within 10 s");
    assert_eq!(echoed.unwrap().unwrap(), Message::text("over TLS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_the_tls_port_gets_no_answer_and_the_server_goes_on() {
    let cert = Cert::generate("crabcat test");
    // One connection at a time: a failed handshake must give its slot back.
    let (c, _) = hello_tls(&cert, "max_connections = 1");
    let mut plain = TcpStream::connect(c.addr()).await.unwrap();
    plain
        .write_all(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (_, received) = closed_within(&mut plain, Duration::from_secs(5))
        .await
        .expect("the connection is closed");
    assert!(
        !received.starts_with(b"HTTP/"),
        "an HTTP answer: {}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(cert_of_a_new_connection(&c, &[&cert]).await, cert.der);
    // Handshake failures are logged at debug: scanners make many.
    let noisy: Vec<String> = c
        .logs()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_owned)
        .collect();
    assert!(noisy.is_empty(), "{noisy:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_says_hello_is_closed_after_the_header_read_timeout() {
    let cert = Cert::generate("crabcat test");
    let (c, _) = hello_tls(&cert, "header_read_timeout = \"1s\"\nmax_connections = 1");
    let mut silent = TcpStream::connect(c.addr()).await.unwrap();
    let (after, _) = closed_within(&mut silent, Duration::from_secs(10))
        .await
        .expect("the silent connection was not closed");
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
    // It held the only connection slot, and gave it back.
    assert_eq!(cert_of_a_new_connection(&c, &[&cert]).await, cert.der);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate_for_new_connections_only() {
    let (a, b) = (Cert::generate("crabcat A"), Cert::generate("crabcat B"));
    let builder = hello();
    let scratch = builder.scratch();
    // `live` is a symlink to a directory, swapped as a whole (as Kubernetes
    // does with secret volumes): no file event reaches the watcher, so only
    // SIGHUP can make the container notice.
    a.write_to(&scratch.join("a"));
    b.write_to(&scratch.join("b"));
    let live = scratch.join("live");
    std::os::unix::fs::symlink(scratch.join("a"), &live).unwrap();
    let c = builder.config(&tls_config(&live, "")).start();
    let roots = [&a, &b];

    let open = client(&roots).build().unwrap();
    let response = open.get(https(&c, "/hello/")).send().await.unwrap();
    assert_eq!(served_cert(&response), a.der);
    response.text().await.unwrap();

    let swapped = scratch.join("live.new");
    std::os::unix::fs::symlink(scratch.join("b"), &swapped).unwrap();
    std::fs::rename(&swapped, &live).unwrap();
    // Longer than the watcher's quiet period: had it seen a change, it
    // would have reloaded by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        cert_of_a_new_connection(&c, &roots).await,
        a.der,
        "reloaded without SIGHUP"
    );

    send_signal(&c, "HUP");
    wait_for_cert(&c, &roots, &b).await;
    let line = c
        .wait_for_log("TLS certificate reloaded", Duration::from_secs(5))
        .unwrap();
    assert!(line.contains("sha256="), "{line}");
    assert!(c.logs().contains("SIGHUP received: reloading the TLS certificate"));

    // The connection opened before keeps its certificate.
    let response = open.get(https(&c, "/hello/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        served_cert(&response),
        a.der,
        "the open connection was renegotiated or replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_certificate_file_is_reloaded_without_sighup() {
    let (a, b) = (Cert::generate("crabcat A"), Cert::generate("crabcat B"));
    let (c, dir) = hello_tls(&a, "");
    let roots = [&a, &b];
    assert_eq!(cert_of_a_new_connection(&c, &roots).await, a.der);
    b.write_to(&dir);
    wait_for_cert(&c, &roots, &b).await;
    assert!(
        c.wait_for_log("TLS certificate reloaded", Duration::from_secs(5))
            .is_some()
    );
    assert!(!c.logs().contains("SIGHUP"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_certificate_on_reload_keeps_the_old_one() {
    let (a, b) = (Cert::generate("crabcat A"), Cert::generate("crabcat B"));
    let (c, dir) = hello_tls(&a, "");
    let roots = [&a, &b];

    // A new certificate without its key (a renewal half done).
    std::fs::write(dir.join("cert.pem"), &b.pem).unwrap();
    let line = c
        .wait_for_log("cannot be used together", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no reload error:\n{}", c.logs()));
    assert!(
        line.contains("ERROR") && line.contains("cert.pem") && line.contains("key.pem"),
        "{line}"
    );
    assert_eq!(cert_of_a_new_connection(&c, &roots).await, a.der);

    // Not PEM at all; SIGHUP reads it too.
    std::fs::write(dir.join("cert.pem"), "garbage\n").unwrap();
    send_signal(&c, "HUP");
    let lines = c.wait_for_log_lines(
        &["ERROR", "cert.pem holds no PEM certificate"],
        1,
        Duration::from_secs(10),
    );
    assert!(!lines.is_empty(), "no reload error:\n{}", c.logs());
    assert_eq!(cert_of_a_new_connection(&c, &roots).await, a.der);
    assert!(!c.logs().contains("TLS certificate reloaded"));
}

#[test]
fn a_missing_key_stops_the_start_naming_the_file() {
    let cert = Cert::generate("crabcat test");
    let builder = hello();
    let dir = builder.scratch().join("tls");
    cert.write_to(&dir);
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let (status, output) = builder
        .config(&tls_config(&dir, ""))
        .run_to_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{output}");
    let key = dir.join("key.pem");
    assert!(
        output.contains(&format!("cannot read the TLS private key {}", key.display())),
        "{output}"
    );
    assert!(!output.contains("listening"), "bound a port:\n{output}");
}

#[test]
fn a_tls_section_needs_both_files() {
    let (status, output) = hello()
        .config("[server.tls]\ncert = \"cert.pem\"\n")
        .run_to_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("key"), "{output}");
}
