//! Tomcat's manager text API at `/manager/text/` on the admin listener,
//! so that deployment tools written for Tomcat (Jenkins, the Maven and Ant
//! Tomcat tasks, curl scripts) drive Crabcat with only the URL changed.
//!
//! - `auth`: HTTP Basic, realm `Tomcat Manager Application`.
//! - `path`: Tomcat's context paths and how they name Crabcat apps.
//! - `messages`: Tomcat's response lines, word for word.
//! - `commands`: `list`, `reload`, `start`, `stop`, `undeploy`,
//!   `serverinfo`, `resources`, `findleaks`.
//! - `deploy`: `deploy` with an uploaded module, `war=`, or `tag=`.
//! - `sessions`: `sessions` and `expire`, and the seam HTTP sessions plug into.
//!
//! Every answer is `200` with `text/plain;charset=utf-8` whose first line is
//! `OK - …` or `FAIL - …`, as Tomcat's `ManagerServlet` answers.

mod auth;
mod commands;
mod deploy;
mod messages;
mod path;
mod sessions;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::header::{ALLOW, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Method, StatusCode, Uri};

pub use auth::{Credentials, PasswordError};

use super::AdminState;
use crate::config::Config;

/// What the text API needs besides the admin state.
pub struct TextApi {
    /// The Basic credentials; `None` while `admin.manager.user` is unset.
    credentials: Option<Credentials>,
    /// The configuration, for the context paths of new apps.
    config: Arc<Config>,
    /// Apps a deploy is working on (Tomcat's "serviced" set): a second
    /// deploy of the same app meanwhile fails at once.
    serviced: Mutex<HashSet<String>>,
}

impl TextApi {
    /// The text API of a container configured by `config`, with the
    /// resolved `credentials` (`None`: every call gets `401`).
    pub fn new(config: Arc<Config>, credentials: Option<Credentials>) -> Self {
        TextApi {
            credentials,
            config,
            serviced: Mutex::default(),
        }
    }

    /// Marks `app` as being deployed, unless it already is (Tomcat's
    /// `tryAddServiced`); dropping the guard clears the mark.
    fn try_service(&self, app: &str) -> Option<ServicedGuard<'_>> {
        let fresh = self.serviced.lock().expect("serviced lock").insert(app.to_owned());
        fresh.then(|| ServicedGuard {
            api: self,
            app: app.to_owned(),
        })
    }
}

/// An app marked as being deployed; dropping it clears the mark.
struct ServicedGuard<'a> {
    api: &'a TextApi,
    app: String,
}

impl Drop for ServicedGuard<'_> {
    fn drop(&mut self) {
        self.api.serviced.lock().expect("serviced lock").remove(&self.app);
    }
}

/// The routes under `/manager/text`, behind Basic authentication.
pub fn router(state: &Arc<AdminState>) -> Router<Arc<AdminState>> {
    Router::new()
        .route("/manager/text", any(text))
        .route("/manager/text/", any(text))
        .route("/manager/text/{*command}", any(text))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            auth::require_basic,
        ))
}

/// The query parameters, first value wins (`getParameter`).
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    fn parse(query: Option<&str>) -> Params {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            map.entry(decode(key)).or_insert_with(|| decode(value));
        }
        Params(map)
    }

    /// The value of `key`, if given.
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` unless absent or empty.
    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space.
fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The answer: lines, each ended by `\n` as Java's `println` ends them.
pub(crate) struct Lines(Vec<String>);

impl Lines {
    fn one(line: String) -> Lines {
        Lines(vec![line])
    }
}

impl IntoResponse for Lines {
    fn into_response(self) -> Response {
        let mut body = String::new();
        for line in self.0 {
            body.push_str(&line);
            body.push('\n');
        }
        (
            [
                (CONTENT_TYPE, "text/plain;charset=utf-8"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response()
    }
}

/// Every text API request: the command is the path after `/manager`'s
/// servlet mapping `/text` (Tomcat's `getPathInfo()`, or the servlet path
/// `/text` when there is none).
async fn text(State(state): State<Arc<AdminState>>, method: Method, uri: Uri, body: Body) -> Response {
    let rest = uri.path().strip_prefix("/manager/text").unwrap_or("");
    let command = if rest.is_empty() { "/text" } else { rest };
    let params = Params::parse(uri.query());
    tracing::info!(command, query = uri.query().unwrap_or(""), %method, "manager text API call");
    let Some(api) = state.manager_text.as_ref() else {
        return StatusCode::NOT_FOUND.into_response(); // unreachable: auth refuses first
    };
    match method {
        Method::GET | Method::HEAD => get(&state, api, command, &params).await.into_response(),
        Method::PUT if command == "/deploy" => deploy::upload(&state, api, &params, body).await.into_response(),
        Method::PUT => Lines::one(messages::unknown_command(command)).into_response(),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, "GET, HEAD, PUT, OPTIONS")],
            format!("HTTP method {method} is not supported by this URL\n"),
        )
            .into_response(),
    }
}

/// Tomcat's `doGet`: one command per path.
async fn get(state: &AdminState, api: &TextApi, command: &str, params: &Params) -> Lines {
    match command {
        "/deploy" => deploy::from_server(state, api, params).await,
        "/list" => commands::list(state, super::sessions::session_counts(state).await.as_ref()),
        "/reload" => commands::reload(state, params).await,
        "/resources" => commands::resources(state, params.get("type")),
        "/serverinfo" => commands::serverinfo(),
        "/sessions" | "/expire" => sessions::sessions(state, params).await,
        "/start" => commands::start(state, params).await,
        "/stop" => commands::stop(state, params).await,
        "/undeploy" => commands::undeploy(state, params).await,
        "/findleaks" => commands::findleaks(state, params.get("statusLine") == Some("true")),
        "/save" => Lines::one(messages::exception(
            "save: Crabcat's configuration is crabcat.toml, which the container never writes",
        )),
        _ => Lines::one(messages::unknown_command(command)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_the_first_value_wins() {
        let params = Params::parse(Some("path=%2Fshop&update=true&tag=a+b&path=/other&flag"));
        assert_eq!(params.get("path"), Some("/shop"));
        assert_eq!(params.get("update"), Some("true"));
        assert_eq!(params.get("tag"), Some("a b"));
        assert_eq!(params.get("flag"), Some(""));
        assert_eq!(params.non_empty("flag"), None);
        assert_eq!(params.get("war"), None);
    }
}
