//! All settings of the service, read once at start-up.
//!
//! Nothing else in the crate reads environment variables: `main.rs` turns flags and env vars
//! into a [`Config`], tests build one in code. Every setting has a default that works on a
//! laptop with no set-up; a bad value stops start-up with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::billing::plans::{Plan, Plans};
use crate::domain::ids::Credits;

/// Settings of a running service.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Directory holding the SQLite database, the biscuit root key and uploaded FMUs.
    pub data_dir: PathBuf,
    /// The URL users reach the service at, used in links and to decide cookie security.
    pub public_url: String,
    /// Whether session cookies carry `Secure`. Derived from `public_url` unless forced.
    pub secure_cookies: bool,
    /// Credits granted to every new account.
    pub free_credits: Credits,
    /// Login and registration attempts allowed per client IP per minute.
    pub auth_rate_per_minute: u32,
    /// Trust `Fly-Client-IP` / `X-Forwarded-For` for the client address (only behind a proxy).
    pub trust_proxy: bool,
    /// How long a browser session lives without being used.
    pub session_ttl: Duration,
    /// Biscuit root private key (hex). `None`: read or create `biscuit-root.key` in `data_dir`.
    pub root_key_hex: Option<Secret>,
    /// Database connections in the pool.
    pub db_pool_size: u32,
    /// `FMU_GATEWAY_DATABASE_URL`: a PostgreSQL URL puts all state there; `None`: SQLite in
    /// `data_dir`.
    pub database_url: Option<Secret>,
    /// Largest FMU upload accepted.
    pub max_upload_bytes: u64,
    /// Simulations that run at once (worker processes); more wait in a queue.
    pub workers: usize,
    /// Address-space limit of one worker process.
    pub worker_memory_bytes: u64,
    /// Credits one run costs (reserved when it starts, settled when it ends).
    pub run_cost: Credits,
    /// How long `POST /runs` waits for a run before answering 202 with its URL.
    pub sync_wait: Duration,
    /// The longest wall-clock time a run may ask for (and the default).
    pub max_run_time: Duration,
    /// How long a worker's lease on a run (or a server's on a sweep) holds without a
    /// heartbeat: a process that vanished gives its work up to another after this long.
    pub lease: Duration,
    /// Runs one API key (or browser session) may start per minute.
    pub runs_per_minute: u32,
    /// Plans that can be bought (Free is implied by `free_credits`); `FMU_GATEWAY_PLANS`.
    pub paid_plans: Vec<Plan>,
    /// Stripe's secret key (`STRIPE_SECRET_KEY`); `None`: billing is not configured.
    pub stripe_secret_key: Option<Secret>,
    /// Where Stripe's API is (`STRIPE_API_BASE`); tests point it at a local stand-in.
    pub stripe_api_base: String,
    /// Webhook signing secrets (`STRIPE_WEBHOOK_SECRET`, comma-separated while rotating).
    pub stripe_webhook_secrets: Vec<Secret>,
    /// The executable started as `<exe> worker`; `None` = this program (tests point it at the
    /// built binary).
    pub worker_exe: Option<PathBuf>,
    /// Disk space one account's uploads may take (each `.fmu` and its extracted files).
    pub storage_quota_bytes: u64,
    /// How long a run's results are kept after it ends; then they are removed.
    pub result_retention: Duration,
    /// Free space kept on the data volume so that runs in flight can still be settled: below
    /// it new runs and uploads are refused and `/ready` answers 503.
    pub disk_reserve_bytes: u64,
    /// Where files that outlive a process are kept (`FMU_GATEWAY_OBJECT_STORE`): the data
    /// directory, or an S3 bucket shared by every server and worker machine.
    pub object_store: crate::objects::Backend,
    /// Bound of the local cache of extracted FMUs (`FMU_GATEWAY_FMU_CACHE_BYTES`).
    pub fmu_cache_bytes: u64,
    /// Bearer token that lets a client other than this machine read `/metrics`.
    pub metrics_token: Option<Secret>,
    /// Largest body of every route that is not an upload (JSON, forms).
    /// `FMU_GATEWAY_MAX_JSON_BYTES`.
    pub max_json_bytes: u64,
    /// Password hashes (argon2, 19 MiB each) computed at once; more wait their turn.
    /// `FMU_GATEWAY_HASH_CONCURRENCY`.
    pub hash_concurrency: usize,
    /// Queued plus running runs one user may have, over all their keys and the dashboard.
    /// `FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER`.
    pub max_active_runs_per_user: u32,
    /// Cases one sweep may have. `FMU_GATEWAY_MAX_SWEEP_CASES`.
    pub max_sweep_cases: u32,
    /// Accounts created per hour over the whole service. `FMU_GATEWAY_SIGNUPS_PER_HOUR`.
    pub signups_per_hour: u32,
    /// New accounts per client address (an IPv6 /64) per day that get the free credits;
    /// later ones start at 0. `FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY`.
    pub free_grants_per_address_per_day: u32,
    /// Serve even when a required worker sandbox layer is missing
    /// (`--allow-weaker-sandbox`, `FMU_GATEWAY_ALLOW_WEAKER_SANDBOX`).
    pub allow_weaker_sandbox: bool,
    /// Size of each run's scratch tmpfs (`FMU_GATEWAY_SCRATCH_MB`).
    pub scratch_bytes: u64,
    /// The unprivileged uid/gid workers switch to when the server runs as root
    /// (`FMU_GATEWAY_WORKER_UID`).
    pub worker_uid: u32,
    /// Sandbox layers not to apply, for testing the fail-closed check
    /// (`FMU_GATEWAY_SANDBOX_DISABLE`, comma-separated layer names).
    pub sandbox_disabled: crate::sim::sandbox::LayerSet,
    /// Log format and which requests the access log records ([`Logging`]).
    pub logging: Logging,
    /// Where mail is sent from (`FMU_GATEWAY_SMTP_*`); `None`: this server sends no email.
    pub smtp: Option<Smtp>,
    /// Let webhooks reach loopback, private and link-local addresses, over plain http too
    /// (`FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE`): for receivers on the operator's own network
    /// and for tests. Off, only public https targets are allowed (the SSRF rule).
    pub webhook_allow_private: bool,
    /// Multiplies the webhook retry schedule (`FMU_GATEWAY_WEBHOOK_RETRY_SCALE`, default 1):
    /// 0.001 turns 5 s into 5 ms, for tests.
    pub webhook_retry_scale: f64,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain, then upgraded with STARTTLS (required): port 587.
    StartTls,
    /// TLS from the first byte: port 465.
    Tls,
    /// No encryption: only for a relay on the same machine or network (and tests).
    None,
}

/// An SMTP relay to send mail through.
#[derive(Clone, Debug)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Login, when the relay wants one.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// The `From:` address (`FMU Gateway <noreply@example.com>`).
    pub from: String,
}

/// A secret setting (Stripe key, webhook secret, root key): its `Debug` prints no part of
/// it, so logging a [`Config`] cannot leak it. `Deref` gives the value where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Config {
    /// Where the database is: PostgreSQL when `database_url` is set, else the SQLite file in
    /// the data directory.
    pub fn database(&self) -> crate::store::Location {
        match &self.database_url {
            Some(url) => crate::store::Location::Postgres(url.to_string()),
            None => crate::store::Location::Sqlite(self.data_dir.join("fmu-gateway.db")),
        }
    }

    /// Defaults for a laptop: plain-http localhost, `./data`.
    pub fn local(data_dir: PathBuf) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            public_url: "http://127.0.0.1:8080".into(),
            secure_cookies: false,
            free_credits: Credits::from(25u32),
            auth_rate_per_minute: 10,
            trust_proxy: false,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            root_key_hex: None,
            db_pool_size: 8,
            database_url: None,
            max_upload_bytes: 100 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            worker_memory_bytes: 2 << 30,
            worker_exe: None,
            storage_quota_bytes: 1 << 30,
            result_retention: Duration::from_secs(30 * 24 * 3600),
            disk_reserve_bytes: 256 << 20,
            object_store: crate::objects::Backend::Local,
            fmu_cache_bytes: 2 << 30,
            metrics_token: None,
            run_cost: Credits::from(1u32),
            sync_wait: Duration::from_secs(5),
            max_run_time: Duration::from_secs(600),
            lease: Duration::from_secs(30),
            runs_per_minute: 60,
            paid_plans: Plans::defaults(Credits::from(25u32)).paid().to_vec(),
            stripe_secret_key: None,
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_webhook_secrets: Vec::new(),
            max_json_bytes: 1 << 20,
            hash_concurrency: 2,
            max_active_runs_per_user: 4,
            max_sweep_cases: 10_000,
            signups_per_hour: 60,
            free_grants_per_address_per_day: 3,
            allow_weaker_sandbox: false,
            scratch_bytes: 64 << 20,
            worker_uid: 65534,
            sandbox_disabled: Default::default(),
            logging: Logging::default(),
            smtp: None,
            webhook_allow_private: false,
            webhook_retry_scale: 1.0,
        }
    }

    /// The result retention period in milliseconds (the unit of the runs table's times).
    pub fn result_retention_ms(&self) -> i64 {
        i64::try_from(self.result_retention.as_millis()).unwrap_or(i64::MAX)
    }

    /// Makes every configured path absolute, once, before anything uses it: workers run in
    /// their own scratch directory, so a relative path (the default `./data`) would point
    /// them somewhere else. Idempotent; [`crate::AppState::open`] calls it again for configs
    /// built in code.
    pub fn resolve_paths(&mut self) -> std::io::Result<()> {
        self.data_dir = std::path::absolute(&self.data_dir)?;
        if let Some(exe) = &self.worker_exe {
            self.worker_exe = Some(std::path::absolute(exe)?);
        }
        Ok(())
    }

    /// Builds the configuration from the environment on top of the CLI's listen address and
    /// data directory. `env` is injected so tests can exercise the parsing.
    pub fn from_env(
        listen: SocketAddr,
        data_dir: PathBuf,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Config::local(data_dir);
        config.resolve_paths().map_err(|e| {
            ConfigError::new(
                "FMU_GATEWAY_DATA_DIR",
                &config.data_dir.display().to_string(),
                &format!("cannot be made absolute: {e}"),
            )
        })?;
        config.listen = listen;
        config.public_url = match env("FMU_GATEWAY_PUBLIC_URL") {
            Some(url) => parse_url("FMU_GATEWAY_PUBLIC_URL", &url)?,
            None => format!("http://{listen}"),
        };
        config.secure_cookies = match env("FMU_GATEWAY_SECURE_COOKIES") {
            Some(v) => parse_bool("FMU_GATEWAY_SECURE_COOKIES", &v)?,
            None => !is_plain_http_localhost(&config.public_url),
        };
        if let Some(v) = env("FMU_GATEWAY_FREE_CREDITS") {
            config.free_credits = Credits::new(parse_num("FMU_GATEWAY_FREE_CREDITS", &v)?)
                .map_err(|_| ConfigError::new("FMU_GATEWAY_FREE_CREDITS", &v, "must be >= 0"))?;
        }
        if let Some(v) = env("FMU_GATEWAY_AUTH_RATE_PER_MINUTE") {
            config.auth_rate_per_minute = parse_num("FMU_GATEWAY_AUTH_RATE_PER_MINUTE", &v)?;
            if config.auth_rate_per_minute == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_AUTH_RATE_PER_MINUTE",
                    &v,
                    "must be at least 1",
                ));
            }
        }
        if let Some(v) = env("FMU_GATEWAY_TRUST_PROXY") {
            config.trust_proxy = parse_bool("FMU_GATEWAY_TRUST_PROXY", &v)?;
        }
        if let Some(v) = env("FMU_GATEWAY_SESSION_TTL_HOURS") {
            let hours: u64 = parse_num("FMU_GATEWAY_SESSION_TTL_HOURS", &v)?;
            if hours == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_SESSION_TTL_HOURS",
                    &v,
                    "must be at least 1",
                ));
            }
            config.session_ttl = Duration::from_secs(hours * 3600);
        }
        config.root_key_hex = env("FMU_GATEWAY_ROOT_KEY")
            .filter(|k| !k.trim().is_empty())
            .map(Secret::from);
        if let Some(v) = env("FMU_GATEWAY_DATABASE_URL").filter(|v| !v.trim().is_empty()) {
            if !(v.starts_with("postgres://") || v.starts_with("postgresql://")) {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_DATABASE_URL",
                    "(hidden)",
                    "must be a postgres:// or postgresql:// URL (unset: SQLite in the data directory)",
                ));
            }
            config.database_url = Some(Secret::from(v));
        }
        if let Some(v) = env("FMU_GATEWAY_DB_POOL_SIZE") {
            config.db_pool_size = parse_num("FMU_GATEWAY_DB_POOL_SIZE", &v)?;
            if config.db_pool_size == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_DB_POOL_SIZE",
                    &v,
                    "must be at least 1",
                ));
            }
        }
        if let Some(v) = env("FMU_GATEWAY_MAX_UPLOAD_MB") {
            let mb: u64 = parse_num("FMU_GATEWAY_MAX_UPLOAD_MB", &v)?;
            if mb == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_MAX_UPLOAD_MB",
                    &v,
                    "must be at least 1",
                ));
            }
            config.max_upload_bytes = mb << 20;
        }
        if let Some(v) = env("FMU_GATEWAY_WORKERS") {
            config.workers = parse_num("FMU_GATEWAY_WORKERS", &v)?;
            if config.workers == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_WORKERS",
                    &v,
                    "must be at least 1",
                ));
            }
        }
        if let Some(v) = env("FMU_GATEWAY_RUN_COST") {
            config.run_cost = Credits::new(parse_num("FMU_GATEWAY_RUN_COST", &v)?)
                .map_err(|_| ConfigError::new("FMU_GATEWAY_RUN_COST", &v, "must be >= 0"))?;
        }
        if let Some(v) = env("FMU_GATEWAY_SYNC_WAIT_MS") {
            config.sync_wait = Duration::from_millis(parse_num("FMU_GATEWAY_SYNC_WAIT_MS", &v)?);
        }
        if let Some(v) = env("FMU_GATEWAY_MAX_RUN_SECONDS") {
            let secs: u64 = parse_num("FMU_GATEWAY_MAX_RUN_SECONDS", &v)?;
            if secs == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_MAX_RUN_SECONDS",
                    &v,
                    "must be at least 1",
                ));
            }
            config.max_run_time = Duration::from_secs(secs);
        }
        if let Some(v) = env("FMU_GATEWAY_LEASE_SECONDS") {
            let secs: u64 = parse_num("FMU_GATEWAY_LEASE_SECONDS", &v)?;
            if !(2..=3600).contains(&secs) {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_LEASE_SECONDS",
                    &v,
                    "must be between 2 and 3600",
                ));
            }
            config.lease = Duration::from_secs(secs);
        }
        if let Some(v) = env("FMU_GATEWAY_RUNS_PER_MINUTE") {
            config.runs_per_minute = parse_num("FMU_GATEWAY_RUNS_PER_MINUTE", &v)?;
            if config.runs_per_minute == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_RUNS_PER_MINUTE",
                    &v,
                    "must be at least 1",
                ));
            }
        }
        if let Some(v) = env("FMU_GATEWAY_WORKER_MEMORY_MB") {
            let mb: u64 = parse_num("FMU_GATEWAY_WORKER_MEMORY_MB", &v)?;
            if mb < 64 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_WORKER_MEMORY_MB",
                    &v,
                    "must be at least 64",
                ));
            }
            config.worker_memory_bytes = mb << 20;
        }
        read_storage(&mut config, &env)?;

        config.metrics_token = env("FMU_GATEWAY_METRICS_TOKEN")
            .filter(|t| !t.trim().is_empty())
            .map(Secret::from);
        read_sandbox(&mut config, &env)?;
        config.logging = Logging::from_env(&env)?;
        if env("FMU_GATEWAY_WORKERS").is_none() {
            config.workers = crate::machine::workers_that_fit(
                config.workers,
                crate::machine::worker_footprint(&config),
                crate::machine::memory_bytes(),
            );
        }
        read_billing(&mut config, &env)?;
        read_request_bounds(&mut config, &env)?;
        config.smtp = read_smtp(&env)?;
        read_webhooks(&mut config, &env)?;
        Ok(config)
    }
}

/// Webhook targets and retries: `FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE`,
/// `FMU_GATEWAY_WEBHOOK_RETRY_SCALE` (a positive, finite factor).
fn read_webhooks(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = env("FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE") {
        config.webhook_allow_private = parse_bool("FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE", &v)?;
    }
    if let Some(v) = env("FMU_GATEWAY_WEBHOOK_RETRY_SCALE") {
        let scale: f64 = v.trim().parse().map_err(|_| {
            ConfigError::new("FMU_GATEWAY_WEBHOOK_RETRY_SCALE", &v, "expected a number")
        })?;
        if !(scale.is_finite() && scale > 0.0 && scale <= 1000.0) {
            return Err(ConfigError::new(
                "FMU_GATEWAY_WEBHOOK_RETRY_SCALE",
                &v,
                "must be above 0 and at most 1000",
            ));
        }
        config.webhook_retry_scale = scale;
    }
    Ok(())
}

/// The SMTP relay: `FMU_GATEWAY_SMTP_HOST` turns mail on, and then `FMU_GATEWAY_SMTP_FROM` is
/// required; the port follows the TLS mode unless given.
fn read_smtp(env: &impl Fn(&str) -> Option<String>) -> Result<Option<Smtp>, ConfigError> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let Some(host) = set("FMU_GATEWAY_SMTP_HOST") else {
        return Ok(None);
    };
    let tls = match set("FMU_GATEWAY_SMTP_TLS") {
        None => SmtpTls::StartTls,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            _ => {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_SMTP_TLS",
                    &v,
                    "expected starttls, tls or none",
                ));
            }
        },
    };
    let port = match set("FMU_GATEWAY_SMTP_PORT") {
        Some(v) => parse_num("FMU_GATEWAY_SMTP_PORT", &v)?,
        None => match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
    };
    let from = set("FMU_GATEWAY_SMTP_FROM").ok_or_else(|| {
        ConfigError::new(
            "FMU_GATEWAY_SMTP_FROM",
            "",
            "is required with FMU_GATEWAY_SMTP_HOST",
        )
    })?;
    Ok(Some(Smtp {
        host: host.trim().to_string(),
        port,
        tls,
        user: set("FMU_GATEWAY_SMTP_USER"),
        password: set("FMU_GATEWAY_SMTP_PASSWORD").map(Secret::from),
        from,
    }))
}

/// Disk: the per-account upload quota, result retention and the free-space reserve.
fn read_storage(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = env("FMU_GATEWAY_STORAGE_QUOTA_MB") {
        let mb: u64 = parse_num("FMU_GATEWAY_STORAGE_QUOTA_MB", &v)?;
        config.storage_quota_bytes = mb
            .checked_mul(1 << 20)
            .ok_or_else(|| ConfigError::new("FMU_GATEWAY_STORAGE_QUOTA_MB", &v, "is too large"))?;
    }
    if let Some(v) = env("FMU_GATEWAY_RESULT_RETENTION_DAYS") {
        let days: u64 = parse_num("FMU_GATEWAY_RESULT_RETENTION_DAYS", &v)?;
        if !(1..=36_500).contains(&days) {
            return Err(ConfigError::new(
                "FMU_GATEWAY_RESULT_RETENTION_DAYS",
                &v,
                "must be between 1 and 36500",
            ));
        }
        config.result_retention = Duration::from_secs(days * 24 * 3600);
    }
    if let Some(v) = env("FMU_GATEWAY_OBJECT_STORE").filter(|v| !v.is_empty()) {
        config.object_store = crate::objects::Backend::parse(&v, env)
            .map_err(|why| ConfigError::new("FMU_GATEWAY_OBJECT_STORE", &v, &why))?;
    }
    if let Some(v) = env("FMU_GATEWAY_FMU_CACHE_BYTES") {
        config.fmu_cache_bytes = parse_num("FMU_GATEWAY_FMU_CACHE_BYTES", &v)?;
    }
    if let Some(v) = env("FMU_GATEWAY_DISK_RESERVE_MB") {
        let mb: u64 = parse_num("FMU_GATEWAY_DISK_RESERVE_MB", &v)?;
        config.disk_reserve_bytes = mb
            .checked_mul(1 << 20)
            .ok_or_else(|| ConfigError::new("FMU_GATEWAY_DISK_RESERVE_MB", &v, "is too large"))?;
    }
    Ok(())
}

/// Bounds on what one client can ask of the service (issue 10): body sizes, concurrent
/// password hashes, active runs per user, sign-ups.
fn read_request_bounds(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let at_least_one = |name: &'static str| -> Result<Option<u64>, ConfigError> {
        let Some(v) = env(name) else { return Ok(None) };
        let n: u64 = parse_num(name, &v)?;
        if n == 0 {
            return Err(ConfigError::new(name, &v, "must be at least 1"));
        }
        Ok(Some(n))
    };
    let small = |name: &'static str, n: u64| -> Result<u32, ConfigError> {
        u32::try_from(n).map_err(|_| ConfigError::new(name, &n.to_string(), "is too large"))
    };
    if let Some(n) = at_least_one("FMU_GATEWAY_MAX_JSON_BYTES")? {
        config.max_json_bytes = n;
    }
    if let Some(n) = at_least_one("FMU_GATEWAY_HASH_CONCURRENCY")? {
        config.hash_concurrency = small("FMU_GATEWAY_HASH_CONCURRENCY", n)? as usize;
    }
    if let Some(n) = at_least_one("FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER")? {
        config.max_active_runs_per_user = small("FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER", n)?;
    }
    if let Some(n) = at_least_one("FMU_GATEWAY_MAX_SWEEP_CASES")? {
        config.max_sweep_cases = small("FMU_GATEWAY_MAX_SWEEP_CASES", n)?;
    }
    if let Some(n) = at_least_one("FMU_GATEWAY_SIGNUPS_PER_HOUR")? {
        config.signups_per_hour = small("FMU_GATEWAY_SIGNUPS_PER_HOUR", n)?;
    }
    // 0 is allowed here: no sign-up gets free credits.
    if let Some(v) = env("FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY") {
        config.free_grants_per_address_per_day =
            parse_num("FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY", &v)?;
    }
    Ok(())
}

/// How logs are written and which requests the access log records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    /// `FMU_GATEWAY_LOG_FORMAT`: `text` (default) or `json` (one object a line, for shippers).
    pub format: LogFormat,
    /// `FMU_GATEWAY_ACCESS_LOG`: `errors` (default) or `all`.
    pub access_log: AccessLog,
    /// A request that takes longer than this is logged whatever `access_log` says
    /// (`FMU_GATEWAY_SLOW_REQUEST_MS`, default 1000).
    pub slow_request: Duration,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            format: LogFormat::Text,
            access_log: AccessLog::Errors,
            slow_request: Duration::from_secs(1),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which requests the access log records. Server errors (5xx) and slow requests are logged in
/// every mode; the choice is about the rest. There is no sampling mode: the request one needs
/// to find is the rare one a sample drops, and `/metrics` already counts every request by
/// route and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLog {
    /// Server errors at `error`, slow requests at `warn`, client errors (4xx) at `debug`
    /// (a client can cause those at will, so they must not fill the disk), nothing else.
    Errors,
    /// Also every other request, at `info` (debugging; ~300 bytes a request).
    All,
}

impl Logging {
    /// Reads the logging settings alone: `main` needs them to start logging before the rest
    /// of the configuration is read, and [`Config::from_env`] reads them the same way.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut logging = Logging::default();
        if let Some(v) = env("FMU_GATEWAY_LOG_FORMAT") {
            logging.format = match v.trim().to_ascii_lowercase().as_str() {
                "text" | "" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "FMU_GATEWAY_LOG_FORMAT",
                        &v,
                        "expected text or json",
                    ));
                }
            };
        }
        if let Some(v) = env("FMU_GATEWAY_ACCESS_LOG") {
            logging.access_log = match v.trim().to_ascii_lowercase().as_str() {
                "errors" => AccessLog::Errors,
                "all" => AccessLog::All,
                _ => {
                    return Err(ConfigError::new(
                        "FMU_GATEWAY_ACCESS_LOG",
                        &v,
                        "expected errors or all",
                    ));
                }
            };
        }
        if let Some(v) = env("FMU_GATEWAY_SLOW_REQUEST_MS") {
            let ms: u64 = parse_num("FMU_GATEWAY_SLOW_REQUEST_MS", &v)?;
            if ms == 0 {
                return Err(ConfigError::new(
                    "FMU_GATEWAY_SLOW_REQUEST_MS",
                    &v,
                    "must be at least 1",
                ));
            }
            logging.slow_request = Duration::from_millis(ms);
        }
        Ok(logging)
    }
}

/// The worker sandbox's settings.
fn read_sandbox(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = env("FMU_GATEWAY_ALLOW_WEAKER_SANDBOX") {
        config.allow_weaker_sandbox = parse_bool("FMU_GATEWAY_ALLOW_WEAKER_SANDBOX", &v)?;
    }
    if let Some(v) = env("FMU_GATEWAY_SCRATCH_MB") {
        let mb: u64 = parse_num("FMU_GATEWAY_SCRATCH_MB", &v)?;
        if !(1..=1 << 20).contains(&mb) {
            return Err(ConfigError::new(
                "FMU_GATEWAY_SCRATCH_MB",
                &v,
                "must be between 1 and 1048576",
            ));
        }
        config.scratch_bytes = mb << 20;
    }
    if let Some(v) = env("FMU_GATEWAY_WORKER_UID") {
        config.worker_uid = parse_num("FMU_GATEWAY_WORKER_UID", &v)?;
        if config.worker_uid == 0 {
            return Err(ConfigError::new(
                "FMU_GATEWAY_WORKER_UID",
                &v,
                "must not be 0 (root)",
            ));
        }
    }
    if let Some(v) = env("FMU_GATEWAY_SANDBOX_DISABLE") {
        config.sandbox_disabled = crate::sim::sandbox::LayerSet::parse(&v)
            .map_err(|e| ConfigError::new("FMU_GATEWAY_SANDBOX_DISABLE", &v, &e.to_string()))?;
    }
    Ok(())
}

/// Plans and Stripe. A secret key without a webhook secret is refused: customers could pay
/// and never receive their credits.
fn read_billing(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    if let Some(v) = env("FMU_GATEWAY_PLANS") {
        let json = if v.trim_start().starts_with('[') {
            v.clone()
        } else {
            let path = std::path::absolute(v.trim()).unwrap_or_else(|_| v.trim().into());
            std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(
                    "FMU_GATEWAY_PLANS",
                    &v,
                    &format!("cannot read the file {}: {e}", path.display()),
                )
            })?
        };
        let plans = Plans::from_json(config.free_credits, &json)
            .map_err(|e| ConfigError::new("FMU_GATEWAY_PLANS", &v, &e))?;
        config.paid_plans = plans.paid().to_vec();
    }
    let set = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    config.stripe_secret_key = set("STRIPE_SECRET_KEY").map(Secret::from);
    if let Some(key) = &config.stripe_secret_key
        && !(key.starts_with("sk_") || key.starts_with("rk_"))
    {
        return Err(ConfigError::new(
            "STRIPE_SECRET_KEY",
            "(hidden)",
            "expected a secret key starting with sk_ (or a restricted key, rk_)",
        ));
    }
    if let Some(base) = set("STRIPE_API_BASE") {
        config.stripe_api_base = parse_url("STRIPE_API_BASE", &base)?;
    }
    config.stripe_webhook_secrets = set("STRIPE_WEBHOOK_SECRET")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(Secret::from)
                .collect()
        })
        .unwrap_or_default();
    if config.stripe_secret_key.is_some() && config.stripe_webhook_secrets.is_empty() {
        return Err(ConfigError::new(
            "STRIPE_WEBHOOK_SECRET",
            "",
            "must be set when STRIPE_SECRET_KEY is: without it no payment would ever grant credits",
        ));
    }
    Ok(())
}

/// A setting that could not be used, with the variable it came from.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {problem}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    problem: String,
}

impl ConfigError {
    fn new(name: &'static str, value: &str, problem: &str) -> Self {
        ConfigError {
            name,
            value: value.to_string(),
            problem: problem.to_string(),
        }
    }
}

fn parse_num<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, value, "expected a whole number"))
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(name, value, "expected true or false")),
    }
}

fn parse_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        Ok(trimmed.to_string())
    } else {
        Err(ConfigError::new(
            name,
            value,
            "must start with http:// or https://",
        ))
    }
}

/// Browsers refuse `Secure` cookies over plain http, except that a developer on their own
/// machine should not need TLS: only plain-http loopback URLs turn `Secure` off by default.
fn is_plain_http_localhost(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn listen() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn smtp_is_off_unless_a_host_is_set_and_then_needs_a_sender() {
        let c = Config::from_env(listen(), "data".into(), env_of(&[])).unwrap();
        assert!(c.smtp.is_none());
        let err = Config::from_env(
            listen(),
            "data".into(),
            env_of(&[("FMU_GATEWAY_SMTP_HOST", "smtp.example.com")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("FMU_GATEWAY_SMTP_FROM"), "{err}");
        let c = Config::from_env(
            listen(),
            "data".into(),
            env_of(&[
                ("FMU_GATEWAY_SMTP_HOST", "smtp.example.com"),
                ("FMU_GATEWAY_SMTP_FROM", "noreply@example.com"),
                ("FMU_GATEWAY_SMTP_TLS", "TLS"),
                ("FMU_GATEWAY_SMTP_USER", "mailer"),
                ("FMU_GATEWAY_SMTP_PASSWORD", "hunter2"),
            ]),
        )
        .unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!((smtp.tls, smtp.port), (SmtpTls::Tls, 465));
        assert_eq!(smtp.user.as_deref(), Some("mailer"));
        assert_eq!(format!("{:?}", smtp.password), "Some(Secret(redacted))");
        let bad = Config::from_env(
            listen(),
            "data".into(),
            env_of(&[
                ("FMU_GATEWAY_SMTP_HOST", "smtp.example.com"),
                ("FMU_GATEWAY_SMTP_FROM", "noreply@example.com"),
                ("FMU_GATEWAY_SMTP_TLS", "maybe"),
            ]),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn a_relative_data_dir_is_made_absolute_at_once() {
        let c = Config::from_env(listen(), "./data".into(), env_of(&[])).unwrap();
        assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
        assert_eq!(c.data_dir, std::env::current_dir().unwrap().join("data"));
    }

    #[test]
    fn defaults_work_on_plain_http_localhost() {
        let c = Config::from_env(listen(), "data".into(), env_of(&[])).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert!(!c.secure_cookies);
        assert_eq!(c.free_credits.get(), 25);
    }

    #[test]
    fn a_public_https_url_makes_cookies_secure() {
        let env = env_of(&[("FMU_GATEWAY_PUBLIC_URL", "https://fmu.example.com/")]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        assert_eq!(c.public_url, "https://fmu.example.com");
        assert!(c.secure_cookies);
        let env = env_of(&[("FMU_GATEWAY_PUBLIC_URL", "http://fmu.internal")]);
        assert!(
            Config::from_env(listen(), "data".into(), env)
                .unwrap()
                .secure_cookies
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let env = env_of(&[("FMU_GATEWAY_FREE_CREDITS", "lots")]);
        let err = Config::from_env(listen(), "data".into(), env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FMU_GATEWAY_FREE_CREDITS"), "{err}");
        let env = env_of(&[("FMU_GATEWAY_SECURE_COOKIES", "maybe")]);
        assert!(Config::from_env(listen(), "data".into(), env).is_err());
        let env = env_of(&[("FMU_GATEWAY_PUBLIC_URL", "fmu.example.com")]);
        assert!(Config::from_env(listen(), "data".into(), env).is_err());
    }

    #[test]
    fn debug_output_names_no_secret() {
        let env = env_of(&[
            ("STRIPE_SECRET_KEY", "sk_live_TOPSECRET1"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_TOPSECRET2"),
            ("FMU_GATEWAY_ROOT_KEY", "TOPSECRET3"),
        ]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        assert!(shown.contains("Secret(redacted)"), "{shown}");
        // The values are still there for the code that uses them.
        assert_eq!(c.stripe_secret_key.as_deref(), Some("sk_live_TOPSECRET1"));
        assert_eq!(c.root_key_hex.as_deref(), Some("TOPSECRET3"));
    }

    #[test]
    fn request_bounds_have_defaults_and_are_read() {
        let c = Config::from_env(listen(), "data".into(), env_of(&[])).unwrap();
        assert_eq!(c.max_json_bytes, 1 << 20);
        assert_eq!(c.hash_concurrency, 2);
        let env = env_of(&[
            ("FMU_GATEWAY_MAX_JSON_BYTES", "4096"),
            ("FMU_GATEWAY_HASH_CONCURRENCY", "3"),
            ("FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER", "7"),
            ("FMU_GATEWAY_SIGNUPS_PER_HOUR", "9"),
            ("FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY", "0"),
        ]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        assert_eq!(
            (
                c.max_json_bytes,
                c.hash_concurrency,
                c.max_active_runs_per_user,
                c.signups_per_hour,
                c.free_grants_per_address_per_day
            ),
            (4096, 3, 7, 9, 0)
        );
        for name in [
            "FMU_GATEWAY_MAX_JSON_BYTES",
            "FMU_GATEWAY_HASH_CONCURRENCY",
            "FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER",
            "FMU_GATEWAY_SIGNUPS_PER_HOUR",
        ] {
            let err = Config::from_env(listen(), "data".into(), env_of(&[(name, "0")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn stripe_settings_are_read_and_checked() {
        let c = Config::from_env(listen(), "data".into(), env_of(&[])).unwrap();
        assert!(c.stripe_secret_key.is_none());
        assert_eq!(c.stripe_api_base, "https://api.stripe.com");
        let env = env_of(&[
            ("STRIPE_SECRET_KEY", "sk_test_123"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old"),
            ("STRIPE_API_BASE", "http://127.0.0.1:9999/"),
        ]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        assert_eq!(c.stripe_secret_key.as_deref(), Some("sk_test_123"));
        assert_eq!(c.stripe_webhook_secrets, ["whsec_new", "whsec_old"]);
        assert_eq!(c.stripe_api_base, "http://127.0.0.1:9999");
        // A key without a webhook secret would take money and never grant credits.
        let env = env_of(&[("STRIPE_SECRET_KEY", "sk_test_123")]);
        let err = Config::from_env(listen(), "data".into(), env).unwrap_err();
        assert!(err.to_string().contains("STRIPE_WEBHOOK_SECRET"), "{err}");
        // A publishable key by mistake is refused without echoing it.
        let env = env_of(&[
            ("STRIPE_SECRET_KEY", "pk_live_abc"),
            ("STRIPE_WEBHOOK_SECRET", "w"),
        ]);
        let err = Config::from_env(listen(), "data".into(), env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("STRIPE_SECRET_KEY") && !err.contains("pk_live_abc"),
            "{err}"
        );
    }

    #[test]
    fn plans_come_from_inline_json_or_a_file() {
        let json = r#"[{"id":"team","name":"Team","description":"","credits":50,"amount_cents":900,"currency":"usd"}]"#;
        let env = env_of(&[("FMU_GATEWAY_PLANS", json)]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        assert_eq!(c.paid_plans.len(), 1);
        assert_eq!(c.paid_plans[0].id, "team");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plans.json");
        std::fs::write(&file, json).unwrap();
        let path = file.to_str().unwrap().to_string();
        let env = env_of(&[("FMU_GATEWAY_PLANS", path.as_str())]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        assert_eq!(c.paid_plans[0].credits.get(), 50);
        let env = env_of(&[("FMU_GATEWAY_PLANS", "/nonexistent/plans.json")]);
        assert!(Config::from_env(listen(), "data".into(), env).is_err());
        let env = env_of(&[("FMU_GATEWAY_PLANS", "[{\"id\":\"x\"}]")]);
        let err = Config::from_env(listen(), "data".into(), env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FMU_GATEWAY_PLANS"), "{err}");
    }

    #[test]
    fn logging_defaults_to_errors_and_slow_requests_and_refuses_unknown_values() {
        let c = Config::from_env(listen(), "data".into(), env_of(&[])).unwrap();
        assert_eq!(c.logging, Logging::default());
        assert_eq!(c.logging.access_log, AccessLog::Errors);
        let env = env_of(&[
            ("FMU_GATEWAY_LOG_FORMAT", "json"),
            ("FMU_GATEWAY_ACCESS_LOG", "all"),
            ("FMU_GATEWAY_SLOW_REQUEST_MS", "250"),
        ]);
        let c = Config::from_env(listen(), "data".into(), env).unwrap();
        assert_eq!(
            c.logging,
            Logging {
                format: LogFormat::Json,
                access_log: AccessLog::All,
                slow_request: Duration::from_millis(250),
            }
        );
        for (name, value) in [
            ("FMU_GATEWAY_LOG_FORMAT", "xml"),
            ("FMU_GATEWAY_ACCESS_LOG", "some"),
            ("FMU_GATEWAY_SLOW_REQUEST_MS", "0"),
        ] {
            let err = Config::from_env(listen(), "data".into(), env_of(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
