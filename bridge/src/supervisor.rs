//! Signals and systemd: SIGTERM/SIGINT start a graceful shutdown, SIGHUP reloads the TLS
//! certificates; sd-notify tells systemd
//! READY=1 once everything is bound, pings its watchdog while the daemon is healthy, and says
//! STOPPING=1 when shutdown begins. All sd-notify calls are no-ops outside systemd.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
            _ = token.cancelled() => return,
        }
        token.cancel();
    });
}

/// Calls `reload` on every SIGHUP until `token` is cancelled. (Listening also keeps SIGHUP
/// from terminating the process, its default action.)
pub fn on_sighup(token: CancellationToken, reload: impl Fn() + Send + 'static) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP received: reloading TLS certificates");
                    reload();
                }
                () = token.cancelled() => return,
            }
        }
    });
}

/// Tells systemd the daemon is ready.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
}

/// Tells systemd the daemon is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Pings the systemd watchdog at half its interval until `token` is cancelled, as long as
/// `healthy()` says so (a wedged store or runtime then lets systemd restart the daemon).
pub fn spawn_watchdog(token: CancellationToken, healthy: impl Fn() -> bool + Send + 'static) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if healthy() {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                }
                _ = token.cancelled() => return,
            }
        }
    });
}
