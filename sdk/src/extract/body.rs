//! Body extractors: `Json<T>`, `Form<T>`, `JsonOrForm<T>`, `String` and
//! `Vec<u8>`.
//!
//! The container has read the whole body (up to its size limit) before the
//! handler runs, so these read it in place: they need not be the last
//! argument.

use std::convert::Infallible;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::text;
use super::{FromRequestRef, Rejection};
use crate::request::Request;
use crate::response::Json;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// The media type of the request's `content-type`, without parameters.
fn media_type(req: &Request) -> Option<&str> {
    let value = req.header("content-type")?;
    Some(value.split(';').next().unwrap_or_default().trim())
}

/// `application/json`, or a `+json` type such as `application/problem+json`.
fn is_json(req: &Request) -> bool {
    media_type(req).is_some_and(|mime| {
        let Some((kind, subtype)) = mime.split_once('/') else {
            return false;
        };
        kind.eq_ignore_ascii_case("application")
            && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
    })
}

fn is_form(req: &Request) -> bool {
    media_type(req).is_some_and(|mime| mime.eq_ignore_ascii_case(FORM))
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Rejection> {
    serde_json::from_slice(body).map_err(Rejection::json)
}

fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, Rejection> {
    decode_form(body).map_err(Rejection::InvalidForm)
}

/// `Json<T>` as an argument reads a JSON body into `T` (as a return value it
/// writes one; see [`Json`]).
///
/// The request must say `content-type: application/json` (or a `+json`
/// type), else `415`. A body that is not JSON is a `400`
/// ([`Rejection::InvalidJsonSyntax`]); JSON of another shape than `T` is a
/// `422` ([`Rejection::InvalidJsonData`]).
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct NewNote {
///     text: String,
/// }
///
/// async fn add(Json(note): Json<NewNote>) -> (StatusCode, String) {
///     (StatusCode::CREATED, note.text)
/// }
/// ```
impl<A, T: DeserializeOwned> FromRequestRef<A> for Json<T> {
    type Rejection = Rejection;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        if !is_json(req) {
            return Err(Rejection::UnsupportedMediaType { expected: JSON });
        }
        parse_json(req.body()).map(Json)
    }
}

/// An HTML form body (`application/x-www-form-urlencoded`) deserialised
/// into `T`.
///
/// Another content type is a `415`; a form that does not fit `T` is a `422`
/// ([`Rejection::InvalidForm`]). Values parse as [`Query`](crate::Query)
/// values do: an empty field is `None` for an `Option`.
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct SignUp {
///     name: String,
///     age: Option<u8>,
/// }
///
/// async fn sign_up(Form(form): Form<SignUp>) -> String {
///     format!("welcome, {}", form.name)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Form<T>(pub T);

impl<A, T: DeserializeOwned> FromRequestRef<A> for Form<T> {
    type Rejection = Rejection;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        if !is_form(req) {
            return Err(Rejection::UnsupportedMediaType { expected: FORM });
        }
        parse_form(req.body()).map(Form)
    }
}

/// A body read as [`Json`] or as a [`Form`], whichever its content type
/// says: one route for API clients and HTML forms alike. Any other content
/// type is a `415`.
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Transfer {
///     to: String,
///     amount: i64, // a JSON number, or form text that parses as one
/// }
///
/// async fn transfer(JsonOrForm(t): JsonOrForm<Transfer>) -> String {
///     format!("{} to {}", t.amount, t.to)
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonOrForm<T>(pub T);

impl<A, T: DeserializeOwned> FromRequestRef<A> for JsonOrForm<T> {
    type Rejection = Rejection;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        if is_json(req) {
            parse_json(req.body()).map(JsonOrForm)
        } else if is_form(req) {
            parse_form(req.body()).map(JsonOrForm)
        } else {
            Err(Rejection::UnsupportedMediaType {
                expected: "application/json or application/x-www-form-urlencoded",
            })
        }
    }
}

/// The body as text, whatever its content type; not UTF-8 is a `400`.
impl<A> FromRequestRef<A> for String {
    type Rejection = Rejection;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        std::str::from_utf8(req.body())
            .map(str::to_owned)
            .map_err(|_| Rejection::BodyNotUtf8)
    }
}

/// The body bytes, whatever its content type (a copy; to read them in
/// place, take the [`Request`] and call [`Request::body`]).
impl<A> FromRequestRef<A> for Vec<u8> {
    type Rejection = Infallible;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Infallible> {
        Ok(req.body().to_vec())
    }
}

/// A form body deserialised into `T` (also for [`Request::form`]).
pub(crate) fn decode_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde::de::value::Error> {
    text::from_pairs(form_urlencoded::parse(body))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::ffi::testing::TestRequest;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Note {
        text: String,
        stars: Option<u8>,
    }

    fn post(content_type: &str, body: &str) -> Request {
        TestRequest::post("/")
            .header("content-type", content_type)
            .body(body)
            .build()
    }

    fn extract<T: FromRequestRef<()>>(req: &Request) -> Result<T, T::Rejection> {
        T::from_request_ref(req, &Arc::new(()))
    }

    #[test]
    fn json_bodies() {
        let Json(note) = extract::<Json<Note>>(&post("application/json", r#"{"text":"hi","stars":5}"#)).unwrap();
        assert_eq!(
            note,
            Note {
                text: "hi".into(),
                stars: Some(5)
            }
        );
        let req = post("Application/Problem+JSON; charset=utf-8", r#"{"text":"hi"}"#);
        assert!(extract::<Json<Note>>(&req).is_ok(), "+json types and parameters");
    }

    #[test]
    fn json_rejections_by_kind() {
        let status = |req: Request| extract::<Json<Note>>(&req).unwrap_err().status().as_u16();
        assert_eq!(status(post("text/plain", r#"{"text":"hi"}"#)), 415);
        assert_eq!(
            status(TestRequest::post("/").body("{}").build()),
            415,
            "no content type"
        );
        assert_eq!(status(post("application/json", "{not json")), 400);
        assert_eq!(status(post("application/json", "")), 400);
        assert_eq!(status(post("application/json", r#"{"text":1}"#)), 422);
        assert_eq!(status(post("application/json", r#"{"stars":1}"#)), 422);
    }

    #[test]
    fn form_bodies() {
        let req = post("application/x-www-form-urlencoded", "text=a+%26+b&stars=");
        let Form(note) = extract::<Form<Note>>(&req).unwrap();
        assert_eq!(
            note,
            Note {
                text: "a & b".into(),
                stars: None
            }
        );
        let req = post("application/x-www-form-urlencoded", "text=x&stars=many");
        let error = extract::<Form<Note>>(&req).unwrap_err();
        assert_eq!(error.status().as_u16(), 422);
        let req = post("application/json", r#"{"text":"x"}"#);
        assert_eq!(extract::<Form<Note>>(&req).unwrap_err().status().as_u16(), 415);
    }

    #[test]
    fn json_or_form_goes_by_content_type() {
        let json = post("application/json", r#"{"text":"j","stars":1}"#);
        let form = post("application/x-www-form-urlencoded", "text=f&stars=1");
        assert_eq!(extract::<JsonOrForm<Note>>(&json).unwrap().0.text, "j");
        assert_eq!(extract::<JsonOrForm<Note>>(&form).unwrap().0.text, "f");
        let other = post("text/plain", "text=f");
        assert_eq!(extract::<JsonOrForm<Note>>(&other).unwrap_err().status().as_u16(), 415);
    }

    #[test]
    fn text_and_bytes() {
        let req = TestRequest::post("/").body(&b"caf\xc3\xa9"[..]).build();
        assert_eq!(extract::<String>(&req).unwrap(), "café");
        assert_eq!(extract::<Vec<u8>>(&req).unwrap(), b"caf\xc3\xa9");
        let req = TestRequest::post("/").body(&b"\xff"[..]).build();
        assert!(matches!(extract::<String>(&req), Err(Rejection::BodyNotUtf8)));
    }
}
