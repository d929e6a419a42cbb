//! The `windsock` binary: parses the command line, loads the configuration and wires the
//! services together. It holds no logic of its own: that lives in the service crates.

use anyhow::Context;
use axum::Router;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;
use windsock_core::bus::{self, SharedBus};
use windsock_core::config::Config;
use windsock_core::supervisor::{self, Ended, Supervisor};
use windsock_core::{health, http, telemetry, CancellationToken};

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
    /// The indexer's URL, or its replicas' URLs comma-separated, tried in order (default:
    /// `indexer.url` from the configuration, else the HTTP address).
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

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Collector => "collector",
            Service::Indexer => "indexer",
            Service::Forecaster => "forecaster",
            Service::Alerter => "alerter",
            Service::Ui => "ui",
        }
    }
}

/// Exit codes: 0 a clean stop; 1 a fatal error (anything failing before the services run, or
/// a service failing when the process stopped); 2 a configuration problem; 3 a stop that
/// could not finish its work in time (the bus could not deliver or commit everything, or
/// something still ran at [`SHUTDOWN_BOUND`]).
const EXIT_FATAL: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_INCOMPLETE: u8 = 3;

/// From the signal, how long the bus keeps waiting for the broker (see `Bus::close_by`).
const BUS_DEADLINE: Duration = Duration::from_secs(5);
/// How long consumers get to take in what the producers published last (embedded bus).
const DRAIN_BOUND: Duration = Duration::from_secs(2);
/// How long requests in flight get to finish once the services stopped.
const HTTP_DRAIN: Duration = Duration::from_secs(2);
/// From the signal, when the process exits whatever still runs.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => Arc::new(config),
        Err(err) => {
            eprintln!("{err}");
            return std::process::ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::from(EXIT_FATAL);
        }
    };
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
                Ok(Stopped::Clean)
            }
            Command::Config(ConfigCommand::Show) => {
                print!("{}", toml::to_string_pretty(config.as_ref())?);
                Ok(Stopped::Clean)
            }
            Command::Search(args) => search(&config, args).await.map(|()| Stopped::Clean),
        }
    });
    // Blocking work a dead broker holds up (a metadata request, say) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(Stopped::Clean) => std::process::ExitCode::SUCCESS,
        Ok(Stopped::ServiceFailed) => std::process::ExitCode::from(EXIT_FATAL),
        Ok(Stopped::Incomplete) => std::process::ExitCode::from(EXIT_INCOMPLETE),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(EXIT_FATAL)
        }
    }
}

/// How a run of the services ended, once they were running (see the exit codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopped {
    Clean,
    /// A service was failing when the process stopped (or failed while stopping).
    ServiceFailed,
    /// The stop could not finish its work: see the WARN about the bus or what still ran.
    Incomplete,
}

async fn search(config: &Config, args: SearchCommand) -> anyhow::Result<()> {
    let mut urls: Vec<String> = match args.url {
        Some(given) => given
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_string)
            .collect(),
        None => config.indexer.url.clone(),
    };
    if urls.is_empty() {
        urls.push(format!("http://{}", config.http.listen));
    }
    let text = windsock_indexer::cli::search_replicas(
        &urls,
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

/// Runs `services` in this process, each under a supervisor that restarts it when it fails
/// (the others keep running); one HTTP server serves them all. Consumers are created (and
/// subscribed) before the collector, so nothing it publishes at start is missed.
///
/// Anything failing before the services run is a fatal error. On a signal: producers stop,
/// consumers take in what they published (bounded), consumers stop, then HTTP, then the log
/// publisher and the bus; every wait on the broker is bounded, and a guard exits the process
/// if anything still runs [`SHUTDOWN_BOUND`] after the signal.
async fn run_services(config: Arc<Config>, services: &[Service]) -> anyhow::Result<Stopped> {
    let log_records = telemetry::init(&config.log)?;
    // Bound first: a port in use fails at once, before any data directory is opened.
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening on {}", config.http.listen))?;
    let bus: SharedBus = bus::connect(&config.bus)
        .await
        .context("connecting to the bus")?;
    tracing::info!(
        bus = %bus.kind(),
        services = services.len(),
        "starting windsock"
    );

    // Producers stop first, then consumers get a moment to drain what was accepted.
    let producers_stop = CancellationToken::new();
    let consumers_stop = CancellationToken::new();
    let http_stop = CancellationToken::new();
    let logs_stop = CancellationToken::new();

    let supervisor = Supervisor::new(
        health::global().clone(),
        Some(bus.clone()),
        supervisor::Policy::default(),
    )
    .redacting(secrets(&config));
    let mut router = http::base_routes();
    // The OpenAPI part of each service mounted, for the one document at /api/openapi.json.
    let mut api = Vec::new();
    let mut producers = JoinSet::new();
    let mut consumers = JoinSet::new();
    for service in services {
        match service {
            Service::Indexer => {
                let indexer = windsock_indexer::Indexer::new(config.clone(), bus.clone())
                    .await
                    .context("starting the indexer")?;
                router = router.merge(indexer.routes());
                api.push(windsock_indexer::openapi());
                let run = move |stop| {
                    let run = indexer.run(stop);
                    async move { Ok(run.await?) }
                };
                supervise(&mut consumers, &supervisor, "indexer", run, &consumers_stop);
            }
            Service::Forecaster => {
                let forecaster = windsock_forecaster::Forecaster::new(config.clone(), bus.clone())
                    .await
                    .context("starting the forecaster")?;
                router = router.merge(forecaster.routes());
                api.push(windsock_forecaster::openapi());
                let run = move |stop| {
                    let run = forecaster.run(stop);
                    async move { Ok(run.await?) }
                };
                supervise(
                    &mut consumers,
                    &supervisor,
                    "forecaster",
                    run,
                    &consumers_stop,
                );
            }
            Service::Alerter => {
                let alerter = windsock_alerter::Alerter::new(config.clone(), bus.clone())
                    .await
                    .context("starting the alerter")?;
                router = router.merge(alerter.routes());
                api.push(windsock_alerter::openapi());
                let run = move |stop| {
                    let run = alerter.run(stop);
                    async move { Ok(run.await?) }
                };
                supervise(&mut consumers, &supervisor, "alerter", run, &consumers_stop);
            }
            Service::Collector => {
                let collector = windsock_collector::Collector::new(config.clone(), bus.clone())
                    .await
                    .context("starting the collector")?;
                router = router.merge(collector.routes());
                api.push(windsock_collector::openapi());
                let run = move |stop| {
                    let run = collector.clone().run(stop);
                    async move { Ok(run.await?) }
                };
                supervise(
                    &mut producers,
                    &supervisor,
                    "collector",
                    run,
                    &producers_stop,
                );
            }
            Service::Ui => {
                let ui = windsock_ui::Ui::new(config.clone(), bus.clone())
                    .await
                    .context("starting the UI")?;
                router = router.merge(ui.routes());
                api.push(windsock_ui::openapi());
                // In distributed mode the UI answers the APIs it proxies, so they are part
                // of what this process serves.
                let upstreams = windsock_ui::proxy::Upstreams::from_config(&config)
                    .context("starting the UI")?;
                for (proxied, _) in upstreams.configured() {
                    let local = services.iter().any(|s| s.name() == proxied.name());
                    if !local {
                        api.push(proxied_openapi(proxied));
                    }
                }
                let run = move |stop| {
                    let run = ui.run(stop);
                    async move { Ok(run.await?) }
                };
                supervise(&mut consumers, &supervisor, "ui", run, &consumers_stop);
            }
        }
    }
    router = router.merge(http::openapi::openapi_routes(http::openapi::document(api)));
    let log_publisher = telemetry::spawn_log_publisher(log_records, bus.clone(), logs_stop.clone());
    let mut server = tokio::spawn(http::serve_on(
        listener,
        with_request_tracing(http::harden(router, &config.http)),
        http_stop.clone(),
    ));

    // Run until a signal. A failing service is the supervisor's to restart; only the HTTP
    // server ending on its own (it serves every service) ends the process.
    let mut outcome = Stopped::Clean;
    tokio::select! {
        _ = shutdown_signal() => {}
        ended = &mut server => {
            let error = match ended {
                Ok(Ok(())) => "it stopped on its own".to_string(),
                Ok(Err(err)) => err.to_string(),
                Err(err) => err.to_string(),
            };
            tracing::error!(%error, "the HTTP server failed; shutting down");
            outcome = Stopped::ServiceFailed;
        }
    }
    let signalled = std::time::Instant::now();
    tracing::info!("shutting down");
    let running: Running = Arc::new(Mutex::new(BTreeSet::new()));
    {
        let mut running = running.lock().unwrap_or_else(PoisonError::into_inner);
        running.extend(["http server", "log publisher", "bus"]);
        running.extend(services.iter().map(|s| s.name()));
    }
    guard(running.clone(), SHUTDOWN_BOUND);
    bus.close_by(signalled + BUS_DEADLINE);

    producers_stop.cancel();
    let mut failed = join_services(&mut producers, &running).await;
    drain(bus.as_ref(), DRAIN_BOUND).await;
    consumers_stop.cancel();
    failed |= join_services(&mut consumers, &running).await;

    http_stop.cancel();
    // (Not awaited again if it already ended: a finished JoinHandle must not be polled.)
    if !server.is_finished() && tokio::time::timeout(HTTP_DRAIN, &mut server).await.is_err() {
        tracing::warn!("requests still in flight after {HTTP_DRAIN:?}; closing them");
        server.abort();
    }
    stopped(&running, "http server");
    logs_stop.cancel();
    if let Err(err) = log_publisher.await {
        tracing::error!(error = %err, "the log publisher failed");
        failed = true;
    }
    stopped(&running, "log publisher");
    let report = bus.shutdown().await;
    stopped(&running, "bus");

    if !report.is_complete() {
        outcome = Stopped::Incomplete;
    } else if failed && outcome == Stopped::Clean {
        outcome = Stopped::ServiceFailed;
    }
    match outcome {
        Stopped::Clean => tracing::info!("stopped"),
        Stopped::ServiceFailed => {
            tracing::error!("stopped, with a service failing (see above)")
        }
        Stopped::Incomplete => tracing::warn!(
            undelivered = report.undelivered,
            abandoned_publishes = report.abandoned,
            unconfirmed_commits = report.uncommitted,
            "stopped, with work the bus could not finish (see above)"
        ),
    }
    Ok(outcome)
}

/// The OpenAPI part of a service `windsock ui` proxies to.
fn proxied_openapi(service: windsock_ui::proxy::Service) -> http::openapi::OpenApi {
    use windsock_ui::proxy::Service as Proxied;
    match service {
        Proxied::Indexer => windsock_indexer::openapi(),
        Proxied::Forecaster => windsock_forecaster::openapi(),
        Proxied::Alerter => windsock_alerter::openapi(),
        Proxied::Collector => windsock_collector::openapi(),
    }
}

/// What is still running during shutdown, by name, for the guard to report.
type Running = Arc<Mutex<BTreeSet<&'static str>>>;

fn stopped(running: &Running, what: &'static str) {
    running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(what);
}

/// Runs one service under `supervisor` in `set`, until `stop`.
fn supervise<F, Fut>(
    set: &mut JoinSet<(&'static str, Ended)>,
    supervisor: &Supervisor,
    name: &'static str,
    run: F,
    stop: &CancellationToken,
) where
    F: FnMut(CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let supervisor = supervisor.clone();
    let stop = stop.clone();
    set.spawn(async move { (name, supervisor.supervise(name, run, stop).await) });
}

/// Waits for every service in `set`; true if one was failing or failed while stopping.
async fn join_services(set: &mut JoinSet<(&'static str, Ended)>, running: &Running) -> bool {
    let mut failed = false;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((name, ended)) => {
                stopped(running, name);
                if let Ended::Failed(error) = ended {
                    tracing::error!(service = name, %error, "service was failing when it stopped");
                    failed = true;
                }
            }
            Err(err) => {
                // The supervisor itself panicked (a service's panic is caught inside it).
                tracing::error!(error = %err, "a service supervisor failed");
                failed = true;
            }
        }
    }
    failed
}

/// Waits until the consumers have taken in what was published (the embedded bus knows; on
/// Kafka the broker keeps it, so there is nothing to wait for), at most `bound`.
async fn drain(bus: &dyn windsock_core::Bus, bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    while let Some(unread) = bus.unread() {
        if unread == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                unread,
                "consumers had not read everything when they were stopped"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Defense in depth: if the process still runs `bound` after the signal, says what still
/// runs and exits (a thread of its own, so a wedged runtime cannot hold it).
fn guard(running: Running, bound: Duration) {
    let spawned = std::thread::Builder::new()
        .name("windsock-shutdown-guard".into())
        .spawn(move || {
            std::thread::sleep(bound);
            let running: Vec<&str> = running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .copied()
                .collect();
            tracing::error!(
                still_running = ?running,
                "shutdown did not finish within {bound:?}; exiting anyway"
            );
            eprintln!(
                "windsock: shutdown did not finish within {bound:?} (still running: {}); exiting",
                running.join(", ")
            );
            std::process::exit(EXIT_INCOMPLETE.into());
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "could not start the shutdown guard");
    }
}

/// The configuration's secrets, which no error text may show.
fn secrets(config: &Config) -> Vec<windsock_core::Secret> {
    [
        config.collector.openweathermap.api_key.clone(),
        config.alerter.slack.webhook_url.clone(),
        config.http.api_token.clone(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn with_request_tracing(router: Router) -> Router {
    // A 5xx is not an ERROR of its own here: a degraded /healthz answers 503 to every probe
    // of a load balancer, and each ERROR would become a published log event. What fails
    // inside a handler is logged where it fails (ApiError::internal, the catch-panic layer).
    let on_failure = tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG);
    router.layer(tower_http::trace::TraceLayer::new_for_http().on_failure(on_failure))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every service's part, as `windsock up` merges them.
    fn parts() -> Vec<http::openapi::OpenApi> {
        vec![
            http::base_openapi(),
            windsock_indexer::openapi(),
            windsock_forecaster::openapi(),
            windsock_alerter::openapi(),
            windsock_ui::openapi(),
            windsock_collector::openapi(),
        ]
    }

    #[test]
    fn the_services_parts_fit_in_one_document() {
        // Merging keeps the first of two schemas with one name: two services defining
        // `Region` differently would document one of them wrongly.
        assert_eq!(http::openapi::conflicts(&parts()), Vec::<String>::new());
    }

    #[test]
    fn each_proxied_service_has_the_part_of_the_service_itself() {
        use windsock_ui::proxy::Service as Proxied;
        for proxied in Proxied::ALL {
            let part = serde_json::to_value(proxied_openapi(proxied)).unwrap();
            let tags: BTreeSet<&str> = part["paths"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|item| item.as_object().unwrap().values())
                .filter_map(|operation| operation["tags"][0].as_str())
                .collect();
            assert_eq!(tags, BTreeSet::from([proxied.name()]), "{part}");
        }
    }
}
