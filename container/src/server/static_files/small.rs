//! Small files in one blocking job. `ServeDir` runs each filesystem step
//! (metadata, open, metadata again, each read) as its own job on the
//! blocking pool: about six thread hand-offs for a 1 kB file, which cost
//! far more than the file. A plain `GET` or `HEAD` of a regular file of at
//! most [`SMALL`] bytes, with no precompressed variant the client accepts,
//! is read whole by the same job that checks the path; everything else
//! (ranges, directories, variants, large files, missing files) goes to
//! `ServeDir`.

use std::io::Read as _;
use std::path::Path;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::HeaderValue;
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_TYPE, LAST_MODIFIED};

use super::path::Candidates;

/// The largest file read whole.
pub const SMALL: u64 = 64 * 1024;

/// What the job found.
pub enum Looked {
    /// A candidate resolves outside the directory.
    Escape,
    /// A small file, read.
    Small { bytes: Bytes, modified: Option<SystemTime> },
    /// Anything else: `ServeDir` serves it.
    Other,
}

/// Checks `candidates` against `root` and, if `read` (a plain request),
/// reads the file when it is small. Blocking.
pub fn look(root: &Path, candidates: &Candidates, read: bool) -> Looked {
    if candidates.escape(root) {
        return Looked::Escape;
    }
    if !read {
        return Looked::Other;
    }
    let path = root.join(candidates.file());
    if candidates.variants(&path).any(|variant| variant.exists()) {
        return Looked::Other;
    }
    let Ok(mut file) = std::fs::File::open(&path) else {
        return Looked::Other;
    };
    let Ok(meta) = file.metadata() else {
        return Looked::Other;
    };
    if !meta.is_file() || meta.len() > SMALL {
        return Looked::Other;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    match file.read_to_end(&mut bytes) {
        Ok(_) => Looked::Small {
            bytes: bytes.into(),
            modified: meta.modified().ok(),
        },
        Err(_) => Looked::Other,
    }
}

/// The `200` of a small file, with the headers `ServeDir` would give it.
pub fn response(file: &Path, bytes: Bytes, modified: Option<SystemTime>, head: bool) -> Response {
    let mime = mime_guess::from_path(file)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let length = bytes.len();
    let mut response = match head {
        true => Response::new(Body::empty()),
        false => Response::new(Body::from(bytes)),
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(date) = modified.and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok()) {
        headers.insert(LAST_MODIFIED, date);
    }
    response
}
