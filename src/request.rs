//! Request plumbing both faces share (the JSON API and the dashboard): who the client is,
//! and the one JSON error body. It belongs to neither face, so neither imports the other for
//! it, and middleware of either face answers errors in the same shape.

use std::net::IpAddr;

use poem::http::StatusCode;
use poem::{FromRequest, IntoResponse, Request, RequestBody, Response};
use poem_openapi::Object;

use crate::state::State;

#[derive(Object, Debug, Clone, serde::Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_request`, `unauthorized`, `not_found`.
    pub code: String,
    /// What went wrong, for humans.
    pub message: String,
    /// For `invalid_request` on a run: every problem found, each with the field at fault, so
    /// a client can fix them all at once.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<FieldProblem>>,
}

/// One thing wrong with a request.
#[derive(Object, Debug, Clone, serde::Serialize)]
pub struct FieldProblem {
    /// The field at fault: `stop_time`, `start_values.<name>`, `outputs.<name>`,
    /// `inputs.<name>`, …
    pub field: String,
    pub message: String,
}

/// Our JSON error answer (`{"code", "message"}`) with `status`, for code outside the API's
/// typed responses (middleware, framework errors).
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    poem::web::Json(ErrorBody {
        code: code.into(),
        message: message.into(),
        problems: None,
    })
    .with_status(status)
    .into_response()
}

/// The client's address: the TCP peer, or behind a trusted proxy (Fly.io) the address it
/// reports. Only used for rate limits.
pub struct ClientIp(pub IpAddr);

impl<'a> FromRequest<'a> for ClientIp {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let trust = req.data::<State>().is_some_and(|s| s.config.trust_proxy);
        let forwarded = || {
            let h = req.headers();
            let fly = h.get("fly-client-ip").and_then(|v| v.to_str().ok());
            let xff = h
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next());
            fly.or(xff).and_then(|ip| ip.trim().parse().ok())
        };
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let ip = if trust { forwarded().or(peer) } else { peer };
        Ok(ClientIp(ip.unwrap_or(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// One face's share of the route table: each path with its endpoint, a method router already
/// behind the face's own middleware (the HTML error renderer, or our JSON errors). `http::app`
/// puts every face's share into one table, so neither face needs the other's routes.
pub type FaceRoutes = Vec<(&'static str, poem::endpoint::BoxEndpoint<'static>)>;
