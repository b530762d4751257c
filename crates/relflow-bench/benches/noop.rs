//! No-op throughput and worker memory: messages that match no rule, drained
//! by the relflow worker vs the bare loops that bound it, in the same run.
//!
//! * RabbitMQ: relflow's quorum work queue, relflow worker vs a bare lapin
//!   consume+ack loop (same queue kind, same prefetch, one ack per message),
//!   vs loopabull 0.0.7's rabbitmq looper (prefetch 1, basic_ack per message,
//!   on the classic durable queue it declares itself).
//! * Embedded queue: relflow worker vs a bare rusqlite loop doing the same
//!   claim (UPDATE ... RETURNING) + delete, WAL, synchronous=FULL.
//! * The worker at its default settings (no flags: prefetch 64) on both.
//! * ansible-rulebook 1.3.2's in-process source (no bus, no persistence):
//!   BENCH_RULEBOOK_N (= BENCH_N; 0 skips it) events no rule matches.
//! * Worker RSS: idle, half-way, and after all messages.
//!
//! Rate = messages drained / time from the first drop of the queue depth to
//! empty (depth polled every 5 ms), so process start-up is not counted for
//! anyone. `cargo bench -p relflow-bench --bench noop`; BENCH_N (100000),
//! BENCH_LOOPABULL_N (= BENCH_N), BENCH_PREFETCH (comma list, default "2,32":
//! 2 = a 2-core worker's default concurrency), BENCH_QUEUES (comma list,
//! default "rabbitmq,sqlite").

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relflow_bench::rulebook::{self, Rulebook};
use relflow_bench::*;

const TOPIC: &str = "bench.noop";
const RULE: &str = "[[rule]]\nname = \"never\"\ntopic = \"bench.never.matches\"\nplaybook = \"trivial.yml\"\n";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n = env_num("BENCH_N", 100_000);
    let loopabull_n = env_num("BENCH_LOOPABULL_N", n);
    let prefetches: Vec<u16> = std::env::var("BENCH_PREFETCH")
        .unwrap_or_else(|_| "2,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let queues: Vec<String> = std::env::var("BENCH_QUEUES")
        .unwrap_or_else(|_| "rabbitmq,sqlite".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let bin = relflow_bin()?;
    let mut lines = vec![
        format!("{n} no-op messages per run ({loopabull_n} for loopabull and the classic-queue bare loop)."),
        String::new(),
        "| queue | contender | prefetch | messages | seconds | msg/s | vs bare loop |".into(),
        "|---|---|---|---|---|---|---|".into(),
    ];
    let mut mem = Vec::new();
    let mut defaults: Vec<(&str, Drained)> = Vec::new();
    let rulebook_n = env_num("BENCH_RULEBOOK_N", n);

    // --- RabbitMQ ---
    if queues.iter().any(|q| q == "rabbitmq") {
        let vhost = Vhost::new("bench-noop");
        let url = vhost.url();
        let mut bare_best = 0.0f64;
        let mut relflow_best = 0.0f64;
        for &prefetch in &prefetches {
            // Each contender gets a fresh quorum queue: a second pass over one
            // queue would pay for compacting the first pass's raft log.
            let bq = format!("bare{prefetch}.work");
            fill_amqp(&url, &bq, true, n).await?;
            let bare = drain_amqp(&url, &bq, n, || {
                let (url, q) = (url.clone(), bq.clone());
                Ok(Contender::Task(tokio::spawn(async move { bare_lapin(&url, &q, prefetch, n).await })))
            })
            .await?;
            let q = format!("p{prefetch}.relflow.work");
            lines.push(row("rabbitmq", "bare lapin consume+ack", prefetch, bare, None));

            let setup = Setup::new("", &format!("[queue]\nurl = \"{url}\"\nprefix = \"p{prefetch}.\"\n\n{RULE}"))?;
            let idle = idle_rss(&setup, &bin, prefetch)?;
            fill_amqp(&url, &q, true, n).await?;
            let mut samples = (0, 0);
            let rel = drain_amqp_sampled(&url, &q, n, &setup, &bin, prefetch, &mut samples).await?;
            lines.push(row("rabbitmq", "relflow worker", prefetch, rel, Some(bare)));
            mem.push(format!(
                "| rabbitmq, concurrency {prefetch} | {} | {} | {} | {} |",
                mib(idle.0),
                mib(idle.1),
                mib(samples.0),
                mib(samples.1)
            ));
            bare_best = bare_best.max(rate(bare));
            relflow_best = relflow_best.max(rate(rel));
        }

        // The worker as installed: no flags (prefetch 64, concurrency = cores).
        let dq = "dflt.relflow.work";
        let setup = Setup::new("", &format!("[queue]\nurl = \"{url}\"\nprefix = \"dflt.\"\n\n{RULE}"))?;
        fill_amqp(&url, dq, true, n).await?;
        let dflt =
            drain_amqp(&url, dq, n, || Ok(Contender::Process(setup.relflow(&bin, &["worker"]).spawn()?))).await?;
        lines.push(row("rabbitmq", "relflow worker, default settings", 64, dflt, None));
        defaults.push(("RabbitMQ", dflt));

        // loopabull, on the queue it declares itself (classic, durable).
        let lq = "loopabull.bench";
        fill_amqp(&url, lq, false, loopabull_n).await?;
        let cfg = loopabull_config(vhost.name(), lq)?;
        let lb = drain_amqp(&url, lq, loopabull_n, || {
            let child = Command::new(workspace().join("target/bench-venv/bin/loopabull"))
                .arg(cfg.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start loopabull: run scripts/bench.sh (it makes target/bench-venv)")?;
            Ok(Contender::Process(child))
        })
        .await?;
        // The bare loop on loopabull's own terms: classic queue, prefetch 1.
        let cq = "bare.classic";
        fill_amqp(&url, cq, false, loopabull_n).await?;
        let bare_classic = drain_amqp(&url, cq, loopabull_n, || {
            let url = url.clone();
            Ok(Contender::Task(tokio::spawn(async move { bare_lapin(&url, cq, 1, loopabull_n).await })))
        })
        .await?;
        lines.push(row("rabbitmq classic", "bare lapin consume+ack", 1, bare_classic, None));
        lines.push(row("rabbitmq classic", "loopabull 0.0.7", 1, lb, Some(bare_classic)));
        lines.push(String::new());
        lines.push(format!(
            "RabbitMQ: relflow (best prefetch) / bare lapin (best prefetch) = {:.2}; relflow / loopabull = {:.1}x; \
             relflow at default settings / loopabull = {:.1}x",
            relflow_best / bare_best,
            relflow_best / rate(lb),
            rate(dflt) / rate(lb)
        ));
        drop(vhost);
    }

    // --- embedded SQLite queue ---
    if queues.iter().any(|q| q == "sqlite") {
        lines.push(String::new());
        lines.push("| queue | contender | prefetch | messages | seconds | msg/s | vs bare loop |".into());
        lines.push("|---|---|---|---|---|---|---|".into());
        let setup = Setup::new("", RULE)?;
        let idle = idle_rss(&setup, &bin, 2)?;
        let db = setup.path().join("data/relflow.sqlite3");
        // The bare loops run in a thread of this process, watched exactly like
        // the relflow worker (the watcher's polling costs everyone the same).
        let mut bare = Vec::new();
        for batch in [1u32, 2] {
            let bare_db = setup.path().join(format!("bare{batch}.sqlite3"));
            create_like(&db, &bare_db)?;
            fill_sqlite(&bare_db, n)?;
            let path = bare_db.clone();
            let looper = std::thread::spawn(move || bare_sqlite(&path, n, batch));
            let drained = watch_sqlite(&bare_db, n, |_| {})?;
            looper.join().map_err(|_| anyhow::anyhow!("the bare loop panicked"))??;
            let who = if batch == 1 {
                "bare rusqlite claim+delete, one at a time".to_string()
            } else {
                format!("bare rusqlite claim+delete, {batch} per transaction")
            };
            lines.push(row("sqlite", &who, batch as u16, drained, None));
            bare.push(drained);
        }
        fill_sqlite(&db, n)?;
        let mut child = setup.relflow(&bin, &["worker", "--concurrency", "2", "--prefetch", "2"]).spawn()?;
        let pid = child.id();
        let mut samples = (0, 0);
        let rel = watch_sqlite(&db, n, |left| {
            if left <= n / 2 && samples.0 == 0 {
                samples.0 = rss_kib(pid).unwrap_or(0);
            }
        })?;
        samples.1 = rss_kib(pid).unwrap_or(0);
        stop(&mut child);
        lines.push(row("sqlite", "relflow worker (vs one at a time)", 2, rel, Some(bare[0])));
        lines.push(row("sqlite", "relflow worker (vs 2 per transaction)", 2, rel, Some(bare[1])));
        mem.push(format!(
            "| sqlite, concurrency 2 | {} | {} | {} | {} |",
            mib(idle.0),
            mib(idle.1),
            mib(samples.0),
            mib(samples.1)
        ));

        let setup = Setup::new("", RULE)?;
        let db = setup.path().join("data/relflow.sqlite3");
        idle_rss(&setup, &bin, 2)?; // creates the queue file
        fill_sqlite(&db, n)?;
        let mut child = setup.relflow(&bin, &["worker"]).spawn()?;
        let dflt = watch_sqlite(&db, n, |_| {})?;
        stop(&mut child);
        lines.push(row("sqlite", "relflow worker, default settings", 64, dflt, Some(bare[1])));
        defaults.push(("embedded", dflt));
    }

    if rulebook_n > 0 {
        lines.push(String::new());
        lines.push("| events | contender | seconds | events/s |".into());
        lines.push("|---|---|---|---|".into());
        let rb = rulebook_noops(rulebook_n)?;
        lines.push(format!(
            "| {} | ansible-rulebook 1.3.2, its in-process source | {:.2} | {:.0} |",
            rb.0,
            rb.1.as_secs_f64(),
            rate(rb)
        ));
        for (queue, d) in &defaults {
            lines.push(format!(
                "relflow worker at default settings ({queue}) / ansible-rulebook = {:.2}",
                rate(*d) / rate(rb)
            ));
        }
    }

    lines.push(String::new());
    lines.push("Worker RSS (MiB; private: RssAnon, without the executable's shared pages):".into());
    lines.push(String::new());
    lines.push("| worker | idle | idle, private | after half the messages | after all |".into());
    lines.push("|---|---|---|---|---|".into());
    lines.extend(mem);
    report("noop", &lines)
}

type Drained = (u64, Duration);

/// What the last event carries, so its `print_event` line can be found.
const END: &str = "relflow-bench-end";

/// ansible-rulebook with no bus and no persistence: its local source emits
/// `n` events its one rule does not match, then one it does, whose action
/// prints it. Timed from the source's first event to that line.
fn rulebook_noops(n: u64) -> Result<Drained> {
    use std::io::BufRead;
    let rules = "    - name: end\n      condition: event.n is defined\n      action:\n        print_event:\n";
    let scratch = tempfile::tempdir()?;
    let started = scratch.path().join("started");
    let args = [
        ("noops", n.to_string()),
        ("limit", "1".to_string()),
        ("out", END.to_string()),
        ("started", started.display().to_string()),
    ];
    let rulebook = Rulebook::new("sequential", &args, rules)?;
    let mut child = rulebook.command().stdout(Stdio::piped()).spawn().context(rulebook::MISSING)?;
    let stdout = child.stdout.take().context("ansible-rulebook's stdout")?;
    let mut end = None;
    for line in std::io::BufReader::new(stdout).lines() {
        if line?.contains(END) {
            end = Some(now_ns());
            break;
        }
    }
    stop(&mut child);
    let end = end.context("ansible-rulebook exited before printing the last event")?;
    let t0: u128 = std::fs::read_to_string(&started)?.trim().parse()?;
    Ok((n, Duration::from_nanos((end - t0) as u64)))
}

fn rate(d: Drained) -> f64 {
    d.0 as f64 / d.1.as_secs_f64()
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn row(queue: &str, who: &str, prefetch: u16, d: Drained, bare: Option<Drained>) -> String {
    let vs = bare.map(|b| format!("{:.2}", rate(d) / rate(b))).unwrap_or_else(|| "-".into());
    format!("| {queue} | {who} | {prefetch} | {} | {:.2} | {:.0} | {vs} |", d.0, d.1.as_secs_f64(), rate(d))
}

/// Starts the worker on an empty queue and reads its RSS, all and private
/// (KiB), once it is idle.
fn idle_rss(setup: &Setup, bin: &Path, concurrency: u16) -> Result<(u64, u64)> {
    let n = concurrency.to_string();
    let mut child = setup.relflow(bin, &["worker", "--concurrency", &n, "--prefetch", &n]).spawn()?;
    std::thread::sleep(Duration::from_secs(2));
    let exited = || anyhow::anyhow!("worker exited at start; run it by hand to see why");
    let rss = (rss_kib(child.id()).ok_or_else(exited)?, private_kib(child.id()).ok_or_else(exited)?);
    stop(&mut child);
    Ok(rss)
}

// ---------- RabbitMQ ----------

async fn connect(url: &str) -> Result<(Connection, Channel)> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    Ok((conn, ch))
}

fn queue_args(quorum: bool) -> FieldTable {
    let mut args = FieldTable::default();
    if quorum {
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    }
    args
}

/// Declares `queue` (quorum like relflow's, or classic) and publishes `n`
/// persistent messages with confirms.
async fn fill_amqp(url: &str, queue: &str, quorum: bool, n: u64) -> Result<()> {
    let (conn, ch) = connect(url).await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.queue_declare(queue.into(), QueueDeclareOptions::durable(), queue_args(quorum)).await?;
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut pending = Vec::new();
    for i in 0..n {
        let confirm = ch
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), &payload(TOPIC, i), props.clone())
            .await?;
        pending.push(confirm);
        if pending.len() == 2000 {
            for c in pending.drain(..) {
                c.await?;
            }
        }
    }
    for c in pending {
        c.await?;
    }
    conn.close(200, "filled".into()).await?;
    Ok(())
}

async fn depth(ch: &Channel, queue: &str) -> Result<u64> {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    Ok(u64::from(ch.queue_declare(queue.into(), passive, FieldTable::default()).await?.message_count()))
}

enum Contender {
    Task(tokio::task::JoinHandle<Result<()>>),
    Process(std::process::Child),
}

/// Starts the contender and times the queue from its first drop to empty.
async fn drain_amqp(url: &str, queue: &str, n: u64, start: impl FnOnce() -> Result<Contender>) -> Result<Drained> {
    let (_conn, ch) = connect(url).await?;
    if depth(&ch, queue).await? != n {
        bail!("queue {queue} does not hold the {n} messages just published");
    }
    let contender = start()?;
    let d = watch_amqp(&ch, queue, n, |_| {}).await;
    match contender {
        Contender::Task(t) => t.await??,
        Contender::Process(mut c) => stop(&mut c),
    }
    d
}

async fn drain_amqp_sampled(
    url: &str,
    queue: &str,
    n: u64,
    setup: &Setup,
    bin: &Path,
    prefetch: u16,
    samples: &mut (u64, u64),
) -> Result<Drained> {
    let (_conn, ch) = connect(url).await?;
    let n_held = prefetch.to_string();
    let mut child = setup.relflow(bin, &["worker", "--concurrency", &n_held, "--prefetch", &n_held]).spawn()?;
    let pid = child.id();
    let d = watch_amqp(&ch, queue, n, |left| {
        if left <= n / 2 && samples.0 == 0 {
            samples.0 = rss_kib(pid).unwrap_or(0);
        }
    })
    .await;
    samples.1 = rss_kib(pid).unwrap_or(0);
    stop(&mut child);
    d
}

async fn watch_amqp(ch: &Channel, queue: &str, n: u64, mut each: impl FnMut(u64)) -> Result<Drained> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let left = depth(ch, queue).await?;
        each(left);
        let now = Instant::now();
        if first.is_none() && left < n {
            first = Some((now, left));
        }
        if left == 0 {
            let (t0, at) = first.unwrap_or((now, 0));
            // Messages drained between the last full reading and `t0` are not
            // in the window: count from the depth seen at `t0`.
            return Ok((at, now - t0));
        }
        if now > deadline {
            bail!("queue {queue} not drained after an hour ({left} left)");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The limit: consume with `prefetch`, ack every delivery, nothing else.
async fn bare_lapin(url: &str, queue: &str, prefetch: u16, n: u64) -> Result<()> {
    let (conn, ch) = connect(url).await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer =
        ch.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    let mut acked = 0;
    while acked < n {
        let Some(d) = consumer.next().await else { bail!("consumer ended") };
        d?.ack(BasicAckOptions::default()).await?;
        acked += 1;
    }
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// loopabull's YAML config: rabbitmq looper on `queue`, routing keys that
/// never match (so every message is acked as unrouted), quiet logging.
fn loopabull_config(vhost: &str, queue: &str) -> Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new().suffix(".yml").tempfile()?;
    let dir = f.path().parent().map(Path::to_path_buf).unwrap_or_default();
    let text = format!(
        "loglevel: warning\n\
         routing_keys: [bench.never.matches]\n\
         plugins:\n  looper:\n    name: fedmsgrabbitmq\n    rabbitmq:\n      host: 127.0.0.1\n      virtual_host: {vhost}\n\
         \x20   channel_queue:\n      name: {queue}\n      durable: true\n      exclusive: false\n      auto_delete: false\n\
         \x20 translator:\n    name: rkname\n\
         ansible:\n  playbooks_dir: {}\n  cfg_file_path: /dev/null\n  playbook_cmd: {}\n",
        dir.display(),
        ansible_playbook().display()
    );
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok(f)
}

// ---------- SQLite ----------

/// `to` gets the schema of `from` (relflow's queue tables).
fn create_like(from: &Path, to: &Path) -> Result<()> {
    let src = rusqlite::Connection::open(from)?;
    let mut stmt =
        src.prepare("SELECT sql FROM sqlite_master WHERE name IN ('queue', 'queue_ready') AND sql IS NOT NULL")?;
    let sqls: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let dst = open(to)?;
    for sql in sqls {
        dst.execute_batch(&sql)?;
    }
    Ok(())
}

fn open(path: &Path) -> Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    Ok(c)
}

fn now_ms() -> i64 {
    (now_ns() / 1_000_000) as i64
}

/// `n` ready messages, in one transaction (filling is not what we measure).
fn fill_sqlite(db: &Path, n: u64) -> Result<()> {
    let mut c = open(db)?;
    let tx = c.transaction()?;
    {
        let mut ins = tx.prepare("INSERT INTO queue (payload, not_before) VALUES (?1, ?2)")?;
        let now = now_ms();
        for i in 0..n {
            ins.execute(rusqlite::params![payload(TOPIC, i), now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The limit: the same lease-then-delete relflow's queue does, one
/// connection, nothing else. `batch` rows per claim transaction and per
/// delete transaction: 1 is the plain loop; 2 pays the same fsyncs per
/// message as relflow's group commit with two slots (one claim and one ack
/// share a commit).
fn bare_sqlite(db: &Path, n: u64, batch: u32) -> Result<()> {
    let mut c = open(db)?;
    let mut done = 0;
    loop {
        let now = now_ms();
        let tx = c.transaction()?;
        let rows: Vec<(i64, i64)> = {
            let mut claim = tx.prepare_cached(
                "UPDATE queue SET lease_until = ?2, deliveries = deliveries + 1
                 WHERE id IN (SELECT id FROM queue
                              WHERE not_before <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                              ORDER BY not_before, id LIMIT ?3)
                 RETURNING id, deliveries",
            )?;
            let rows = claim.query_map(rusqlite::params![now, now + 60_000, batch], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.commit()?;
        if rows.is_empty() {
            break;
        }
        let tx = c.transaction()?;
        for (id, deliveries) in &rows {
            tx.prepare_cached("DELETE FROM queue WHERE id = ?1 AND deliveries = ?2")?
                .execute(rusqlite::params![id, deliveries])?;
        }
        tx.commit()?;
        done += rows.len() as u64;
    }
    if done != n {
        bail!("bare loop drained {done}, expected {n}");
    }
    Ok(())
}

fn watch_sqlite(db: &Path, n: u64, mut each: impl FnMut(u64)) -> Result<Drained> {
    let c = rusqlite::Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(10))?;
    let mut first: Option<(Instant, u64)> = None;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let left: i64 = c.query_row("SELECT count(*) FROM queue", [], |r| r.get(0))?;
        let left = left as u64;
        each(left);
        let now = Instant::now();
        if first.is_none() && left < n {
            first = Some((now, left));
        }
        if left == 0 {
            let (t0, at) = first.unwrap_or((now, 0));
            return Ok((at, now - t0));
        }
        if now > deadline {
            bail!("embedded queue not drained after an hour ({left} left)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
