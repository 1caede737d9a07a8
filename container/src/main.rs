//! The `crabcat` binary: parse the command line, set up logging, load the
//! configuration, then serve until SIGINT or SIGTERM (reloading the TLS
//! certificate on SIGHUP), or run one admin command against a running
//! container.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use crabcat::admin::client::{AdminClient, ClientError};
use crabcat::cli::{AdminArgs, Cli, Command};
use crabcat::config::{Config, Overrides};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let command = match command {
        Command::Package { manifest_path, out } => return package(manifest_path.as_deref(), out.as_deref()),
        Command::New { name, path, sdk_path } => return new(&name, path.as_deref(), sdk_path.as_deref()),
        command => command,
    };
    let Command::Serve(args) = command else {
        return runtime.block_on(admin(command));
    };
    let config = match Config::load(args.config.as_deref(), &args.overrides()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crabcat: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log.filter);
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not `{error:#}`: each `RunError` message already ends with
            // its cause, which the alternate form would repeat.
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let reload_tls = Arc::new(Notify::new());
    #[cfg(unix)]
    tokio::spawn(forward_hangups(Arc::clone(&reload_tls), config.server.tls.is_some()));
    crabcat::run(config, shutdown, reload_tls).await?;
    Ok(())
}

/// Passes each SIGHUP on to `reload_tls`. SIGHUP no longer ends the
/// process, with or without TLS.
#[cfg(unix)]
async fn forward_hangups(reload_tls: Arc<Notify>, tls: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        if tls {
            tracing::info!("SIGHUP received: reloading the TLS certificate");
        } else {
            tracing::info!("SIGHUP received: no TLS certificate to reload");
        }
        reload_tls.notify_one();
    }
}

/// `crabcat package`: prints the bundle's path.
fn package(manifest: Option<&std::path::Path>, out: Option<&std::path::Path>) -> ExitCode {
    match crabcat::package::package(manifest, out) {
        Ok(bundle) => {
            println!("{}", bundle.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crabcat package: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `crabcat new`: says what was created and what to do next.
fn new(name: &str, path: Option<&std::path::Path>, sdk: Option<&std::path::Path>) -> ExitCode {
    match crabcat::new::scaffold(name, path, sdk) {
        Ok(dir) => {
            println!(
                "created {}
next: cd {} && cargo test && crabcat package && crabcat deploy <the .crabcat it prints>",
                dir.display(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crabcat new: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one admin command and prints its result. Exit code 0, 1 (the
/// container refused) or 2 (unreachable or misused).
async fn admin(command: Command) -> ExitCode {
    match run_admin(command).await {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crabcat: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run_admin(command: Command) -> Result<String, ClientError> {
    match command {
        Command::Apps { cluster: false, admin } => client(&admin)?.apps().await,
        Command::Apps { cluster: true, admin } => client(&admin)?.cluster().await,
        Command::Status(args) => client(&args)?.status().await,
        Command::Deploy { file, name, admin } => client(&admin)?.deploy(&file, name.as_deref()).await,
        Command::Reload(n) => client(&n.admin)?.action(&n.name, "reload").await,
        Command::Stop(n) => client(&n.admin)?.action(&n.name, "stop").await,
        Command::Start(n) => client(&n.admin)?.action(&n.name, "start").await,
        Command::Undeploy(n) => client(&n.admin)?.undeploy(&n.name).await,
        Command::Sessions {
            name,
            expire,
            idle,
            admin,
        } => client(&admin)?.sessions(&name, expire, idle).await,
        Command::Serve(_) | Command::Package { .. } | Command::New { .. } => {
            Err(ClientError::Failed("not an admin command".into()))
        }
    }
}

/// The admin URL and token: flags and environment first, then the config
/// (read only when one of them is missing).
fn client(args: &AdminArgs) -> Result<AdminClient, ClientError> {
    if let (Some(base), Some(token)) = (&args.admin, &args.token) {
        return Ok(AdminClient::new(base, Some(token.clone())));
    }
    let config =
        Config::load(args.config.as_deref(), &Overrides::default()).map_err(|e| ClientError::Failed(e.to_string()))?;
    let base = args
        .admin
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.admin.listen));
    let file = &config.admin.token_file;
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
    let (token, source) = if let Some(token) = args.token.clone() {
        (Some(token), "given with --token or CRABCAT_ADMIN_TOKEN".to_owned())
    } else if let Some(token) = config.admin.token {
        (Some(token), "the config's admin.token".to_owned())
    } else {
        match std::fs::read_to_string(file) {
            Ok(text) => (
                Some(text.trim().to_owned()),
                format!("read from {}", absolute.display()),
            ),
            Err(e) => (
                None,
                format!(
                    "not given (no --token, no CRABCAT_ADMIN_TOKEN, no admin.token in the config) and {} could not be read: {e}",
                    absolute.display()
                ),
            ),
        }
    };
    Ok(AdminClient::new(&base, token).token_source(source))
}

fn init_tracing(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM; a second one exits at
/// once, without waiting for requests or calling `destroy`.
async fn cancel_on_signal(shutdown: CancellationToken) {
    wait_for_signal().await;
    shutdown.cancel();
    wait_for_signal().await;
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
