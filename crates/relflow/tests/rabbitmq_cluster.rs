//! A three-node RabbitMQ cluster loses the node that leads the work queue,
//! then a second node (quorum is gone), and both come back: two workers and
//! a publisher given every node's address (`[queue] urls`) fail over by
//! themselves, and every message whose publish was confirmed ends with
//! exactly one completed run.
//!
//! The cluster is the test's own (relflow_testkit::RabbitCluster): its own
//! node names, ports, data dirs, cookie and epmd.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{play, wait_for, Env, Proc};
use relflow_testkit::wait_until;
use relflow_testkit::{PgDatabase, RabbitCluster, RabbitNode};
use serde_json::json;

const WORK: &str = "relflow.work";

#[test]
fn workers_and_publishers_fail_over_across_a_three_node_cluster() {
    let mut cluster = RabbitNode::builder().cluster(3);
    let db = PgDatabase::new();
    let env = Env::with_tables(
        "concurrency = 2\nprefetch = 2\n",
        &format!("[queue]\nurls = {:?}\n\n[store]\nurl = \"{}\"\n", cluster.urls(), db.url()),
        "[[rule]]\nname = \"each\"\ntopic = \"cluster.test\"\nplaybook = \"each.yml\"\n",
    );
    env.playbook("each.yml", &play("    - debug: msg=\"n={{ msg.n }}\"\n"));
    // The first publish declares the work queue; from then on it has a leader.
    env.publish_body("cluster.test", &json!({"n": -1}));
    let (leader, members) = wait_for(Duration::from_secs(30), "the work queue's leader", || cluster.quorum_of(0, WORK));
    assert_eq!(members, [0, 1, 2], "the quorum queue has a replica on every node");
    // Worker A and the publisher try the leader first, worker B the node
    // killed second: each of them loses its broker on the way.
    let (second, last) = ((leader + 1) % 3, (leader + 2) % 3);
    let workers = [spawn_worker(&env, &cluster, leader, "a"), spawn_worker(&env, &cluster, second, "b")];
    let publisher = Publisher::start(config_starting_at(&env, &cluster, leader, "publisher"));

    wait_for_progress(&env, 5, "the first runs");
    cluster.node_mut(leader).kill_9();
    let before_failover = publisher.confirmed();
    let (new_leader, _) = wait_for(Duration::from_secs(60), "a new leader", || {
        cluster.quorum_of(last, WORK).filter(|(l, _)| *l != leader)
    });
    assert_ne!(new_leader, leader);
    wait_for_progress(&env, 5, "runs after the leader was killed");
    // The publisher's first address is the dead leader: these went through
    // the next one.
    wait_until(Duration::from_secs(60), "publishes confirmed while the first address is down", || {
        publisher.confirmed() > before_failover
    });

    // One node of three left: no quorum, so nothing is confirmed or acked
    // until a second node is back.
    cluster.node_mut(second).kill_9();
    std::thread::sleep(Duration::from_secs(2));
    restart_in_parallel(&mut cluster, [leader, second]);
    wait_for(Duration::from_secs(60), "a leader again", || cluster.quorum_of(last, WORK));
    wait_for_progress(&env, 5, "runs after both nodes came back");
    // How many got through before now depends on the machine's speed: let
    // the publisher reach the floor on the healed cluster, not by a deadline.
    wait_until(Duration::from_secs(60), "20 publishes confirmed", || publisher.confirmed() >= 20);
    let confirmed = publisher.stop();
    assert!(confirmed.len() >= 20, "most publishes got through: {}", confirmed.len());

    let deadline = Instant::now() + Duration::from_secs(90);
    let runs = loop {
        let done = succeeded(&env.runs());
        let missing: Vec<&String> = confirmed.iter().filter(|id| !done.contains_key(*id)).collect();
        if missing.is_empty() {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "confirmed messages without a completed run: {missing:?}\nqueues: {}\nruns: {}\n{}",
            cluster
                .nodes()
                .iter()
                .map(|n| format!(
                    "{}\n{}\n{}",
                    n.name(),
                    n.ctl(&[
                        "list_queues",
                        "name",
                        "messages_ready",
                        "messages_unacknowledged",
                        "consumers",
                        "leader",
                        "online"
                    ]),
                    n.ctl(&["list_consumers"])
                ))
                .collect::<Vec<_>>()
                .join("\n"),
            serde_json::to_string(&env.runs()).unwrap(),
            env.worker_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for mut w in workers {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(w.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(w.0.wait().unwrap().success(), "worker logs:\n{}", env.worker_logs());
    }
    for id in &confirmed {
        assert_eq!(runs.get(id), Some(&1), "message {id}: exactly one completed run\n{}", env.worker_logs());
    }
    assert!(runs.values().all(|n| *n == 1), "no message ran twice: {runs:?}");
    let logs = env.worker_logs();
    for name in ["worker-a", "worker-b"] {
        let log = std::fs::read_to_string(env.path(&format!("{name}.log"))).unwrap();
        assert!(log.contains("trying the next address"), "{name} failed over by itself:\n{logs}");
    }
}

/// Succeeded runs per message id.
fn succeeded(runs: &[serde_json::Value]) -> HashMap<String, usize> {
    let mut done = HashMap::new();
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        *done.entry(r["message_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    done
}

/// Waits until `more` runs have succeeded on top of those there now.
fn wait_for_progress(env: &Env, more: usize, what: &str) {
    let start = succeeded(&env.runs()).len();
    wait_for(Duration::from_secs(90), what, || (succeeded(&env.runs()).len() >= start + more).then_some(()));
}

/// A copy of the config whose `urls` start at node `first` (then go round).
fn config_starting_at(env: &Env, cluster: &RabbitCluster, first: usize, name: &str) -> PathBuf {
    let mut urls = cluster.urls();
    urls.rotate_left(first);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replace(&format!("urls = {:?}", cluster.urls()), &format!("urls = {urls:?}"));
    let path = env.path(&format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `relflow worker` on a config that tries node `first` first; its log is
/// `worker-<name>.log` (so `Env::worker_logs` shows it).
fn spawn_worker(env: &Env, cluster: &RabbitCluster, first: usize, name: &str) -> Proc {
    let config = config_starting_at(env, cluster, first, &format!("worker-{name}-config"));
    let log = std::fs::File::create(env.path(&format!("worker-{name}.log"))).unwrap();
    Proc(relflow(&config).arg("worker").stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap())
}

fn relflow(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relflow"));
    cmd.arg("--config").arg(config).env_remove("RELFLOW_CONFIG").env_remove("RELFLOW_DATA_DIR");
    cmd
}

/// Restarts the killed nodes at once (each boot is mostly waiting).
fn restart_in_parallel(cluster: &mut RabbitCluster, which: [usize; 2]) {
    std::thread::scope(|s| {
        for (i, node) in cluster.nodes_mut().iter_mut().enumerate() {
            if which.contains(&i) {
                s.spawn(move || node.restart());
            }
        }
    });
}

/// One `relflow publish` after another, as a script would run them, until
/// stopped. A message counts as confirmed when publish exited 0 (it waits
/// for the broker's confirm); the others may or may not have landed.
struct Publisher {
    stop: Arc<AtomicBool>,
    confirmed: Arc<Mutex<Vec<String>>>,
    thread: JoinHandle<()>,
}

impl Publisher {
    fn start(config: PathBuf) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, confirmed) = (Arc::clone(&stop), Arc::clone(&confirmed));
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = json!({"n": n}).to_string();
                    let out = relflow(&config).args(["publish", "--topic", "cluster.test", &body]).output().unwrap();
                    if out.status.success() {
                        let line = String::from_utf8_lossy(&out.stdout).into_owned();
                        confirmed.lock().unwrap().push(line.split_whitespace().nth(1).unwrap().to_owned());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Publisher { stop, confirmed, thread }
    }

    /// How many publishes were confirmed so far.
    fn confirmed(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }

    /// Stops after the publish under way; the confirmed message ids.
    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let confirmed = self.confirmed.lock().unwrap().clone();
        confirmed
    }
}
