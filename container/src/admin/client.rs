//! The client behind `crabcat apps | status | deploy | reload | stop |
//! start | undeploy`: talks to the admin API and prints what happened.

use std::path::Path;

use serde_json::Value;

/// Why an admin command failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The container answered with an error (exit code 1).
    #[error("{0}")]
    Refused(String),
    /// The container could not be reached, or the command is wrong (exit code 2).
    #[error("{0}")]
    Failed(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused(_) => 1,
            ClientError::Failed(_) => 2,
        }
    }
}

/// A connection to one container's admin API.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    /// Where the token came from (or where it was looked for), for the
    /// message when the container refuses it.
    token_source: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            token_source: "--token".to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Says where the token came from, or where it was looked for: told to
    /// the user when the container refuses it.
    #[must_use]
    pub fn token_source(mut self, source: String) -> Self {
        self.token_source = source;
        self
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Failed(format!("cannot reach the admin API at {url}: {e}")))?;
        let status = response.status();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(json)
        } else if status == reqwest::StatusCode::UNAUTHORIZED {
            let what = if self.token.is_some() {
                "refused the token"
            } else {
                "needs a token"
            };
            let reason = json["error"].as_str().unwrap_or("no reason given");
            Err(ClientError::Refused(format!(
                "the admin API at {} {what} ({status}: {reason}); the token was {}. Pass the container's \
                 token with --token or CRABCAT_ADMIN_TOKEN, or run from the directory the container runs in: \
                 unless configured, it writes its token to data/admin.token there",
                self.base, self.token_source
            )))
        } else {
            let reason = json["error"].as_str().unwrap_or("no reason given");
            Err(ClientError::Refused(format!("{} ({status})", reason)))
        }
    }

    /// `GET /apps`, as a table.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn apps(&self) -> Result<String, ClientError> {
        let apps = self.call(reqwest::Method::GET, "/apps", None).await?;
        Ok(apps_table(apps.as_array().map(Vec::as_slice).unwrap_or_default()))
    }

    /// `GET /apps` and `GET /console/data`: the console's columns, as a table.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn status(&self) -> Result<String, ClientError> {
        let apps = self.call(reqwest::Method::GET, "/apps", None).await?;
        let data = self.call(reqwest::Method::GET, "/console/data", None).await?;
        Ok(super::console::status_table(
            apps.as_array().map(Vec::as_slice).unwrap_or_default(),
            &data,
        ))
    }

    /// `PUT /apps/{name}` with the library or bundle at `file`. Without
    /// `name`, a bundle's descriptor names the app, a library's file name.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn deploy(&self, file: &Path, name: Option<&str>) -> Result<String, ClientError> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => default_name(file)?,
        };
        let bytes = std::fs::read(file).map_err(|e| ClientError::Failed(format!("{}: {e}", file.display())))?;
        let done = self
            .call(reqwest::Method::PUT, &format!("/apps/{name}"), Some(bytes))
            .await?;
        Ok(describe(&name, &done))
    }

    /// `POST /apps/{name}/{action}` (`reload`, `stop`, `start`).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn action(&self, name: &str, action: &str) -> Result<String, ClientError> {
        let done = self
            .call(reqwest::Method::POST, &format!("/apps/{name}/{action}"), None)
            .await?;
        Ok(describe(name, &done))
    }

    /// `DELETE /apps/{name}`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn undeploy(&self, name: &str) -> Result<String, ClientError> {
        let done = self
            .call(reqwest::Method::DELETE, &format!("/apps/{name}"), None)
            .await?;
        Ok(describe(name, &done))
    }
}

impl AdminClient {
    /// `GET /apps/{name}` for its session count, or with `expire`,
    /// `POST /apps/{name}/sessions/expire[?idle=MINUTES]`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn sessions(&self, name: &str, expire: bool, idle: Option<u64>) -> Result<String, ClientError> {
        if expire {
            let query = idle.map_or_else(String::new, |minutes| format!("?idle={minutes}"));
            let path = format!("/apps/{name}/sessions/expire{query}");
            let done = self.call(reqwest::Method::POST, &path, None).await?;
            let expired = done["expired"].as_u64().unwrap_or(0);
            let left = done["sessions"].as_u64().unwrap_or(0);
            return Ok(format!("{name}: {expired} sessions expired, {left} left"));
        }
        let app = self.call(reqwest::Method::GET, &format!("/apps/{name}"), None).await?;
        match app["sessions"].as_u64() {
            Some(count) => Ok(format!("{name}: {count} live sessions")),
            None => Err(ClientError::Failed(format!(
                "{name}: no session count (sessions are off, or the store could not be read: see the container's log)"
            ))),
        }
    }
}

/// The app name of `file`: its descriptor's for a bundle, else from the file name.
fn default_name(file: &Path) -> Result<String, ClientError> {
    let failed = |e: String| ClientError::Failed(format!("{}: {e}", file.display()));
    if !crate::deploy::bundle::is_bundle(file).map_err(|e| failed(e.to_string()))? {
        return crate::deploy::app_name(file).map_err(|e| ClientError::Failed(e.to_string()));
    }
    let opened = std::fs::File::open(file).map_err(|e| failed(e.to_string()))?;
    crate::deploy::bundle::read_descriptor(opened)
        .map(|d| d.name)
        .map_err(|e| failed(e.to_string()))
}

fn describe(name: &str, done: &Value) -> String {
    let outcome = done["outcome"].as_str().unwrap_or("done");
    let app = &done["app"];
    match (app["version"].as_str(), app["sha256"].as_str()) {
        (Some(version), Some(sha)) => format!(
            "{name}: {outcome} (version {version}, sha256 {})",
            &sha[..12.min(sha.len())]
        ),
        _ => format!("{name}: {outcome}"),
    }
}

impl AdminClient {
    /// `GET /cluster`: every node's state and version of each app.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn cluster(&self) -> Result<String, ClientError> {
        let cluster = self.call(reqwest::Method::GET, "/cluster", None).await?;
        let header = ["APP", "NODE", "STATE", "VERSION", "SHA256", "ERROR"];
        let rows = cluster["apps"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|row| {
                let text = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
                let sha = text("sha256");
                vec![
                    text("app"),
                    text("node"),
                    text("state"),
                    text("version"),
                    sha.chars().take(12).collect(),
                    row["error"].as_str().unwrap_or("").replace('\n', " "),
                ]
            });
        Ok(table(&header, rows.collect()))
    }
}

/// Left-aligned columns under `header`.
fn table(header: &[&str], body: Vec<Vec<String>>) -> String {
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    rows.extend(body);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn apps_table(apps: &[Value]) -> String {
    let header = [
        "NAME",
        "STATE",
        "VERSION",
        "CONTEXT",
        "REQUESTS",
        "IN-FLIGHT",
        "IMAGES",
        "ERROR",
    ];
    let rows = apps.iter().map(|app| {
        let text = |key: &str| app[key].as_str().unwrap_or("-").to_owned();
        let number = |key: &str| app[key].as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        let error = app["error"].as_str().or(app["last_error"].as_str()).unwrap_or("");
        vec![
            text("name"),
            text("state"),
            text("version"),
            text("context_path"),
            number("requests_served"),
            number("requests_in_flight"),
            number("images"),
            error.to_owned(),
        ]
    });
    table(&header, rows.collect())
}
