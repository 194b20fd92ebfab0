//! The `ai-service` binary: parses arguments, loads the config, sets up logging (and trace
//! export, when configured) and runs the library's [`Gateway`]. Everything else lives in the
//! library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use ai_service::{
    Config, Gateway, config::ConfigError, healthcheck, shutdown, telemetry, telemetry::TraceExport,
};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: a call allocates and frees a few hundred small blocks
/// (request, JSON, headers, futures), and glibc's malloc/free were about 15% of the
/// instructions of a unary call (docs/benchmarks.md, issue 21). Built without transparent huge
/// pages (`no_thp`): with them its arenas took 2 MiB pages, and the idle RSS went from 18 to
/// 31 MiB. It costs some memory still (about 2 MiB idle, 11 KiB per open stream): the
/// `mimalloc` feature (on by default) is the switch. The library leaves the choice of allocator
/// to whoever embeds it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A gRPC-native gateway in front of the LLM providers.
#[derive(Debug, Parser)]
#[command(name = "ai-service", version, about, long_about = None)]
struct Cli {
    /// Path of the YAML config file. Without one the defaults apply; `AI_SERVICE__…`
    /// variables override either (e.g. AI_SERVICE__SERVER__LISTEN=0.0.0.0:8080).
    #[arg(long, short, global = true, env = "AI_SERVICE_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the gateway (the default).
    Serve,
    /// Validate a config file (and the environment overrides) and exit.
    CheckConfig {
        /// The file to check; defaults to --config.
        file: Option<PathBuf>,
    },
    /// Generate a new client key; prints the key once and the line to add under `auth.keys`.
    Keygen {
        /// The key's id, as audit records show it.
        #[arg(long)]
        id: String,
        /// Who holds it.
        #[arg(long)]
        name: Option<String>,
    },
    /// Back up to, list, restore from or verify the `backup:` storage.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Probe a running gateway with the gRPC health protocol; exits 0 when SERVING.
    Healthcheck {
        /// Address of the gRPC port.
        #[arg(default_value = "127.0.0.1:8080")]
        addr: String,
        /// The service to check; the empty default is the whole server.
        #[arg(long, default_value = "")]
        service: String,
        /// Give up after this long.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// One backup now: config and keys snapshots, closed audit segments, retention.
    Run,
    /// List the stored objects of every replica.
    List,
    /// Write a replica's config, keys and audit segments into DIR.
    Restore {
        /// The directory to write into.
        #[arg(long)]
        to: PathBuf,
        /// The backup as it stood at this time (RFC 3339); the latest by default.
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        at: Option<std::time::SystemTime>,
        /// The replica to restore; this one's (`backup.replica`) by default.
        #[arg(long)]
        replica: Option<String>,
    },
    /// Check every stored object against its checksum; exits 1 naming each bad one.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig { file } => match load(file.or(cli.config)) {
            Ok(config) => {
                let routes: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
                println!(
                    "config ok: {} provider(s), routes: {}",
                    config.providers.len(),
                    routes.join(", ")
                );
                print_vault_references(&config);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Keygen { id, name } => match ai_service::auth::generate_key() {
            Ok((key, hash)) => {
                println!("key (give it to the client; it is not stored anywhere): {key}");
                println!("add under auth.keys:");
                let name = name.map(|n| format!(", name: {n:?}")).unwrap_or_default();
                println!("  - {{id: {id:?}{name}, sha256: {hash}}}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ai-service keygen: no randomness available: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Backup { action } => backup(cli.config, action),
        Command::Healthcheck { addr, service, timeout } => match runtime() {
            Ok(rt) => match rt.block_on(healthcheck::probe(&addr, &service, timeout)) {
                Ok(()) => {
                    println!("SERVING");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ai-service healthcheck: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
    }
}

fn load(path: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(path.as_deref(), std::env::vars()).map_err(|e: ConfigError| {
        eprintln!("ai-service: {e}");
        ExitCode::from(ConfigError::EXIT_CODE as u8)
    })
}

/// `check-config` lists the Vault references it checked the shape of; it does not contact
/// Vault (so it runs offline, e.g. in CI), and says so.
fn print_vault_references(config: &Config) {
    let refs = ai_service::vault::references(config);
    if let (Some(vault), false) = (&config.vault, refs.is_empty()) {
        println!("vault references ({}, not contacted by check-config):", vault.address);
        for reference in refs {
            println!("  {}: {reference}", reference.at);
        }
    }
}

/// Fetches the config's Vault secrets before anything binds; a failure exits with
/// [`ai_service::vault::EXIT_CODE`] and a message naming the reference, never a value.
fn resolve_secrets(rt: &tokio::runtime::Runtime, config: &mut Config) -> Result<(), ExitCode> {
    rt.block_on(ai_service::vault::resolve(config)).map_err(|e| {
        eprintln!("ai-service: {e}");
        ExitCode::from(ai_service::vault::EXIT_CODE as u8)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("ai-service: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

/// On every SIGHUP: re-reads the config file (its providers and routes apply at once; a bad
/// file keeps the config in force) and the key files.
async fn reload_on_sighup(gateway: Gateway, path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match Config::load(path.as_deref(), std::env::vars()) {
                Ok(mut config) => match gateway.resolve_secrets(&mut config).await {
                    Ok(()) => gateway.reload(&config),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: the config's Vault secrets cannot be read; keeping the config in force")
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the config does not load; keeping the one in force")
                }
            }
            let rotated = gateway.reload_keys();
            let store_ok = gateway.refresh_secrets().await;
            tracing::info!(
                rotated,
                store_ok,
                "SIGHUP: config, key files and Vault secrets re-read"
            );
        }
    }
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let mut config = match load(path.clone()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if let Err(code) = resolve_secrets(&rt, &mut config) {
        return code;
    }
    // Trace export (only with `tracing.otlp`) runs on the runtime, and the subscriber feeds it.
    let export = match rt.block_on(async { TraceExport::start(&config.tracing) }) {
        Ok(export) => export,
        Err(e) => {
            eprintln!("ai-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Held to the end: dropping it writes the log lines still waiting.
    let _logs = telemetry::init(&config.log, export.as_ref());
    let result = rt.block_on(async move {
        let gateway = Gateway::new(config).await?;
        let sighup = tokio::spawn(reload_on_sighup(gateway.clone(), path));
        let result = gateway
            .run(async {
                if let Err(e) = shutdown::signal().await {
                    tracing::error!(error = %e, "cannot listen for shutdown signals; stopping");
                }
            })
            .await;
        sighup.abort();
        // The drained calls' spans are still queued: send them, within the export timeout.
        if let Some(export) = export {
            export.shutdown().await;
        }
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ai-service stopped with an error");
            eprintln!("ai-service: {e}");
            ExitCode::FAILURE
        }
    }
}

fn backup(path: Option<PathBuf>, action: BackupAction) -> ExitCode {
    use ai_service::backup::{Store, restore, task};
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(backup) = config.backup else {
        eprintln!("ai-service backup: backup is off (set backup.enabled and backup.storage)");
        return ExitCode::from(ConfigError::EXIT_CODE as u8);
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = rt.block_on(async {
        let store = Store::new(&backup)?;
        match action {
            BackupAction::Run => {
                let report = task::run_once(&store, &backup, std::time::SystemTime::now()).await?;
                println!(
                    "backup of {}: {} snapshot(s), {} audit segment(s) uploaded, {} old object(s) removed",
                    backup.replica, report.snapshots, report.segments, report.removed
                );
            }
            BackupAction::List => {
                for object in restore::list(&store, None).await? {
                    let time = humantime::format_rfc3339_seconds(object.time());
                    println!("{}\t{}\t{time}", object.key, object.size);
                }
            }
            BackupAction::Restore { to, at, replica } => {
                let replica = replica.unwrap_or_else(|| backup.replica.clone());
                let report = restore::restore(&store, &replica, &to, at).await?;
                println!(
                    "restored {replica} into {}: config {}, keys {}, {} audit segment(s)",
                    to.display(),
                    if report.config.is_some() { "yes" } else { "none" },
                    if report.keys.is_some() { "yes" } else { "none" },
                    report.segments.len()
                );
            }
            BackupAction::Verify => {
                let report = restore::verify(&store, None).await?;
                for bad in &report.corrupted {
                    eprintln!("corrupted: {bad}");
                }
                println!("{} object(s) checked, {} corrupted", report.checked, report.corrupted.len());
                if !report.corrupted.is_empty() {
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Ok::<_, ai_service::backup::BackupError>(ExitCode::SUCCESS)
    });
    outcome.unwrap_or_else(|e| {
        eprintln!("ai-service backup: {e}");
        ExitCode::FAILURE
    })
}
