//! Opening the queue and run store the config asks for. The rest of the
//! binary only ever sees the `WorkQueue` and `RunStore` traits.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use relflow_core::Config;
use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
use relflow_store::{RunStore, SqliteStore};

pub struct Backends {
    pub queue: Arc<dyn WorkQueue>,
    pub store: Arc<dyn RunStore>,
}

impl Backends {
    pub fn open(config: &Config) -> Result<Backends> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let db = config.database_path();
        let queue: Arc<dyn WorkQueue> = match config.queue.url.as_deref() {
            None => {
                let options = SqliteQueueOptions {
                    visibility_timeout: config.worker.visibility_timeout,
                    ..Default::default()
                };
                Arc::new(SqliteQueue::open(&db, options)?)
            }
            Some(url) => bail!("queue.url = {url:?}: this build of relflow has no backend for it"),
        };
        let store: Arc<dyn RunStore> = Arc::new(SqliteStore::open(&db)?);
        Ok(Backends { queue, store })
    }
}
