//! A local stand-in for Stripe's API, and webhook signing as Stripe does it.
//!
//! The gateway talks to Stripe over HTTP (form-encoded requests, JSON answers) and receives
//! signed webhook events from it. Tests must not reach the real Stripe, so they point the
//! gateway at [`StripeStub`], which answers the few endpoints the gateway calls with bodies
//! shaped like Stripe's, records every request so tests can check exactly what was sent
//! (API key, `Stripe-Version`, `Idempotency-Key`, form fields), and can be told to fail the
//! next requests to a path so retry and error handling can be tested. The event builders and
//! [`signature_header`] produce webhook deliveries the gateway must accept as genuine.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use poem::http::{HeaderName, HeaderValue, Method, StatusCode};
use poem::listener::TcpAcceptor;
use poem::{Endpoint, Request, Response, Server};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::oneshot;

/// A secret API key the stub accepts (any `sk_test_…` key is accepted).
pub const API_KEY: &str = "sk_test_fmu_gateway_stub";

/// A webhook signing secret for tests; any string works with [`sign`].
pub const WEBHOOK_SECRET: &str = "whsec_test_fmu_gateway_stub";

/// The API version the event builders stamp on events.
pub const API_VERSION: &str = "2024-06-20";

/// One request the stub received, as the gateway sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The URL path, without the query string.
    pub path: String,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    /// The URL-decoded form fields in the order sent, with Stripe's bracketed keys kept as
    /// they are (e.g. `line_items[0][price_data][currency]`). Empty for a body that is not
    /// a form (it is decoded as one whatever the content type says, so a wrong content type
    /// shows up in `content_type` rather than as missing fields).
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of form field `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A running stand-in for `https://api.stripe.com`; it stops when dropped.
pub struct StripeStub {
    /// `http://127.0.0.1:PORT`, without a trailing slash: the API base URL to give the gateway.
    pub url: String,
    inner: Arc<Inner>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for StripeStub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a stub on a random local port.
pub async fn start() -> StripeStub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the Stripe stub binds a local port");
    let addr = listener.local_addr().expect("the stub's local address");
    let url = format!("http://{addr}");
    let acceptor = TcpAcceptor::from_tokio(listener).expect("the stub's acceptor");
    let inner = Arc::new(Inner {
        url: url.clone(),
        requests: Mutex::new(Vec::new()),
        failures: Mutex::new(HashMap::new()),
        customers: AtomicU64::new(0),
        checkout_sessions: AtomicU64::new(0),
        portal_sessions: AtomicU64::new(0),
        request_ids: AtomicU64::new(0),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let endpoint = Stub {
        inner: inner.clone(),
    };
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                endpoint,
                async move {
                    let _ = stopped.await;
                },
                Some(Duration::from_secs(1)),
            )
            .await;
    });
    StripeStub {
        url,
        inner,
        stop: Some(stop),
    }
}

impl StripeStub {
    /// A copy of every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// The requests received so far whose path is exactly `path` (e.g. `/v1/customers`).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.inner
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Makes the next `times` requests to `path` answer `status` with the JSON `body` (they
    /// are still recorded), before any API key check. Calls add up: failures queued for the
    /// same path are served in the order queued.
    pub fn fail_next(&self, path: &str, status: u16, body: Value, times: usize) {
        self.queue_failure(path, status, body, times, None);
    }

    /// [`Self::fail_next`] with one extra response header, e.g. `("Stripe-Should-Retry",
    /// "false")`, which Stripe sends to say whether retrying the request can succeed.
    pub fn fail_next_with_header(
        &self,
        path: &str,
        status: u16,
        body: Value,
        times: usize,
        header: (&str, &str),
    ) {
        let header = (header.0.to_owned(), header.1.to_owned());
        self.queue_failure(path, status, body, times, Some(header));
    }

    fn queue_failure(
        &self,
        path: &str,
        status: u16,
        body: Value,
        times: usize,
        header: Option<(String, String)>,
    ) {
        let status = StatusCode::from_u16(status).expect("a valid HTTP status");
        if times == 0 {
            return;
        }
        self.inner
            .failures
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .push_back(Failure {
                status,
                body,
                header,
                remaining: times,
            });
    }
}

struct Inner {
    url: String,
    requests: Mutex<Vec<Recorded>>,
    failures: Mutex<HashMap<String, VecDeque<Failure>>>,
    customers: AtomicU64,
    checkout_sessions: AtomicU64,
    portal_sessions: AtomicU64,
    request_ids: AtomicU64,
}

#[derive(Clone)]
struct Failure {
    status: StatusCode,
    body: Value,
    header: Option<(String, String)>,
    remaining: usize,
}

impl Inner {
    /// Takes one use of the first failure queued for `path`, if any.
    fn take_failure(&self, path: &str) -> Option<Failure> {
        let mut failures = self.failures.lock().unwrap();
        let queue = failures.get_mut(path)?;
        let first = queue.front_mut()?;
        first.remaining -= 1;
        let taken = first.clone();
        if first.remaining == 0 {
            queue.pop_front();
        }
        Some(taken)
    }

    fn next_id(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The one endpoint behind every path: it records, then routes by hand so that unknown
/// paths are recorded and answered like Stripe too.
struct Stub {
    inner: Arc<Inner>,
}

impl Endpoint for Stub {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let authorization = header("authorization");
        let stripe_version = header("stripe-version");
        let idempotency_key = header("idempotency-key");
        let content_type = header("content-type");
        let body = req.take_body().into_bytes().await.unwrap_or_default();
        let form = decode_form(&body);
        self.inner.requests.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            authorization: authorization.clone(),
            stripe_version,
            idempotency_key,
            content_type,
            form: form.clone(),
        });
        let request_id = format!("req_test_{}", Inner::next_id(&self.inner.request_ids));

        if let Some(failure) = self.inner.take_failure(&path) {
            let mut response = json_response(failure.status, &failure.body, &request_id);
            if let Some((name, value)) = failure.header {
                response.headers_mut().insert(
                    HeaderName::try_from(name).expect("a valid header name"),
                    HeaderValue::try_from(value).expect("a valid header value"),
                );
            }
            return Ok(response);
        }

        // Pages a browser is sent to; Stripe serves these from other hosts, without API keys.
        if method == Method::GET {
            if let Some(id) = path.strip_prefix("/checkout/") {
                return Ok(html_page("Stripe Checkout stand-in", id));
            }
            if let Some(id) = path.strip_prefix("/portal/") {
                return Ok(html_page("Stripe Billing Portal stand-in", id));
            }
        }

        if path.starts_with("/v1/")
            && let Some(message) = api_key_problem(authorization.as_deref())
        {
            let body = json!({"error": {"type": "invalid_request_error", "message": message}});
            return Ok(json_response(StatusCode::UNAUTHORIZED, &body, &request_id));
        }

        let inner = &self.inner;
        let body = match (method.as_str(), path.as_str()) {
            ("POST", "/v1/customers") => {
                let n = Inner::next_id(&inner.customers);
                json!({
                    "id": format!("cus_test_{n}"),
                    "object": "customer",
                    "email": field(&form, "email"),
                    "livemode": false,
                    "metadata": metadata(&form),
                })
            }
            ("POST", "/v1/checkout/sessions") => {
                let n = Inner::next_id(&inner.checkout_sessions);
                let id = format!("cs_test_{n}");
                let currency = field(&form, "currency")
                    .or_else(|| field(&form, "line_items[0][price_data][currency]"));
                json!({
                    "id": id,
                    "object": "checkout.session",
                    "url": format!("{}/checkout/{id}", inner.url),
                    "mode": field(&form, "mode"),
                    "payment_status": "unpaid",
                    "status": "open",
                    "customer": field(&form, "customer"),
                    "customer_email": field(&form, "customer_email"),
                    "client_reference_id": field(&form, "client_reference_id"),
                    "success_url": field(&form, "success_url"),
                    "cancel_url": field(&form, "cancel_url"),
                    "payment_intent": null,
                    "livemode": false,
                    "metadata": metadata(&form),
                    "amount_total": amount_total(&form),
                    "currency": currency,
                })
            }
            ("POST", "/v1/billing_portal/sessions") => {
                let n = Inner::next_id(&inner.portal_sessions);
                let id = format!("bps_test_{n}");
                json!({
                    "id": id,
                    "object": "billing_portal.session",
                    "customer": field(&form, "customer"),
                    "return_url": field(&form, "return_url"),
                    "livemode": false,
                    "url": format!("{}/portal/{id}", inner.url),
                })
            }
            _ => {
                let message = format!(
                    "Unrecognized request URL ({method}: {path}). This Stripe stand-in only \
                     answers the endpoints the gateway uses."
                );
                let body = json!({"error": {"type": "invalid_request_error", "message": message}});
                return Ok(json_response(StatusCode::NOT_FOUND, &body, &request_id));
            }
        };
        Ok(json_response(StatusCode::OK, &body, &request_id))
    }
}

/// Why Stripe would refuse this `Authorization` header, or `None` if it names a test key.
fn api_key_problem(authorization: Option<&str>) -> Option<String> {
    let key = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    if key.starts_with("sk_test_") && key.len() > "sk_test_".len() {
        return None;
    }
    // Stripe shows only the end of the key it refused.
    let tail: String = {
        let chars: Vec<char> = key.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    Some(format!("Invalid API Key provided: ****{tail}"))
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header("Request-Id", request_id)
        .body(serde_json::to_vec(body).expect("JSON serializes"))
}

fn html_page(title: &str, id: &str) -> Response {
    let id = escape_html(id);
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}: {id}</h1></body></html>\n"
        ))
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The first value of form field `key`.
fn field(form: &[(String, String)], key: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The `metadata[KEY]=VALUE` fields as Stripe returns them: a JSON object of strings.
fn metadata(form: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (k, v) in form {
        if let Some(name) = k
            .strip_prefix("metadata[")
            .and_then(|r| r.strip_suffix(']'))
        {
            map.insert(name.to_owned(), Value::String(v.clone()));
        }
    }
    Value::Object(map)
}

/// The sum of `unit_amount × quantity` (quantity defaults to 1) over the line items given
/// with `price_data`, or null if there are none (as with prices referenced by id, whose
/// amounts the stub does not know).
fn amount_total(form: &[(String, String)]) -> Value {
    let mut total: Option<i64> = None;
    for i in 0.. {
        let unit = field(form, &format!("line_items[{i}][price_data][unit_amount]"));
        let quantity = field(form, &format!("line_items[{i}][quantity]"));
        let price = field(form, &format!("line_items[{i}][price]"));
        if unit.is_none() && quantity.is_none() && price.is_none() {
            break;
        }
        let Some(unit) = unit else { continue };
        let unit: i64 = unit.parse().expect("unit_amount is an integer");
        let quantity: i64 = quantity.map_or(1, |q| q.parse().expect("quantity is an integer"));
        *total.get_or_insert(0) += unit * quantity;
    }
    total.map_or(Value::Null, Value::from)
}

/// Decodes an `application/x-www-form-urlencoded` body into its fields, in order: pairs
/// split on `&` and the first `=`, `+` is a space, `%XX` is a byte (a malformed escape is
/// kept as written), and bytes that are not UTF-8 become U+FFFD.
pub fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(s: &[u8]) -> String {
    fn hex_digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex_digit(s[i + 1]), hex_digit(s[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hex HMAC-SHA256 of `"{timestamp}.{payload}"` keyed with the whole secret string
/// (`whsec_…` included), which is Stripe's `v1` webhook signature scheme.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Stripe-Signature` header value Stripe sends with a webhook: `t=<timestamp>,v1=<sig>`.
pub fn signature_header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, payload))
}

/// The current time in Unix seconds, as Stripe's `t=` and `created` use.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// An event envelope as Stripe delivers it to a webhook endpoint.
fn event(event_id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": now(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
        "data": {"object": object},
    })
}

#[allow(clippy::too_many_arguments)]
fn checkout_session_event(
    kind: &str,
    event_id: &str,
    session_id: &str,
    user_id: &str,
    plan: &str,
    credits: i64,
    payment_status: &str,
    payment_intent: &str,
    amount_total: i64,
) -> Value {
    event(
        event_id,
        kind,
        json!({
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": payment_status,
            "status": "complete",
            "client_reference_id": user_id,
            "customer": "cus_test_1",
            "payment_intent": payment_intent,
            "amount_total": amount_total,
            "currency": "usd",
            "livemode": false,
            "metadata": {"user_id": user_id, "plan": plan, "credits": credits.to_string()},
        }),
    )
}

/// A `checkout.session.completed` event for a one-off payment. Stripe sends it when the
/// customer finishes Checkout; `payment_status` is `"paid"` for cards but `"unpaid"` for
/// delayed methods (bank debits), whose money arrives later with
/// [`async_payment_succeeded`].
#[allow(clippy::too_many_arguments)]
pub fn checkout_completed(
    event_id: &str,
    session_id: &str,
    user_id: &str,
    plan: &str,
    credits: i64,
    payment_status: &str,
    payment_intent: &str,
    amount_total: i64,
) -> Value {
    checkout_session_event(
        "checkout.session.completed",
        event_id,
        session_id,
        user_id,
        plan,
        credits,
        payment_status,
        payment_intent,
        amount_total,
    )
}

/// A `checkout.session.async_payment_succeeded` event: a delayed payment for a completed
/// session has arrived. Stripe sends it with `payment_status` `"paid"`; the argument is
/// kept so tests can send what Stripe would not.
#[allow(clippy::too_many_arguments)]
pub fn async_payment_succeeded(
    event_id: &str,
    session_id: &str,
    user_id: &str,
    plan: &str,
    credits: i64,
    payment_status: &str,
    payment_intent: &str,
    amount_total: i64,
) -> Value {
    checkout_session_event(
        "checkout.session.async_payment_succeeded",
        event_id,
        session_id,
        user_id,
        plan,
        credits,
        payment_status,
        payment_intent,
        amount_total,
    )
}

/// A `charge.refunded` event: `amount_refunded` (cumulative, in cents) of the charge's
/// `amount` has been refunded; `refunded` is true only once all of it has.
pub fn charge_refunded(
    event_id: &str,
    charge_id: &str,
    payment_intent: &str,
    amount: i64,
    amount_refunded: i64,
) -> Value {
    event(
        event_id,
        "charge.refunded",
        json!({
            "id": charge_id,
            "object": "charge",
            "payment_intent": payment_intent,
            "amount": amount,
            "amount_refunded": amount_refunded,
            "refunded": amount == amount_refunded,
            "currency": "usd",
            "livemode": false,
        }),
    )
}

/// Posts a webhook `payload` to `url` as Stripe does: raw JSON, with `signature` (a
/// `Stripe-Signature` value) if given.
pub async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    payload: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(payload.to_vec());
    if let Some(signature) = signature {
        req = req.header("stripe-signature", signature);
    }
    req.send().await.expect("the webhook request is sent")
}

/// Delivers `event` to `url`, signed now with [`WEBHOOK_SECRET`].
pub async fn deliver(client: &reqwest::Client, url: &str, event: &Value) -> reqwest::Response {
    let payload = serde_json::to_vec(event).expect("events serialize");
    let signature = signature_header(WEBHOOK_SECRET, now(), &payload);
    post_webhook(client, url, &payload, Some(signature)).await
}
