//! The `orgsync` command line.

use std::path::PathBuf;

use actix_web::HttpServer;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use orgsync_domain::auth::AdminRole;
use orgsync_domain::org::OrgId;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::runtime::{minter, Runtime};

#[derive(Debug, Parser)]
#[command(
    name = "orgsync",
    version,
    about = "Keeps organizations in sync with their identity providers"
)]
pub struct Cli {
    /// A configuration file (TOML); `ORGSYNC__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "ORGSYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API, with a worker in the same process.
    Serve,
    /// Process background jobs only (needs redis.url), to scale out.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a signed admin token for the configured key, and nothing else.
    Token(TokenArgs),
    /// Directory syncs on a running orgsync.
    #[command(subcommand)]
    Sync(SyncCommand),
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Start a sync (cascading to children and sandboxes by default).
    Start(crate::sync_cli::SyncStart),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "who")]
struct TokenTarget {
    /// A platform-operator token (creates tenants, reaches every org).
    #[arg(long, group = "who")]
    platform: bool,
    /// An admin token for this organization (and its descendants).
    #[arg(long, group = "who", requires = "role")]
    org: Option<Uuid>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[command(flatten)]
    target: TokenTarget,
    /// The admin's role in the org.
    #[arg(long, value_parser = parse_role)]
    role: Option<AdminRole>,
    /// The token's `sub` claim.
    #[arg(long, default_value = "orgsync-cli")]
    subject: String,
}

fn parse_role(raw: &str) -> Result<AdminRole, String> {
    match raw {
        "owner" => Ok(AdminRole::Owner),
        "admin" => Ok(AdminRole::Admin),
        "member" => Ok(AdminRole::Member),
        _ => Err("expected owner, admin or member".into()),
    }
}

/// Parses the command line and runs the command.
///
/// # Errors
/// Whatever stopped the command; `main` prints it and exits non-zero.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    if let Command::Token(args) = &cli.command {
        // `token` prints only the token, so it stays quiet on stdout and logs nothing.
        return print_token(&settings, args);
    }
    if !matches!(cli.command, Command::Sync(_)) {
        crate::telemetry::init(&settings.log);
    }
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(async move {
            match cli.command {
                Command::Serve => serve(settings).await,
                Command::Worker => worker(settings).await,
                Command::Migrate => migrate(settings).await,
                Command::Sync(SyncCommand::Start(args)) => {
                    crate::sync_cli::start(&settings, args).await
                }
                Command::Token(_) => Ok(()),
            }
        })
}

fn print_token(settings: &Settings, args: &TokenArgs) -> anyhow::Result<()> {
    let minter = minter(settings)?;
    let org = match (args.target.platform, args.target.org, args.role) {
        (true, _, _) => None,
        (false, Some(org), Some(role)) => Some((OrgId(org), role)),
        _ => anyhow::bail!("give --platform, or --org ID with --role"),
    };
    let token = minter
        .mint(&args.subject, org)
        .context("signing the token")?;
    println!("{token}");
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let runtime = Runtime::start(settings).await?;
    let shutdown = CancellationToken::new();
    let worker = runtime.worker();
    let worker_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    let dispatcher = runtime.event_dispatcher();
    let dispatcher_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { dispatcher.run(shutdown).await }
    });
    let state = runtime.state.clone();
    let bind = runtime.settings.server.bind.clone();
    tracing::info!(
        bind = %bind,
        embedded = runtime.settings.is_embedded(),
        queue = if runtime.settings.redis.url.is_some() { "redis" } else { "in-process" },
        "orgsync serving"
    );
    // actix stops accepting on SIGINT/SIGTERM and gives in-flight requests the timeout to finish.
    HttpServer::new(move || crate::http::app(state.clone()))
        .shutdown_timeout(runtime.settings.server.shutdown_timeout)
        .bind(&bind)
        .with_context(|| format!("binding server.bind {bind}"))?
        .run()
        .await
        .context("serving HTTP")?;
    shutdown.cancel();
    worker_task.await.context("worker task")?;
    dispatcher_task.await.context("event dispatcher task")?;
    tracing::info!("orgsync stopped");
    Ok(())
}

async fn worker(settings: Settings) -> anyhow::Result<()> {
    if settings.redis.url.is_none() {
        anyhow::bail!(
            "configuration key `redis.url`: required by `worker`; the embedded mode runs its worker inside `serve`"
        );
    }
    let runtime = Runtime::start(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; finishing the jobs in hand");
            shutdown.cancel();
        }
    });
    let dispatcher = runtime.event_dispatcher();
    let dispatcher_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { dispatcher.run(shutdown).await }
    });
    runtime.worker().run(shutdown).await;
    dispatcher_task.await.context("event dispatcher task")?;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let mut settings = settings;
    settings.database.migrate_on_start = true;
    let url = settings.database_url();
    Runtime::start(settings).await?;
    tracing::info!(database = %redact(&url), "migrations applied");
    Ok(())
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_user, host)) => {
            let scheme = scheme_and_user.split("://").next().unwrap_or("db");
            format!("{scheme}://***@{host}")
        }
        None => url.to_owned(),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
