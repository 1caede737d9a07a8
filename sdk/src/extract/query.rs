//! `Query<T>`: the query string, typed.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{FromRequestRef, Rejection};
use crate::request::Request;

/// The query string (`?page=2&order=desc`) deserialised into `T`, usually
/// a struct with one field per parameter.
///
/// The query string is percent-decoded once per request and kept (the same
/// pairs serve [`Request::query`]); each value is text parsed into its
/// field's type, and an empty value (`?page=`) is `None` for an `Option`.
/// A parameter the struct does not name is ignored; one given twice is an
/// error, unless `T` is a list of pairs (`Vec<(String, String)>`). A query
/// that does not fit `T` is a `400` [`Rejection::InvalidQuery`].
///
/// ```
/// use crabcat_sdk::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Paging {
///     page: Option<u32>,    // `?page=` and no `page` both give None
///     #[serde(default)]
///     order: Order,
/// }
///
/// #[derive(serde::Deserialize, Default)]
/// #[serde(rename_all = "lowercase")]
/// enum Order {
///     #[default]
///     Asc,
///     Desc,
/// }
///
/// async fn list(Query(paging): Query<Paging>) -> String {
///     format!("page {}", paging.page.unwrap_or(1))
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<A, T: DeserializeOwned> FromRequestRef<A> for Query<T> {
    type Rejection = Rejection;

    fn from_request_ref(req: &Request, _app: &Arc<A>) -> Result<Self, Rejection> {
        req.decode_query().map(Query).map_err(Rejection::InvalidQuery)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::ffi::testing::TestRequest;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Paging {
        page: Option<u32>,
        q: Option<String>,
    }

    fn extract(query: &str) -> Result<Paging, Rejection> {
        let req = TestRequest::get("/").query(query).build();
        Query::<Paging>::from_request_ref(&req, &Arc::new(())).map(|Query(q)| q)
    }

    #[test]
    fn the_query_string_into_a_struct() {
        assert_eq!(
            extract("page=2&q=a%20b+c&other=1").unwrap(),
            Paging {
                page: Some(2),
                q: Some("a b c".into())
            }
        );
        assert_eq!(extract("").unwrap(), Paging { page: None, q: None });
        assert_eq!(extract("page=").unwrap().page, None, "empty is None");
    }

    #[test]
    fn a_query_that_does_not_fit_is_a_400() {
        let error = extract("page=two").unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        assert_eq!(
            crate::Error::from(error).message(),
            "invalid query string: cannot parse \"two\" as u32: invalid digit found in string"
        );
        assert!(matches!(extract("q=1&q=2"), Err(Rejection::InvalidQuery(_))));
    }

    #[test]
    fn the_pairs_are_decoded_once_and_shared() {
        let req = TestRequest::get("/").query("b=x%20y&b=second&a=1").build();
        assert_eq!(req.query("b").as_deref(), Some("x y"));
        let first = req.query_pairs().as_ptr();
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_ref(&req, &Arc::new(())).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(req.query_pairs().as_ptr(), first, "decoded once per request");
    }
}
