//! Static files: `[static."/PREFIX"]` mounts with no module and an app's
//! `static_dir` next to its routes; types, validators and 304s, ranges,
//! `HEAD`, precompressed variants, index files, every way out of the
//! directory, and a 1 GB download in constant memory.

use std::path::Path;
use std::time::Duration;

use crabcat_tests::{Container, ContainerBuilder, module};
use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION, RANGE, VARY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "top secret, outside every static directory";

/// A directory `public` in the test's scratch directory, and beside it a
/// secret file and directory that no request may reach.
fn public_dir(builder: &ContainerBuilder) {
    let scratch = builder.scratch();
    let public = scratch.join("public");
    let write = |path: &str, bytes: &[u8]| {
        let file = public.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    };
    write("index.html", b"<h1>home</h1>\n");
    write("style.css", b"body { color: teal }\n");
    write("app.js", b"console.log('plain')\n");
    write("app.js.br", b"BROTLI BYTES");
    write("app.js.gz", b"GZIP BYTES");
    write("data.bin", &(0..1000).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    write("docs/index.html", b"<h1>docs</h1>\n");
    write("empty/.keep", b"");
    std::fs::remove_file(public.join("empty/.keep")).unwrap();
    std::fs::write(scratch.join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir_all(scratch.join("outside")).unwrap();
    std::fs::write(scratch.join("outside/file.txt"), SECRET).unwrap();
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, public.join(name)).unwrap();
    link(&scratch.join("secret.txt"), "link-out.txt");
    link(&scratch.join("outside"), "dir-out");
    link(Path::new("style.css"), "link-in.css");
    write("page.html", b"<p>page</p>\n");
    link(&scratch.join("secret.txt"), "page.html.gz");
}

/// The container with `public` mounted at `prefix` and no app.
fn mounted_at(prefix: &str) -> Container {
    let builder = Container::builder();
    public_dir(&builder);
    builder
        .config(&format!("[static.\"{prefix}\"]\ndir = \"public\"\n"))
        .start()
}

async fn get(c: &Container, path: &str, headers: &[(reqwest::header::HeaderName, &str)]) -> reqwest::Response {
    let mut request = c.client().get(c.url(path));
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    request.send().await.expect("GET")
}

/// Sends `GET target` as written, on a connection of its own (no client
/// normalises it); returns the status and the whole response text.
async fn raw(c: &Container, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
    let head =
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: br, gzip\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_mount_with_no_app_serves_typed_files_with_validators() {
    let c = mounted_at("/");
    let response = get(&c, "/style.css", &[]).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/css");
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    assert_eq!(headers[VARY], "accept-encoding");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers[ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    assert_eq!(response.text().await.unwrap(), "body { color: teal }\n");
    for (path, kind) in [
        ("/index.html", "text/html"),
        ("/app.js", "text/javascript"),
        ("/data.bin", "application/octet-stream"),
    ] {
        assert_eq!(get(&c, path, &[]).await.headers()[CONTENT_TYPE], kind, "{path}");
    }

    // If-None-Match: the same tag (weak or not) is a 304 with the validators.
    for tag in [etag.as_str(), etag.trim_start_matches("W/"), "\"x\", *"] {
        let response = get(&c, "/style.css", &[(IF_NONE_MATCH, tag)]).await;
        assert_eq!(response.status(), 304, "{tag}");
        assert_eq!(response.headers()[ETAG], etag.as_str());
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(response.bytes().await.unwrap().len(), 0);
    }
    let last_modified = headers[LAST_MODIFIED].to_str().unwrap();
    // Another tag is a 200, even with an If-Modified-Since that would be a 304.
    let response = get(
        &c,
        "/style.css",
        &[(IF_NONE_MATCH, "W/\"0-0\""), (IF_MODIFIED_SINCE, last_modified)],
    )
    .await;
    assert_eq!(response.status(), 200);

    // If-Modified-Since alone.
    let response = get(&c, "/style.css", &[(IF_MODIFIED_SINCE, last_modified)]).await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()[ETAG], etag.as_str());
    let old = "Thu, 01 Jan 1998 00:00:00 GMT";
    assert_eq!(get(&c, "/style.css", &[(IF_MODIFIED_SINCE, old)]).await.status(), 200);

    // Other methods.
    let response = c.client().post(c.url("/style.css")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn ranges_and_head() {
    let c = mounted_at("/files");
    let whole = get(&c, "/files/data.bin", &[]).await.bytes().await.unwrap();
    assert_eq!(whole.len(), 1000);

    let response = get(&c, "/files/data.bin", &[(RANGE, "bytes=10-19")]).await;
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()[CONTENT_RANGE], "bytes 10-19/1000");
    assert!(response.headers().contains_key(ETAG));
    assert_eq!(response.bytes().await.unwrap(), whole[10..20]);
    let response = get(&c, "/files/data.bin", &[(RANGE, "bytes=-5")]).await;
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap(), whole[995..]);
    let response = get(&c, "/files/data.bin", &[(RANGE, "bytes=2000-3000")]).await;
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()[CONTENT_RANGE], "bytes */1000");

    // HEAD: the headers of GET, no body.
    let full = get(&c, "/files/style.css", &[]).await;
    let head = c.client().head(c.url("/files/style.css")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    for name in [CONTENT_TYPE, CONTENT_LENGTH, ETAG, LAST_MODIFIED, CACHE_CONTROL, VARY] {
        assert_eq!(head.headers().get(&name), full.headers().get(&name), "{name}");
    }
    assert_eq!(head.headers()[CONTENT_LENGTH], "21");
    assert_eq!(head.bytes().await.unwrap().len(), 0);
    // On the wire, too: nothing after the head.
    let mut stream = tokio::net::TcpStream::connect(c.addr()).await.unwrap();
    let request = "HEAD /files/style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

#[tokio::test]
async fn precompressed_variants_follow_accept_encoding() {
    let c = mounted_at("/");
    let cases = [
        ("br", Some("br"), "BROTLI BYTES"),
        ("gzip", Some("gzip"), "GZIP BYTES"),
        ("gzip, br", Some("br"), "BROTLI BYTES"),
        ("br;q=0.5, gzip", Some("gzip"), "GZIP BYTES"),
        ("identity", None, "console.log('plain')\n"),
        ("", None, "console.log('plain')\n"),
    ];
    let mut tags = Vec::new();
    for (accept, encoding, body) in cases {
        let response = match accept {
            "" => get(&c, "/app.js", &[]).await,
            accept => get(&c, "/app.js", &[(ACCEPT_ENCODING, accept)]).await,
        };
        assert_eq!(response.status(), 200, "{accept}");
        let headers = response.headers().clone();
        assert_eq!(
            headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap()),
            encoding,
            "{accept}"
        );
        assert_eq!(headers[VARY], "accept-encoding");
        assert_eq!(headers[CONTENT_TYPE], "text/javascript", "{accept}");
        tags.push(headers[ETAG].to_str().unwrap().to_owned());
        assert_eq!(response.text().await.unwrap(), body, "{accept}");
    }
    // Each variant has a tag of its own.
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[5]);
    assert_ne!(tags[1], tags[5]);
    // A file with no variant is served plain to a client that accepts them.
    let response = get(&c, "/style.css", &[(ACCEPT_ENCODING, "br, gzip")]).await;
    assert_eq!(response.headers().get(CONTENT_ENCODING), None);
}

#[tokio::test]
async fn index_files_and_no_listing() {
    let c = mounted_at("/site");
    assert_eq!(get(&c, "/site/", &[]).await.text().await.unwrap(), "<h1>home</h1>\n");
    assert_eq!(
        get(&c, "/site/docs/", &[]).await.text().await.unwrap(),
        "<h1>docs</h1>\n"
    );
    // Directories without their slash, and the mount itself, redirect.
    let redirects = [
        ("/site", "/site/"),
        ("/site/docs", "/site/docs/"),
        ("/site/docs?x=1", "/site/docs/?x=1"),
        ("/site/empty", "/site/empty/"),
    ];
    for (path, location) in redirects {
        let response = get(&c, path, &[]).await;
        assert_eq!(response.status(), 308, "{path}");
        assert_eq!(response.headers()[LOCATION], location, "{path}");
    }
    // A directory without an index is not listed.
    for path in ["/site/empty/", "/site/missing.txt", "/other"] {
        assert_eq!(get(&c, path, &[]).await.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn no_path_leaves_the_directory() {
    let c = mounted_at("/files");
    assert_eq!(raw(&c, "/files/style.css").await.0, 200);
    let tricks = [
        "/files/../secret.txt",
        "/files/docs/../../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E/secret.txt",
        "/files/.%2e/secret.txt",
        "/files/..%2fsecret.txt",
        "/files/docs%2f..%2f..%2fsecret.txt",
        "/files/%2fetc%2fpasswd",
        "/files/%2F..%2F..%2Fsecret.txt",
        "/files/..%5csecret.txt",
        "/files/..\\secret.txt",
        "/files/style.css%00.txt",
        "/files/%00",
        "/files//etc/passwd",
        "/files/%c0%ae%c0%ae/secret.txt",
        "/files/%252e%252e/secret.txt",
        "http://localhost/files/../secret.txt",
        "/files/link-out.txt",
        "/files/dir-out/file.txt",
        "/files/dir-out/",
    ];
    for target in tricks {
        let (status, text) = raw(&c, target).await;
        assert!(matches!(status, 400 | 404), "{target}: {text}");
        assert!(!text.contains(SECRET) && !text.contains("root:"), "{target}: {text}");
    }
    // A symlink that stays inside is followed.
    let response = get(&c, "/files/link-in.css", &[]).await;
    assert_eq!(response.text().await.unwrap(), "body { color: teal }\n");
    // A precompressed variant that links out refuses the file to a client
    // that would get it, rather than serve what it points at.
    let (status, text) = raw(&c, "/files/page.html").await;
    assert_eq!(status, 404, "{text}");
    assert!(!text.contains(SECRET));
    let plain = get(&c, "/files/page.html", &[]).await;
    assert_eq!(plain.text().await.unwrap(), "<p>page</p>\n");
}

#[tokio::test]
async fn an_app_serves_its_static_dir_next_to_its_routes() {
    let builder = Container::builder();
    public_dir(&builder);
    let c = builder
        .deploy(&module("hello"), "hello.so")
        .config(
            r#"
            [server]
            access_log_format = "extended"

            [apps.hello]
            static_dir = "public"
            static_cache_control = "public, max-age=60"

            [static."/"]
            dir = "public/docs"
            cache_control = ""
            "#,
        )
        .start();
    let response = get(&c, "/hello/static/style.css", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CACHE_CONTROL], "public, max-age=60");
    assert_eq!(response.text().await.unwrap(), "body { color: teal }\n");
    // The module still has every other path.
    assert_eq!(c.get("/hello/").await, (200, "Hello from Crabcat!\n".into()));
    assert_eq!(c.get("/hello/greet/Ferris").await, (200, "Hello, Ferris!\n".into()));
    assert_eq!(c.get("/hello/static/missing.css").await.0, 404);
    assert_eq!(raw(&c, "/hello/static/../../secret.txt").await.0, 400);
    // The root mount gets what no app's context path claims, with no Cache-Control.
    let response = get(&c, "/", &[]).await;
    assert_eq!(response.headers().get(CACHE_CONTROL), None);
    assert_eq!(response.text().await.unwrap(), "<h1>docs</h1>\n");
    // Metrics and the access log name the app, or the mount.
    let lines = c.wait_for_log_lines(
        &["\"GET /hello/static/style.css HTTP/1.1\" 200 21 ", " hello "],
        1,
        Duration::from_secs(5),
    );
    assert_eq!(lines.len(), 1, "{}", c.logs());
    let lines = c.wait_for_log_lines(&["\"GET / HTTP/1.1\" 200 ", " static:/ "], 1, Duration::from_secs(5));
    assert_eq!(lines.len(), 1, "{}", c.logs());
    let served = c.metric("crabcat_requests_total{app=\"hello\",status=\"200\"}").await;
    assert_eq!(served, Some(3.0));
    let mount = c
        .metric("crabcat_requests_total{app=\"static:/\",status=\"200\"}")
        .await;
    assert_eq!(mount, Some(1.0));
}

#[test]
fn a_mount_on_an_apps_context_path_is_refused_at_start() {
    let builder = Container::builder();
    public_dir(&builder);
    let (status, output) = builder
        .config("[apps.hello]\nstatic_dir = \"public\"\n\n[static.\"/hello\"]\ndir = \"public\"\n")
        .run_to_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        output.contains("static.\"/hello\"") && output.contains("app hello"),
        "{output}"
    );
    let (status, output) = Container::builder()
        .config("[static.\"/files\"]\ndir = \"no-such-dir\"\n")
        .run_to_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(output.contains("no-such-dir"), "{output}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_1_gb_file_streams_in_constant_memory() {
    const SIZE: u64 = 1 << 30;
    let builder = Container::builder();
    let dir = builder.scratch().join("big");
    std::fs::create_dir(&dir).unwrap();
    // Sparse: no disk space, and reads of zeros.
    std::fs::File::create(dir.join("big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let c = builder.config("[static.\"/big\"]\ndir = \"big\"\n").start();
    // Warm up: the first request sets up what every later one shares.
    assert_eq!(get(&c, "/big/big.bin", &[(RANGE, "bytes=0-99")]).await.status(), 206);
    let before = rss_kib(c.pid());
    let response = get(&c, "/big/big.bin", &[]).await;
    assert_eq!(response.headers()[CONTENT_LENGTH], SIZE.to_string().as_str());
    let mut body = response.bytes_stream();
    let (mut received, mut chunks, mut peak) = (0u64, 0u64, before);
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len() as u64;
        chunks += 1;
        if chunks % 256 == 0 {
            peak = peak.max(rss_kib(c.pid()));
        }
    }
    peak = peak.max(rss_kib(c.pid()));
    assert_eq!(received, SIZE);
    let growth = peak.saturating_sub(before);
    eprintln!("RSS {before} KiB before the download, at most {peak} KiB during it");
    assert!(
        growth < 10 * 1024,
        "RSS grew by {growth} KiB (from {before} KiB) while serving 1 GB"
    );
}
