//! What `ServeDir` lacks of conditional requests: an `ETag`, and the
//! choice between `If-None-Match` and `If-Modified-Since` (RFC 9110 §13.2.2:
//! the first wins when both are sent).

use std::time::UNIX_EPOCH;

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};

/// The request's `If-None-Match` and `If-Modified-Since`, taken out of it
/// so that `ServeDir` does not answer `304` itself (its `304` would carry
/// no `ETag`); evaluated on its response instead.
pub struct Conditions {
    none_match: Option<HeaderValue>,
    modified_since: Option<HeaderValue>,
}

impl Conditions {
    /// Takes the two headers out of `headers`.
    pub fn take(headers: &mut HeaderMap) -> Self {
        Conditions {
            none_match: headers.remove(IF_NONE_MATCH),
            modified_since: headers.remove(IF_MODIFIED_SINCE),
        }
    }

    /// Whether the representation with `etag` and `last_modified` is the
    /// one the client has: any `If-None-Match` tag equals `etag` (weak
    /// comparison) or is `*`; or, without `If-None-Match`, it was not
    /// modified after `If-Modified-Since`.
    pub fn not_modified(&self, etag: Option<&HeaderValue>, last_modified: Option<&HeaderValue>) -> bool {
        if let Some(tags) = &self.none_match {
            let Some(etag) = etag.and_then(|e| e.to_str().ok()) else {
                return false;
            };
            let tags = tags.to_str().unwrap_or("");
            return tags
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || opaque(tag) == opaque(etag));
        }
        match (&self.modified_since, last_modified.and_then(seconds)) {
            (Some(since), Some(modified)) => seconds(since).is_some_and(|since| modified <= since),
            _ => false,
        }
    }
}

/// A weak `ETag` from what `ServeDir`'s response says of the file: its
/// modification time and size, as nginx's (`"mtime-size"`, in hex), and
/// its content coding, so that each precompressed variant has its own.
/// `None` when the response does not say (no `Last-Modified`).
pub fn etag(headers: &HeaderMap) -> Option<HeaderValue> {
    let modified = seconds(headers.get(LAST_MODIFIED)?)?;
    let size = total_size(headers)?;
    let coding = match headers.get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None => String::new(),
        Some("gzip") => "-gz".to_owned(),
        Some(other) => format!("-{other}"),
    };
    HeaderValue::from_str(&format!("W/\"{modified:x}-{size:x}{coding}\"")).ok()
}

/// The whole file's size: after the `/` of `Content-Range` on a `206` or
/// `416`, else `Content-Length`.
fn total_size(headers: &HeaderMap) -> Option<u64> {
    match headers.get(CONTENT_RANGE) {
        Some(range) => range.to_str().ok()?.rsplit_once('/')?.1.parse().ok(),
        None => headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok(),
    }
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// An HTTP date as seconds since the epoch.
fn seconds(date: &HeaderValue) -> Option<u64> {
    let time = httpdate::parse_http_date(date.to_str().ok()?).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    const DATE: &str = "Wed, 02 Dec 2026 08:00:00 GMT";

    #[test]
    fn the_tag_names_time_size_and_coding() {
        let plain = etag(&headers(&[(LAST_MODIFIED, DATE), (CONTENT_LENGTH, "255")])).unwrap();
        assert_eq!(plain, "W/\"6b0fd000-ff\"");
        let range = headers(&[
            (LAST_MODIFIED, DATE),
            (CONTENT_RANGE, "bytes 0-9/255"),
            (CONTENT_LENGTH, "10"),
        ]);
        assert_eq!(etag(&range).unwrap(), plain);
        let gz = headers(&[
            (LAST_MODIFIED, DATE),
            (CONTENT_LENGTH, "255"),
            (CONTENT_ENCODING, "gzip"),
        ]);
        assert_eq!(etag(&gz).unwrap(), "W/\"6b0fd000-ff-gz\"");
        assert_eq!(etag(&headers(&[(CONTENT_LENGTH, "1")])), None);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let tag = HeaderValue::from_static("W/\"1-2\"");
        let date = HeaderValue::from_static(DATE);
        let mut request = headers(&[(IF_NONE_MATCH, "\"other\""), (IF_MODIFIED_SINCE, DATE)]);
        assert!(!Conditions::take(&mut request).not_modified(Some(&tag), Some(&date)));
        assert!(request.is_empty());
        let mut request = headers(&[(IF_NONE_MATCH, "\"x\", \"1-2\"")]);
        assert!(Conditions::take(&mut request).not_modified(Some(&tag), Some(&date)));
        let mut request = headers(&[(IF_NONE_MATCH, "*")]);
        assert!(Conditions::take(&mut request).not_modified(Some(&tag), None));
        let mut request = headers(&[(IF_MODIFIED_SINCE, DATE)]);
        assert!(Conditions::take(&mut request).not_modified(None, Some(&date)));
        let mut request = headers(&[(IF_MODIFIED_SINCE, "Wed, 02 Dec 2026 07:59:59 GMT")]);
        assert!(!Conditions::take(&mut request).not_modified(None, Some(&date)));
    }
}
