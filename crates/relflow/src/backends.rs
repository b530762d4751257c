//! Opening the queue and run store the config asks for. The rest of the
//! binary only ever sees the `WorkQueue` and `RunStore` traits.
//!
//! | config                        | queue                       | run store                 |
//! |-------------------------------|-----------------------------|---------------------------|
//! | nothing (the default)         | embedded SQLite in data_dir | SQLite, same file         |
//! | `[queue] url = "amqp://..."`  | RabbitMQ quorum queues      | (as configured)           |
//! | `[store] url = "postgres://..."` | (as configured)          | PostgreSQL, shared by all |

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use relflow_amqp::{AmqpQueue, AmqpQueueOptions, TlsOptions};
use relflow_core::redact::redact_url;
use relflow_core::Config;
use relflow_queue::{SqliteQueue, SqliteQueueOptions, WorkQueue};
use relflow_store::{PgStore, RunStore, SqliteStore};

pub struct Backends {
    pub queue: Arc<dyn WorkQueue>,
    pub store: Arc<dyn RunStore>,
}

impl Backends {
    /// `concurrency` is how many deliveries this process may hold at once
    /// (RabbitMQ prefetch); commands that only publish or list pass 1.
    pub async fn open(config: &Config, concurrency: usize) -> Result<Backends> {
        Ok(Backends { queue: open_queue(config, concurrency).await?, store: open_store(config).await? })
    }
}

fn ensure_data_dir(config: &Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))
}

pub async fn open_queue(config: &Config, concurrency: usize) -> Result<Arc<dyn WorkQueue>> {
    Ok(match config.queue.url.as_deref() {
        None => {
            ensure_data_dir(config)?;
            let options =
                SqliteQueueOptions { visibility_timeout: config.worker.visibility_timeout, ..Default::default() };
            Arc::new(SqliteQueue::open(config.database_path(), options)?)
        }
        Some(url) if url.starts_with("amqp://") || url.starts_with("amqps://") => {
            Arc::new(AmqpQueue::connect(amqp_options(config, url, concurrency)).await?)
        }
        Some(url) => {
            let url = redact_url(url);
            bail!("[queue] url {url:?}: use an amqp:// or amqps:// URL, or leave it unset for the embedded queue")
        }
    })
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn RunStore>> {
    Ok(match config.store.url.as_deref() {
        None => {
            ensure_data_dir(config)?;
            Arc::new(SqliteStore::open(config.database_path())?)
        }
        Some(url) => Arc::new(PgStore::connect(url).await?),
    })
}

fn amqp_options(config: &Config, url: &str, concurrency: usize) -> AmqpQueueOptions {
    let max_retries = config.rules.iter().map(|r| r.retries).max().unwrap_or(0);
    let longest_run = config.rules.iter().map(|r| r.timeout).max().unwrap_or_default();
    AmqpQueueOptions {
        url: url.to_owned(),
        prefix: config.queue.prefix.clone(),
        prefetch: u16::try_from(concurrency).unwrap_or(u16::MAX).max(1),
        retry_delays: config.worker.retry_delays(max_retries),
        // Ask the broker (>= 3.12 honours it) not to reclaim a delivery while
        // its longest playbook may still be running, plus the drain time.
        consumer_timeout: Some(longest_run + config.worker.drain_timeout + Duration::from_secs(60)),
        connection_name: format!("relflow pid {}", std::process::id()),
        tls: config.queue.tls.as_ref().map(TlsOptions::from),
        ..Default::default()
    }
}
