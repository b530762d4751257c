//! The one place that maps `relflow.toml` ([`Config`]) to each component's
//! own options. Components (queues, stores, the runner, the intake) never see
//! the whole configuration, so each can be read, tested and reused alone.

use std::time::Duration;

use relflow_amqp::{AmqpQueueOptions, TlsOptions};
use relflow_announce::{AmqpOptions, AnnounceOptions, FedmsgOptions};
use relflow_ansible::{InventoryCheck, InventoryTarget, RunnerConfig, RunnerMode};
use relflow_core::config::AnsibleMode;
use relflow_core::Config;
use relflow_ingest::SinkOptions;
use relflow_queue::SqliteQueueOptions;

/// The embedded queue in `data_dir`.
pub fn sqlite_queue(config: &Config) -> SqliteQueueOptions {
    SqliteQueueOptions { visibility_timeout: config.queue.visibility_timeout(), ..Default::default() }
}

/// RabbitMQ at `urls` (one address, or a cluster's: tried in turn), for a
/// process holding up to `prefetch` deliveries at once.
pub fn amqp_queue(config: &Config, urls: &[String], prefetch: usize) -> AmqpQueueOptions {
    let max_retries = config.rules.iter().map(|r| r.retries).max().unwrap_or(0);
    let longest_run = config.rules.iter().map(|r| r.timeout).max().unwrap_or_default();
    AmqpQueueOptions {
        url: urls.first().cloned().unwrap_or_default(),
        failover_urls: urls.iter().skip(1).cloned().collect(),
        prefix: config.queue.prefix.clone(),
        prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX).max(1),
        retry_delays: config.worker.retry_delays(max_retries),
        // Ask the broker (>= 3.12 honours it) not to reclaim a delivery while
        // it may wait behind the other held deliveries' longest playbooks and
        // then run its own, plus the drain time.
        consumer_timeout: Some(
            longest_run.saturating_mul(waits(prefetch, config.worker.concurrency))
                + config.worker.drain_timeout
                + Duration::from_secs(60),
        ),
        connection_name: format!("relflow pid {}", std::process::id()),
        tls: config.queue.tls.as_ref().map(TlsOptions::from),
        ..Default::default()
    }
}

/// How many playbooks, one after another, a held delivery may wait for
/// and run when `prefetch` deliveries share `concurrency` slots.
fn waits(prefetch: usize, concurrency: usize) -> u32 {
    u32::try_from(prefetch.div_ceil(concurrency.max(1))).unwrap_or(u32::MAX).max(1)
}

/// How the worker runs `ansible-playbook`.
pub fn runner(config: &Config) -> RunnerConfig {
    let mut runner = RunnerConfig::new(&config.ansible.playbook_cmd, config.data_dir.join("ansible"));
    runner.ansible_config = config.ansible.config.clone();
    runner.env_passthrough = config.ansible.env.clone();
    runner.kill_grace = config.ansible.kill_grace;
    runner.mode = match config.ansible.mode {
        AnsibleMode::Cold => RunnerMode::Cold,
        AnsibleMode::Warm => RunnerMode::Warm,
    };
    runner
}

/// What `relflow check` asks `ansible-inventory`: every rule's inventory
/// (its own, else `[ansible] inventory`, else ansible's default) and limit,
/// with the ansible install and config runs use.
pub fn inventory_check(config: &Config) -> InventoryCheck {
    let mut targets: Vec<InventoryTarget> = config
        .rules
        .iter()
        .map(|r| InventoryTarget {
            rule: r.name.clone(),
            inventory: r.inventory.clone().or_else(|| config.ansible.inventory.clone()),
            limit: r.limit.clone(),
        })
        .collect();
    if let Some(inventory) = &config.ansible.inventory {
        // Checked even when every rule names its own.
        let default = InventoryTarget { rule: "[ansible]".into(), inventory: Some(inventory.clone()), limit: None };
        targets.push(default);
    }
    InventoryCheck {
        ansible_playbook: config.ansible.playbook_cmd.clone(),
        ansible_config: config.ansible.config.clone(),
        cwd: config.playbook_cwd(),
        targets,
    }
}

/// The intake (dedupe window, signature checks, size limit).
pub fn sink(config: &Config) -> SinkOptions {
    SinkOptions {
        data_dir: config.data_dir.clone(),
        dedupe_window: config.ingest.dedupe_window,
        fedmsg: config.fedmsg.clone(),
        max_message_bytes: config.max_message_bytes,
        schema_dir: config.schemas.dir().to_path_buf(),
        validate: relflow_schemas::Gate::modes(&config.sources),
        auto_backfill: config
            .backfill
            .as_ref()
            .and_then(|b| relflow_ingest::auto::AutoBackfill::new(b, &config.sources)),
    }
}

/// What the worker announces runs with; `None` without `[announce]`. fedmsg
/// needs `[fedmsg.sign]`, which loading the config already checked.
pub fn announce(config: &Config) -> Option<AnnounceOptions> {
    let a = config.announce.as_ref()?;
    let sign = config.fedmsg.as_ref().and_then(|f| f.sign.clone());
    Some(AnnounceOptions {
        topic_prefix: a.topic_prefix.clone(),
        max_chain_depth: a.max_chain_depth,
        max_pending: a.max_pending,
        amqp: a.amqp.as_ref().map(|m| AmqpOptions {
            url: m.url.clone(),
            exchange: m.exchange.clone(),
            tls: m.tls.as_ref().map(TlsOptions::from),
            connection_name: format!("relflow announce pid {}", std::process::id()),
        }),
        fedmsg: a.fedmsg.as_ref().zip(sign).map(|(f, sign)| FedmsgOptions { bind: f.bind.clone(), sign }),
    })
}
