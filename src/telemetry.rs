//! Logging, set up once at start-up, and the access log.
//!
//! Lines are human-readable by default, JSON with `FMU_GATEWAY_LOG_FORMAT=json` (for log
//! shippers); the level comes from `RUST_LOG` (default `info`). Both settings live in
//! [`crate::config::Logging`].
//!
//! The access log ([`AccessLogger`]) records the requests someone has to look at — server
//! errors and slow requests — and not the millions of fast successful ones: logging every
//! request at `info` wrote 760 MB for 2.7M requests and cost CPU on the hottest routes.
//! Request counts by route and status are in `/metrics` instead.

use std::time::{Duration, Instant};

use poem::http::{Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response};
use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::config::{AccessLog, LogFormat, Logging};

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,poem=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// The level a finished request is logged at, or `None` for not at all:
/// server errors at `error` and slow requests at `warn` whatever the mode; client errors
/// (4xx) at `debug`, since a client can produce any number of them; with [`AccessLog::All`]
/// every other request at `info`.
pub fn level(mode: AccessLog, slow: Duration, status: StatusCode, took: Duration) -> Option<Level> {
    if status.is_server_error() {
        Some(Level::ERROR)
    } else if took > slow {
        Some(Level::WARN)
    } else if mode == AccessLog::All {
        Some(Level::INFO)
    } else if status.is_client_error() {
        Some(Level::DEBUG)
    } else {
        None
    }
}

/// Middleware that logs a request when [`level`] says so, with its method, route pattern
/// (never the path itself: no ids or tokens in the log, and few distinct values), status and
/// duration. The duration runs until the response's headers are ready; a streamed body
/// (CSV exports, results) is sent after that.
#[derive(Clone, Copy, Debug)]
pub struct AccessLogger {
    mode: AccessLog,
    slow: Duration,
}

impl AccessLogger {
    pub fn new(logging: &Logging) -> Self {
        AccessLogger {
            mode: logging.access_log,
            slow: logging.slow_request,
        }
    }
}

impl<E: Endpoint> Middleware<E> for AccessLogger {
    type Output = AccessLogEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AccessLogEndpoint {
            inner,
            logger: *self,
        }
    }
}

pub struct AccessLogEndpoint<E> {
    inner: E,
    logger: AccessLogger,
}

impl<E: Endpoint> Endpoint for AccessLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let start = Instant::now();
        let method = req.method().clone();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let took = start.elapsed();
        let (status, pattern) = match &result {
            Ok(resp) => (resp.status(), resp.data::<PathPattern>()),
            Err(err) => (err.status(), err.data::<PathPattern>()),
        };
        if let Some(level) = level(self.logger.mode, self.logger.slow, status, took) {
            // A nest's own pattern is empty: nothing inside it matched.
            let route = pattern.map(|p| &*p.0).filter(|p| !p.is_empty());
            log(level, &method, route.unwrap_or("unmatched"), status, took);
        }
        result
    }
}

fn log(level: Level, method: &Method, route: &str, status: StatusCode, took: Duration) {
    let method = method.as_str();
    let status = status.as_u16();
    let duration_ms = took.as_secs_f64() * 1000.0;
    macro_rules! at {
        ($level:expr) => {
            tracing::event!($level, method, route, status, duration_ms, "request")
        };
    }
    match level {
        Level::ERROR => at!(Level::ERROR),
        Level::WARN => at!(Level::WARN),
        Level::INFO => at!(Level::INFO),
        Level::DEBUG => at!(Level::DEBUG),
        _ => at!(Level::TRACE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Duration = Duration::from_secs(1);
    const FAST: Duration = Duration::from_millis(3);

    #[test]
    fn fast_successes_are_not_logged_unless_asked_for() {
        let ok = StatusCode::OK;
        assert_eq!(level(AccessLog::Errors, SLOW, ok, FAST), None);
        assert_eq!(
            level(AccessLog::Errors, SLOW, StatusCode::SEE_OTHER, FAST),
            None
        );
        assert_eq!(level(AccessLog::All, SLOW, ok, FAST), Some(Level::INFO));
    }

    #[test]
    fn server_errors_and_slow_requests_are_logged_in_every_mode() {
        for mode in [AccessLog::Errors, AccessLog::All] {
            let failed = StatusCode::INTERNAL_SERVER_ERROR;
            assert_eq!(level(mode, SLOW, failed, FAST), Some(Level::ERROR));
            let unavailable = StatusCode::SERVICE_UNAVAILABLE;
            assert_eq!(level(mode, SLOW, unavailable, FAST), Some(Level::ERROR));
            let slow = SLOW + Duration::from_millis(1);
            assert_eq!(level(mode, SLOW, StatusCode::OK, slow), Some(Level::WARN));
            assert_eq!(
                level(mode, SLOW, StatusCode::NOT_FOUND, slow),
                Some(Level::WARN)
            );
        }
        let missing = StatusCode::NOT_FOUND;
        assert_eq!(
            level(AccessLog::Errors, SLOW, missing, FAST),
            Some(Level::DEBUG)
        );
        assert_eq!(
            level(AccessLog::All, SLOW, missing, FAST),
            Some(Level::INFO)
        );
    }
}
