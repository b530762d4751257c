//! Named async locks that clean up after themselves.
//!
//! The worker serialises two kinds of work by name: runs in the same
//! concurrency group, and deliveries of the same message id (a relay that
//! delivers an event twice must not run its playbooks twice side by side,
//! before either has recorded success). Names come and go with messages, so
//! an entry is dropped as soon as nobody holds or waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Default)]
pub struct KeyedLocks {
    locks: Arc<StdMutex<HashMap<String, Arc<Mutex<()>>>>>,
}

/// Holds the lock for one name; releases (and forgets unused names) on drop.
pub struct KeyedGuard {
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
    locks: Arc<StdMutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> KeyedGuard {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(key.to_owned()).or_default())
        };
        KeyedGuard { key: key.to_owned(), guard: Some(lock.lock_owned().await), locks: Arc::clone(&self.locks) }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().unwrap().len()
    }
}

impl Drop for KeyedGuard {
    fn drop(&mut self) {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.guard.take());
        // Only the map's own reference left: nobody holds or awaits it.
        if map.get(&self.key).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_name_waits_other_names_do_not_and_entries_are_dropped() {
        let locks = Arc::new(KeyedLocks::default());
        let a = locks.lock("a").await;
        let _b = locks.lock("b").await; // a different name is not blocked
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move { locks.lock("a").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "second holder of `a` must wait");
        drop(a);
        let a2 = waiter.await.unwrap();
        drop(a2);
        drop(_b);
        assert_eq!(locks.len(), 0, "unused names are forgotten");
    }
}
