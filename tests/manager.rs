//! Tomcat's manager text API (`/manager/text/`): every command, success
//! and failure, compared line by line with Tomcat's strings. Each expected
//! line quotes its key in Tomcat's
//! `java/org/apache/catalina/manager/LocalStrings.properties`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crabcat_tests::{ADMIN_TOKEN, Container, module};
use reqwest::Method;

const USER: &str = "deployer";
const PASSWORD: &str = "manager-password-0123";
const MANAGER: &str = "[admin.manager]\nuser = \"deployer\"\npassword = \"manager-password-0123\"\n";

/// A text API call with the manager's credentials; checks Tomcat's
/// `200` and `text/plain;charset=utf-8`, returns the body.
async fn call(c: &Container, method: Method, command: &str, body: Option<Vec<u8>>) -> String {
    let mut request = c
        .client()
        .request(method, c.admin_url(&format!("/manager/text{command}")))
        .basic_auth(USER, Some(PASSWORD));
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("manager call");
    assert_eq!(response.status(), 200, "Tomcat answers 200, even for FAIL");
    assert_eq!(response.headers()["content-type"], "text/plain;charset=utf-8");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    response.text().await.expect("body")
}

async fn get(c: &Container, command: &str) -> String {
    call(c, Method::GET, command, None).await
}

async fn put(c: &Container, command: &str, module_file: &std::path::Path) -> String {
    call(c, Method::PUT, command, Some(std::fs::read(module_file).unwrap())).await
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_list_reload_stop_start_undeploy_as_tomcat_words_them() {
    let c = Container::builder().config(MANAGER).start();
    let (a, b) = (module("versioned-a"), module("versioned-b"));

    // managerServlet.deployed=OK - Deployed application at context path [{0}]
    let body = put(&c, "/deploy?path=/demo", &a).await;
    assert_eq!(body, "OK - Deployed application at context path [/demo]\n");
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));
    assert!(c.deploy_dir().join("demo.so").exists());

    // managerServlet.alreadyContext=FAIL - Application already exists at path [{0}]
    let body = put(&c, "/deploy?path=/demo", &b).await;
    assert_eq!(body, "FAIL - Application already exists at path [/demo]\n");
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()), "untouched");

    // managerServlet.listed=OK - Listed applications for virtual host [{0}]
    // then path:state:sessions:docBase (ManagerServlet.list).
    let body = get(&c, "/list").await;
    assert_eq!(
        body,
        "OK - Listed applications for virtual host [localhost]\n/demo:running:0:demo.so\n"
    );

    // update=true: replaced blue/green while requests keep being served.
    let body = update_under_load(&c, &b).await;
    assert_eq!(body, "OK - Deployed application at context path [/demo]\n");
    assert_eq!(c.get("/demo/").await, (200, "version b\n".into()));

    // managerServlet.findleaksList=OK - Found potential memory leaks in the following applications:
    let body = get(&c, "/findleaks?statusLine=true").await;
    assert_eq!(
        body,
        "OK - Found potential memory leaks in the following applications:\n/demo\n"
    );
    // Without statusLine=true Tomcat prints the paths only.
    assert_eq!(get(&c, "/findleaks").await, "/demo\n");

    // managerServlet.reloaded=OK - Reloaded application at context path [{0}]
    assert_eq!(
        get(&c, "/reload?path=/demo").await,
        "OK - Reloaded application at context path [/demo]\n"
    );
    // managerServlet.stopped=OK - Stopped application at context path [{0}]
    assert_eq!(
        get(&c, "/stop?path=/demo").await,
        "OK - Stopped application at context path [/demo]\n"
    );
    assert_eq!(c.get("/demo/").await.0, 503);
    assert_eq!(
        get(&c, "/list").await,
        "OK - Listed applications for virtual host [localhost]\n/demo:stopped:0:demo.so\n"
    );
    assert_eq!(
        get(&c, "/stop?path=/demo").await,
        "OK - Stopped application at context path [/demo]\n",
        "stopping a stopped context is no error in Tomcat"
    );
    // managerServlet.started=OK - Started application at context path [{0}]
    assert_eq!(
        get(&c, "/start?path=/demo").await,
        "OK - Started application at context path [/demo]\n"
    );
    assert_eq!(c.get("/demo/").await, (200, "version b\n".into()));

    // managerServlet.undeployed=OK - Undeployed application at context path [{0}]
    assert_eq!(
        get(&c, "/undeploy?path=/demo").await,
        "OK - Undeployed application at context path [/demo]\n"
    );
    assert!(!c.deploy_dir().join("demo.so").exists(), "the file is removed");
    assert_eq!(c.get("/demo/").await.0, 404);
    assert_eq!(
        get(&c, "/list").await,
        "OK - Listed applications for virtual host [localhost]\n"
    );
    // managerServlet.findleaksNone=OK - No memory leaks found
    assert_eq!(
        get(&c, "/findleaks?statusLine=true").await,
        "OK - No memory leaks found\n"
    );
    assert_eq!(get(&c, "/findleaks").await, "");
}

/// PUT `module_file` with `update=true` while a client keeps requesting
/// the app; every request must succeed.
async fn update_under_load(c: &Container, module_file: &std::path::Path) -> String {
    let done = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (client, url) = (c.client().clone(), c.url("/demo/"));
        let (done, served, failed) = (Arc::clone(&done), Arc::clone(&served), Arc::clone(&failed));
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let ok = client.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                let counter = if ok { &served } else { &failed };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while served.load(Ordering::SeqCst) < 20 {
        tokio::task::yield_now().await;
    }
    let body = put(c, "/deploy?path=/demo&update=true", module_file).await;
    let before = served.load(Ordering::SeqCst);
    while served.load(Ordering::SeqCst) < before + 20 {
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed during the update");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_worded_as_tomcat_words_them() {
    let c = Container::builder().config(MANAGER).start();
    for command in ["reload", "start", "stop", "undeploy", "sessions", "expire"] {
        // managerServlet.noContext=FAIL - No context exists named [{0}]
        assert_eq!(
            get(&c, &format!("/{command}?path=/nope")).await,
            "FAIL - No context exists named [/nope]\n",
            "{command}"
        );
        // managerServlet.invalidPath=FAIL - Invalid context path [{0}] was specified
        assert_eq!(
            get(&c, &format!("/{command}")).await,
            "FAIL - Invalid context path [null] was specified\n",
            "{command}"
        );
        assert_eq!(
            get(&c, &format!("/{command}?path=nope")).await,
            "FAIL - Invalid context path [nope] was specified\n",
            "{command}"
        );
    }
    assert_eq!(
        get(&c, "/reload?path=/a/../b").await,
        "FAIL - Invalid context path [/a/../b] was specified\n"
    );
    // managerServlet.unknownCommand=FAIL - Unknown command [{0}]
    assert_eq!(get(&c, "/frobnicate").await, "FAIL - Unknown command [/frobnicate]\n");
    // No path info: Tomcat's command is the servlet path.
    assert_eq!(get(&c, "").await, "FAIL - Unknown command [/text]\n");
    assert_eq!(
        call(&c, Method::PUT, "/list", Some(Vec::new())).await,
        "FAIL - Unknown command [/list]\n",
        "PUT is for deploy only"
    );
    // managerServlet.invalidCommand=FAIL - Invalid parameters supplied for command [{0}]
    assert_eq!(
        get(&c, "/deploy?path=/x").await,
        "FAIL - Invalid parameters supplied for command [/deploy]\n"
    );
    // A module that does not load: managerServlet.deployFailed, then
    // managerServlet.exception=FAIL - Encountered exception [{0}].
    let body = call(&c, Method::PUT, "/deploy?path=/junk", Some(b"not a library".to_vec())).await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "FAIL - Failed to deploy application at context path [/junk]");
    assert!(lines[1].starts_with("FAIL - Encountered exception ["), "{body}");
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(
        get(&c, "/list").await,
        "OK - Listed applications for virtual host [localhost]\n",
        "a refused module leaves nothing deployed"
    );
    // Crabcat mounts one path segment: Tomcat's a#b cannot be deployed.
    let body = put(&c, "/deploy?path=/a/b", &module("hello")).await;
    assert_eq!(body, "FAIL - Invalid context path [/a/b] was specified\n");
    // config= (a context.xml) has no equivalent.
    let body = get(&c, "/deploy?path=/x&config=file:/tmp/x.xml").await;
    assert!(body.starts_with("FAIL - Encountered exception [config=: "), "{body}");
    assert_eq!(body.lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn serverinfo_resources_and_sessions() {
    let c = Container::builder()
        .config(MANAGER)
        .deploy(&module("hello"), "hello.so")
        .deploy(&module("probe"), "probe.so")
        .start();
    // managerServlet.serverInfo=OK - Server info\nTomcat Version: [{0}]\nOS Name: [{1}]
    // \nOS Version: [{2}]\nOS Architecture: [{3}]\nJVM Version: [{4}]\nJVM Vendor: [{5}]
    let body = get(&c, "/serverinfo").await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 7, "{body}");
    assert_eq!(lines[0], "OK - Server info");
    assert_eq!(
        lines[1],
        format!("Tomcat Version: [Crabcat/{}]", env!("CARGO_PKG_VERSION"))
    );
    assert!(lines[2].starts_with("OS Name: [") && lines[2].ends_with(']'), "{body}");
    assert!(lines[3].starts_with("OS Version: ["), "{body}");
    assert_eq!(lines[4], format!("OS Architecture: [{}]", std::env::consts::ARCH));
    assert_eq!(lines[5], "JVM Version: [n/a]");
    assert_eq!(lines[6], "JVM Vendor: [n/a]");

    // managerServlet.resourcesAll=OK - Listed global resources of all types
    assert_eq!(
        get(&c, "/resources").await,
        "OK - Listed global resources of all types\ndefault:sqlite\n"
    );
    // managerServlet.resourcesType=OK - Listed global resources of type [{0}]
    assert_eq!(
        get(&c, "/resources?type=postgres").await,
        "OK - Listed global resources of type [postgres]\n"
    );
    assert_eq!(
        get(&c, "/resources?type=sqlite").await,
        "OK - Listed global resources of type [sqlite]\ndefault:sqlite\n"
    );

    // Two visitors of probe get a session each (the container's sessions).
    for _ in 0..2 {
        let response = c.client().get(c.url("/probe/session")).send().await.unwrap();
        assert!(response.headers().contains_key("set-cookie"));
    }
    // managerServlet.sessions=OK - Session information for application at context path [{0}]
    // managerServlet.sessiondefaultmax=Default maximum session inactive interval is [{0}] minutes
    // managerServlet.sessiontimeout=Inactive for [{0}] minutes: [{1}] sessions
    assert_eq!(
        get(&c, "/sessions?path=/probe").await,
        "OK - Session information for application at context path [/probe]\n\
         Default maximum session inactive interval is [30] minutes\n\
         Inactive for [<1] minutes: [2] sessions\n"
    );
    assert_eq!(
        get(&c, "/list").await,
        "OK - Listed applications for virtual host [localhost]\n/hello:running:0:hello.so\n/probe:running:2:probe.so\n"
    );
    // managerServlet.sessiontimeout.expired=Inactive for [{0}] minutes: [{1}] sessions were expired
    assert_eq!(
        get(&c, "/expire?path=/probe&idle=5").await,
        "OK - Session information for application at context path [/probe]\n\
         Default maximum session inactive interval is [30] minutes\n\
         Inactive for [<1] minutes: [2] sessions\n\
         Inactive for [>5] minutes: [0] sessions were expired\n"
    );
    assert_eq!(
        get(&c, "/expire?path=/probe&idle=0").await,
        "OK - Session information for application at context path [/probe]\n\
         Default maximum session inactive interval is [30] minutes\n\
         Inactive for [>0] minutes: [2] sessions were expired\n"
    );
    assert!(get(&c, "/list").await.contains("/probe:running:0:probe.so\n"));

    // An app that does not run has no session manager:
    // managerServlet.noManager=FAIL - No manager exists for path [{0}]
    assert!(
        get(&c, "/stop?path=/hello")
            .await
            .starts_with("OK - Stopped application")
    );
    for command in ["sessions", "expire"] {
        assert_eq!(
            get(&c, &format!("/{command}?path=/hello&idle=5")).await,
            "FAIL - No manager exists for path [/hello]\n"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_war_files_and_the_root_context() {
    let c = Container::builder().config(MANAGER).start();
    let (a, b) = (module("versioned-a"), module("versioned-b"));

    // Tagged uploads are kept and can be deployed again without a body.
    let body = put(&c, "/deploy?path=/demo&tag=v1", &a).await;
    assert_eq!(body, "OK - Deployed application at context path [/demo]\n");
    let body = put(&c, "/deploy?path=/demo&update=true&tag=v2", &b).await;
    assert_eq!(body, "OK - Deployed application at context path [/demo]\n");
    assert_eq!(c.get("/demo/").await, (200, "version b\n".into()));
    assert_eq!(
        get(&c, "/deploy?path=/demo&tag=v1").await,
        "OK - Deployed application at context path [/demo]\n"
    );
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));
    // managerServlet.copyFail=FAIL - Unable to copy [{0}] to [{1}], details of the error may be in the server logs
    let body = get(&c, "/deploy?path=/demo&tag=v9").await;
    assert!(body.starts_with("FAIL - Unable to copy ["), "{body}");
    assert!(
        body.ends_with("], details of the error may be in the server logs\n"),
        "{body}"
    );
    // managerServlet.pathCheckFail=FAIL - Unable to use [{0}] as that is outside the expected directory [{1}]
    let body = get(&c, "/deploy?path=/demo&tag=..").await;
    assert!(
        body.starts_with("FAIL - Unable to use [..] as that is outside the expected directory ["),
        "{body}"
    );

    // war= names a module file on the server.
    let war = format!("/deploy?path=/fromwar&war=file:{}", b.display());
    assert_eq!(
        get(&c, &war).await,
        "OK - Deployed application at context path [/fromwar]\n"
    );
    assert_eq!(c.get("/fromwar/").await, (200, "version b\n".into()));
    assert_eq!(
        get(&c, &war).await,
        "FAIL - Application already exists at path [/fromwar]\n"
    );
    // Without path=, the path comes from the file name (libversioned_a.so → /versioned_a).
    let war = format!("/deploy?war={}", a.display());
    assert_eq!(
        get(&c, &war).await,
        "OK - Deployed application at context path [/versioned_a]\n"
    );
    let body = get(&c, "/deploy?path=/x&war=../../etc/passwd").await;
    assert!(
        body.starts_with("FAIL - Unable to use [../../etc/passwd] as that is outside"),
        "{body}"
    );

    // / is ROOT, as in Tomcat; /ROOT means / too.
    let body = put(&c, "/deploy?path=/", &a).await;
    assert_eq!(body, "OK - Deployed application at context path [/]\n");
    assert_eq!(c.get("/").await, (200, "version a\n".into()));
    let list = get(&c, "/list").await;
    assert!(list.lines().any(|l| l == "/:running:0:ROOT.so"), "{list}");
    assert_eq!(
        get(&c, "/stop?path=/ROOT").await,
        "OK - Stopped application at context path [/]\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_authentication_as_tomcat_asks_for_it() {
    let c = Container::builder().config(MANAGER).start();
    let url = c.admin_url("/manager/text/list");
    let response = c.client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"Tomcat Manager Application\""
    );
    assert!(response.text().await.unwrap().contains("<h1>401 Unauthorized</h1>"));
    // The admin bearer token is not a manager login.
    let response = c.client().get(&url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 401);
    for _ in 0..5 {
        let response = c
            .client()
            .get(&url)
            .basic_auth(USER, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // The admin API's backoff: blocked now, even with the right password.
    let response = c
        .client()
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_token_is_the_default_password_and_no_user_means_off() {
    let c = Container::builder().config("[admin.manager]\nuser = \"ci\"\n").start();
    let url = c.admin_url("/manager/text/list");
    let response = c
        .client()
        .get(&url)
        .basic_auth("ci", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = c
        .client()
        .get(&url)
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the user must match too");

    let off = Container::builder().start();
    let url = off.admin_url("/manager/text/list");
    let response = off
        .client()
        .get(&url)
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no [admin.manager] user: nobody logs in");
    assert!(
        off.wait_for_log(
            "admin.manager.user is not configured",
            std::time::Duration::from_secs(5)
        )
        .is_some()
    );
}

/// The stock client of Tomcat's docs: `curl -T module -u user:pass URL`.
#[tokio::test(flavor = "multi_thread")]
async fn curl_deploys_as_the_tomcat_docs_show() {
    let c = Container::builder().config(MANAGER).start();
    let url = c.admin_url("/manager/text/deploy?path=/hello&update=true");
    let library = module("hello");
    let credentials = format!("{USER}:{PASSWORD}");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "-T"])
            .arg(library)
            .args(["-u", &credentials, &url])
            .output()
            .expect("curl runs (this test needs it)")
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "OK - Deployed application at context path [/hello]\n"
    );
    assert_eq!(c.get("/hello/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_modules_fail_as_tomcat_and_leave_the_running_version() {
    // No watcher: the test replaces a deployed file behind the manager's back.
    let config = format!("{MANAGER}[deploy]\nwatch = false\n");
    let c = Container::builder().config(&config).start();
    let body = put(&c, "/deploy?path=/demo", &module("versioned-a")).await;
    assert_eq!(body, "OK - Deployed application at context path [/demo]\n");

    // update=true with a module that does not load: managerServlet.deployFailed
    // then managerServlet.exception; version a keeps serving.
    let body = call(
        &c,
        Method::PUT,
        "/deploy?path=/demo&update=true",
        Some(b"garbage".to_vec()),
    )
    .await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(lines[0], "FAIL - Failed to deploy application at context path [/demo]");
    assert!(lines[1].starts_with("FAIL - Encountered exception ["), "{body}");
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));

    // A reload from a broken file: managerServlet.exception; a still serves.
    std::fs::write(c.deploy_dir().join("demo.so"), b"broken").unwrap();
    let body = get(&c, "/reload?path=/demo").await;
    assert!(body.starts_with("FAIL - Encountered exception ["), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));

    // A start from the broken file: managerServlet.startFailed, then
    // managerServlet.exception (ManagerServlet.start's catch block).
    assert_eq!(
        get(&c, "/stop?path=/demo").await,
        "OK - Stopped application at context path [/demo]\n"
    );
    let body = get(&c, "/start?path=/demo").await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert_eq!(
        lines[0],
        "FAIL - Application at context path [/demo] could not be started"
    );
    assert!(lines[1].starts_with("FAIL - Encountered exception ["), "{body}");
    assert_eq!(
        get(&c, "/list").await,
        "OK - Listed applications for virtual host [localhost]\n/demo:stopped:0:demo.so\n",
        "a failed app is listed as stopped"
    );

    // Tomcat's servlet has no doPost.
    let response = c
        .client()
        .post(c.admin_url("/manager/text/list"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_deploy_of_an_app_being_deployed_fails_as_tomcat() {
    let c = Container::builder().config(MANAGER).start();
    let library = std::fs::read(module("versioned-a")).unwrap();
    // The first upload sends half its body, then waits for the test.
    let (more, rest) = tokio::sync::oneshot::channel::<()>();
    let half = library.len() / 2;
    let (first, second) = (library[..half].to_vec(), library[half..].to_vec());
    let chunks = futures_util::stream::unfold((Some(first), Some((rest, second))), |state| async move {
        match state {
            (Some(first), later) => Some((Ok::<_, std::io::Error>(first), (None, later))),
            (None, Some((rest, second))) => {
                rest.await.ok()?;
                Some((Ok(second), (None, None)))
            }
            (None, None) => None,
        }
    });
    let slow = c
        .client()
        .put(c.admin_url("/manager/text/deploy?path=/demo"))
        .basic_auth(USER, Some(PASSWORD))
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let slow = tokio::spawn(slow);
    // The upload file appears once the first deploy holds the app.
    let receiving = || {
        std::fs::read_dir(c.deploy_dir()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".demo.so.manager-")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !receiving() {
        assert!(std::time::Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // managerServlet.inService=FAIL - The application [{0}] is already being serviced
    let body = put(&c, "/deploy?path=/demo", &module("versioned-b")).await;
    assert_eq!(body, "FAIL - The application [/demo] is already being serviced\n");
    more.send(()).unwrap();
    let response = slow.await.unwrap().unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "OK - Deployed application at context path [/demo]\n"
    );
    assert_eq!(c.get("/demo/").await, (200, "version a\n".into()));
}
