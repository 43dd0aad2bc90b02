//! FMU Gateway: run FMI simulation models over a JSON API and a browser dashboard.
//!
//! [`App::build`] assembles the whole service from a [`Config`] and binds it (port 0 in
//! tests), so tests start the real thing on a random port with their own data directory.

pub mod api;
pub mod auth;
pub mod cli;
pub mod cli_sweep;
pub mod config;
pub mod domain;
pub mod fmi;
pub mod format;
pub mod http;
pub mod links;
pub mod machine;
pub mod mail;
pub mod metrics;
pub mod objects;
pub mod readiness;
pub mod request;
pub mod session_guard;
pub mod sim;
pub mod state;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod wire_errors;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use poem::Server;
use poem::listener::TcpAcceptor;

pub use config::Config;
pub use state::{AppState, StartError, State};

/// A built, bound service that has not started serving yet.
pub struct App {
    addr: SocketAddr,
    state: State,
    acceptor: wire_errors::JsonParseErrors<TcpAcceptor>,
}

impl App {
    /// Opens the data directory and database, loads the root key, binds the listener.
    pub async fn build(mut config: Config) -> Result<App, StartError> {
        machine::check_memory(&config, machine::memory_bytes()).map_err(StartError::Memory)?;
        let listen = config.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| StartError::Listen(listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Listen(listen, e))?;
        // On a random local port (tests), links must point at the port actually bound.
        let local = ["http://127.0.0.1", "http://localhost"]
            .iter()
            .any(|p| config.public_url.starts_with(p));
        if listen.port() == 0 && local {
            config.public_url = format!("http://{addr}");
        }
        let state = AppState::open(config).await?;
        // Only the server recovers runs a crash left behind: operator commands open the same
        // data directory while the server runs, and must not fail its runs in progress. And
        // only on SQLite (one server per database): on PostgreSQL other processes may be
        // running the runs left running; one whose worker vanished is leased again when its
        // lease runs out.
        let recovered = if state.store.engine() == store::Engine::Sqlite {
            domain::runs::recover(&state.store)
                .await
                .map_err(StartError::Recovery)?
        } else {
            0
        };
        if recovered > 0 {
            tracing::warn!(
                runs = recovered,
                "marked runs interrupted by the last stop as failed and refunded them"
            );
        }
        let partial = storage::remove_partial_results(&state.config.data_dir);
        if partial > 0 {
            tracing::info!(
                files = partial,
                "removed results half-written before the last stop"
            );
        }
        match storage::remove_expired_results(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "removed results past their retention period"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired results"),
        }
        let acceptor = wire_errors::JsonParseErrors(
            TcpAcceptor::from_tokio(listener).map_err(|e| StartError::Listen(listen, e))?,
        );
        // Fail closed: a worker tries what each sandbox layer forbids; without a required
        // one the server does not serve, unless the operator accepted the risk.
        let statuses = sandbox_check(&state).await?;
        state.readiness.set_sandbox(statuses);
        // Then prove a real simulation works end to end before saying we are ready.
        let check = domain::runs::self_test(&state).await;
        match &check {
            Ok(took) => tracing::info!(ms = took.as_millis() as u64, "simulation self-test passed"),
            Err(reason) => tracing::error!(
                "simulation self-test failed, /ready answers 503 and runs are refused: {reason}"
            ),
        }
        state.readiness.set_self_test(check);
        // Sweeps keep their cases in the database: the ones a stop interrupted resume now.
        match domain::sweeps::recover(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sweeps = n, "resumed the sweeps the last stop interrupted"),
            Err(e) => {
                tracing::error!(error = %e, "cannot resume the sweeps the last stop interrupted")
            }
        }
        Ok(App {
            addr,
            state,
            acceptor,
        })
    }

    /// The address actually bound (the real port when the config asked for 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and gives requests
    /// in flight up to 10 s to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let state = self.state.clone();
        let state_for_stop = self.state.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            let mut minutes = 0u64;
            loop {
                tick.tick().await;
                minutes += 1;
                if minutes.is_multiple_of(10)
                    && let Err(e) = storage::remove_expired_results(&state).await
                {
                    tracing::warn!(error = %e, "cannot remove expired results");
                }
                // Rate-limit state of clients that have gone quiet is dropped, so it cannot
                // grow without bound.
                state.auth_limit.forget_idle();
                state.run_limit.forget_idle();
                state.billing.forget_idle();
            }
        });
        let webhooks = tokio::spawn(domain::webhooks::deliverer::run(self.state.clone()));
        let lanes = domain::runs::queue::spawn_lanes(&self.state, store::queue::NodeKind::Server);
        let takeover = domain::sweeps::spawn_takeover(&self.state);
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                http::app(self.state),
                shutdown,
                Some(Duration::from_secs(10)),
            )
            .await;
        housekeeping.abort();
        webhooks.abort();
        drop(takeover);
        domain::sweeps::hand_over(&state_for_stop).await;
        domain::runs::queue::stop(&state_for_stop, lanes).await;
        result
    }
}

/// Runs the sandbox probe and judges it: the layers, or why the server must not start.
async fn sandbox_check(state: &State) -> Result<Vec<crate::sim::sandbox::LayerStatus>, StartError> {
    use crate::sim::sandbox::{self, LayerStatus};
    let accept = "start with --allow-weaker-sandbox (FMU_GATEWAY_ALLOW_WEAKER_SANDBOX=true) to accept the risk";
    let allow = state.config.allow_weaker_sandbox;
    let reported = match state.workers.probe().await {
        Ok(reported) => reported,
        Err(e) if allow => {
            tracing::warn!(error = %e, "the worker sandbox check failed; serving anyway (--allow-weaker-sandbox)");
            return Ok(Vec::new());
        }
        // No worker answered at all: nothing can run, so there is nothing to refuse yet.
        // Stay reachable and say why (/ready 503, runs refused), like a failed self-test.
        Err(e) => {
            let problem = format!("the worker sandbox check failed: {e}");
            tracing::error!("{problem}; /ready answers 503 and runs are refused");
            state.readiness.set_sandbox_failure(problem);
            return Ok(Vec::new());
        }
    };
    let statuses: Vec<LayerStatus> = reported
        .iter()
        .filter_map(|s| LayerStatus::from_wire(s))
        .collect();
    let missing = sandbox::missing_required(&statuses, sandbox::running_as_root());
    for status in &statuses {
        tracing::info!(layer = %status.layer, active = status.active, detail = %status.detail, "worker sandbox layer");
    }
    if missing.is_empty() {
        return Ok(statuses);
    }
    let list: Vec<String> = missing
        .iter()
        .map(|s| format!("{} ({})", s.layer, s.detail))
        .collect();
    if allow {
        tracing::warn!(missing = %list.join("; "), "required worker sandbox layers are missing; serving anyway (--allow-weaker-sandbox)");
        Ok(statuses)
    } else {
        Err(StartError::Sandbox(format!(
            "required worker sandbox layer(s) missing: {}; {accept}",
            list.join("; ")
        )))
    }
}

/// A `worker-node` process: no HTTP, only workers that lease runs from the PostgreSQL
/// database the servers queue them in, fetch the model from the object store and put the
/// results there.
pub struct WorkerNode {
    state: State,
}

impl WorkerNode {
    /// Opens the database and the object store, checks the sandbox and runs the self-test
    /// (a node that cannot simulate must not lease runs).
    pub async fn build(config: Config) -> Result<WorkerNode, StartError> {
        machine::check_memory(&config, machine::memory_bytes()).map_err(StartError::Memory)?;
        if let store::Location::Sqlite(_) = config.database() {
            return Err(StartError::NodeWithoutQueue);
        }
        let state = AppState::open_as(config, state::Role::Worker).await?;
        let statuses = sandbox_check(&state).await?;
        state.readiness.set_sandbox(statuses);
        // A failed probe (which `serve` reports on /ready) stops a node: it has no /ready.
        if let Some(problem) = state.readiness.sandbox_problem() {
            return Err(StartError::Sandbox(problem));
        }
        // The library the self-test runs is installed by the first server: a node started
        // beside it waits for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match domain::runs::self_test(&state).await {
                Ok(took) => {
                    tracing::info!(ms = took.as_millis() as u64, "simulation self-test passed");
                    state.readiness.set_self_test(Ok(took));
                    break;
                }
                Err(reason) if std::time::Instant::now() < deadline => {
                    tracing::info!(%reason, "simulation self-test not passed yet; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(reason) => return Err(StartError::SelfTest(reason)),
            }
        }
        Ok(WorkerNode { state })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Leases and runs queued runs until `shutdown`; then gives the runs it holds back.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        let lanes = domain::runs::queue::spawn_lanes(&self.state, store::queue::NodeKind::Worker);
        shutdown.await;
        domain::runs::queue::stop(&self.state, lanes).await;
    }
}
