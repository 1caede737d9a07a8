//! `[server]`: the HTTP listener, its limits, TLS and the access log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP listener.
    pub listen: SocketAddr,
    /// A request that takes longer gets `504 Gateway Timeout`.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Module code that runs this long without yielding (a loop or a
    /// blocking call in an async handler) is reported, and its app gets
    /// `503` for new requests until it returns; `0s` turns the watchdog off.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// Largest request body accepted; larger ones get `413`.
    pub max_body_bytes: usize,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Connections served at once; past it, new ones wait in the kernel's
    /// backlog until one closes. Keep it below the process's file limit.
    pub max_connections: usize,
    /// Requests served on one HTTP/1 keep-alive connection: the last one's
    /// response says `Connection: close` (nginx's `keepalive_requests`),
    /// so long-lived clients spread again over the nodes behind a load
    /// balancer. `0`: no limit.
    pub max_requests_per_connection: u32,
    /// Time to receive a complete request head, from the moment the
    /// connection opens or its previous response ends: also the idle
    /// keep-alive timeout. A client that is slower is disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (start line and headers); larger gets `431`.
    pub max_header_bytes: usize,
    /// Longest request target (path and query); longer gets `414`.
    pub max_uri_bytes: usize,
    /// One access log line per request, written off the request path.
    pub access_log: bool,
    /// Where access log lines go; standard error when unset. Opened for
    /// appending (so `logrotate`'s `copytruncate` works).
    pub access_log_file: Option<PathBuf>,
    /// The access log's line format.
    pub access_log_format: AccessLogFormat,
    /// Largest WebSocket message (and frame) a client may send; a larger
    /// one closes the connection with code 1009.
    pub websocket_max_message_bytes: usize,
    /// How often the container pings an idle WebSocket client (a client
    /// that does not answer is found dead by TCP); `0s` never.
    #[serde(with = "humantime_serde")]
    pub websocket_ping_interval: Duration,
    /// `[server.tls]`: serve HTTPS on `listen`; unset, plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Addresses of the reverse proxies in front (e.g. `["127.0.0.1"]`):
    /// from them, and only from them, `X-Forwarded-Proto: https` counts as
    /// a request made over TLS (for the session cookie's `Secure`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `[server.tls]`: the listener's certificate. Both files are read at start
/// (a missing or invalid one stops it) and again on SIGHUP and whenever one
/// of them changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, RSA or SEC1).
    /// May be the same file as `cert`.
    pub key: PathBuf,
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// NCSA common log format, as Tomcat's default `AccessLogValve`:
    /// `host - - [time] "request line" status bytes`.
    Common,
    /// The combined log format, as nginx's default: `common` then
    /// `"referer" "user-agent"`.
    #[default]
    Combined,
    /// `combined` then the app that answered (`-` for none) and the
    /// request time in seconds, with millisecond resolution (nginx's
    /// `$request_time`).
    Extended,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(2),
            max_body_bytes: 2 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_requests_per_connection: 1000,
            header_read_timeout: Duration::from_secs(20),
            max_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            access_log: true,
            access_log_file: None,
            access_log_format: AccessLogFormat::Combined,
            websocket_max_message_bytes: 1024 * 1024,
            websocket_ping_interval: Duration::from_secs(30),
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }
}
