//! The access log's line formats: NCSA common, combined, and extended
//! (combined with the app and the request time).

use std::io::Write;
use std::time::SystemTime;

use super::Entry;
use crate::config::AccessLogFormat;

/// The formatted `[10/Oct/2000:13:55:36 +0000]` of the current second.
#[derive(Default)]
pub(super) struct Clock {
    second: u64,
    text: String,
}

impl Clock {
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
pub(super) fn format_line(out: &mut Vec<u8>, entry: &Entry, format: AccessLogFormat, clock: &mut Clock) {
    let a = &entry.access;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{} - - {} \"{} ", entry.peer, clock.format(a.time), a.method);
    escaped(out, a.target());
    let _ = write!(out, " {:?}\" {} ", a.version, entry.status);
    match entry.bytes {
        Some(n) if n > 0 => {
            let _ = write!(out, "{n}");
        }
        _ => out.push(b'-'),
    }
    if format != AccessLogFormat::Common {
        quoted(out, a.referer());
        quoted(out, a.user_agent());
    }
    if format == AccessLogFormat::Extended {
        let app = entry.app.as_deref().unwrap_or("-");
        let _ = write!(out, " {app} {:.3}", entry.latency.as_secs_f64());
    }
    out.push(b'\n');
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
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
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
            access,
            peer: "127.0.0.1".parse().unwrap(),
            status: 200,
            bytes: Some(13),
            latency: Duration::from_millis(2),
            app: Some("hello".into()),
        };
        drop(writer);
        let mut out = Vec::new();
        format_line(&mut out, &entry, format, &mut Clock::default());
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
    fn control_characters_cannot_forge_lines() {
        let mut out = Vec::new();
        escaped(&mut out, b"a\nb\"c\\d\xff");
        assert_eq!(out, b"a\\x0Ab\\x22c\\x5Cd\\xFF");
    }
}
