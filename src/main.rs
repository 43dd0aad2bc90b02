//! The `fmu-gateway` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fmu_gateway::cli::CliError;
use fmu_gateway::domain::accounts;
use fmu_gateway::sim::runner::SimError;
use fmu_gateway::{App, AppState, Config, WorkerNode, cli, telemetry};

#[derive(Parser)]
#[command(
    name = "fmu-gateway",
    version,
    about = "Run FMI simulation models over a JSON API and a browser dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once from the command line and matched at once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve the dashboard and the API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "FMU_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory for the database, the root key and uploaded models.
        #[arg(long, env = "FMU_GATEWAY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Serve even if a required layer of the worker sandbox is missing (accepts the
        /// risk; also FMU_GATEWAY_ALLOW_WEAKER_SANDBOX=true).
        #[arg(long)]
        allow_weaker_sandbox: bool,
    },
    /// Run simulations for the servers of a PostgreSQL deployment: lease queued runs, run
    /// them in sandboxed workers, keep their results in the object store (no HTTP).
    WorkerNode {
        /// Directory for the FMU cache and the workers' scratch space.
        #[arg(long, env = "FMU_GATEWAY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Run even if a required layer of the worker sandbox is missing (accepts the risk;
        /// also FMU_GATEWAY_ALLOW_WEAKER_SANDBOX=true).
        #[arg(long)]
        allow_weaker_sandbox: bool,
    },
    /// Operator tasks on the data directory.
    Admin {
        #[arg(
            long,
            env = "FMU_GATEWAY_DATA_DIR",
            default_value = "./data",
            global = true
        )]
        data_dir: PathBuf,
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Use the simulation engine locally on an FMU file.
    Fmu {
        #[command(subcommand)]
        task: FmuTask,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Internal: run one simulation job from stdin in a sandbox (started by the server).
    #[command(hide = true)]
    Worker,
}

#[derive(Subcommand)]
// Parsed once from the command line and matched at once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum FmuTask {
    /// Show the model description: interfaces, default experiment, variables.
    Info {
        fmu: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the FMU as an upload is: the archive, the model description against the
    /// standard's rules, and a smoke test of each interface in the sandbox. Prints the report;
    /// exits 1 when it has errors.
    Validate {
        fmu: PathBuf,
        /// Report errors but exit 0, as a lenient upload accepts them.
        #[arg(long)]
        lenient: bool,
    },
    /// Simulate in a sandboxed worker and write the results: CSV (`time,<variable>,…`) on
    /// standard output, or to `-o` in the format its extension names (.json, .csv, .mat,
    /// .parquet).
    Simulate {
        fmu: PathBuf,
        /// The run's settings: the same request the API and the dashboard take.
        #[command(flatten)]
        run: cli::RunFlags,
        /// Wall-clock limit in seconds.
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
        /// Output file, its format by its extension: .json, .csv, .mat (MATLAB, Dymola's
        /// layout) or .parquet (default: CSV on standard output).
        #[arg(short = 'o', long)]
        output_file: Option<PathBuf>,
        /// A reference to compare the result with (exit status 3 when the check fails).
        #[command(flatten)]
        reference: Box<cli::ReferenceFlags>,
    },
    /// Run a sweep (a grid, a Latin hypercube, a Sobol sequence or cases from a CSV file) in
    /// warm batches over sandboxed workers, and write one line per case with its KPIs:
    /// `index,status,<parameters>,<KPIs>,error`, to standard output or `-o`.
    Sweep {
        fmu: PathBuf,
        /// The settings every case shares (the design's values replace their start values).
        #[command(flatten)]
        run: cli::RunFlags,
        #[command(flatten)]
        sweep: fmu_gateway::cli_sweep::SweepFlags,
        /// Wall-clock limit of each case, in seconds.
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
        /// The CSV file to write (default: standard output).
        #[arg(short = 'o', long)]
        output_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminTask {
    /// Add credits to an account (written to the credit ledger).
    GrantCredits {
        #[arg(long)]
        email: String,
        #[arg(long)]
        credits: i64,
        #[arg(long, default_value = "Granted by an operator")]
        reason: String,
    },
    /// Print a password reset link for an account (this server sends no email): it works
    /// once, for an hour, under FMU_GATEWAY_PUBLIC_URL.
    ResetLink {
        #[arg(long)]
        email: String,
    },
    /// Print the root public key that verifies API keys.
    PublicKey,
    /// Show an account's plan, credits, purchases and billing flag.
    Account {
        #[arg(long)]
        email: String,
    },
    /// Clear an account's billing flag once the refund it records has been dealt with.
    ClearFlag {
        #[arg(long)]
        email: String,
    },
    #[command(flatten)]
    Database(DatabaseTask),
}

/// Admin tasks on the database alone.
#[derive(Subcommand)]
enum DatabaseTask {
    /// Bring the database's schema up to date (the server also does at start) and print its
    /// version: run it once before starting new servers on a shared PostgreSQL.
    Migrate,
    /// Copy the SQLite database to a new file while the service runs (for PostgreSQL, says
    /// what to use instead).
    Backup {
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Give an existing PostgreSQL role what a worker node needs and nothing more (lease,
    /// heartbeat and settle runs); create it first, e.g. `CREATE ROLE fmu_worker LOGIN
    /// PASSWORD '…'`, and give worker nodes its URL.
    GrantWorkerRole {
        /// The role's name.
        #[arg(long)]
        role: String,
    },
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    if let Command::Worker = cli.command {
        // No runtime and no threads: the worker must be single-threaded to sandbox itself.
        return ExitCode::from(fmu_gateway::sim::worker::main() as u8);
    }
    let logging = match fmu_gateway::config::Logging::from_env(&|k| std::env::var(k).ok()) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(logging.format);
    // Blocking work is SQLite (bounded by the pool) and argon2: a few dozen threads are
    // plenty, and each idle thread costs memory (its stack and malloc arena).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(32)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Do not wait for threads still supervising simulations: their runs were settled at
    // shutdown, and their workers die with this process.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Fmu(e)) => fmu_failure(&e),
        Err(Failure::Other(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed: an `fmu` command's own error, or another command's message.
enum Failure {
    Fmu(CliError),
    Other(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Other(message)
    }
}

/// The exit status of `fmu simulate` when the run succeeded but its reference check failed:
/// distinct from 1 (an error) and 2 (a usage error), so a CI pipeline can tell them apart.
const REFERENCE_CHECK_FAILED: u8 = 3;

/// An `fmu` command's failure as the user sees it: the message on stderr (and after a run
/// the model made fail, its log); exit status 2 for a flag value that makes no sense, as for
/// clap's own usage errors, 3 for a failed reference check (the verdict is already printed),
/// 1 for everything else.
fn fmu_failure(e: &CliError) -> ExitCode {
    if let CliError::ReferenceCheckFailed = e {
        return ExitCode::from(REFERENCE_CHECK_FAILED);
    }
    eprintln!("error: {e}");
    if let CliError::Run(SimError::Failed { log, .. }) = e
        && !log.is_empty()
    {
        eprintln!("FMU log:\n{log}");
    }
    match e {
        CliError::StartValue(_)
        | CliError::Timeout
        | CliError::TimeoutTooLong(_)
        | CliError::ToleranceWithoutReference => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve {
            listen,
            data_dir,
            allow_weaker_sandbox,
        } => {
            let mut config = Config::from_env(listen, data_dir, |k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            config.allow_weaker_sandbox |= allow_weaker_sandbox;
            let shutdown = shutdown_signal();
            let app = App::build(config).await.map_err(|e| e.to_string())?;
            tracing::info!(address = %app.addr(), data_dir = %app.state().config.data_dir.display(), "FMU Gateway is listening");
            app.run_until(shutdown).await.map_err(|e| e.to_string())?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::WorkerNode {
            data_dir,
            allow_weaker_sandbox,
        } => {
            let listen = SocketAddr::from(([127, 0, 0, 1], 0));
            let mut config = Config::from_env(listen, data_dir, |k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            config.allow_weaker_sandbox |= allow_weaker_sandbox;
            if std::env::var_os("FMU_GATEWAY_PUBLIC_URL").is_none() {
                return Err(String::from(
                    "set FMU_GATEWAY_PUBLIC_URL to the servers' public URL: the webhooks of \
                     the runs a worker node settles link to them",
                )
                .into());
            }
            let shutdown = shutdown_signal();
            let node = WorkerNode::build(config).await.map_err(|e| e.to_string())?;
            let state = node.state();
            tracing::info!(node = %state.node_id, workers = state.config.workers, "worker node is leasing runs");
            node.run_until(shutdown).await;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Admin { data_dir, task } => {
            let listen = SocketAddr::from(([127, 0, 0, 1], 0));
            let mut config = Config::from_env(listen, data_dir, |k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            let task = match task {
                AdminTask::Database(task) => return database_task(&mut config, task).await,
                other => other,
            };
            let state = AppState::open(config).await.map_err(|e| e.to_string())?;
            match task {
                AdminTask::GrantCredits {
                    email,
                    credits,
                    reason,
                } => {
                    let user = accounts::find_by_email(&state.store, &email)
                        .await
                        .map_err(|e| e.to_string())?;
                    let credits =
                        fmu_gateway::domain::ids::Credits::new(credits).map_err(|_| {
                            "the number of credits to grant must be positive".to_string()
                        })?;
                    let balance = accounts::grant_credits(&state, &user.id, credits, &reason)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!(
                        "granted {credits} credits to {}; balance is now {balance}",
                        user.email
                    );
                }
                AdminTask::ResetLink { email } => {
                    let link = fmu_gateway::domain::password_reset::issue_link(&state, &email)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!("{link}");
                    eprintln!(
                        "Send this link to the account's owner: it sets a new password once,                          within an hour, and logs out every session."
                    );
                }
                AdminTask::PublicKey => println!("{}", state.keys.public_key()),
                AdminTask::Account { email } => {
                    let user = accounts::find_by_email(&state.store, &email)
                        .await
                        .map_err(|e| e.to_string())?;
                    let summary = fmu_gateway::domain::billing::summary(&state, &user.id)
                        .await
                        .map_err(|e| e.to_string())?;
                    print!(
                        "{}",
                        fmu_gateway::domain::billing::describe(&user, &summary)
                    );
                }
                AdminTask::Database(_) => unreachable!("database tasks return above"),
                AdminTask::ClearFlag { email } => {
                    let user = accounts::find_by_email(&state.store, &email)
                        .await
                        .map_err(|e| e.to_string())?;
                    match fmu_gateway::domain::billing::clear_flag(&state.store, &user.id)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        Some(flag) => println!("cleared the flag of {}: {flag}", user.email),
                        None => println!("{} has no billing flag", user.email),
                    }
                }
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", fmu_gateway::api::spec_json());
            Ok(())
        }
        Command::Fmu { task } => fmu(task).await.map_err(Failure::Fmu),
        Command::Worker => Err(String::from("the worker runs without the async runtime").into()),
    }
}

/// The admin tasks on the database alone: they open the store, not the whole service (no
/// library seeding, no workers), so they run beside live servers.
async fn database_task(config: &mut Config, task: DatabaseTask) -> Result<(), Failure> {
    config.resolve_paths().map_err(|e| e.to_string())?;
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
    }
    let location = config.database();
    let store =
        tokio::task::spawn_blocking(move || fmu_gateway::store::Store::connect(&location, 1))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    match task {
        DatabaseTask::Migrate => {
            let (applied, known) = store.schema_version().await.map_err(|e| e.to_string())?;
            println!(
                "the {:?} database is at migration {applied} of {known}",
                store.engine()
            );
        }
        DatabaseTask::Backup { to } => {
            if to.exists() {
                return Err(
                    format!("{} exists; the backup goes to a new file", to.display()).into(),
                );
            }
            store
                .backup_to(to.clone())
                .await
                .map_err(|e| e.to_string())?;
            println!("backed up the database to {}", to.display());
        }
        DatabaseTask::GrantWorkerRole { role } => {
            store
                .grant_worker_role(&role)
                .await
                .map_err(|e| e.to_string())?;
            println!("granted role {role} what a worker node needs");
        }
    }
    Ok(())
}

async fn fmu(task: FmuTask) -> Result<(), CliError> {
    match task {
        FmuTask::Info { fmu, json } => print!("{}", cli::info(&fmu, json)?),
        FmuTask::Validate { fmu, lenient } => println!("{}", cli::validate(&fmu, lenient).await?),
        FmuTask::Simulate {
            fmu,
            run,
            timeout,
            output_file,
            reference,
        } => {
            if !(timeout.is_finite() && timeout > 0.0) {
                return Err(CliError::Timeout);
            }
            let format = cli::output_format(output_file.as_deref())?;
            let args = cli::SimulateArgs {
                fmu,
                final_state: run.final_state.clone(),
                settings: run.settings()?,
                timeout: std::time::Duration::try_from_secs_f64(timeout)
                    .map_err(|_| CliError::TimeoutTooLong(timeout))?,
                reference: reference.request()?,
            };
            let simulated = cli::simulate(args).await?;
            cli::write_result(&simulated.result, format, output_file.as_deref())?;
            // The verdict goes to standard error: standard output may be the results.
            if let Some(check) = simulated.check {
                eprint!("{}", cli::verdict_text(&check));
                if !check.passed {
                    return Err(CliError::ReferenceCheckFailed);
                }
            }
        }
        FmuTask::Sweep {
            fmu,
            run,
            sweep,
            timeout,
            output_file,
        } => {
            if !(timeout.is_finite() && timeout > 0.0) {
                return Err(CliError::Timeout);
            }
            let timeout = std::time::Duration::try_from_secs_f64(timeout)
                .map_err(|_| CliError::TimeoutTooLong(timeout))?;
            let swept = fmu_gateway::cli_sweep::sweep(&fmu, &run, &sweep, timeout).await?;
            let written = match &output_file {
                Some(path) => std::fs::File::create(path)
                    .map_err(csv::Error::from)
                    .and_then(|f| swept.write_csv(std::io::BufWriter::new(f))),
                None => swept.write_csv(std::io::stdout().lock()),
            };
            written.map_err(|e| CliError::WriteOutput {
                path: output_file
                    .clone()
                    .unwrap_or_else(|| "standard output".into()),
                source: std::io::Error::other(e),
            })?;
            eprintln!(
                "{} cases: {} succeeded, {} failed",
                swept.cases.len(),
                swept.cases.len() - swept.failed(),
                swept.failed()
            );
        }
    }
    Ok(())
}

/// Keeps resident memory down (measured with benches/http.rs):
/// - glibc gives each thread that allocates its own malloc arena (up to 8 per core) and keeps
///   their memory; with a pool of blocking threads that multiplies RSS for no gain here, so
///   two arenas;
/// - argon2 allocates 19 MiB per hash. glibc raises its mmap threshold after the first such
///   block is freed, so later ones came from the heap and stayed resident (+19 MiB after the
///   first login). A fixed 1 MiB threshold keeps big blocks in mmap, returned on free.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Resolves on Ctrl-C or SIGTERM (what `fly deploy` and systemd send). The SIGTERM handler
/// is installed here, before the server answers its first request: installed lazily (when
/// the future is first polled) a SIGTERM arriving in between would kill the process unclean.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
