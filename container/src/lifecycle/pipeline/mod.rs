//! The load pipeline: from a library file to an initialised instance, in
//! numbered steps, each with its own error.
//!
//! 1. stage a private copy (and hash it); a bundle is unpacked and checked;
//! 2. open and check it (`abi::Module::load`);
//! 3. list and apply its migrations on the app's default datasource;
//! 4. call its `init` with its config section;
//! 5. build its route table.
//!
//! Nothing here changes what is routed: the manager mounts the result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::context::StaticRoot;
use super::instance::Instance;
use super::routes::{RouteError, RouteTable};
use super::runtimes::own_runtime;
use super::status::BundleStatus;
use crate::abi::{self, HostApp, InstanceLimits, MigrationSpec, Module, ModuleInfo, RawInstance, migrations_of};
use crate::config::{AppConfig, Config};
use crate::db::{AppData, AppMigration, Datasources, MigrationError, apply_app_migrations};
use crate::deploy::bundle::{BundleError, Descriptor, Unpacked};
use crate::deploy::{DeployError, StagedCopy, Staging};
use crate::session::{AppSessions, Settings as SessionSettings, Store as SessionStore};

/// Why a library did not become a running instance.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Step 1: the private copy could not be made.
    #[error("cannot stage the library")]
    Stage(#[source] DeployError),
    /// Step 1: the bundle was refused (its message names it and why).
    #[error(transparent)]
    Bundle(BundleError),
    /// A reload's bundle asks for another context path than the app has.
    #[error(
        "the bundle asks for context path {wanted}, but the app is mounted at {mounted}; undeploy and deploy it to move it"
    )]
    ContextPathChanged { wanted: String, mounted: String },
    /// Step 2: the file is not a module this container can load.
    #[error(transparent)]
    Load(#[from] abi::LoadError),
    /// The app is granted a datasource that is not configured.
    #[error("datasource {0} is not configured")]
    UnknownDatasource(String),
    /// Step 3: the module's migrations are inconsistent.
    #[error("the module declares migration {0} twice")]
    DuplicateMigration(i64),
    /// Step 3: the module has migrations but the app no datasource.
    #[error("app {0} has migrations but no datasource")]
    NoDatasource(String),
    /// Step 3: applying them failed.
    #[error("migrations failed")]
    Migrations(#[source] Box<MigrationError>),
    /// Step 4: `init` returned an error or panicked (the module's message).
    #[error("init failed: {0}")]
    Init(String),
    /// Step 5: the routes the module declared cannot be installed.
    #[error("bad routes")]
    Routes(#[from] RouteError),
    /// The app's own worker threads (`apps.NAME.worker_threads`) could not be started.
    #[error("cannot start the app's worker threads")]
    Runtime(#[source] std::io::Error),
    /// A step's blocking thread died (a bug in the container).
    #[error("{0} crashed")]
    Crashed(&'static str, #[source] tokio::task::JoinError),
}

/// A freshly loaded and initialised instance, not yet mounted.
pub struct Loaded {
    pub instance: Instance,
    pub info: ModuleInfo,
    pub sha256: String,
    /// What the bundle said, if it was one.
    pub bundle: Option<BundleStatus>,
}

/// What the pipeline needs, shared with the manager.
pub struct Pipeline {
    pub config: Arc<Config>,
    pub datasources: Arc<Datasources>,
    /// Where apps' sessions are kept; none when sessions are off.
    pub sessions: Option<Arc<SessionStore>>,
    pub staging: Arc<Staging>,
    pub runtime: tokio::runtime::Handle,
}

async fn blocking<T: Send + 'static>(
    step: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PipelineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PipelineError::Crashed(step, e))
}

impl Pipeline {
    /// Step 1: a private copy of `source`, with its SHA-256.
    ///
    /// # Errors
    /// [`PipelineError::Stage`].
    pub async fn stage(&self, name: &str, source: &Path) -> Result<StagedCopy, PipelineError> {
        let staging = Arc::clone(&self.staging);
        let (app, from) = (name.to_owned(), source.to_path_buf());
        blocking("staging", move || staging.stage(&app, &from))
            .await?
            .map_err(|error| match error {
                DeployError::Bundle(error) => PipelineError::Bundle(error),
                error => PipelineError::Stage(error),
            })
    }

    /// Where app `name` is mounted: `[apps.NAME] context_path` if set,
    /// else its bundle's `context_path`, else `/NAME` (`/` for `ROOT`).
    pub fn context_path(&self, name: &str, staged: Option<&StagedCopy>) -> String {
        let configured = self.config.apps.get(name).and_then(|a| a.context_path.clone());
        let bundled = || descriptor(staged).and_then(|d| d.context_path.clone());
        configured
            .or_else(bundled)
            .unwrap_or_else(|| crate::config::default_context_path(name))
    }

    /// Steps 2 to 5 on a staged copy of app `name`'s library (errors name
    /// `file`, the app's file in the deploy directory), mounted at
    /// `context_path`. `image_loaded` is told the bytes an opened image
    /// maps: it stays loaded even if a later step fails.
    ///
    /// # Errors
    /// The first step that failed.
    pub async fn load_staged(
        &self,
        name: &str,
        mut staged: StagedCopy,
        file: &Path,
        context_path: &str,
        image_loaded: impl FnOnce(u64),
    ) -> Result<Loaded, PipelineError> {
        self.check_context_path(name, &staged, context_path)?;
        let sha256 = staged.sha256().to_owned();
        let bundle = staged.take_bundle();
        let file: PathBuf = file.to_path_buf();
        let module = Arc::new(blocking("loading", move || Module::load(staged.path(), &file)).await??);
        image_loaded(module.mapped_bytes());
        let info = module.info().clone();
        let data = Arc::new(self.app_data(name, bundle.as_ref().map(|b| &b.descriptor))?);
        let for_listing = Arc::clone(&module);
        let specs = blocking("listing migrations", move || migrations_of(&for_listing)).await?;
        migrate(&data, &specs).await?;
        let document = self.init_document(name, context_path);
        let app = self.app_settings(name, bundle.as_ref().map(|b| &b.descriptor));
        let limits = InstanceLimits {
            max_tasks: app.max_tasks,
            max_response_bytes: app.max_response_bytes,
        };
        let (runtime, own) = match app.worker_threads {
            0 => (self.runtime.clone(), false),
            threads => (own_runtime(name, threads).map_err(PipelineError::Runtime)?, true),
        };
        let sessions = self.sessions.as_ref().map(|store| {
            let settings = SessionSettings::of(&self.config.sessions, &app);
            Arc::new(AppSessions::new(name.into(), context_path, Arc::clone(store), settings))
        });
        let host_app = HostApp::leak(name.into(), context_path, runtime, own, limits, sessions);
        let (raw, routes) = blocking("init", move || RawInstance::init(module, host_app, &document))
            .await?
            .map_err(PipelineError::Init)?;
        match RouteTable::build(&routes) {
            Ok(routes) => {
                let mut instance = Instance::new(raw, routes, data);
                let bundle = bundle.map(|b| self.attach_bundle(name, &mut instance, b));
                Ok(Loaded {
                    instance,
                    info,
                    sha256,
                    bundle,
                })
            }
            Err(error) => {
                // `init` succeeded, so `destroy` must run: dropping `raw` does it.
                let _ = tokio::task::spawn_blocking(move || drop(raw)).await;
                Err(error.into())
            }
        }
    }

    /// A reload (or start) keeps the app where it is mounted: a bundle
    /// asking for another context path is refused.
    fn check_context_path(&self, name: &str, staged: &StagedCopy, mounted: &str) -> Result<(), PipelineError> {
        let wanted = self.context_path(name, Some(staged));
        if wanted != mounted {
            return Err(PipelineError::ContextPathChanged {
                wanted,
                mounted: mounted.to_owned(),
            });
        }
        Ok(())
    }

    /// Ties `instance` to its unpacked bundle and that bundle's static
    /// files; returns what the status shows of it.
    fn attach_bundle(&self, name: &str, instance: &mut Instance, bundle: Unpacked) -> BundleStatus {
        instance.set_bundle(Arc::clone(&bundle.dir), self.bundle_static_root(name, &bundle));
        BundleStatus {
            dir: bundle.dir.path().to_path_buf(),
            descriptor: bundle.descriptor,
        }
    }

    /// The static files of a bundle, if it has a `static/`. One that
    /// cannot be served is logged; the app runs without them.
    fn bundle_static_root(&self, name: &str, bundle: &Unpacked) -> Option<Arc<StaticRoot>> {
        let dir = bundle.static_dir.as_ref()?;
        let cache_control = self.config.app(name).static_cache_control;
        match StaticRoot::open(dir, &cache_control) {
            Ok(root) => Some(Arc::new(root.keeping(Arc::clone(&bundle.dir)))),
            Err(error) => {
                tracing::error!(app = name, "the bundle's static files cannot be served: {error}");
                None
            }
        }
    }

    /// The datasources app `name` is granted: its `[apps.NAME]`
    /// `datasources`; without such a section, its bundle's, else `default`.
    fn app_data(&self, name: &str, descriptor: Option<&Descriptor>) -> Result<AppData, PipelineError> {
        let wanted = match (
            self.config.apps.contains_key(name),
            descriptor.and_then(|d| d.datasources.clone()),
        ) {
            (false, Some(datasources)) => datasources,
            _ => self.config.app_datasources(name),
        };
        let granted = wanted
            .iter()
            .map(|d| {
                self.datasources
                    .get(d)
                    .cloned()
                    .ok_or_else(|| PipelineError::UnknownDatasource(d.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AppData::new(name.into(), granted))
    }

    /// The settings of app `name`: its `[apps.NAME]` section (or the
    /// defaults), with its bundle's session settings where the section
    /// sets none: a bundle's values are defaults, `[apps.NAME]` wins.
    fn app_settings(&self, name: &str, descriptor: Option<&Descriptor>) -> AppConfig {
        let mut app = self.config.app(name);
        if let Some(defaults) = descriptor.map(|d| &d.session) {
            app.session_idle_timeout = app.session_idle_timeout.or(defaults.idle_timeout);
            app.session_max_lifetime = app.session_max_lifetime.or(defaults.max_lifetime);
        }
        app
    }

    /// The JSON document `init` receives: name, context path, config
    /// section, log level.
    fn init_document(&self, name: &str, context_path: &str) -> Vec<u8> {
        let config = self.config.apps.get(name).map(|a| a.config.clone()).unwrap_or_default();
        let max_log_level = tracing::level_filters::LevelFilter::current()
            .to_string()
            .to_lowercase();
        let prefix = if context_path == "/" { "" } else { context_path };
        serde_json::to_vec(&serde_json::json!({
            "name": name,
            "context_path": prefix,
            "config": config,
            "max_log_level": max_log_level,
        }))
        .expect("a JSON value serialises")
    }
}

fn descriptor(staged: Option<&StagedCopy>) -> Option<&Descriptor> {
    staged.and_then(StagedCopy::bundle).map(|b| &b.descriptor)
}

/// Step 3: applies the module's migrations on the app's default datasource.
async fn migrate(data: &AppData, specs: &[MigrationSpec]) -> Result<(), PipelineError> {
    if specs.is_empty() {
        return Ok(());
    }
    let ds = data
        .default_datasource()
        .ok_or_else(|| PipelineError::NoDatasource(data.name.to_string()))?;
    let migrations = group_migrations(specs)?;
    apply_app_migrations(ds, &data.name, &migrations)
        .await
        .map_err(|e| PipelineError::Migrations(Box::new(e)))?;
    Ok(())
}

/// Groups the per-variant reports of a module into migrations: one per
/// version, its default SQL and its backend-specific variants.
///
/// # Errors
/// [`PipelineError::DuplicateMigration`] for a version with two default
/// SQLs or two variants for one backend.
pub fn group_migrations(specs: &[MigrationSpec]) -> Result<Vec<AppMigration>, PipelineError> {
    let mut migrations: Vec<AppMigration> = Vec::new();
    for spec in specs {
        let index = match migrations.iter().position(|m| m.version == spec.version) {
            Some(i) => i,
            None => {
                migrations.push(AppMigration {
                    version: spec.version,
                    description: spec.description.clone(),
                    sql: String::new(),
                    variants: Vec::new(),
                });
                migrations.len() - 1
            }
        };
        let m = &mut migrations[index];
        let twice = if spec.backend.is_empty() {
            !std::mem::replace(&mut m.sql, spec.sql.clone()).is_empty()
        } else {
            let seen = m.variants.iter().any(|(b, _)| *b == spec.backend);
            m.variants.push((spec.backend.clone(), spec.sql.clone()));
            seen
        };
        if twice {
            return Err(PipelineError::DuplicateMigration(spec.version));
        }
    }
    Ok(migrations)
}

#[cfg(test)]
mod tests;
