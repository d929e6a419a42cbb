//! The `windsock` binary: parses the command line, loads the configuration and wires the
//! services together. It holds no logic of its own: that lives in the service crates.

use anyhow::Context;
use axum::Router;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use windsock_core::bus::{self, SharedBus};
use windsock_core::config::Config;
use windsock_core::{http, telemetry, CancellationToken};

// The indexer allocates and frees a few small values per field of every event it indexes;
// mimalloc does that markedly faster than the system allocator (see the indexer's benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "windsock",
    version,
    about = "Weather observability and alerting: collect, index, forecast, alert"
)]
struct Cli {
    /// The configuration file (TOML). Without it, `windsock.toml` is read if present,
    /// else the defaults apply. Every key can be overridden by `WINDSOCK_<SECTION>__<KEY>`.
    #[arg(long, short, global = true, env = "WINDSOCK_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every service in one process on the configured bus (embedded by default).
    Up,
    /// Runs the collector alone: fetches weather on a schedule and publishes observations.
    Collector,
    /// Runs the indexer alone: indexes every event and serves search.
    Indexer,
    /// Runs the forecaster alone: fits per-region models and serves forecasts.
    Forecaster,
    /// Runs the alerter alone: evaluates rules and notifies Slack.
    Alerter,
    /// Runs the web UI alone (proxying the API to the services' configured URLs).
    Ui,
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Searches events from the terminal, through a running indexer's API.
    Search(SearchCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validates the configuration and prints every problem with its key.
    Check,
    /// Prints the configuration in force (defaults, file and environment merged; secrets redacted).
    Show,
}

#[derive(Args)]
struct SearchCommand {
    /// The query, in the search language: `region:Dakar AND temperature_c:[30 TO *]`.
    #[arg(default_value = "*")]
    query: String,
    /// Start of the range: RFC 3339 or relative (`now-15m`, `now-24h`, `now-7d`).
    #[arg(long, default_value = "now-1h")]
    from: String,
    /// End of the range.
    #[arg(long, default_value = "now")]
    to: String,
    /// How many hits to print.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// The indexer's URL (default: `indexer.url` from the configuration, else the HTTP address).
    #[arg(long)]
    url: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Collector,
    Indexer,
    Forecaster,
    Alerter,
    Ui,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("{err}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up => {
                run_services(
                    config,
                    &[
                        Service::Indexer,
                        Service::Forecaster,
                        Service::Alerter,
                        Service::Ui,
                        Service::Collector,
                    ],
                )
                .await
            }
            Command::Collector => run_services(config, &[Service::Collector]).await,
            Command::Indexer => run_services(config, &[Service::Indexer]).await,
            Command::Forecaster => run_services(config, &[Service::Forecaster]).await,
            Command::Alerter => run_services(config, &[Service::Alerter]).await,
            Command::Ui => run_services(config, &[Service::Ui]).await,
            Command::Config(ConfigCommand::Check) => {
                println!(
                    "configuration ok: {} regions, bus {:?}, source {:?}",
                    config.regions.len(),
                    config.bus.kind,
                    config.collector.source
                );
                Ok(())
            }
            Command::Config(ConfigCommand::Show) => {
                print!("{}", toml::to_string_pretty(config.as_ref())?);
                Ok(())
            }
            Command::Search(args) => search(&config, args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn search(config: &Config, args: SearchCommand) -> anyhow::Result<()> {
    let url = args
        .url
        .or_else(|| config.indexer.url.clone())
        .unwrap_or_else(|| format!("http://{}", config.http.listen));
    let text = windsock_indexer::cli::search(
        &url,
        windsock_indexer::cli::SearchArgs {
            query: args.query,
            from: args.from,
            to: args.to,
            limit: args.limit,
        },
    )
    .await?;
    print!("{text}");
    Ok(())
}

/// Runs `services` in this process: consumers are created (and subscribed) before the
/// collector, so nothing it publishes at start is missed; one HTTP server serves them all.
async fn run_services(config: Arc<Config>, services: &[Service]) -> anyhow::Result<()> {
    let log_records = telemetry::init(&config.log)?;
    let bus: SharedBus = bus::connect(&config.bus)
        .await
        .context("connecting to the bus")?;
    tracing::info!(
        bus = bus.kind(),
        services = services.len(),
        "starting windsock"
    );

    // Producers stop first, then consumers get a moment to drain what was accepted.
    let producers_stop = CancellationToken::new();
    let consumers_stop = CancellationToken::new();
    let http_stop = CancellationToken::new();
    let logs_stop = CancellationToken::new();
    let log_publisher = telemetry::spawn_log_publisher(log_records, bus.clone(), logs_stop.clone());

    let mut router = http::base_routes();
    let mut producers = JoinSet::new();
    let mut consumers = JoinSet::new();
    for service in services {
        match service {
            Service::Indexer => {
                let indexer = windsock_indexer::Indexer::new(config.clone(), bus.clone()).await?;
                router = router.merge(indexer.routes());
                let stop = consumers_stop.clone();
                consumers.spawn(async move { indexer.run(stop).await.context("indexer") });
            }
            Service::Forecaster => {
                let forecaster =
                    windsock_forecaster::Forecaster::new(config.clone(), bus.clone()).await?;
                router = router.merge(forecaster.routes());
                let stop = consumers_stop.clone();
                consumers.spawn(async move { forecaster.run(stop).await.context("forecaster") });
            }
            Service::Alerter => {
                let alerter = windsock_alerter::Alerter::new(config.clone(), bus.clone()).await?;
                router = router.merge(alerter.routes());
                let stop = consumers_stop.clone();
                consumers.spawn(async move { alerter.run(stop).await.context("alerter") });
            }
            Service::Collector => {
                let collector =
                    windsock_collector::Collector::new(config.clone(), bus.clone()).await?;
                router = router.merge(collector.routes());
                let stop = producers_stop.clone();
                producers.spawn(async move { collector.run(stop).await.context("collector") });
            }
            Service::Ui => {
                let ui = windsock_ui::Ui::new(config.clone(), bus.clone()).await?;
                router = router.merge(ui.routes());
                let stop = consumers_stop.clone();
                consumers.spawn(async move { ui.run(stop).await.context("ui") });
            }
        }
    }

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let server = tokio::spawn(http::serve_on(
        listener,
        with_request_tracing(http::harden(router, &config.http)),
        http_stop.clone(),
    ));

    // Run until a signal, or until a service fails.
    let failure = tokio::select! {
        _ = shutdown_signal() => None,
        Some(result) = producers.join_next() => Some(result),
        Some(result) = consumers.join_next() => Some(result),
    };
    if let Some(result) = failure {
        match result {
            Ok(Ok(())) => tracing::warn!("a service stopped on its own; shutting down"),
            Ok(Err(err)) => {
                tracing::error!(error = %format!("{err:#}"), "a service failed; shutting down")
            }
            Err(err) => tracing::error!(error = %err, "a service panicked; shutting down"),
        }
    }
    tracing::info!("shutting down");
    producers_stop.cancel();
    while producers.join_next().await.is_some() {}
    // Give consumers a moment to take in what the producers just published.
    tokio::time::sleep(Duration::from_millis(750)).await;
    consumers_stop.cancel();
    let mut failed = false;
    while let Some(result) = consumers.join_next().await {
        if !matches!(result, Ok(Ok(()))) {
            failed = true;
        }
    }
    http_stop.cancel();
    let _ = server.await;
    logs_stop.cancel();
    let _ = log_publisher.await;
    if failed {
        anyhow::bail!("a service did not stop cleanly (see the log)");
    }
    Ok(())
}

fn with_request_tracing(router: Router) -> Router {
    router.layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
