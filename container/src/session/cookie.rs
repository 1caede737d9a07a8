//! Session ids and the cookie that carries them.

use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};
use sha2::{Digest, Sha256};

/// Random bytes in an id: 256 bits.
const ID_BYTES: usize = 32;
/// An id as the cookie carries it: lowercase hex.
const ID_LEN: usize = ID_BYTES * 2;
/// Cookies of our name looked at, at most (a client may send one per
/// matching `Path`).
const MAX_CANDIDATES: usize = 4;

/// A new session id, from the operating system's random source.
///
/// # Panics
/// If the operating system has no random source to give (then nothing
/// safe can be done).
pub fn new_id() -> String {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps instead of the id.
pub fn hash(id: &str) -> String {
    format!("{:x}", Sha256::digest(id.as_bytes()))
}

fn well_formed(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The well-formed ids in the request's cookies named `name`: anything
/// else (a tampered or foreign value) is ignored, as if absent.
pub fn ids<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
        .filter(|id| well_formed(id))
        .take(MAX_CANDIDATES)
}

/// The `Set-Cookie` value for session `id` (`clear`: one that makes the
/// client forget it).
pub fn set_cookie(name: &str, id: &str, path: &str, secure: bool, clear: bool) -> HeaderValue {
    let mut cookie = format!("{name}={id}; Path={path}; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    if clear {
        cookie.push_str("; Max-Age=0");
    }
    // The name is a validated token, the id hex and the path a validated
    // context path: always a valid header value.
    HeaderValue::try_from(cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_256_random_bits_in_hex_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a, "the store never sees the id");
    }

    #[test]
    fn only_well_formed_ids_of_our_cookie_are_candidates() {
        let good = new_id();
        let mut headers = HeaderMap::new();
        let line = format!("other=1; S={}; S=../../etc; S={good}; S=\"{good}\"", "A".repeat(64));
        headers.insert(COOKIE, HeaderValue::try_from(line).unwrap());
        headers.append(COOKIE, HeaderValue::from_static("S=zz"));
        let found: Vec<&str> = ids(&headers, "S").collect();
        assert_eq!(found, [good.as_str(), good.as_str()]);
        assert_eq!(ids(&headers, "T").count(), 0);
    }

    #[test]
    fn the_cookie_says_http_only_lax_and_path() {
        let value = set_cookie("S", "ab", "/guestbook", false, false);
        assert_eq!(value, "S=ab; Path=/guestbook; HttpOnly; SameSite=Lax");
        let value = set_cookie("S", "", "/", true, true);
        assert_eq!(value, "S=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0");
    }
}
