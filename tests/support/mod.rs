//! The test harness: starts the real `crabcat` binary on an ephemeral port
//! with a temporary deploy directory and real compiled modules.
//!
//! The binary and the modules are built beforehand, once, by
//! `scripts/test.sh` (`cargo build --workspace` plus the `panic = "abort"`
//! fixture); the harness only finds them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

mod db;
pub use db::{MyDb, PgDb, mysql_url, postgres_url};

/// How long to wait for the container to start or stop.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The admin token the harness gives every container (unless a test sets
/// `CRABCAT_ADMIN_TOKEN` itself).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The workspace's target directory: `CARGO_TARGET_DIR`, or `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it builds the container, the apps and the fixtures first)",
        path.display()
    );
    path
}

/// The `crabcat` binary.
pub fn crabcat_bin() -> PathBuf {
    built(
        target_dir()
            .join("debug")
            .join(format!("crabcat{}", std::env::consts::EXE_SUFFIX)),
    )
}

/// The compiled module of workspace package `package` (e.g. `hello`, `probe`).
pub fn module(package: &str) -> PathBuf {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    built(target_dir().join("debug").join(file))
}

/// The fixture module built with `panic = "abort"`.
pub fn abort_module() -> PathBuf {
    let file = format!(
        "{}abort_app{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    built(target_dir().join("abort-fixture").join("debug").join(file))
}

/// Collected output of the container, with a way to wait for a line.
#[derive(Default)]
struct Output {
    text: Mutex<String>,
    changed: Condvar,
}

/// What a test deploys and how it configures the container.
pub struct ContainerBuilder {
    dir: tempfile::TempDir,
    config: String,
    env: Vec<(String, String)>,
    shared_deploy_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
}

impl ContainerBuilder {
    /// Puts `library` into the deploy directory as `file_name`.
    pub fn deploy(self, library: &Path, file_name: &str) -> Self {
        std::fs::copy(library, self.deploy_dir().join(file_name)).expect("copy module");
        self
    }

    /// Writes raw bytes into the deploy directory (for garbage files).
    pub fn deploy_bytes(self, file_name: &str, bytes: &[u8]) -> Self {
        std::fs::write(self.deploy_dir().join(file_name), bytes).expect("write file");
        self
    }

    /// Appends TOML to the container's config file.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// Points the `default` datasource at `url` (the harness default is a
    /// SQLite file in the test's directory).
    pub fn datasource(self, url: &str) -> Self {
        self.env("CRABCAT__DATASOURCES__DEFAULT__URL", url)
    }

    /// Sets an environment variable for the container.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Uses `dir` (another container's, say) as the deploy directory.
    pub fn shared_deploy_dir(mut self, dir: &Path) -> Self {
        self.shared_deploy_dir = Some(dir.to_path_buf());
        self
    }

    /// The deploy directory.
    pub fn deploy_dir(&self) -> PathBuf {
        self.shared_deploy_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("deploy"))
    }

    /// The scratch directory (for marker files).
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Listens on `addr` instead of an ephemeral port.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Starts the container for a start that must fail: waits up to
    /// `timeout` for it to exit on its own, and returns the exit status and
    /// everything it printed.
    pub fn run_to_exit(self, timeout: Duration) -> (ExitStatus, String) {
        let mut child = self.command().spawn().expect("run crabcat");
        let deadline = Instant::now() + timeout;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let output = child.wait_with_output().expect("output");
                panic!(
                    "crabcat did not exit within {timeout:?}:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("output");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status, text)
    }

    fn command(&self) -> Command {
        let config_file = self.dir.path().join("crabcat.toml");
        std::fs::write(&config_file, &self.config).expect("write config");
        let mut command = Command::new(crabcat_bin());
        let listen = self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--deploy-dir")
            .arg(self.deploy_dir())
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("CRABCAT_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "CRABCAT__DATASOURCES__DEFAULT__URL",
                format!("sqlite://{}", self.dir.path().join("crabcat.db").display()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts the container and waits until it listens.
    pub fn start(self) -> Container {
        let mut child = self.command().spawn().expect("start crabcat");
        let output = Arc::new(Output::default());
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut text = output.text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                    output.changed.notify_all();
                }
            });
        }
        let deploy_dir = self.deploy_dir();
        let mut container = Container {
            child,
            addr: None,
            admin_addr: None,
            output,
            deploy_dir,
            dir: self.dir,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        };
        let line = container
            .wait_for_log("listening addr=", STARTUP)
            .unwrap_or_else(|| panic!("crabcat did not start:\n{}", container.logs()));
        container.addr = Some(address_in(&line, "listening addr="));
        let line = container
            .wait_for_log("admin API listening addr=", STARTUP)
            .unwrap_or_else(|| panic!("crabcat's admin API did not start:\n{}", container.logs()));
        container.admin_addr = Some(address_in(&line, "admin API listening addr="));
        container
    }
}

fn address_in(line: &str, marker: &str) -> SocketAddr {
    let addr = line.split(marker).nth(1).unwrap().split_whitespace().next().unwrap();
    addr.parse().expect("a socket address")
}

/// A running `crabcat` process; killed on drop if still running.
pub struct Container {
    child: Child,
    addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    output: Arc<Output>,
    deploy_dir: PathBuf,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Container {
    /// A builder with an empty deploy directory and config.
    pub fn builder() -> ContainerBuilder {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("deploy")).expect("deploy dir");
        ContainerBuilder {
            dir,
            config: String::new(),
            env: Vec::new(),
            shared_deploy_dir: None,
            listen: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("started")
    }

    /// Sends `raw` bytes on a new connection and returns the first bytes
    /// of the answer, as text; panics if none come within `timeout`. For
    /// requests a client library would not send (a head without its body).
    pub async fn raw_answer(&self, raw: &[u8], timeout: Duration) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(timeout, stream.read(&mut answer))
            .await
            .expect("an answer in time")
            .unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// `http://ADMIN_ADDR{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr.expect("started"))
    }

    /// An admin API request with the right token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Sends an admin request; returns status and JSON body.
    pub async fn admin_call(&self, request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The deploy directory.
    pub fn deploy_dir(&self) -> PathBuf {
        self.deploy_dir.clone()
    }

    /// The value of one series of the admin API's `/metrics`, e.g.
    /// `crabcat_deploy_scans_total{trigger="event"}`; `None` if absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .admin(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse().expect("a number"))
    }

    /// Polls `GET path` until `check` accepts the answer, up to `timeout`.
    pub async fn wait_for_answer(
        &self,
        path: &str,
        timeout: Duration,
        check: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(path).await;
            if check(status, &body) {
                return (status, body);
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} still answers {status} {body:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An HTTP client that does not follow redirects.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET `path`; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The scratch directory of this test.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.output.text.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut text = self.output.text.lock().unwrap();
        loop {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Some(line.to_owned());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            text = self.output.changed.wait_timeout(text, left).unwrap().0;
        }
    }

    /// Waits (up to `timeout`) until at least `count` log lines contain
    /// every one of `needles`, and returns the lines that do then. The
    /// container writes its log asynchronously, so a line about a request
    /// may arrive after the response.
    pub fn wait_for_log_lines(&self, needles: &[&str], count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut text = self.output.text.lock().unwrap();
        loop {
            let lines: Vec<String> = text
                .lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
                .collect();
            let left = deadline.checked_duration_since(Instant::now());
            if lines.len() >= count || left.is_none() {
                return lines;
            }
            text = self
                .output
                .changed
                .wait_timeout(text, left.unwrap_or_default())
                .unwrap()
                .0;
        }
    }

    /// Log lines that contain every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.logs()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit(STARTUP)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "crabcat did not exit:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `status` and `detail` of an RFC 9457 problem document, the body the
/// SDK's errors answer with; panics if `body` is not one.
pub fn problem(body: &str) -> (u16, String) {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not a problem document ({e}): {body}"));
    let status = json["status"].as_u64().and_then(|s| u16::try_from(s).ok());
    let detail = json["detail"].as_str().map(str::to_owned);
    match (json["type"].as_str(), json["title"].as_str(), status, detail) {
        (Some(_), Some(_), Some(status), Some(detail)) => (status, detail),
        _ => panic!("not a problem document: {body}"),
    }
}
