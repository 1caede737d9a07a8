//! The access log's line formats: NCSA common, combined, and extended
//! (combined with the app and the request time).

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::Version;

use super::Entry;
use crate::config::AccessLogFormat;

/// What a thread's line shares with its previous one, formatted once: the
/// `[10/Oct/2000:13:55:36 +0000]` of the current second, and the client's
/// address (a keep-alive connection's requests, a proxy's).
#[derive(Default)]
pub(super) struct Recent {
    second: u64,
    text: String,
    peer: Option<IpAddr>,
    peer_text: Vec<u8>,
}

impl Recent {
    fn peer(&mut self, peer: IpAddr) -> &[u8] {
        if self.peer != Some(peer) {
            self.peer_text.clear();
            format_peer(&mut self.peer_text, peer);
            self.peer = Some(peer);
        }
        &self.peer_text
    }

    fn format(&mut self, time: SystemTime) -> &str {
        let second = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            let format =
                time::macros::format_description!("[[[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000]");
            self.text = time::OffsetDateTime::from(time)
                .format(&format)
                .unwrap_or_else(|_| "[-]".into());
            self.second = second;
        }
        &self.text
    }
}

/// Appends the line of `entry` in `format`, with a trailing newline.
/// Written by hand rather than through `core::fmt`, which cost several
/// times as much as the rest of the request's logging.
pub(super) fn format_line(out: &mut Vec<u8>, entry: &Entry<'_>, format: AccessLogFormat, recent: &mut Recent) {
    let a = entry.access;
    out.extend_from_slice(recent.peer(entry.peer));
    out.extend_from_slice(b" - - ");
    out.extend_from_slice(recent.format(a.time).as_bytes());
    out.extend_from_slice(b" \"");
    // A method is a token: no quotes, spaces or control characters.
    out.extend_from_slice(a.method.as_str().as_bytes());
    out.push(b' ');
    escaped(out, a.target());
    out.push(b' ');
    out.extend_from_slice(version(a.version));
    out.extend_from_slice(b"\" ");
    number(out, u64::from(entry.status));
    out.push(b' ');
    match entry.bytes {
        Some(n) if n > 0 => number(out, n),
        _ => out.push(b'-'),
    }
    if format != AccessLogFormat::Common {
        quoted(out, a.referer());
        quoted(out, a.user_agent());
    }
    if format == AccessLogFormat::Extended {
        out.push(b' ');
        out.extend_from_slice(entry.app.unwrap_or("-").as_bytes());
        out.push(b' ');
        seconds(out, entry.latency);
    }
    out.push(b'\n');
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn format_peer(out: &mut Vec<u8>, peer: IpAddr) {
    match peer {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            number(out, a.into());
            for octet in [b, c, d] {
                out.push(b'.');
                number(out, octet.into());
            }
        }
        // Writing to a Vec cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// As `HTTP/1.1`.
fn version(version: Version) -> &'static [u8] {
    match version {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// Seconds with millisecond resolution, rounded: `0.002`.
fn seconds(out: &mut Vec<u8>, latency: Duration) {
    let millis = (latency.as_micros() + 500) / 1000;
    number(out, u64::try_from(millis / 1000).unwrap_or(u64::MAX));
    let fraction = (millis % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

fn quoted(out: &mut Vec<u8>, value: Option<&[u8]>) {
    out.extend_from_slice(b" \"");
    match value {
        Some(v) => escaped(out, v),
        None => out.push(b'-'),
    }
    out.push(b'"');
}

/// Copies `bytes`, escaping what could break a line or a quoted field
/// apart (as nginx does: `\xHH` for control characters, quotes, backslashes
/// and bytes above 0x7e), so a client cannot forge log lines.
fn escaped(out: &mut Vec<u8>, mut bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    /// Which bytes are written as `\xHH`.
    const ESCAPE: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = b < 0x20 || b >= 0x7f || b == b'"' as usize || b == b'\\' as usize;
            b += 1;
        }
        table
    };
    while let Some(i) = bytes.iter().position(|&b| ESCAPE[usize::from(b)]) {
        out.extend_from_slice(&bytes[..i]);
        let b = bytes[i];
        out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        bytes = &bytes[i + 1..];
    }
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header::{REFERER, USER_AGENT};
    use prometheus_client::metrics::counter::Counter;

    use super::*;
    use crate::server::access_log::AccessLog;

    fn entry(format: AccessLogFormat) -> String {
        let request = http::Request::builder()
            .method("GET")
            .uri("/hello/a%20b?x=1")
            .header(REFERER, "http://example.com/")
            .header(USER_AGENT, "curl/8 \"quoted\"")
            .body(axum::body::Body::empty())
            .unwrap();
        let (log, writer) = AccessLog::start(None, format, Counter::default()).unwrap();
        let mut access = log.capture(&request);
        access.time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let entry = Entry {
            access: &access,
            peer: "127.0.0.1".parse().unwrap(),
            status: 200,
            bytes: Some(13),
            latency: Duration::from_millis(2),
            app: Some("hello"),
        };
        drop(writer);
        let mut out = Vec::new();
        format_line(&mut out, &entry, format, &mut Recent::default());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_follow_the_documented_formats() {
        let common = "127.0.0.1 - - [09/Sep/2001:01:46:40 +0000] \"GET /hello/a%20b?x=1 HTTP/1.1\" 200 13";
        assert_eq!(entry(AccessLogFormat::Common), format!("{common}\n"));
        let combined = format!("{common} \"http://example.com/\" \"curl/8 \\x22quoted\\x22\"");
        assert_eq!(entry(AccessLogFormat::Combined), format!("{combined}\n"));
        assert_eq!(entry(AccessLogFormat::Extended), format!("{combined} hello 0.002\n"));
    }

    #[test]
    fn each_line_has_its_own_client_address() {
        let mut recent = Recent::default();
        for ip in ["10.0.0.1", "10.0.0.1", "::1", "10.0.0.2", "10.0.0.1"] {
            let text = recent.peer(ip.parse().unwrap());
            assert_eq!(std::str::from_utf8(text).unwrap(), ip);
        }
    }

    #[test]
    fn addresses_numbers_and_times_are_written_as_fmt_would() {
        for ip in ["10.0.255.1", "::1", "2001:db8::8a2e:370:7334", "::ffff:1.2.3.4"] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            format_peer(&mut out, ip);
            assert_eq!(out, ip.to_string().as_bytes());
        }
        for (micros, text) in [
            (0, "0.000"),
            (1_499, "0.001"),
            (2_000, "0.002"),
            (1_234_500, "1.235"),
            (61_000_000, "61.000"),
        ] {
            let mut out = Vec::new();
            seconds(&mut out, Duration::from_micros(micros));
            assert_eq!(out, text.as_bytes());
        }
        for (v, text) in [
            (Version::HTTP_10, "HTTP/1.0"),
            (Version::HTTP_11, "HTTP/1.1"),
            (Version::HTTP_2, "HTTP/2.0"),
        ] {
            assert_eq!(version(v), format!("{v:?}").as_bytes());
            assert_eq!(version(v), text.as_bytes());
        }
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let mut out = Vec::new();
        escaped(&mut out, b"a\nb\"c\\d\xff");
        assert_eq!(out, b"a\\x0Ab\\x22c\\x5Cd\\xFF");
    }
}
