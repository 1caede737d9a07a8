//! `deploy`: a module uploaded as the `PUT` body (Tomcat's WAR upload), a
//! file on the server (`war=`), or a tagged copy kept by an earlier upload
//! (`tag=`). All go through [`AppManager::install`], as the JSON API's
//! `PUT /apps/NAME`: the module is loaded, checked and initialised beside
//! the running version, which keeps serving if it is refused.
//!
//! [`AppManager::install`]: crate::lifecycle::AppManager::install

use std::path::{Path, PathBuf};

use axum::body::Body;

use super::path::ContextName;
use super::{Lines, Params, ServicedGuard, TextApi, messages};
use crate::admin::AdminState;
use crate::admin::handlers::{AdminError, receive};
use crate::config::ROOT_APP;
use crate::deploy;
use crate::lifecycle::chain;

/// Where tagged uploads are kept: `DEPLOY_DIR/.manager-tags/TAG/NAME.so`
/// (hidden, so neither the scanner nor the watcher takes it for an app).
const TAGS_DIR: &str = ".manager-tags";

/// `PUT /manager/text/deploy?path=/x[&update=true][&tag=T]`: the body is
/// the module.
pub async fn upload(state: &AdminState, api: &TextApi, params: &Params, body: Body) -> Lines {
    let (name, app, _serviced, tag) = match prepare_upload(state, api, params) {
        Ok(prepared) => prepared,
        Err(fail) => {
            swallow(body, state.max_upload_bytes).await;
            return fail;
        }
    };
    let Ok(_receiving) = state.uploads.try_acquire() else {
        swallow(body, state.max_upload_bytes).await;
        return Lines::one(messages::exception(&AdminError::UploadsBusy.status_and_message().1));
    };
    let upload = upload_path(state, &app);
    if let Err(error) = receive(body, &upload, state.max_upload_bytes).await {
        let _ = std::fs::remove_file(&upload);
        return Lines::one(messages::exception(&error.status_and_message().1));
    }
    if let Some(tagged) = tag
        && let Err(error) = keep_tagged(&upload, &tagged).await
    {
        tracing::error!(app, file = %tagged.display(), "cannot keep the tagged upload: {error}");
        let _ = std::fs::remove_file(&upload);
        return Lines::one(messages::copy_fail(&upload, &tagged));
    }
    install(state, &name, &app, &upload).await
}

/// The checks before an upload is received: the target, and the tag's
/// file if `tag=` is given.
fn prepare_upload<'a>(
    state: &AdminState,
    api: &'a TextApi,
    params: &Params,
) -> Result<(ContextName, String, ServicedGuard<'a>, Option<PathBuf>), Lines> {
    if params.non_empty("config").is_some() {
        return Err(Lines::one(config_refused()));
    }
    let (name, app, serviced) = target(state, api, params)?;
    let tag = params
        .get("tag")
        .map(|t| tag_file(state, t, &app))
        .transpose()
        .map_err(Lines::one)?;
    Ok((name, app, serviced, tag))
}

/// Reads and drops the body of a refused upload (at most `limit` bytes),
/// so that a client still sending it gets the answer rather than a broken
/// connection, as Tomcat's connector swallows an unread body.
async fn swallow(body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, bytes::Buf::remaining);
        if seen > limit {
            break;
        }
    }
}

/// `GET /manager/text/deploy?…`: `war=` (a module file on the server) or,
/// without it, `tag=` (redeploy a tagged upload); `config=` (a Tomcat
/// context file) is refused.
pub async fn from_server(state: &AdminState, api: &TextApi, params: &Params) -> Lines {
    if params.get("war").is_some() || params.get("config").is_some() {
        if params.non_empty("config").is_some() {
            return Lines::one(config_refused());
        }
        match params.non_empty("war") {
            Some(war) => return from_file(state, api, params, war).await,
            None => return Lines::one(messages::invalid_command("/deploy")),
        }
    }
    match params.get("tag") {
        Some(tag) => from_tag(state, api, params, tag).await,
        None => Lines::one(messages::invalid_command("/deploy")),
    }
}

/// `deploy?path=/x&war=file:/srv/x.so[&update=true]`: a copy of a file on
/// the server (relative: in the deploy directory) is installed.
async fn from_file(state: &AdminState, api: &TextApi, params: &Params, war: &str) -> Lines {
    let source = match war_file(state, war) {
        Ok(source) => source,
        Err(fail) => return Lines::one(fail),
    };
    let found = match params.get("path") {
        Some(_) => target(state, api, params),
        None => target_of_file(state, api, params, &source),
    };
    let (name, app, _serviced) = match found {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    let upload = upload_path(state, &app);
    if let Err(error) = tokio::fs::copy(&source, &upload).await {
        tracing::error!(app, file = %source.display(), "cannot copy the module: {error}");
        let _ = std::fs::remove_file(&upload);
        return Lines::one(messages::copy_fail(&source, &upload));
    }
    install(state, &name, &app, &upload).await
}

/// `deploy?path=/x&tag=T`: the upload kept under tag `T` replaces (or
/// becomes) the app at `/x`; Tomcat always updates here.
async fn from_tag(state: &AdminState, api: &TextApi, params: &Params, tag: &str) -> Lines {
    let (name, app, _serviced) = match target_updating(state, api, params, true) {
        Ok(found) => found,
        Err(fail) => return fail,
    };
    let tagged = match tag_file(state, tag, &app) {
        Ok(tagged) => tagged,
        Err(fail) => return Lines::one(fail),
    };
    let upload = upload_path(state, &app);
    if let Err(error) = tokio::fs::copy(&tagged, &upload).await {
        tracing::warn!(app, file = %tagged.display(), "no tagged upload to deploy: {error}");
        let _ = std::fs::remove_file(&upload);
        return Lines::one(messages::copy_fail(
            &tagged,
            &state.manager.deploy_dir().join(deploy::file_name(&app)),
        ));
    }
    install(state, &name, &app, &upload).await
}

/// The context path and app name a deploy targets, marked as being
/// deployed; or the `FAIL` line, as Tomcat refuses: a bad path, an
/// existing app without `update=true`, a deploy of it under way.
fn target<'a>(state: &AdminState, api: &'a TextApi, params: &Params) -> Result<Target<'a>, Lines> {
    target_updating(state, api, params, params.get("update") == Some("true"))
}

/// What a deploy works on: the path, the app name, the mark.
type Target<'a> = (ContextName, String, ServicedGuard<'a>);

fn target_updating<'a>(
    state: &AdminState,
    api: &'a TextApi,
    params: &Params,
    update: bool,
) -> Result<Target<'a>, Lines> {
    let name = ContextName::parse(params.get("path"), params.get("version")).map_err(Lines::one)?;
    claim(state, api, &name, update)
}

/// `war=` without `path=`: the path comes from the file's name, as
/// Tomcat's `ContextName.extractFromPath` (`/srv/libshop.so` → `/shop`,
/// `ROOT.so` → `/`).
fn target_of_file<'a>(state: &AdminState, api: &'a TextApi, params: &Params, file: &Path) -> Result<Target<'a>, Lines> {
    let app = deploy::app_name(file).map_err(|error| Lines::one(messages::exception(&chain(&error))))?;
    let path = if app == ROOT_APP {
        "/".to_owned()
    } else {
        format!("/{app}")
    };
    let name = ContextName::parse(Some(&path), params.get("version")).map_err(Lines::one)?;
    claim(state, api, &name, params.get("update") == Some("true"))
}

/// The app a deploy at `name` targets, marked as being deployed (Tomcat's
/// `tryAddServiced`). Checked before and again under the mark, so that of
/// two deploys of a new path without `update=true`, the second fails.
fn claim<'a>(state: &AdminState, api: &'a TextApi, name: &ContextName, update: bool) -> Result<Target<'a>, Lines> {
    let app = resolve(state, api, name, update)?;
    let guard = api
        .try_service(&app)
        .ok_or_else(|| Lines::one(messages::in_service(name.display())))?;
    if resolve(state, api, name, update)? != app {
        return Err(Lines::one(messages::in_service(name.display())));
    }
    Ok((name.clone(), app, guard))
}

/// The app name at `name`: the existing app (an error without `update`),
/// or the name a new app gets.
fn resolve(state: &AdminState, api: &TextApi, name: &ContextName, update: bool) -> Result<String, Lines> {
    let apps = state.manager.apps();
    match name.find(&apps) {
        Some(_) if !update => Err(Lines::one(messages::already_context(name.display()))),
        Some(existing) => Ok(existing.name.clone()),
        None => name.new_app_name(&api.config).map_err(Lines::one),
    }
}

/// Installs `upload` as app `app` and reports as Tomcat's
/// `writeDeployResult`, with the reason of a refusal on a second line.
async fn install(state: &AdminState, name: &ContextName, app: &str, upload: &Path) -> Lines {
    let result = state.manager.install(app, upload).await;
    let _ = std::fs::remove_file(upload); // still there unless installed
    match result {
        Ok(outcome) => {
            tracing::info!(app, ?outcome, "deployed through the manager text API");
            match state.share_deploy(app, "manager text API").await {
                Ok(()) => Lines::one(messages::deployed(name.display())),
                Err(error) => Lines::one(messages::exception(&error)),
            }
        }
        Err(error) => Lines(vec![
            messages::deploy_failed(name.display()),
            messages::exception(&chain(&error)),
        ]),
    }
}

/// A hidden file in the deploy directory to receive the module in.
fn upload_path(state: &AdminState, app: &str) -> PathBuf {
    state.manager.deploy_dir().join(format!(
        ".{}.manager-{:016x}",
        deploy::file_name(app),
        rand::random::<u64>()
    ))
}

/// Where the upload of `app` tagged `tag` is kept, or Tomcat's
/// `pathCheckFail` line for a tag that is not one plain directory name.
fn tag_file(state: &AdminState, tag: &str, app: &str) -> Result<PathBuf, String> {
    let tags = state.manager.deploy_dir().join(TAGS_DIR);
    let plain = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with('.')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain {
        return Err(messages::path_check_fail(tag, &tags));
    }
    Ok(tags.join(tag).join(deploy::file_name(app)))
}

/// Copies the upload to its tag's place (replacing an older one).
async fn keep_tagged(upload: &Path, tagged: &Path) -> std::io::Result<()> {
    if let Some(dir) = tagged.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::copy(upload, tagged).await.map(|_| ())
}

/// The file `war=` names: `file:` URLs and plain paths; a relative path is
/// in the deploy directory and must stay there (Tomcat's `pathCheck`).
fn war_file(state: &AdminState, war: &str) -> Result<PathBuf, String> {
    let path = war.strip_prefix("file:").unwrap_or(war);
    let scheme = path
        .split_once(':')
        .is_some_and(|(s, _)| !s.contains('/') && s.len() > 1);
    if scheme {
        return Err(messages::exception(&format!(
            "{war}: only file: URLs and paths on the server can be deployed"
        )));
    }
    let deploy_dir = state.manager.deploy_dir();
    let file = Path::new(path);
    if file.is_absolute() {
        return Ok(file.to_path_buf());
    }
    let escapes = file
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if escapes {
        return Err(messages::path_check_fail(path, deploy_dir));
    }
    Ok(deploy_dir.join(file))
}

fn config_refused() -> String {
    messages::exception(
        "config=: Tomcat context files have no Crabcat equivalent; configure the app in [apps.NAME] of crabcat.toml",
    )
}
