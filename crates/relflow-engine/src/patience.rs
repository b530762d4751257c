//! Riding out a run store that is briefly away (a PostgreSQL restart, a
//! failover): the store calls that decide whether a run happens, and the one
//! that records how it ended, are tried again for a while rather than turned
//! into a failed run. A failed run costs one of the rule's retries, and with
//! `retries = 0` (the default) a database restart would dead-letter every
//! message that was between two steps.

use std::future::Future;
use std::time::Duration;

use tracing::warn;

/// How long a store call is retried before its error is returned.
pub(crate) const STORE_RETRY_FOR: Duration = Duration::from_secs(60);

/// Runs `op` until it succeeds or `limit` (normally [`STORE_RETRY_FOR`]) has
/// passed, pausing 250 ms, then twice as long each time (up to 5 s). `what`
/// names the call in the log. A fatal error (unwritable files) is returned
/// at once: waiting cannot mend it.
pub(crate) async fn patiently<T, Fut>(
    what: &str,
    limit: Duration,
    mut op: impl FnMut() -> Fut,
) -> relflow_store::Result<T>
where
    Fut: Future<Output = relflow_store::Result<T>>,
{
    let give_up = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(250);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) if tokio::time::Instant::now() + pause > give_up => {
                warn!("cannot {what}, giving up: {e}");
                return Err(e);
            }
            Err(e) => warn!("cannot {what}, retrying in {pause:?}: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_until_the_store_answers_then_gives_up() {
        let calls = AtomicU32::new(0);
        let back_on_third = patiently("test", STORE_RETRY_FOR, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(relflow_store::StoreError::Backend("away".into()))
            } else {
                Ok(n)
            }
        });
        assert_eq!(back_on_third.await.unwrap(), 2);
        let never: relflow_store::Result<()> = patiently("test", Duration::from_secs(1), || async {
            Err(relflow_store::StoreError::Backend("away".into()))
        })
        .await;
        assert!(never.is_err());
    }
}
