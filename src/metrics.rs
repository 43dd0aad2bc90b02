//! `GET /metrics`: what an operator graphs and alerts on, in the OpenMetrics text format
//! Prometheus scrapes (through the Prometheus project's own `prometheus-client` crate).
//!
//! Counted as things happen: requests by route pattern, method and status (the pattern, not
//! the path, so ids cannot blow up the series count), and runs by how they ended. Read at
//! each scrape: the run queue, busy workers, the sandbox layers in force, the database
//! pool's connections and checkout waits, and free space on the data volume.
//!
//! The numbers say how busy the service is and with what, so only this machine (loopback)
//! or a scraper holding `FMU_GATEWAY_METRICS_TOKEN` may read them.

use poem::PathPattern;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::{Endpoint, IntoResponse, Request, Response, handler};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::domain::runs::charging::RunEnd;
use crate::state::State;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabels {
    layer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    state: String,
}

/// The counters kept for the life of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    runs: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Counts one answered request. `route` is the matched pattern (`/api/v1/runs/:id`), or
    /// `unmatched`.
    pub fn request(&self, method: &str, route: &str, status: StatusCode) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.as_u16(),
            })
            .inc();
    }

    /// Counts a settled run: `succeeded`, `cancelled`, or its failure kind.
    pub fn run_ended(&self, end: RunEnd) {
        let outcome = match end {
            RunEnd::Failed(kind) => kind.as_str(),
            other => crate::domain::runs::RunStatus::from(other).as_str(),
        };
        self.runs
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Everything, as OpenMetrics text: the counters, and gauges read from `state` now.
    ///
    /// `queue` is the run queue as the database holds it (shared by every process of a
    /// deployment), when it could be read.
    pub fn render(
        &self,
        state: &State,
        queue: Option<crate::store::queue::QueueStats>,
    ) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("fmu_gateway");
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            self.requests.clone(),
        );
        registry.register(
            "runs_finished",
            "Runs settled, by outcome (succeeded, cancelled, or the failure kind)",
            self.runs.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
            let g = Gauge::<i64>::default();
            g.set(value);
            registry.register(name, help, g);
        };
        let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let workers = &state.workers;
        if let Some(queue) = queue {
            let int64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            gauge(
                &mut registry,
                "runs_queued",
                "Runs waiting in the queue for a worker (of any process)",
                int64(queue.queued),
            );
            let oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            oldest.set(queue.oldest_queued_ms as f64 / 1000.0);
            registry.register(
                "queue_oldest_wait_seconds",
                "How long the oldest queued run has waited",
                oldest,
            );
            gauge(
                &mut registry,
                "runs_leased",
                "Runs a worker holds a lease on",
                int64(queue.leased),
            );
            // Time since the stalest lease was last renewed: a worker heartbeats every second
            // or so, so a value near the lease means one has stopped.
            let age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            let lease_ms = state.config.lease.as_millis() as i64;
            let stalest = queue
                .earliest_lease_end
                .map_or(0, |end| (crate::store::now_ms() - (end - lease_ms)).max(0));
            age.set(stalest as f64 / 1000.0);
            registry.register(
                "lease_age_seconds",
                "Time since the least recently renewed run lease was renewed",
                age,
            );
            let nodes = Family::<NodeLabels, Gauge>::default();
            for (kind, n) in [
                ("server", queue.server_nodes),
                ("worker", queue.worker_nodes),
            ] {
                nodes
                    .get_or_create(&NodeLabels { kind: kind.into() })
                    .set(int64(n));
            }
            registry.register(
                "worker_nodes",
                "Processes running simulations whose heartbeat was seen in the last three leases",
                nodes,
            );
        }
        gauge(
            &mut registry,
            "workers_waiting",
            "Runs and sweep batches of this process waiting for one of its workers",
            int(workers.queued()),
        );
        gauge(
            &mut registry,
            "workers_busy",
            "Worker processes running a simulation",
            int(workers.busy()),
        );
        gauge(
            &mut registry,
            "workers",
            "Worker processes that may run at once",
            int(state.config.workers),
        );
        let layers = Family::<LayerLabels, Gauge>::default();
        for status in state.readiness.sandbox() {
            let labels = LayerLabels {
                layer: status.layer.name().to_string(),
            };
            layers.get_or_create(&labels).set(i64::from(status.active));
        }
        registry.register(
            "sandbox_layer",
            "Worker sandbox layers the start-up probe checked: 1 in force, 0 missing",
            layers,
        );
        let pool = state.store.stats();
        let connections = Family::<ConnectionLabels, Gauge>::default();
        connections
            .get_or_create(&ConnectionLabels {
                state: "idle".into(),
            })
            .set(i64::from(pool.idle));
        connections
            .get_or_create(&ConnectionLabels {
                state: "busy".into(),
            })
            .set(i64::from(pool.connections.saturating_sub(pool.idle)));
        registry.register(
            "db_connections",
            "SQLite connections in the pool",
            connections,
        );
        let checkouts = Counter::<u64>::default();
        checkouts.inc_by(pool.checkouts);
        registry.register("db_checkouts", "Connections taken from the pool", checkouts);
        let waited = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        waited.inc_by(pool.waited.as_secs_f64());
        registry.register(
            "db_checkout_wait_seconds",
            "Time spent waiting for a pooled connection",
            waited,
        );
        if let Ok(free) = crate::machine::free_disk_bytes(&state.config.data_dir) {
            gauge(
                &mut registry,
                "disk_free_bytes",
                "Free space on the data volume",
                i64::try_from(free).unwrap_or(i64::MAX),
            );
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

/// Counts every request by its matched route pattern (the router leaves it on the response).
pub async fn count_requests<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let method = req.method().to_string();
    let state = req.data::<State>().cloned();
    let result = next.call(req).await.map(IntoResponse::into_response);
    if let Some(state) = state {
        let (status, pattern) = match &result {
            Ok(resp) => (resp.status(), resp.data::<PathPattern>()),
            Err(err) => (err.status(), err.data::<PathPattern>()),
        };
        // A nest's own pattern is empty: nothing inside it matched.
        let route = pattern.map(|p| &*p.0).filter(|p| !p.is_empty());
        let route = route.unwrap_or("unmatched");
        state.metrics.request(&method, route, status);
    }
    result
}

/// `GET /metrics`, for this machine or a scraper with the metrics token.
#[handler]
pub async fn serve(state: Data<&State>, req: &Request) -> Response {
    if !allowed(&state, req) {
        return crate::request::json_error(
            StatusCode::FORBIDDEN,
            crate::request::ErrorCode::Forbidden,
            "metrics are served to this machine, or with the metrics token \
             (FMU_GATEWAY_METRICS_TOKEN) as a bearer token",
        );
    }
    let seen_since = crate::store::now_ms() - 3 * state.config.lease.as_millis() as i64;
    let queue = match state.store.queue_stats(seen_since).await {
        Ok(queue) => Some(queue),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the run queue for /metrics");
            None
        }
    };
    match state.metrics.render(&state, queue) {
        Ok(text) => Response::builder()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Loopback peers that no proxy speaks for (a local reverse proxy forwards the internet from
/// loopback, and says so in its headers), or the configured token.
fn allowed(state: &State, req: &Request) -> bool {
    if let Some(token) = &state.config.metrics_token {
        use subtle::ConstantTimeEq;
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes()))) {
            return true;
        }
    }
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip", "fly-client-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    !proxied
        && req
            .remote_addr()
            .as_socket_addr()
            .is_some_and(|a| a.ip().is_loopback())
}
