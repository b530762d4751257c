//! `[announce]` end to end: the real `relflow` binary announces its runs to
//! a real `fedora-messaging consume` and a real Python fedmsg subscriber,
//! chains runs through its own events, survives a SIGKILL between recording
//! and publishing, and stops a rule that triggers itself.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{fixture, play, wait_for, Env, Proc};
use relflow_testkit::{fixtures_dir, Vhost};
use serde_json::{json, Value};

const PREFIX: &str = "org.fedoraproject.prod.relflow";
const PATIENCE: Duration = Duration::from_secs(180);

const CHAINED_RULES: &str = r#"
[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
when = 'msg.status in ["FINISHED", "FINISHED_INCOMPLETE"]'
playbook = "ok.yml"

[[rule]]
name = "sign"
topic = "org.fedoraproject.prod.relflow.run.succeeded"
when = 'msg.rule == "compose-finished"'
playbook = "ok.yml"
"#;

/// A child process of the test, killed when dropped.
fn venv(name: &str) -> PathBuf {
    common::repo_root().join(".venv/bin").join(name)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

fn keys() -> PathBuf {
    fixtures_dir().join("fedmsg-crypto/keys")
}

/// Runs `cmd` with stdout and stderr in files of the test's dir.
fn spawn_logged(env: &Env, name: &str, cmd: &mut Command) -> Proc {
    let out = std::fs::File::create(env.path(&format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(env.path(&format!("{name}.err"))).unwrap();
    Proc(cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| panic!("start {name}: {e}")))
}

/// The JSON lines a spawned helper printed so far.
fn json_lines(env: &Env, name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(env.path(&format!("{name}.out"))).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// `[fedmsg]` with the test CA and the key relflow signs with.
fn fedmsg_tables() -> String {
    let k = keys();
    format!(
        "[fedmsg]\nca_cert = {:?}\ncrl = {:?}\n[fedmsg.sign]\ncert = {:?}\nkey = {:?}\n",
        k.join("ca.crt"),
        k.join("crl.pem"),
        k.join("shell-app01.phx2.fedoraproject.org.crt"),
        k.join("shell-app01.phx2.fedoraproject.org.key")
    )
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(relflow_announce::SCHEMA).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
}

fn assert_schema_valid(v: &jsonschema::Validator, body: &Value) {
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "not schema-valid: {errors:#?}\n{body:#}");
}

/// The real `fedora-messaging consume` CLI on `url`, bound to `<PREFIX>.#`,
/// printing what it accepts (tests/py/fm_consume.py); returns once its queue
/// is bound.
fn fedora_messaging_consume(env: &Env, vhost: &Vhost, queue: &str) -> Proc {
    let conf = env.path("fedora-messaging.toml");
    std::fs::write(&conf, format!("amqp_url = \"{}\"\n[client_properties]\napp = \"relflow tests\"\n", vhost.url()))
        .unwrap();
    let callback = format!("{}:callback", script("fm_consume.py").display());
    let consumer = spawn_logged(
        env,
        "fm-consume",
        Command::new(venv("fedora-messaging"))
            .arg("--conf")
            .arg(&conf)
            .args(["consume", "--exchange", "amq.topic", "--queue-name", queue])
            .args(["--routing-key", &format!("{PREFIX}.#"), "--callback-file", &callback]),
    );
    wait_for(PATIENCE, "fedora-messaging consume to declare its queue", || {
        vhost.queues().iter().any(|q| q.name == queue).then_some(())
    });
    consumer
}

/// The one playbook every rule here runs.
fn ok_playbook(env: &Env) {
    env.playbook("ok.yml", &play("    - debug: msg=\"rule {{ relflow.rule }} for {{ topic }}\"\n"));
}

fn runs_by_rule(env: &Env, rule: &str) -> Vec<Value> {
    env.runs().into_iter().filter(|r| r["rule"] == rule).collect()
}

/// (rule, event) of the lines whose body is about one of `rules`, in order.
fn events_of<'a>(lines: impl Iterator<Item = &'a Value>, rules: &[&str]) -> Vec<(String, String)> {
    lines
        .filter(|b| rules.iter().any(|r| b["rule"] == *r))
        .map(|b| (b["rule"].as_str().unwrap().to_owned(), b["event"].as_str().unwrap().to_owned()))
        .collect()
}

fn expected_chain() -> Vec<(String, String)> {
    [("compose-finished", "started"), ("compose-finished", "succeeded"), ("sign", "started"), ("sign", "succeeded")]
        .iter()
        .map(|(r, e)| (r.to_string(), e.to_string()))
        .collect()
}

#[test]
fn a_chained_pair_is_announced_in_order_on_fedora_messaging_and_signed_fedmsg() {
    let vhost = Vhost::new("announce");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tables = format!(
        "{}\n[announce]\ntopic_prefix = \"{PREFIX}\"\n[announce.amqp]\nurl = \"{}\"\n\
         [announce.fedmsg]\nbind = \"tcp://127.0.0.1:{port}\"\n",
        fedmsg_tables(),
        vhost.url()
    );
    let warmup = "[[rule]]\nname = \"warmup\"\ntopic = \"relflow.test.warmup\"\nplaybook = \"ok.yml\"\n";
    let env = Env::with_tables("", &tables, &format!("{CHAINED_RULES}{warmup}"));
    ok_playbook(&env);
    let _consumer = fedora_messaging_consume(&env, &vhost, "relflow-test-announce");
    let _worker = Proc(env.spawn_worker(&[]));
    wait_for(PATIENCE, "the worker to bind the fedmsg socket", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let subscriber = Command::new(venv("python"))
        .arg(script("fedmsg_subscribe.py"))
        .arg(&endpoint)
        .arg(keys())
        .arg(format!("{PREFIX}."))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(env.path("fedmsg-sub.out")).unwrap())
        .stderr(std::fs::File::create(env.path("fedmsg-sub.err")).unwrap())
        .spawn()
        .unwrap();
    let _subscriber = Proc(subscriber);
    // ZeroMQ drops what is published before a subscription arrives; runs of
    // a warm-up rule show when it has.
    let fedmsg_bodies =
        || -> Vec<Value> { json_lines(&env, "fedmsg-sub").into_iter().map(|l| l["envelope"]["msg"].clone()).collect() };
    wait_for(PATIENCE, "a warm-up announcement over fedmsg", || {
        env.publish_body("relflow.test.warmup", &json!({"at": chrono::Utc::now().to_rfc3339()}));
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if fedmsg_bodies().iter().any(|b| b["rule"] == "warmup") {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    });

    let finished = fixture("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    env.ok(&["publish", finished.to_str().unwrap()]);
    let rules = ["compose-finished", "sign"];
    let amqp = wait_for(PATIENCE, "four events on fedora-messaging", || {
        let lines = json_lines(&env, "fm-consume");
        (events_of(lines.iter().map(|l| &l["body"]), &rules).len() >= 4).then_some(lines)
    });
    let amqp: Vec<&Value> = amqp.iter().filter(|l| rules.iter().any(|r| l["body"]["rule"] == *r)).collect();
    assert_eq!(events_of(amqp.iter().map(|l| &l["body"]), &rules), expected_chain(), "{amqp:#?}");

    let v = validator();
    for line in &amqp {
        let body = &line["body"];
        assert_schema_valid(&v, body);
        assert_eq!(line["id"], body["event_id"], "the message id is the event id");
        assert_eq!(line["topic"], format!("{PREFIX}.run.{}", body["event"].as_str().unwrap()));
        assert_eq!(line["severity"], 20, "INFO for started and succeeded");
        assert_eq!(line["headers"]["fedora_messaging_schema"], "base.message");
        assert!(line["headers"]["sent-at"].is_string());
        assert_eq!(line["headers"]["x-relflow-chain-depth"], body["chain_depth"]);
    }
    let (first_done, second) = (&amqp[1]["body"], &amqp[2]["body"]);
    assert_eq!(second["cause"]["message_id"], first_done["event_id"], "run 2 was caused by run 1's success");
    assert_eq!(second["cause"]["run_id"], first_done["run_id"]);
    assert_eq!((first_done["chain_depth"].as_u64(), second["chain_depth"].as_u64()), (Some(1), Some(2)));

    // The same four over fedmsg, each accepted by fedmsg.crypto.validate.
    let fedmsg = wait_for(PATIENCE, "four events over fedmsg", || {
        let lines = json_lines(&env, "fedmsg-sub");
        (events_of(lines.iter().map(|l| &l["envelope"]["msg"]), &rules).len() >= 4).then_some(lines)
    });
    let fedmsg: Vec<&Value> =
        fedmsg.iter().filter(|l| rules.iter().any(|r| l["envelope"]["msg"]["rule"] == *r)).collect();
    assert_eq!(events_of(fedmsg.iter().map(|l| &l["envelope"]["msg"]), &rules), expected_chain());
    for (line, over_amqp) in fedmsg.iter().zip(&amqp) {
        assert_eq!(line["valid"], true, "fedmsg.crypto.validate refused: {line:#}");
        let envelope = &line["envelope"];
        assert_eq!(envelope["msg"], over_amqp["body"], "the same event on both buses");
        assert_eq!(envelope["msg_id"], over_amqp["id"]);
        assert_eq!(line["frame"], envelope["topic"]);
        assert_eq!(envelope["crypto"], "x509");
    }

    // `relflow runs show` links the two runs both ways.
    let compose = first_done["run_id"].as_str().unwrap();
    let sign = second["run_id"].as_str().unwrap();
    let shown = env.json(&["runs", "show", sign]);
    assert_eq!(shown["triggered_by"]["id"], compose);
    assert_eq!(shown["triggered_by"]["rule"], "compose-finished");
    let text = env.ok(&["runs", "show", compose]);
    assert!(text.contains(&format!("triggered  run {sign} (rule sign, succeeded)")), "{text}");
    assert!(env.ok(&["runs", "show", sign]).contains(&format!("triggered by run {compose}")));
}

#[test]
fn a_worker_killed_between_record_and_publish_announces_once_after_restart() {
    let vhost = Vhost::new("announce-kill");
    let tables = format!("[queue]\nvisibility_timeout = \"2s\"\n[announce]\ntopic_prefix = \"{PREFIX}\"\n[announce.amqp]\nurl = \"{}\"\n", vhost.url());
    let env = Env::with_tables(
        "",
        &tables,
        "[[rule]]\nname = \"once\"\ntopic = \"relflow.test.once\"\nplaybook = \"ok.yml\"\n",
    );
    ok_playbook(&env);
    let _consumer = fedora_messaging_consume(&env, &vhost, "relflow-test-kill");
    env.publish_body("relflow.test.once", &json!({"n": 1}));

    let log = std::fs::File::create(env.path("worker-killed.log")).unwrap();
    let mut doomed = env
        .command(&["worker"])
        .env("RELFLOW_FAILPOINT", "after-record")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = wait_for(PATIENCE, "the failpoint to kill the worker", || doomed.try_wait().unwrap());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by the failpoint:\n{}", env.worker_logs());
    let runs = env.runs();
    assert_eq!((runs.len(), runs[0]["status"].as_str()), (1, Some("succeeded")), "recorded before the kill");
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    let status = env.json(&["status"]);
    assert_eq!(status["announcements"][0]["destination"], "amqp");
    assert_eq!(status["announcements"][0]["pending"], 1, "run.succeeded waits in the outbox: {status:#}");

    // A new worker: the message comes back and is skipped (already done),
    // and the outbox sends the event the dead worker could not.
    let mut worker = Proc(env.spawn_worker(&[]));
    let succeeded = |lines: &[Value]| -> usize {
        lines.iter().filter(|l| l["body"]["run_id"] == run_id.as_str() && l["body"]["event"] == "succeeded").count()
    };
    wait_for(PATIENCE, "run.succeeded after the restart", || {
        (succeeded(&json_lines(&env, "fm-consume")) >= 1).then_some(())
    });
    wait_for(PATIENCE, "the redelivered message to be settled", || {
        (env.json(&["status"])["queue"]["ready"] == 0 && env.json(&["status"])["queue"]["in_flight"] == 0).then_some(())
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    worker.0.wait().unwrap();
    wait_for(PATIENCE, "the consumer to take everything", || {
        vhost.queues().iter().all(|q| q.ready == 0 && q.unacked == 0).then_some(())
    });
    assert_eq!(succeeded(&json_lines(&env, "fm-consume")), 1, "exactly one run.succeeded");
    assert_eq!(env.runs().len(), 1, "the playbook did not run again");
    assert_eq!(env.json(&["status"])["announcements"], json!([]), "nothing left to announce");
}

#[test]
fn a_rule_that_triggers_itself_stops_at_max_chain_depth_with_a_dead_letter_naming_it() {
    let rule = r##"
[[rule]]
name = "loop"
topic = "#"
when = 'topic == "relflow.test.loop" || (topic == "relflow.run.succeeded" && msg.rule == "loop")'
playbook = "ok.yml"
"##;
    let env = Env::with_tables("", "[announce]\n", rule);
    ok_playbook(&env);
    env.publish_body("relflow.test.loop", &json!({"go": true}));
    env.drain();

    let runs = runs_by_rule(&env, "loop");
    assert_eq!(runs.len(), 5, "depths 1 to 5, then it stops: {runs:#?}\n{}", env.worker_logs());
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
    let dead = env.json(&["dead-letters", "list"]);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains("chain depth 6 is over [announce] max_chain_depth (5)"), "{reason}");
    assert_eq!(dead[0]["topic"], "relflow.run.succeeded");
    // Each run of the chain was started by the one before.
    let newest = env.json(&["runs", "show", runs[0]["id"].as_str().unwrap()]);
    assert_eq!(newest["triggered_by"]["id"], runs[1]["id"]);
    assert_eq!(newest["message"]["headers"]["x-relflow-chain-depth"], 4);
    let first = env.json(&["runs", "show", runs[4]["id"].as_str().unwrap()]);
    assert!(first["triggered_by"].is_null(), "an outside message started the first");
    assert_eq!(first["triggered"][0]["id"], runs[3]["id"]);
}

#[test]
fn dry_run_shows_the_announcements_a_message_would_cause() {
    let tables =
        format!("[announce]\ntopic_prefix = \"{PREFIX}\"\n[announce.amqp]\nurl = \"amqp://127.0.0.1:1/%2f\"\n");
    let env = Env::with_tables("", &tables, CHAINED_RULES);
    ok_playbook(&env);
    let finished = fixture("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    let text = env.ok(&["dry-run", finished.to_str().unwrap()]);
    assert!(text.contains(&format!("announces: {PREFIX}.run.started, then one of {PREFIX}.run.succeeded, ")), "{text}");
    assert!(text.contains("(to amqp)"), "{text}");
    assert!(text.contains("run.succeeded would start rule \"sign\" (chain depth 2)"), "{text}");
    let report = env.json(&["dry-run", finished.to_str().unwrap()]);
    let plan = &report[0]["runs"][0]["announces"];
    assert_eq!(plan["destinations"], json!(["amqp"]));
    assert_eq!(plan["triggers"][0]["rules"], json!(["sign"]));
    assert!(env.ok(&["runs", "list"]).contains("no runs"), "a dry run runs nothing");
}

/// Declares a durable queue on the node at `url` that keeps every event,
/// or (with `take`) takes everything it holds: (message id, body) each.
async fn announced_queue(url: &str, take: bool) -> Vec<(String, Value)> {
    use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare("announced".into(), QueueDeclareOptions::durable(), FieldTable::default()).await.unwrap();
    let bind = QueueBindOptions::default();
    ch.queue_bind("announced".into(), "amq.topic".into(), "relflow.run.#".into(), bind, FieldTable::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = match take {
        true => ch.basic_get("announced".into(), BasicGetOptions::default()).await.unwrap(),
        false => None,
    } {
        let id = m.delivery.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default();
        got.push((id, serde_json::from_slice(&m.delivery.data).unwrap()));
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    conn.close(200, "done".into()).await.unwrap();
    got
}

#[test]
fn runs_go_on_while_the_announce_broker_is_down_and_every_event_arrives_once_it_is_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut node = relflow_testkit::RabbitNode::start();
    let url = node.url();
    rt.block_on(announced_queue(&url, false));
    node.stop();

    let rule = "[[rule]]\nname = \"outage\"\ntopic = \"relflow.test.outage\"\nplaybook = \"ok.yml\"\n";
    let env = Env::with_tables("", &format!("[announce]\n[announce.amqp]\nurl = \"{url}\"\n"), rule);
    ok_playbook(&env);
    for n in 0..20 {
        env.publish_body("relflow.test.outage", &json!({"n": n}));
    }
    env.drain();
    let runs = env.runs();
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "a broker that is down fails no run: {runs:#?}");
    let status = env.json(&["status"]);
    let amqp = &status["announcements"][0];
    assert_eq!((amqp["destination"].as_str(), amqp["pending"].as_u64()), (Some("amqp"), Some(40)), "{status:#}");
    assert!(amqp["last_error"].as_str().unwrap_or_default().contains("cannot connect"), "{status:#}");

    node.restart();
    let mut worker = Proc(env.spawn_worker(&[]));
    wait_for(PATIENCE, "the outbox to empty once the broker is back", || {
        (env.json(&["status"])["announcements"] == json!([])).then_some(())
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    worker.0.wait().unwrap();

    let got = rt.block_on(announced_queue(&url, true));
    let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (40, 40), "all 40 events, none twice by event id");
    let v = validator();
    for (id, body) in &got {
        assert_schema_valid(&v, body);
        assert_eq!(body["event_id"], id.as_str());
    }
    for run in &runs {
        let kinds: Vec<&str> =
            got.iter().filter(|(_, b)| b["run_id"] == run["id"]).map(|(_, b)| b["event"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["started", "succeeded"], "run {} in order", run["id"]);
    }
}
