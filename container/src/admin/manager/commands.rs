//! The commands on deployed apps and on the container: `list`, `reload`,
//! `start`, `stop`, `undeploy`, `serverinfo`, `resources`, `findleaks`.

use std::collections::BTreeMap;

use super::path::ContextName;
use super::{Lines, Params, messages, sessions};
use crate::admin::AdminState;
use crate::lifecycle::{AppState, AppStatus, ManagerError, chain};

/// The virtual host Tomcat's messages name; Crabcat has one, as Tomcat's
/// default `Host`.
const HOST: &str = "localhost";

/// The app at `path=`, or the `FAIL` line: Tomcat's `validateContextName`
/// then `getContextForName`. (Tomcat's `noSelf` never applies: the manager
/// is not an app here.)
pub(super) fn find_app(state: &AdminState, params: &Params) -> Result<(ContextName, AppStatus), Lines> {
    let name = ContextName::parse(params.get("path"), params.get("version")).map_err(Lines::one)?;
    let apps: BTreeMap<String, AppStatus> = state.manager.apps();
    match name.find(&apps) {
        Some(app) => Ok((name.clone(), app.clone())),
        None => Err(Lines::one(messages::no_context(name.display()))),
    }
}

/// `running` if the app serves requests; every other Crabcat state
/// (loading, initializing, draining, stopped, failed) is Tomcat's `stopped`.
fn tomcat_state(state: &AppState) -> &'static str {
    if *state == AppState::Running {
        "running"
    } else {
        "stopped"
    }
}

/// `list`: `OK - Listed applications for virtual host [localhost]`, then
/// `path:state:sessions:docBase` per app; the docBase is the app's file
/// name in the deploy directory.
pub fn list(state: &AdminState, counts: Option<&std::collections::BTreeMap<String, u64>>) -> Lines {
    let mut lines = vec![messages::listed(HOST)];
    for app in state.manager.apps().values() {
        let running = app.state == AppState::Running;
        let sessions = if running {
            sessions::session_count(counts, &app.name)
        } else {
            0
        };
        let doc_base = app
            .file
            .file_name()
            .map_or_else(|| app.file.display().to_string(), |f| f.to_string_lossy().into_owned());
        lines.push(format!(
            "{}:{}:{sessions}:{doc_base}",
            app.context_path,
            tomcat_state(&app.state)
        ));
    }
    Lines(lines)
}

/// `reload`: a blue/green reload from the app's file, always (as
/// `POST /apps/NAME/reload`); a stopped app is started.
pub async fn reload(state: &AdminState, params: &Params) -> Lines {
    let (name, app) = match find_app(state, params) {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    match state.manager.reload(&app.name, None, true).await {
        Ok(_) => Lines::one(messages::reloaded(name.display())),
        Err(error) => Lines::one(messages::exception(&chain(&error))),
    }
}

/// `start`: starts a stopped or failed app; a running one is left alone
/// (`OK`, as Tomcat's `start` of a started context).
pub async fn start(state: &AdminState, params: &Params) -> Lines {
    let (name, app) = match find_app(state, params) {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    if app.state == AppState::Running {
        return Lines::one(messages::started(name.display()));
    }
    match state.manager.start(&app.name).await {
        Ok(_) => Lines::one(messages::started(name.display())),
        // Tomcat's catch block: `startFailed`, then the exception.
        Err(error) => Lines(vec![
            messages::start_failed(name.display()),
            messages::exception(&chain(&error)),
        ]),
    }
}

/// `stop`: drains and destroys a running app (requests get `503`); an app
/// that is not running is left alone (`OK`, as Tomcat's `stop`).
pub async fn stop(state: &AdminState, params: &Params) -> Lines {
    let (name, app) = match find_app(state, params) {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    if app.state != AppState::Running {
        return Lines::one(messages::stopped(name.display()));
    }
    match state.manager.stop(&app.name).await {
        Ok(_) | Err(ManagerError::Conflict(_)) => Lines::one(messages::stopped(name.display())),
        Err(error) => Lines::one(messages::exception(&chain(&error))),
    }
}

/// `undeploy`: stops the app and removes its file from the deploy directory.
pub async fn undeploy(state: &AdminState, params: &Params) -> Lines {
    let (name, app) = match find_app(state, params) {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    match state.manager.undeploy(&app.name, true).await {
        Ok(_) => match state.share_undeploy(&app.name, "manager text API").await {
            Ok(()) => Lines::one(messages::undeployed(name.display())),
            Err(error) => Lines::one(messages::exception(&error)),
        },
        Err(ManagerError::Io { path, .. }) => Lines::one(messages::delete_fail(&path)),
        Err(error) => Lines::one(messages::exception(&chain(&error))),
    }
}

/// `serverinfo`: Tomcat's six lines with Crabcat's honest equivalents:
/// `Crabcat/VERSION`, the kernel's name and release, the CPU architecture;
/// no JVM, so `n/a` twice.
pub fn serverinfo() -> Lines {
    let server = format!("Crabcat/{}", env!("CARGO_PKG_VERSION"));
    let os = kernel("ostype").unwrap_or_else(|| std::env::consts::OS.to_owned());
    let os_version = kernel("osrelease").unwrap_or_else(|| "n/a".to_owned());
    Lines::one(messages::server_info([
        &server,
        &os,
        &os_version,
        std::env::consts::ARCH,
        "n/a",
        "n/a",
    ]))
}

/// `/proc/sys/kernel/NAME`, where there is one.
fn kernel(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `resources`: the datasources stand for Tomcat's global JNDI resources,
/// one `name:backend` line each (`sqlite`, `postgres`, `mysql`); `type=`
/// keeps one backend.
pub fn resources(state: &AdminState, kind: Option<&str>) -> Lines {
    let all: Vec<(String, &'static str)> = state
        .datasources
        .iter()
        .map(|d| (d.name.clone(), d.backend().name()))
        .collect();
    if all.is_empty() {
        return Lines::one(messages::NO_GLOBAL.to_owned());
    }
    let mut lines = vec![match kind {
        Some(kind) => messages::resources_type(kind),
        None => messages::RESOURCES_ALL.to_owned(),
    }];
    let chosen = all.iter().filter(|(_, backend)| kind.is_none_or(|k| k == *backend));
    lines.extend(chosen.map(|(name, backend)| format!("{name}:{backend}")));
    Lines(lines)
}

/// `findleaks`: the context path of each app whose reloads left library
/// images loaded (Crabcat never unloads one; see `images_kept_by_reloads`
/// in the JSON API). As Tomcat, the status line only with `statusLine=true`.
pub fn findleaks(state: &AdminState, status_line: bool) -> Lines {
    let leaking: Vec<String> = state
        .manager
        .apps()
        .values()
        .filter(|app| app.images > u64::from(app.state == AppState::Running))
        .map(|app| app.context_path.clone())
        .collect();
    let mut lines = Vec::new();
    if status_line {
        lines.push(if leaking.is_empty() {
            messages::FINDLEAKS_NONE.to_owned()
        } else {
            messages::FINDLEAKS_LIST.to_owned()
        });
    }
    lines.extend(leaking);
    Lines(lines)
}
