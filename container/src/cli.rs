//! The command line: `serve` (the default) and the admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Overrides;

/// Crabcat: a servlet-container-style application server for Rust modules.
#[derive(Debug, Parser)]
#[command(name = "crabcat", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `crabcat` with no subcommand takes the flags of `serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the container: deploy the modules in the deploy directory and serve HTTP.
    Serve(ServeArgs),
    /// List the deployed apps (`--cluster`: what every node of the cluster runs).
    Apps {
        /// Every node's state and version of each app, from the cluster's store.
        #[arg(long)]
        cluster: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// What the console shows: each app's state, version, context path,
    /// requests, in-flight, errors, sessions, images kept and last error,
    /// and the container's memory.
    Status(AdminArgs),
    /// Upload a module or bundle and deploy it (or reload the running version).
    Deploy {
        /// The library or bundle (.crabcat) to upload.
        file: PathBuf,
        /// App name [default: a bundle's descriptor name; a library's file name without extension and `lib` prefix].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Reload an app from its file in the deploy directory, without downtime.
    Reload(NamedArgs),
    /// Stop an app: drain it and call destroy; its file stays deployed.
    Stop(NamedArgs),
    /// Start a stopped (or failed) app from its file.
    Start(NamedArgs),
    /// Undeploy an app and remove its file.
    Undeploy(NamedArgs),
    /// Show an app's live HTTP sessions, or expire them.
    Sessions {
        /// The app name.
        name: String,
        /// Expire the app's sessions (all of them, or those idle `--idle` minutes).
        #[arg(long)]
        expire: bool,
        /// With `--expire`: only sessions idle at least this many minutes.
        #[arg(long, requires = "expire", value_name = "MINUTES")]
        idle: Option<u64>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Build an app bundle (.crabcat) from an app crate: release build, static/, crabcat-app.toml.
    Package {
        /// The crate's Cargo.toml [default: ./Cargo.toml].
        #[arg(long)]
        manifest_path: Option<PathBuf>,
        /// Where to write the bundle [default: <target dir>/crabcat/<name>-<version>.crabcat].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create a new app crate: a hello route, a database route and migration, static files, a test.
    New {
        /// The app name (letters, digits, '-' and '_').
        name: String,
        /// Where to create it [default: ./NAME].
        #[arg(long)]
        path: Option<PathBuf>,
        /// The crabcat-sdk crate to depend on [default: the sdk/ of the checkout this binary was built from].
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
}

/// `crabcat serve` flags.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); see crabcat.example.toml.
    #[arg(long, short, env = "CRABCAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory to deploy modules from [default: ./deploy].
    #[arg(long)]
    pub deploy_dir: Option<PathBuf>,
    /// Address of the admin API [default: 127.0.0.1:8081].
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// The flags that override the configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            deploy_dir: self.deploy_dir.clone(),
            admin_listen: self.admin_listen,
        }
    }
}

/// How the admin commands find the container.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// Admin API URL [default: from the config's admin.listen, http://127.0.0.1:8081].
    #[arg(long, env = "CRABCAT_ADMIN_URL")]
    pub admin: Option<String>,
    /// Bearer token [default: CRABCAT_ADMIN_TOKEN, the config's admin.token, or its admin.token_file].
    #[arg(long, env = "CRABCAT_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Configuration file, to find the admin address and token file.
    #[arg(long, short, env = "CRABCAT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Admin commands that name one app.
#[derive(Debug, Clone, clap::Args)]
pub struct NamedArgs {
    /// The app name.
    pub name: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}
