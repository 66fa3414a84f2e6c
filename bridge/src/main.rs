//! `ocpp-ocpi-bridge`: the command line. Parses arguments, loads the configuration, sets up
//! logging and metrics, and runs the daemon or a tool subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bridge::config::{self, LogFormat};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// OCPP 1.6 / 2.0.1 station server and OCPI 2.2.1 CPO endpoint in one daemon.
#[derive(Debug, Parser)]
#[command(name = "ocpp-ocpi-bridge", version, about)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default configuration is used.
    #[arg(long, global = true, env = "BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format; overrides `[log] format`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Once ready, write the bound addresses as JSON to this file (for tests and scripts).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate a configuration file and exit (non-zero with the bad key on error).
    CheckConfig,
    /// Write the whole state of a stopped daemon as JSON lines to stdout.
    Export {
        /// The state directory (defaults to `[state] path` of the configuration).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            println!(
                "configuration OK: {} location(s), {} station(s), {} tariff(s)",
                settings.locations.len(),
                settings.stations.len(),
                settings.tariff_list().map(|t| t.len()).unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Command::Export { data } => {
            let path = data.unwrap_or_else(|| settings.state.path.clone());
            match export(path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("export failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run => {
            let format = cli.log_format.unwrap_or(settings.log.format);
            bridge::telemetry::init_logging(format, &settings.log.level);
            match run(settings, cli.ready_file) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("fatal: {e:#}");
                    eprintln!("fatal: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn export(path: PathBuf) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!("no state directory at {}", path.display());
    }
    let store = state::Store::open(&state::Settings {
        path: path.clone(),
        cache_bytes: 16 << 20,
    })
    .with_context(|| {
        format!(
            "cannot open {} (is the daemon still running?)",
            path.display()
        )
    })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = store.export(&mut out)?;
    eprintln!("exported {n} records");
    Ok(())
}

fn run(settings: config::Settings, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let metrics = bridge::telemetry::init_metrics();
        let shutdown = CancellationToken::new();
        bridge::supervisor::cancel_on_signals(shutdown.clone());
        bridge::run(settings, metrics, shutdown, move |addrs| {
            if let Some(path) = ready_file
                && let Err(e) = write_ready_file(&path, addrs)
            {
                tracing::error!(error = %e, path = %path.display(), "cannot write the ready file");
            }
        })
        .await
    })
}

fn write_ready_file(path: &std::path::Path, addrs: &bridge::Addresses) -> std::io::Result<()> {
    let body = serde_json::json!({
        "ocpp": addrs.ocpp.to_string(),
        "ocpi": addrs.ocpi.to_string(),
        "admin": addrs.admin.to_string(),
        "pid": std::process::id(),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string())?;
    std::fs::rename(tmp, path)
}
