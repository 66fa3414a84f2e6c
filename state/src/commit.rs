//! Group commit: the updates of many callers applied in one sled transaction, then one flush,
//! on a dedicated writer thread ([`Store::commit`]).
//!
//! Why: every sled transaction seals the log's IO buffer twice (sled's `pin_log` rolls it
//! before and after writing its batch manifest), and each seal is a `pwrite` plus a
//! `sync_file_range` on sled's IO threads. One transaction per station message was two log
//! writes per message, run on a tokio worker; a store-only measurement went from ~8,600 to
//! ~21,000 messages/s with batching (1,000 concurrent callers). The writer takes whatever is queued when it is free (up to [`MAX_BATCH`]), runs the
//! closures in arrival order inside one transaction (each sees the writes of those before it,
//! exactly as if they had run one after the other), flushes once and answers everyone. A
//! closure that aborts is taken out and answered with its error (it wrote nothing: its
//! transaction was rolled back); the others run again without it (after a few aborts in one
//! batch, one transaction each, so that failures cannot make a batch quadratic).

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak, mpsc};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::{Error, Inner, TxError, Txn};

/// Most closures in one sled transaction: bounds the work redone when one of them aborts.
pub(crate) const MAX_BATCH: usize = 256;

/// Aborts in one batch after which its remaining updates run one transaction each.
const MAX_ABORTS: usize = 4;

/// One caller's update, type-erased for the writer's queue.
pub(crate) trait Job: Send {
    /// Runs the closure inside the batch's transaction, keeping its result.
    fn run(&self, txn: &Txn<'_>) -> Result<(), TxError>;
    /// Answers the caller: the kept result once `outcome` is Ok, else `outcome`'s error.
    fn finish(self: Box<Self>, outcome: Result<(), Error>);
}

struct Pending<F, R> {
    f: F,
    out: RefCell<Option<R>>,
    reply: tokio::sync::oneshot::Sender<Result<R, Error>>,
}

impl<F, R> Job for Pending<F, R>
where
    F: Fn(&Txn<'_>) -> Result<R, TxError> + Send,
    R: Send,
{
    fn run(&self, txn: &Txn<'_>) -> Result<(), TxError> {
        let r = (self.f)(txn)?;
        *self.out.borrow_mut() = Some(r);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), Error>) {
        let Pending { out, reply, .. } = *self;
        let result = outcome.and_then(|()| {
            out.into_inner()
                .ok_or_else(|| Error::Rejected("update did not run".into()))
        });
        // The caller may have gone (its connection closed); the write stands either way.
        let _ = reply.send(result);
    }
}

/// Wraps a caller's closure and the channel its answer goes back on.
pub(crate) fn job<F, R>(
    f: F,
) -> (
    Box<dyn Job>,
    tokio::sync::oneshot::Receiver<Result<R, Error>>,
)
where
    F: Fn(&Txn<'_>) -> Result<R, TxError> + Send + 'static,
    R: Send + 'static,
{
    let (reply, rx) = tokio::sync::oneshot::channel();
    let job = Pending {
        f,
        out: RefCell::new(None),
        reply,
    };
    (Box::new(job), rx)
}

/// Starts the writer thread. It holds the store weakly, so dropping the last [`crate::Store`]
/// closes the queue and ends the thread without keeping the database open.
pub(crate) fn spawn(rx: mpsc::Receiver<Box<dyn Job>>, store: Weak<Inner>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("state-commit".into())
        .spawn(move || {
            // No waiting for more work: under load the queue fills while the previous batch is
            // flushed, and a gathering window measured no faster (closed-loop stations only
            // waited longer).
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let Some(inner) = store.upgrade() else {
                    let gone = Error::Rejected("the store is closed".into());
                    batch.into_iter().for_each(|j| j.finish(Err(gone.clone())));
                    return;
                };
                let committed = write_batch(&inner, batch);
                if committed.is_empty() {
                    continue;
                }
                let flushed = inner.db.flush().map(|_| ()).map_err(Error::Sled);
                inner.flushes.fetch_add(1, Ordering::Relaxed);
                inner
                    .batched
                    .fetch_add(committed.len() as u64, Ordering::Relaxed);
                for job in committed {
                    job.finish(flushed.clone());
                }
            }
        })
        .map(|_| ())
}

/// Applies one batch in one sled transaction. Answers the updates that failed; returns the
/// committed ones, to be answered once flushed.
pub(crate) fn write_batch(inner: &Arc<Inner>, mut batch: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
    let trees: &[sled::Tree] = &inner.trees;
    let mut aborts = 0;
    while !batch.is_empty() {
        if aborts > MAX_ABORTS && batch.len() > 1 {
            // Many updates failing at once (a corrupt record they all read): one transaction
            // each, so that each failure costs its own run rather than a rerun of the batch.
            return batch
                .into_iter()
                .flat_map(|job| write_batch(inner, vec![job]))
                .collect();
        }
        let jobs = &batch;
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            trees.transaction(|view: &Vec<TransactionalTree>| {
                let txn = Txn { trees: view };
                for (i, job) in jobs.iter().enumerate() {
                    job.run(&txn).map_err(|e| match e {
                        ConflictableTransactionError::Abort(e) => {
                            ConflictableTransactionError::Abort((i, e))
                        }
                        ConflictableTransactionError::Conflict => {
                            ConflictableTransactionError::Conflict
                        }
                        ConflictableTransactionError::Storage(e) => {
                            ConflictableTransactionError::Storage(e)
                        }
                    })?;
                }
                Ok(())
            })
        }));
        match attempt {
            Ok(Ok(())) => break,
            Ok(Err(TransactionError::Abort((i, e)))) => {
                // Rolled back: the aborting closure wrote nothing. The rest run again.
                batch.remove(i).finish(Err(e));
                aborts += 1;
            }
            Ok(Err(TransactionError::Storage(e))) => {
                let e = Error::Sled(e);
                batch.into_iter().for_each(|j| j.finish(Err(e.clone())));
                return Vec::new();
            }
            Err(_) => {
                // A closure panicked (a bug): nothing of the batch was committed, and which one
                // panicked is unknown, so each is answered with an error rather than retried.
                tracing::error!(
                    jobs = batch.len(),
                    "an update panicked; its batch was rolled back"
                );
                let e = Error::Rejected("the update panicked".into());
                batch.into_iter().for_each(|j| j.finish(Err(e.clone())));
                return Vec::new();
            }
        }
    }
    batch
}
