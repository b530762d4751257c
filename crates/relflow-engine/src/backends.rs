//! Opening the queue and run store the config asks for. Everything past
//! this point only ever sees the `WorkQueue` and `RunStore` traits.
//!
//! | config                           | queue                       | run store                 |
//! |----------------------------------|-----------------------------|---------------------------|
//! | nothing (the default)            | embedded SQLite in data_dir | SQLite, same file         |
//! | `[queue] url = "amqp://..."`     | RabbitMQ quorum queues      | (as configured)           |
//! | `[queue] urls = ["amqp://..."]`  | the same, failing over      | (as configured)           |
//! | `[store] url = "postgres://..."` | (as configured)             | PostgreSQL, shared by all |

use std::path::PathBuf;
use std::sync::Arc;

use relflow_amqp::AmqpQueue;
use relflow_core::Config;
use relflow_queue::{QueueError, SqliteQueue, WorkQueue};
use relflow_store::{PgStore, RunStore, SqliteStore, StoreError};

use crate::options;

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The data directory (embedded queue and store) cannot be created.
    #[error("cannot create data_dir {path}: {source}")]
    DataDir {
        /// The configured `data_dir`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Holds only the URL's scheme: the rest may carry a password.
    #[error("[queue] url (or an address of urls) is a {0:?} URL: use an amqp:// or amqps:// URL, or leave it unset for the embedded queue")]
    QueueUrl(String),
    /// The queue backend refused to open.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The run store refused to open.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The work queue and run store of one process.
pub struct Backends {
    /// Where messages wait.
    pub queue: Arc<dyn WorkQueue>,
    /// Where runs are recorded.
    pub store: Arc<dyn RunStore>,
}

impl Backends {
    /// `prefetch` is how many deliveries this process may hold at once
    /// (RabbitMQ prefetch); commands that only publish or list pass 1.
    pub async fn open(config: &Config, prefetch: usize) -> Result<Backends, BackendError> {
        Ok(Backends { queue: open_queue(config, prefetch).await?, store: open_store(config).await? })
    }
}

fn ensure_data_dir(config: &Config) -> Result<(), BackendError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| BackendError::DataDir { path: config.data_dir.clone(), source })
}

/// The work queue alone (publishing, dead letters).
pub async fn open_queue(config: &Config, prefetch: usize) -> Result<Arc<dyn WorkQueue>, BackendError> {
    let urls = config.queue.broker_urls();
    if urls.is_empty() {
        ensure_data_dir(config)?;
        return Ok(Arc::new(SqliteQueue::open(config.database_path(), options::sqlite_queue(config))?));
    }
    if let Some(url) = urls.iter().find(|u| !u.starts_with("amqp://") && !u.starts_with("amqps://")) {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        return Err(BackendError::QueueUrl(scheme.to_owned()));
    }
    Ok(Arc::new(AmqpQueue::connect(options::amqp_queue(config, &urls, prefetch)).await?))
}

/// The run store alone (listing runs).
pub async fn open_store(config: &Config) -> Result<Arc<dyn RunStore>, BackendError> {
    Ok(match config.store.url.as_deref() {
        None => {
            ensure_data_dir(config)?;
            Arc::new(SqliteStore::open(config.database_path())?)
        }
        Some(url) => Arc::new(PgStore::connect(url).await?),
    })
}
