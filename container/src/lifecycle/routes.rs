//! An app's route table: method + path pattern → the module's route number.

use http::Method;

use crate::abi::RouteSpec;

/// Where a request goes inside the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The module's route number.
    pub route: u32,
    /// Run on the blocking thread pool.
    pub blocking: bool,
    /// Run inside a container-managed transaction.
    pub transactional: bool,
    /// The handler reads the body as it arrives.
    pub stream_body: bool,
    /// A WebSocket endpoint.
    pub websocket: bool,
    /// The route's own body limit.
    pub max_body: Option<u64>,
}

/// Why a module's routes could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The method is not a valid HTTP method.
    #[error("route {pattern}: invalid method {method:?}")]
    Method { method: String, pattern: String },
    /// Patterns must start with `/`.
    #[error("route {pattern:?}: patterns start with '/'")]
    Pattern { pattern: String },
    /// The same method and pattern twice.
    #[error("route {method} {pattern} is declared twice")]
    Duplicate { method: Method, pattern: String },
    /// The router refused the pattern (e.g. it conflicts with another).
    #[error("route {pattern}: {source}")]
    Insert {
        pattern: String,
        #[source]
        source: matchit::InsertError,
    },
}

/// The result of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A handler for this method and path.
    Found {
        target: Target,
        /// Percent-decoded path parameters, in pattern order.
        params: Vec<(String, String)>,
    },
    /// The path exists with other methods; the value of `Allow`.
    MethodNotAllowed(String),
    /// No pattern matches the path.
    NotFound,
    /// A path parameter is not valid percent-encoded UTF-8.
    BadParam,
}

#[derive(Debug, Default)]
struct PathRoutes {
    methods: Vec<(Method, Target)>,
}

impl PathRoutes {
    fn find(&self, method: &Method) -> Option<Target> {
        let exact = self.methods.iter().find(|(m, _)| m == method);
        let head_as_get = || (*method == Method::HEAD).then(|| self.find(&Method::GET)).flatten();
        exact.map(|(_, t)| *t).or_else(head_as_get)
    }

    fn allow(&self) -> String {
        let mut methods: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        methods.join(", ")
    }
}

/// Routes of one app instance.
#[derive(Debug, Default)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    paths: Vec<PathRoutes>,
}

impl RouteTable {
    /// Builds the table from what the module registered; route numbers are
    /// positions in `specs`.
    ///
    /// # Errors
    /// A [`RouteError`] for the first bad route.
    pub fn build(specs: &[RouteSpec]) -> Result<RouteTable, RouteError> {
        let mut patterns: Vec<(&str, PathRoutes)> = Vec::new();
        for (route, spec) in (0u32..).zip(specs) {
            let method = Method::from_bytes(spec.method.as_bytes()).map_err(|_| RouteError::Method {
                method: spec.method.clone(),
                pattern: spec.pattern.clone(),
            })?;
            if !spec.pattern.starts_with('/') {
                return Err(RouteError::Pattern {
                    pattern: spec.pattern.clone(),
                });
            }
            let index = match patterns.iter().position(|(p, _)| *p == spec.pattern) {
                Some(i) => i,
                None => {
                    patterns.push((&spec.pattern, PathRoutes::default()));
                    patterns.len() - 1
                }
            };
            let path = &mut patterns[index].1;
            if path.methods.iter().any(|(m, _)| *m == method) {
                return Err(RouteError::Duplicate {
                    method,
                    pattern: spec.pattern.clone(),
                });
            }
            let target = Target {
                route,
                blocking: spec.blocking,
                transactional: spec.transactional,
                stream_body: spec.stream_body,
                websocket: spec.websocket,
                max_body: spec.max_body,
            };
            path.methods.push((method, target));
        }
        let mut table = RouteTable::default();
        for (pattern, path) in patterns {
            table
                .router
                .insert(pattern, table.paths.len())
                .map_err(|source| RouteError::Insert {
                    pattern: pattern.to_owned(),
                    source,
                })?;
            table.paths.push(path);
        }
        Ok(table)
    }

    /// How many routes the module registered.
    pub fn len(&self) -> usize {
        self.paths.iter().map(|p| p.methods.len()).sum()
    }

    /// `true` if the module registered no route.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Finds the handler for `method` on `path` (the path inside the app).
    /// `HEAD` falls back to `GET`.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup {
        let Ok(matched) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        let routes = &self.paths[*matched.value];
        let Some(target) = routes.find(method) else {
            return Lookup::MethodNotAllowed(routes.allow());
        };
        let mut params = Vec::new();
        for (name, raw) in matched.params.iter() {
            match percent_encoding::percent_decode_str(raw).decode_utf8() {
                Ok(value) => params.push((name.to_owned(), value.into_owned())),
                Err(_) => return Lookup::BadParam,
            }
        }
        Lookup::Found { target, params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(method: &str, pattern: &str) -> RouteSpec {
        RouteSpec {
            method: method.into(),
            pattern: pattern.into(),
            blocking: false,
            transactional: false,
            stream_body: false,
            websocket: false,
            max_body: None,
        }
    }

    fn table() -> RouteTable {
        RouteTable::build(&[
            spec("GET", "/"),
            spec("GET", "/greet/{name}"),
            spec("POST", "/greet/{name}"),
        ])
        .unwrap()
    }

    #[test]
    fn finds_routes_and_decodes_params() {
        let t = table();
        let target = |route| Target {
            route,
            blocking: false,
            transactional: false,
            stream_body: false,
            websocket: false,
            max_body: None,
        };
        assert_eq!(
            t.lookup(&Method::GET, "/"),
            Lookup::Found {
                target: target(0),
                params: vec![]
            }
        );
        assert_eq!(
            t.lookup(&Method::POST, "/greet/J%C3%BCrgen%20X"),
            Lookup::Found {
                target: target(2),
                params: vec![("name".into(), "Jürgen X".into())]
            }
        );
        assert_eq!(t.lookup(&Method::GET, "/greet/%FF"), Lookup::BadParam);
    }

    #[test]
    fn head_falls_back_to_get_and_405_lists_methods() {
        let t = table();
        assert!(matches!(t.lookup(&Method::HEAD, "/greet/x"), Lookup::Found { target, .. } if target.route == 1));
        assert_eq!(
            t.lookup(&Method::DELETE, "/greet/x"),
            Lookup::MethodNotAllowed("GET, POST, HEAD".into())
        );
        assert_eq!(t.lookup(&Method::GET, "/nope"), Lookup::NotFound);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(matches!(
            RouteTable::build(&[spec("GET", "/a"), spec("GET", "/a")]),
            Err(RouteError::Duplicate { .. })
        ));
        assert!(matches!(
            RouteTable::build(&[spec("GET", "a")]),
            Err(RouteError::Pattern { .. })
        ));
        assert!(matches!(
            RouteTable::build(&[spec("GET", "/{a}"), spec("GET", "/{b}")]),
            Err(RouteError::Insert { .. })
        ));
    }
}
