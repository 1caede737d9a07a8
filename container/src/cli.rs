//! The command line.

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
}

impl ServeArgs {
    /// The flags that override the configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            deploy_dir: self.deploy_dir.clone(),
        }
    }
}
