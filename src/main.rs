//! The `fmu-gateway` command: parses the command line and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fmu_gateway::{App, AppState, Config, accounts, telemetry};

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
enum Command {
    /// Serve the dashboard and the API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "FMU_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory for the database, the root key and uploaded models.
        #[arg(long, env = "FMU_GATEWAY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
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
    /// Print the OpenAPI document.
    Openapi,
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
    /// Print the root public key that verifies API keys.
    PublicKey,
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    let json_logs = std::env::var("FMU_GATEWAY_LOG_FORMAT").is_ok_and(|v| v == "json");
    telemetry::init(json_logs);
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
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { listen, data_dir } => {
            let config = Config::from_env(listen, data_dir, |k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            let app = App::build(config).await.map_err(|e| e.to_string())?;
            tracing::info!(address = %app.addr(), data_dir = %app.state().config.data_dir.display(), "FMU Gateway is listening");
            app.run_until(shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Admin { data_dir, task } => {
            let listen = SocketAddr::from(([127, 0, 0, 1], 0));
            let config = Config::from_env(listen, data_dir, |k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            let state = AppState::open(config).map_err(|e| e.to_string())?;
            match task {
                AdminTask::GrantCredits {
                    email,
                    credits,
                    reason,
                } => {
                    let user = accounts::find_by_email(&state, &email)
                        .await
                        .map_err(|e| e.to_string())?;
                    let balance = accounts::grant_credits(&state, &user.id, credits, &reason)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!(
                        "granted {credits} credits to {}; balance is now {balance}",
                        user.email
                    );
                }
                AdminTask::PublicKey => println!("{}", state.keys.public_key()),
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", fmu_gateway::api::spec_json());
            Ok(())
        }
    }
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

/// Resolves on Ctrl-C or SIGTERM (what `fly deploy` and systemd send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
