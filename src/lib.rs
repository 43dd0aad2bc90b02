//! FMU Gateway: run FMI simulation models over a JSON API and a browser dashboard.
//!
//! [`App::build`] assembles the whole service from a [`Config`] and binds it (port 0 in
//! tests), so tests start the real thing on a random port with their own data directory.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod fmi;
pub mod format;
pub mod http;
pub mod keys;
pub mod readiness;
pub mod runs;
pub mod sim;
pub mod state;
pub mod telemetry;
pub mod usage;
pub mod web;

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
    acceptor: TcpAcceptor,
}

impl App {
    /// Opens the data directory and database, loads the root key, binds the listener.
    pub async fn build(mut config: Config) -> Result<App, StartError> {
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
        let state = AppState::open(config)?;
        // Only the server recovers runs a crash left behind: operator commands open the same
        // data directory while the server runs, and must not fail its runs in progress.
        let recovered =
            runs::recover(&state.db).map_err(|e| StartError::Recovery(e.to_string()))?;
        if recovered > 0 {
            tracing::warn!(
                runs = recovered,
                "marked runs interrupted by the last stop as failed and refunded them"
            );
        }
        let acceptor =
            TcpAcceptor::from_tokio(listener).map_err(|e| StartError::Listen(listen, e))?;
        // Say which sandbox layers this kernel gives the workers (a worker reports them).
        match state.workers.probe().await {
            Ok(layers) => {
                tracing::info!(layers = %layers.join(", "), "simulation sandbox");
                state.readiness.set_sandbox(layers);
            }
            Err(e) => tracing::warn!(error = %e, "the simulation sandbox check failed"),
        }
        // Then prove a real simulation works end to end before saying we are ready.
        let check = runs::self_test(&state).await;
        match &check {
            Ok(took) => tracing::info!(ms = took.as_millis() as u64, "simulation self-test passed"),
            Err(reason) => tracing::error!(
                "simulation self-test failed, /ready answers 503 and runs are refused: {reason}"
            ),
        }
        state.readiness.set_self_test(check);
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
            loop {
                tick.tick().await;
                // Rate-limit state of clients that have gone quiet is dropped, so it cannot
                // grow without bound.
                state.auth_limit.forget_idle();
                state.run_limit.forget_idle();
                state.billing.forget_idle();
            }
        });
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                http::app(self.state),
                shutdown,
                Some(Duration::from_secs(10)),
            )
            .await;
        housekeeping.abort();
        // Simulations still running are not waited for: fail them and release their credits
        // now, rather than at the next start (their workers die with this process).
        let db = state_for_stop.db.clone();
        match tokio::task::spawn_blocking(move || runs::recover(&db)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::warn!(
                runs = n,
                "failed and refunded the runs still in progress at shutdown"
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not settle the runs in progress at shutdown")
            }
            Err(e) => {
                tracing::error!(error = %e, "could not settle the runs in progress at shutdown")
            }
        }
        result
    }
}
