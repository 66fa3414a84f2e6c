//! Bounded polling.
//!
//! Tests observe asynchronous effects (a status reaching the admin API, a process exiting) only
//! through [`eventually`], which gives up after a deadline and reports the last observation.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Default deadline for "the daemon should have done this by now".
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// Poll `probe` every 50 ms until it returns `Ok(value)` or `deadline` passes.
///
/// `probe` returns `Err(observation)` while the condition does not hold; on timeout this panics
/// with `what` and the last observation, so a failing test says what it saw.
pub async fn eventually<T, E, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => {
                if start.elapsed() >= deadline {
                    panic!(
                        "timed out after {deadline:?} waiting for {what}; last observation: {last:#?}"
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
