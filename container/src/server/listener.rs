//! The listener: accepts connections and serves each with hyper, within
//! limits a hostile client cannot get around.
//!
//! * At most `server.max_connections` connections at once. Past it, new
//!   connections are not accepted: they wait in the kernel's backlog (as
//!   past Tomcat's `maxConnections`) until one closes, and a client that
//!   gives up meanwhile costs the container nothing.
//! * HTTP/1.1: a request head must arrive complete within
//!   `server.header_read_timeout`, counted from the moment the connection
//!   is ready for it: when it opens, and after each response. So it is
//!   also the idle keep-alive timeout, as Tomcat's `connectionTimeout` is
//!   by default. A slowloris client is closed when it runs out (between
//!   one and one and a quarter timeouts: see [`super::deadline`]), and so
//!   is a client that stops reading its response for as long.
//! * A request head over `server.max_header_bytes` gets `431`; a request
//!   target over `server.max_uri_bytes` gets `414` (in dispatch).
//! * HTTP/2 (prior knowledge, `h2c`, or `h2` by ALPN over TLS): hyper's
//!   limits (200 concurrent streams, 16 kB of header list per request).
//! * TLS (`[server.tls]`): the handshake runs in the connection's own task,
//!   never in the accept loop, and must end within
//!   `server.header_read_timeout` too; a connection whose handshake fails
//!   is closed and logged at debug (scanners make many).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::deadline::{Activity, Deadline, Tracked};
use super::{Dispatcher, MakeDispatcher, Tls};
use crate::config::ServerConfig;

/// The listener's limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to receive a complete request head (and idle keep-alive time).
    pub header_read_timeout: Duration,
    /// Largest request head, start line included.
    pub max_header_bytes: usize,
    /// The request timeout, which each connection's deadline also keeps
    /// for its HTTP/1 requests (see [`super::deadline`]).
    pub request_timeout: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(config: &ServerConfig) -> Self {
        Limits {
            max_connections: config.max_connections,
            header_read_timeout: config.header_read_timeout,
            max_header_bytes: config.max_header_bytes,
            request_timeout: config.request_timeout,
        }
    }
}

/// hyper's own HTTP/1 header read timeout is off: it arms a timer each
/// time it waits for a request head, about 1,300 instructions per request
/// on `/plaintext` (of some 18,600; `bench/callgrind.sh`). Each connection
/// has a [`Deadline`] instead, one coarse timer per connection.
fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(None)
        // A head that does not fit the read buffer gets 431 (hyper's
        // minimum buffer is 8 KiB: the config refuses less).
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves until `shutdown` is cancelled, then stops accepting and waits up
/// to `grace` for open connections to finish (each is told to close after
/// its current requests). Returns `false` if the grace period ran out.
/// Accept errors are logged and retried, never fatal. With `tls`, every
/// connection is TLS.
pub async fn serve(
    listener: TcpListener,
    make: MakeDispatcher,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
    grace: Duration,
) -> bool {
    let builder = Arc::new(builder(limits));
    let tls = tls.map(|tls| TlsConnections {
        tls,
        builder: Arc::clone(&builder),
        handshake_timeout: limits.header_read_timeout,
        request_timeout: limits.request_timeout,
        shutdown: shutdown.clone(),
    });
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = make.dispatcher(peer.ip(), Arc::clone(&activity));
        if let Some(tls) = &tls {
            tls.spawn(stream, peer, service, activity, permit, graceful.watcher());
            continue;
        }
        let io = TokioIo::new(Tracked::new(stream, Arc::clone(&activity)));
        let connection = builder.serve_connection_with_upgrades(io, service);
        let connection = graceful.watch(connection.into_owned());
        let connection = Deadline::new(
            connection,
            activity,
            limits.header_read_timeout,
            Some(limits.request_timeout),
        );
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: no new connections, finishing requests"
    );
    finish(graceful.shutdown(), grace).await
}

/// How TLS connections are served.
struct TlsConnections {
    tls: Arc<Tls>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handshake_timeout: Duration,
    request_timeout: Duration,
    shutdown: CancellationToken,
}

impl TlsConnections {
    /// Serves `stream` on a task of its own, which holds `permit` until the
    /// connection closes: the TLS handshake, then HTTP as on a plain
    /// connection.
    fn spawn(
        &self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        service: Dispatcher,
        activity: Arc<Activity>,
        permit: OwnedSemaphorePermit,
        watcher: Watcher,
    ) {
        let (tls, builder) = (Arc::clone(&self.tls), Arc::clone(&self.builder));
        let (timeout, shutdown) = (self.handshake_timeout, self.shutdown.clone());
        let request_timeout = Some(self.request_timeout);
        tokio::spawn(async move {
            let Some(stream) = tls.accept(stream, peer, timeout, &shutdown).await else {
                return;
            };
            let io = TokioIo::new(Tracked::new(stream, Arc::clone(&activity)));
            let connection = builder.serve_connection_with_upgrades(io, service);
            Deadline::new(
                watcher.watch(connection.into_owned()),
                activity,
                timeout,
                request_timeout,
            )
            .await;
            drop(permit);
        });
    }
}

async fn finish(connections_closed: impl Future<Output = ()>, grace: Duration) -> bool {
    if tokio::time::timeout(grace, connections_closed).await.is_ok() {
        return true;
    }
    tracing::warn!("shutdown grace period over; cancelling requests still running");
    false
}

/// An accept error: a connection that died before it was accepted is
/// nothing; running out of file descriptors is logged, and accepting
/// pauses a moment so that the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
