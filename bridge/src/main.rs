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
    /// Write the whole state of a stopped daemon as JSON lines to stdout (peer tokens and
    /// passwords masked).
    Export {
        /// The state directory (defaults to `[state] path` of the configuration).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Print peer tokens and passwords in clear (for a backup that can be restored).
        #[arg(long)]
        with_secrets: bool,
    },
    /// Health, connected stations and OCPI peer queues of the running daemon.
    Status(AdminArgs),
    /// Stations and connector statuses of the running daemon.
    Stations(AdminArgs),
    /// OCPI sessions of the running daemon.
    Sessions(AdminArgs),
    /// OCPI peers: registration, version, endpoints; issue a token A, rotate or unregister.
    Peers {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        action: Option<PeersAction>,
    },
    /// CDRs of the running daemon; held CDRs; release, credit and re-issue.
    Cdrs {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        action: Option<CdrsAction>,
    },
    /// The push outbox: queues, parked pushes; retry or drop a parked push.
    Outbox {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
}

/// How to reach the running daemon's admin API (before or after a subcommand's own arguments).
#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// Admin API base URL (default: from `[admin] listen` of the configuration).
    #[arg(long, env = "BRIDGE_ADMIN_URL", global = true)]
    admin_url: Option<String>,
    /// Admin bearer token (default: `[admin] token` of the configuration).
    #[arg(long, env = "BRIDGE_ADMIN_TOKEN", global = true)]
    admin_token: Option<String>,
    /// Print the admin API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum PeersAction {
    /// Issue a fresh single-use token A for the next peer and print it (through the running
    /// daemon's admin API, or straight into the store of a stopped daemon).
    #[command(name = "token-a")]
    TokenA {
        /// The state directory of a stopped daemon (defaults to `[state] path`); used only when
        /// no daemon answers on the admin API.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Rotate a peer's credentials tokens (credentials PUT) and refresh its endpoints.
    Rotate {
        /// Peer id (as listed by `peers`).
        peer: String,
    },
    /// Unregister a peer: DELETE our credentials at the peer, then forget it.
    Unregister {
        /// Peer id (as listed by `peers`).
        peer: String,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxAction {
    /// Put a parked push back into its peer's queue.
    Retry {
        /// Peer id.
        peer: String,
        /// Entry number (`#seq` in the listing).
        seq: u64,
    },
    /// Drop a parked push for good.
    Drop {
        /// Peer id.
        peer: String,
        /// Entry number.
        seq: u64,
        /// Why (logged).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum CdrsAction {
    /// CDRs held because their price could not be computed (never sent with cost 0).
    Held,
    /// Price a held CDR with the current tariffs and, when that works, send it.
    Reprice {
        /// CDR id.
        id: String,
    },
    /// Send a credit CDR cancelling a CDR, plus a new CDR under a new id.
    Credit {
        /// CDR id.
        id: String,
        /// Price the new CDR with the current tariffs (default: same content as the original).
        #[arg(long)]
        reprice: bool,
    },
}

fn main() -> ExitCode {
    // reqwest is built without a bundled TLS provider: install ring once, before any client
    // (OCPI pushes, the admin CLI) is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref())
        .and_then(|s| bridge::catalog::validate_settings(&s).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            let tls = match bridge::tls::check_files(&settings, chrono::Utc::now()) {
                Ok(lines) => lines,
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    return ExitCode::from(2);
                }
            };
            for line in tls {
                println!("{line}");
            }
            println!(
                "configuration OK: {} location(s), {} station(s), {} tariff(s)",
                settings.locations.len(),
                settings.stations.len(),
                settings.tariff_list().map(|t| t.len()).unwrap_or(0)
            );
            for note in settings.tax_included_notes() {
                println!("{note}");
            }
            ExitCode::SUCCESS
        }
        Command::Export { data, with_secrets } => {
            let path = data.unwrap_or_else(|| settings.state.path.clone());
            match export(path, with_secrets) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("export failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status(a) => admin_command(&settings, a, "/healthz", bridge::cli::render_status),
        Command::Stations(a) => admin_command(
            &settings,
            a,
            "/admin/stations",
            bridge::cli::render_stations,
        ),
        Command::Sessions(a) => admin_command(
            &settings,
            a,
            "/admin/sessions",
            bridge::cli::render_sessions,
        ),
        Command::Peers {
            admin,
            action: None,
        } => admin_command(&settings, admin, "/admin/peers", bridge::cli::render_peers),
        Command::Peers {
            admin,
            action: Some(PeersAction::TokenA { data }),
        } => token_a(&settings, &admin, data),
        Command::Peers {
            admin,
            action: Some(action @ (PeersAction::Rotate { .. } | PeersAction::Unregister { .. })),
        } => {
            let (path, render): (String, fn(&serde_json::Value) -> String) = match action {
                PeersAction::Rotate { peer } => (
                    format!("/admin/peers/{}/rotate", path_segment(&peer)),
                    bridge::cli::render_rotated,
                ),
                PeersAction::Unregister { peer } => (
                    format!("/admin/peers/{}/unregister", path_segment(&peer)),
                    bridge::cli::render_unregistered,
                ),
                PeersAction::TokenA { .. } => unreachable!("matched above"),
            };
            admin_call(
                &settings,
                &admin,
                move |c| async move { c.post(&path, &serde_json::json!({})).await },
                render,
            )
        }
        Command::Cdrs {
            admin,
            action: None,
        } => admin_command(&settings, admin, "/admin/cdrs", bridge::cli::render_cdrs),
        Command::Cdrs {
            admin,
            action: Some(CdrsAction::Held),
        } => admin_command(
            &settings,
            admin,
            "/admin/cdrs/held",
            bridge::cli::render_held_cdrs,
        ),
        Command::Cdrs {
            admin,
            action: Some(action),
        } => {
            let (path, body) = match action {
                CdrsAction::Reprice { id } => (
                    format!("/admin/cdrs/{}/reprice", path_segment(&id)),
                    serde_json::json!({}),
                ),
                CdrsAction::Credit { id, reprice } => (
                    format!("/admin/cdrs/{}/credit", path_segment(&id)),
                    serde_json::json!({ "reprice": reprice }),
                ),
                CdrsAction::Held => unreachable!("handled above"),
            };
            admin_call(
                &settings,
                &admin,
                move |c| async move { c.post(&path, &body).await },
                bridge::cli::render_correction,
            )
        }
        Command::Outbox {
            admin,
            action: None,
        } => admin_command(
            &settings,
            admin,
            "/admin/outbox",
            bridge::cli::render_outbox,
        ),
        Command::Outbox {
            admin,
            action: Some(action),
        } => {
            let (path, body) = match action {
                OutboxAction::Retry { peer, seq } => (
                    format!("/admin/outbox/{peer}/{seq}/retry"),
                    serde_json::json!({}),
                ),
                OutboxAction::Drop { peer, seq, reason } => (
                    format!("/admin/outbox/{peer}/{seq}/drop"),
                    serde_json::json!({ "reason": reason }),
                ),
            };
            admin_call(
                &settings,
                &admin,
                move |c| async move { c.post(&path, &body).await },
                |v| format!("{v}\n"),
            )
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

fn admin_client(
    settings: &config::Settings,
    args: &AdminArgs,
) -> anyhow::Result<bridge::cli::AdminClient> {
    use secrecy::ExposeSecret;
    let base = args
        .admin_url
        .clone()
        .unwrap_or_else(|| bridge::cli::AdminClient::base_for(settings.admin.listen));
    let token = args.admin_token.clone().or_else(|| {
        settings
            .admin
            .token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    });
    bridge::cli::AdminClient::new(base, token)
}

fn admin_call<F, Fut>(
    settings: &config::Settings,
    args: &AdminArgs,
    call: F,
    render: impl Fn(&serde_json::Value) -> String,
) -> ExitCode
where
    F: FnOnce(bridge::cli::AdminClient) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u16, serde_json::Value)>>,
{
    let result = admin_client(settings, args).and_then(|client| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(call(client))
    });
    match result {
        Ok((status, body)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else {
                print!("{}", render(&body));
            }
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                eprintln!("admin API answered HTTP {status}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn admin_command(
    settings: &config::Settings,
    args: AdminArgs,
    path: &'static str,
    render: fn(&serde_json::Value) -> String,
) -> ExitCode {
    admin_call(
        settings,
        &args,
        move |c| async move { c.get(path).await },
        render,
    )
}

/// A peer id as one URL path segment (ids are `host:port` or `{CC}{PID}`, maybe with `#n`).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `peers token-a`: through the running daemon's admin API; when no daemon answers there,
/// straight into the store (`--data`, else `[state] path`) of the stopped daemon.
fn token_a(settings: &config::Settings, args: &AdminArgs, data: Option<PathBuf>) -> ExitCode {
    let result = admin_client(settings, args).and_then(|client| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(client.post_if_running("/admin/peers/token-a", &serde_json::json!({})))
    });
    let body = match result {
        Ok(Some((status, body))) if (200..300).contains(&status) => body,
        Ok(Some((status, body))) => {
            eprintln!("admin API answered HTTP {status}: {body}");
            return ExitCode::FAILURE;
        }
        Ok(None) => {
            let path = data.unwrap_or_else(|| settings.state.path.clone());
            match issue_token_a_offline(&path) {
                Ok(token) => serde_json::json!({
                    "token_a": token,
                    "versions_url": format!(
                        "{}/ocpi/versions",
                        settings.ocpi.public_url.trim_end_matches('/')
                    ),
                }),
                Err(e) => {
                    eprintln!("issuing a token A failed: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print!("{}", bridge::cli::render_token_a(&body));
        eprintln!(
            "Single use: give it to the next peer with the versions URL {}",
            body["versions_url"].as_str().unwrap_or("-")
        );
    }
    ExitCode::SUCCESS
}

fn issue_token_a_offline(path: &std::path::Path) -> anyhow::Result<String> {
    if !path.exists() {
        anyhow::bail!(
            "no daemon answers on the admin API and there is no state directory at {}",
            path.display()
        );
    }
    let store = state::Store::open(&state::Settings {
        path: path.to_path_buf(),
        cache_bytes: 16 << 20,
    })
    .with_context(|| {
        format!(
            "cannot open {} (no daemon answers on the admin API; is it still running?)",
            path.display()
        )
    })?;
    let token = bridge::peers::issue_token_a(&store)?;
    store.flush_blocking()?;
    Ok(token)
}

fn export(path: PathBuf, with_secrets: bool) -> anyhow::Result<()> {
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
    let n = store.export(&mut out, with_secrets)?;
    eprintln!("exported {n} records");
    Ok(())
}

fn run(settings: config::Settings, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
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
        "ocpp_tls": addrs.ocpp_tls.map(|a| a.to_string()),
        "ocpi": addrs.ocpi.to_string(),
        "admin": addrs.admin.to_string(),
        "pid": std::process::id(),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string())?;
    std::fs::rename(tmp, path)
}
