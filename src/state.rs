//! What every request can reach: configuration, the database, the key issuer, rate limits.

use std::sync::Arc;

use crate::auth::rate_limit::{AuthLimit, KeyedLimit};
use crate::auth::tokens::{KeyIssuer, RootKeyError};
use crate::config::Config;
use crate::domain::ids::RunId;
use crate::sim::runner::{PoolConfig, WorkerPool};
use crate::sim::sandbox::Limits;
use crate::store::{Store, StoreError};

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub keys: KeyIssuer,
    pub auth_limit: AuthLimit,
    /// Sandboxed worker processes that run simulations.
    pub workers: Arc<WorkerPool>,
    /// Run creation per API key (or user, for the dashboard).
    pub run_limit: KeyedLimit<String>,
    /// Plans and Stripe.
    pub billing: crate::domain::billing::Billing,
    /// The start-up checks `/ready` reports (and runs are refused while they fail).
    pub readiness: crate::readiness::Readiness,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// How to cancel each run in progress.
    pub cancels:
        std::sync::Mutex<std::collections::HashMap<RunId, tokio::sync::oneshot::Sender<()>>>,
    /// How far each run in a worker has got.
    pub progress: Arc<crate::domain::runs::progress::Board>,
    /// Password hashes that may run at once.
    pub hashers: crate::auth::password::Hashers,
    /// New accounts over the whole service (one key: `()`), per hour.
    pub signup_limit: KeyedLimit<()>,
    /// Password reset mails per address (normalized email), per hour.
    pub reset_limit: KeyedLimit<String>,
    /// The landing page's example run, once it has run ([`crate::domain::showcase`]).
    pub showcase: crate::domain::showcase::Cache,
    /// The sweeps this process is running: their cancels and their watchers.
    pub sweeps: crate::domain::sweeps::events::Hub,
    /// Wakes the webhook deliverer when a message is recorded or resent.
    pub webhook_wake: tokio::sync::Notify,
    /// Where FMU archives, states, results and trajectories are kept.
    pub objects: crate::objects::Objects,
    /// Extracted FMUs for the workers, filled from `objects`.
    pub fmu_cache: Arc<crate::objects::cache::FmuCache>,
    /// This process among the ones sharing the database (`node_…`): what its leases on runs
    /// and sweeps name.
    pub node_id: String,
    /// Wakes this process's queue lanes when it queued a run itself.
    pub queue_wake: tokio::sync::Notify,
}

pub type State = Arc<AppState>;

/// What a process is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `serve`: the API, the dashboard, and workers of its own.
    Server,
    /// `worker-node`: only workers, that lease runs from the database.
    Worker,
}

/// Reset mails one address may get per hour: enough to retry, too few to flood a mailbox.
pub const RESET_MAILS_PER_HOUR: u32 = 3;

/// Why the service could not start; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    RootKey(#[from] RootKeyError),
    #[error("cannot open the object store or the FMU cache: {0}")]
    Objects(#[source] std::io::Error),
    #[error("cannot install the built-in FMU library: {0}")]
    Library(#[source] crate::domain::fmus::RegistryError),
    #[error("cannot recover the runs interrupted by the last stop: {0}")]
    Recovery(#[source] StoreError),
    #[error("the workers do not fit in this machine's memory: {0}")]
    Memory(#[from] crate::machine::MemoryTooSmall),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error(
        "a worker node leases runs from the PostgreSQL database the servers queue them in: set \
         FMU_GATEWAY_DATABASE_URL (with SQLite, `serve` runs its own workers)"
    )]
    NodeWithoutQueue,
    #[error("the simulation self-test failed: {0}")]
    SelfTest(String),
    /// A required layer of the worker sandbox is missing (or the check failed).
    #[error("{0}")]
    Sandbox(String),
}

impl AppState {
    /// Creates the data directory, opens (and migrates) the database, loads the root key,
    /// opens the object store and installs the built-in library into it.
    pub async fn open(config: Config) -> Result<State, StartError> {
        Self::open_as(config, Role::Server).await
    }

    /// Opens what a process of this `role` needs: a worker node neither installs the
    /// library nor reads the deployment's root key (it mints and checks no keys).
    pub async fn open_as(mut config: Config, role: Role) -> Result<State, StartError> {
        config
            .resolve_paths()
            .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
        let shown = config.data_dir.display().to_string();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::DataDir(shown, e))?;
        let store = match (role, config.database()) {
            (Role::Worker, crate::store::Location::Postgres(url)) => {
                Store::attach_postgres(&url, config.db_pool_size)?
            }
            (_, location) => Store::connect(&location, config.db_pool_size)?,
        };
        let keys = match (role, store.engine(), config.root_key_hex.as_deref()) {
            (Role::Worker, _, _) => KeyIssuer::ephemeral(),
            // Every server of a PostgreSQL deployment must check the others' keys: without
            // FMU_GATEWAY_ROOT_KEY, the first one stores a root key for all of them.
            (Role::Server, crate::store::Engine::Postgres, None) => {
                let hex = store
                    .shared_secret("root_key", KeyIssuer::generate_hex())
                    .await?;
                KeyIssuer::load_or_create(&config.data_dir, Some(&hex))?
            }
            (Role::Server, _, env) => KeyIssuer::load_or_create(&config.data_dir, env)?,
        };
        let auth_limit = AuthLimit::per_minute(config.auth_rate_per_minute);
        let objects = crate::objects::Objects::open(&config.object_store, &config.data_dir)
            .map_err(StartError::Objects)?;
        let fmu_cache = crate::objects::cache::FmuCache::open(
            config.data_dir.join("cache").join("fmus"),
            config.fmu_cache_bytes,
        )
        .map_err(StartError::Objects)?;
        let library = match role {
            Role::Server => crate::domain::fmus::seed_library(&store, &objects, &config.data_dir)
                .await
                .map_err(StartError::Library)?,
            Role::Worker => 0,
        };
        if library > 0 {
            tracing::info!(models = library, "installed the built-in FMU library");
        }
        let exe = match &config.worker_exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()
                .map_err(|e| StartError::DataDir("the program's own path".into(), e))?,
        };
        let workers = WorkerPool::new(PoolConfig {
            exe,
            scratch_root: config.data_dir.join("scratch"),
            workers: config.workers,
            limits: Limits {
                address_space_bytes: config.worker_memory_bytes,
                scratch_bytes: config.scratch_bytes,
                worker_uid: config.worker_uid,
                disabled: config.sandbox_disabled,
                ..Limits::default()
            },
            log_limit: 64 * 1024,
        });
        let run_limit = KeyedLimit::per_minute(config.runs_per_minute);
        let billing = crate::domain::billing::Billing::from_config(&config);
        let hash_concurrency = config.hash_concurrency;
        let signups_per_hour = config.signups_per_hour;
        Ok(Arc::new(AppState {
            billing,
            config,
            store,
            keys,
            auth_limit,
            workers,
            run_limit,
            cancels: Default::default(),
            progress: Default::default(),
            metrics: Default::default(),
            readiness: Default::default(),
            hashers: crate::auth::password::Hashers::new(hash_concurrency),
            signup_limit: KeyedLimit::per_hour(signups_per_hour),
            showcase: Default::default(),
            sweeps: Default::default(),
            reset_limit: KeyedLimit::per_hour(RESET_MAILS_PER_HOUR),
            webhook_wake: Default::default(),
            objects,
            fmu_cache,
            node_id: format!("node_{:016x}", rand::random::<u64>()),
            queue_wake: Default::default(),
        }))
    }
}
