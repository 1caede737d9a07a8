//! App bundles (`.crabcat`): deployed from the deploy directory and by
//! upload, their static files served, reloaded with code and static files
//! swapped together and the old unpacked directory removed after the
//! drain, and garbage bundles refused with the previous version serving.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crabcat::deploy::bundle::{BundleContents, Descriptor, write_bundle};
use crabcat_tests::{Container, module};
use reqwest::Method;
use zip::write::SimpleFileOptions;

const FAST_WATCH: &str = "[deploy]\nsettle_time = \"150ms\"\nscan_interval = \"300ms\"\n";
const WAIT: Duration = Duration::from_secs(15);

/// A bundle of fixture `package` (`versioned-a` or `-b`) as app `name`,
/// version `version`, with `static/` holding `files`.
fn bundle(dir: &Path, package: &str, descriptor: &str, files: &[(&str, &str)]) -> PathBuf {
    let descriptor = Descriptor::parse(descriptor).expect("a valid descriptor");
    let statics = dir.join(format!("static-{package}-{}", descriptor.version));
    std::fs::create_dir_all(&statics).unwrap();
    for (name, text) in files {
        std::fs::write(statics.join(name), text).unwrap();
    }
    let out = dir.join(format!("{}-{}-{package}.crabcat", descriptor.name, descriptor.version));
    let contents = BundleContents {
        descriptor,
        library: module(package),
        static_dir: Some(statics),
    };
    write_bundle(&contents, &out).unwrap();
    out
}

/// Copies `from` into `dir` as `name` the safe way (renamed into place).
fn drop_in(dir: &Path, from: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn status(c: &Container, app: &str) -> serde_json::Value {
    let (code, json) = c.admin_call(c.admin(Method::GET, &format!("/apps/{app}"))).await;
    assert_eq!(code, 200, "{json}");
    json
}

/// The running version's unpacked directory, from the admin API.
async fn bundle_dir(c: &Container, app: &str) -> PathBuf {
    let json = status(c, app).await;
    PathBuf::from(
        json["bundle"]["dir"]
            .as_str()
            .unwrap_or_else(|| panic!("no bundle dir: {json}")),
    )
}

async fn wait_until_gone(c: &Container, dir: &Path) {
    let deadline = Instant::now() + WAIT;
    while dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there\n{}",
            dir.display(),
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_dropped_in_deploys_with_its_static_files_and_undeploys_cleanly() {
    let scratch = tempfile::tempdir().unwrap();
    let a = bundle(
        scratch.path(),
        "versioned-a",
        "name = \"app\"\nversion = \"1.0.0\"",
        &[("index.html", "page a\n")],
    );
    let c = Container::builder().config(FAST_WATCH).start();
    // The name `crabcat package` writes: the version is not part of the app name.
    drop_in(&c.deploy_dir(), &a, "app-1.0.0.crabcat");
    c.wait_for_answer("/app/", WAIT, |s, b| s == 200 && b == "version a\n")
        .await;
    assert_eq!(c.get("/app/static/index.html").await, (200, "page a\n".into()));
    let json = status(&c, "app").await;
    assert_eq!(json["bundle"]["version"], "1.0.0", "{json}");
    assert_eq!(json["module"]["crate_name"], "versioned-a", "{json}");
    let dir = bundle_dir(&c, "app").await;
    assert!(
        dir.join("static/index.html").is_file(),
        "unpacked into {}",
        dir.display()
    );
    assert!(
        !dir.join("lib").read_dir().unwrap().any(|_| true),
        "the library file is deleted once loaded"
    );
    let marker = c.deploy_dir().join("app-1.0.0.crabcat.deployed");
    assert!(marker.exists(), "a marker beside the bundle");

    std::fs::remove_file(c.deploy_dir().join("app-1.0.0.crabcat")).unwrap();
    c.wait_for_answer("/app/", WAIT, |s, _| s == 404).await;
    wait_until_gone(&c, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_code_and_static_files_and_removes_the_old_files_after_the_drain() {
    let scratch = tempfile::tempdir().unwrap();
    let a = bundle(
        scratch.path(),
        "versioned-a",
        "name = \"app\"\nversion = \"1.0.0\"",
        &[("index.html", "page a\n"), ("only-a.txt", "a\n")],
    );
    let b = bundle(
        scratch.path(),
        "versioned-b",
        "name = \"app\"\nversion = \"2.0.0\"",
        &[("index.html", "page b\n")],
    );
    let c = Container::builder()
        .config(FAST_WATCH)
        .deploy(&a, "app.crabcat")
        .start();
    assert_eq!(c.get("/app/").await, (200, "version a\n".into()));
    let old = bundle_dir(&c, "app").await;

    // A request of the old version in flight holds its instance (and files).
    let slow = tokio::spawn({
        let (client, url) = (c.client().clone(), c.url("/app/slow?ms=5000"));
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    });
    while status(&c, "app").await["requests_in_flight"] == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop_in(&c.deploy_dir(), &b, "app.crabcat");
    c.wait_for_answer("/app/", WAIT, |s, b| s == 200 && b == "version b\n")
        .await;
    assert_eq!(c.get("/app/static/index.html").await, (200, "page b\n".into()));
    assert_eq!(
        c.get("/app/static/only-a.txt").await.0,
        404,
        "the old static files went with the old code"
    );
    let new = bundle_dir(&c, "app").await;
    assert_ne!(new, old);
    assert_eq!(status(&c, "app").await["bundle"]["version"], "2.0.0");
    assert!(old.exists(), "the old files stay while the old instance drains");

    assert_eq!(slow.await.unwrap(), "version a after 5000 ms\n");
    wait_until_gone(&c, &old).await;
    assert!(new.join("static/index.html").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_bundle_deploys_where_its_descriptor_says_unless_configured() {
    let scratch = tempfile::tempdir().unwrap();
    let shop = bundle(
        scratch.path(),
        "versioned-a",
        "name = \"shop\"\nversion = \"0.1.0\"\ncontext_path = \"/store\"\n[session]\nidle_timeout = \"7m\"",
        &[("index.html", "the shop\n")],
    );
    let news = bundle(
        scratch.path(),
        "versioned-b",
        // Its datasources are ignored: the configuration has [apps.news].
        "name = \"news\"\nversion = \"0.1.0\"\ncontext_path = \"/daily\"\ndatasources = [\"nope\"]",
        &[("index.html", "from the bundle\n")],
    );
    let configured = scratch.path().join("configured");
    std::fs::create_dir(&configured).unwrap();
    std::fs::write(configured.join("index.html"), "from the config\n").unwrap();
    let c = Container::builder()
        .config(&format!(
            "[apps.news]\ncontext_path = \"/press\"\nstatic_dir = {:?}\nsession_idle_timeout = \"9m\"\n\
             [admin.manager]\nuser = \"deployer\"\n",
            configured.display().to_string()
        ))
        .start();
    // The session timeout the running instance has, as Tomcat's manager reports it.
    let timeout = |path: &'static str| {
        let url = c.admin_url(&format!("/manager/text/sessions?path={path}"));
        let request = c
            .client()
            .get(url)
            .basic_auth("deployer", Some(crabcat_tests::ADMIN_TOKEN));
        async move {
            request
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .lines()
                .nth(1)
                .map(str::to_owned)
        }
    };
    let (code, json) = c
        .admin_call(c.admin(Method::PUT, "/apps/shop").body(std::fs::read(&shop).unwrap()))
        .await;
    assert_eq!((code, json["outcome"].as_str()), (201, Some("deployed")), "{json}");
    assert_eq!(json["app"]["context_path"], "/store", "{json}");
    assert!(
        c.deploy_dir().join("shop.crabcat").is_file(),
        "installed as shop.crabcat"
    );
    assert_eq!(c.get("/store/").await, (200, "version a\n".into()));
    assert_eq!(c.get("/store/static/index.html").await, (200, "the shop\n".into()));
    assert_eq!(
        timeout("/store").await.as_deref(),
        Some("Default maximum session inactive interval is [7] minutes"),
        "the bundle's [session] idle_timeout"
    );

    let (code, json) = c
        .admin_call(c.admin(Method::PUT, "/apps/news").body(std::fs::read(&news).unwrap()))
        .await;
    assert_eq!(code, 201, "{json}");
    assert_eq!(c.get("/press/").await, (200, "version b\n".into()), "the config wins");
    assert_eq!(c.get("/daily/").await.0, 404);
    assert_eq!(
        c.get("/press/static/index.html").await,
        (200, "from the config\n".into()),
        "a configured static_dir wins over the bundle's static/"
    );
    assert_eq!(
        timeout("/press").await.as_deref(),
        Some("Default maximum session inactive interval is [9] minutes"),
        "without [session] in the bundle, the configured timeout"
    );

    // Without an [apps.NAME] section, the descriptor's datasources count.
    let wants = bundle(
        scratch.path(),
        "versioned-a",
        "name = \"wants\"\nversion = \"0.1.0\"\ndatasources = [\"nope\"]",
        &[],
    );
    let (code, json) = c
        .admin_call(c.admin(Method::PUT, "/apps/wants").body(std::fs::read(&wants).unwrap()))
        .await;
    assert_eq!(code, 400, "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("datasource nope is not configured"),
        "{json}"
    );

    // A reload keeps the context path: a bundle asking for another is refused.
    let moved = bundle(
        scratch.path(),
        "versioned-b",
        "name = \"shop\"\nversion = \"0.2.0\"\ncontext_path = \"/elsewhere\"",
        &[],
    );
    let (code, json) = c
        .admin_call(c.admin(Method::PUT, "/apps/shop").body(std::fs::read(&moved).unwrap()))
        .await;
    assert_eq!(code, 400, "{json}");
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("asks for context path /elsewhere, but the app is mounted at /store"),
        "{error}"
    );

    // A library cannot silently replace a bundle.
    let library = std::fs::read(module("versioned-b")).unwrap();
    let (code, json) = c.admin_call(c.admin(Method::PUT, "/apps/shop").body(library)).await;
    assert_eq!(code, 409, "{json}");
    assert!(json["error"].as_str().unwrap().contains("a bundle"), "{json}");
    assert_eq!(c.get("/store/").await, (200, "version a\n".into()));
}

/// A zip of `entries` (name, bytes), written as given: no checks.
fn raw_zip(path: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bundles_are_refused_with_the_reason_and_the_previous_version_serving() {
    let scratch = tempfile::tempdir().unwrap();
    let good = bundle(
        scratch.path(),
        "versioned-a",
        "name = \"app\"\nversion = \"1.0.0\"",
        &[("index.html", "page a\n")],
    );
    let library = std::fs::read(module("versioned-b")).unwrap();
    let descriptor: &[u8] = b"name = \"app\"\nversion = \"2.0.0\"\n";
    let zeros = vec![0u8; 40 << 20];
    let s = scratch.path();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "truncated",
            write(s, "truncated", b"PK\x03\x04 and then nothing"),
            "not a readable zip archive",
        ),
        (
            "no library",
            raw_zip(
                &s.join("nolib"),
                &[("crabcat-app.toml", descriptor), ("static/a.txt", b"a")],
            ),
            "no library under lib/",
        ),
        (
            "two libraries",
            raw_zip(
                &s.join("twolibs"),
                &[
                    ("crabcat-app.toml", descriptor),
                    ("lib/a.so", &library),
                    ("lib/b.so", &library),
                ],
            ),
            "2 libraries under lib/",
        ),
        (
            "traversal",
            raw_zip(
                &s.join("traversal"),
                &[("crabcat-app.toml", descriptor), ("lib/a.so", &library), ("../x", b"x")],
            ),
            "entry \"../x\" refused: '..' is not allowed",
        ),
        (
            "absolute",
            raw_zip(&s.join("absolute"), &[("/tmp/crabcat-x", b"x")]),
            "absolute paths are not allowed",
        ),
        (
            "no descriptor",
            raw_zip(&s.join("nodesc"), &[("lib/a.so", &library)]),
            "crabcat-app.toml: missing",
        ),
        (
            "invalid descriptor",
            raw_zip(
                &s.join("baddesc"),
                &[("crabcat-app.toml", b"name = 3\n"), ("lib/a.so", &library)],
            ),
            "crabcat-app.toml: invalid type",
        ),
        (
            "another app's",
            raw_zip(
                &s.join("other"),
                &[
                    ("crabcat-app.toml", b"name = \"other\"\nversion = \"1\"\n"),
                    ("lib/a.so", &library),
                ],
            ),
            "its descriptor names app \"other\", but it is deployed as \"app\"",
        ),
        (
            "zip bomb",
            raw_zip(
                &s.join("bomb"),
                &[
                    ("crabcat-app.toml", descriptor),
                    ("lib/a.so", &library),
                    ("static/zeros", &zeros),
                ],
            ),
            "unpacked size: over the limit of 41943040 (deploy.max_bundle_bytes)",
        ),
    ];
    let c = Container::builder()
        .config(FAST_WATCH)
        .config("max_bundle_bytes = 41943040")
        .deploy(&good, "app.crabcat")
        .start();
    assert_eq!(c.get("/app/").await, (200, "version a\n".into()));
    for (what, file, reason) in &cases {
        let (code, json) = c
            .admin_call(c.admin(Method::PUT, "/apps/app").body(std::fs::read(file).unwrap()))
            .await;
        let error = json["error"].as_str().unwrap_or_default();
        assert_eq!(code, 400, "{what}: {json}");
        assert!(error.contains("bundle") && error.contains(reason), "{what}: {error}");
        assert_eq!(c.get("/app/").await, (200, "version a\n".into()), "{what}");
        assert_eq!(
            c.get("/app/static/index.html").await,
            (200, "page a\n".into()),
            "{what}"
        );
        let app = status(&c, "app").await;
        assert_eq!(app["state"], "running", "{what}: {app}");
        assert!(
            app["last_error"].as_str().unwrap_or_default().contains(reason),
            "{what}: {app}"
        );
    }
    assert_eq!(status(&c, "app").await["reloads"], 0);

    // Garbage under a bundle's name in the deploy directory is refused too.
    std::fs::write(c.deploy_dir().join(".app.tmp"), b"not a zip at all").unwrap();
    std::fs::rename(c.deploy_dir().join(".app.tmp"), c.deploy_dir().join("app.crabcat")).unwrap();
    // (The failed uploads left a .failed marker already: wait for this reason.)
    let failed = c.deploy_dir().join("app.crabcat.failed");
    let deadline = Instant::now() + WAIT;
    let reason = "app.crabcat: not a readable zip archive";
    while !std::fs::read_to_string(&failed).unwrap_or_default().contains(reason) {
        assert!(
            Instant::now() < deadline,
            "no .failed marker saying {reason:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&failed).unwrap();
    assert!(text.contains("previous version keeps serving"), "{text}");
    assert_eq!(c.get("/app/").await, (200, "version a\n".into()));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
