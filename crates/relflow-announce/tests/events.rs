//! Every event body relflow can build, checked against the schema it ships
//! (docs/announce.schema.json), and where each event goes.

use chrono::{Duration, Utc};
use relflow_announce::{chain, plan, to_outbox, AmqpOptions, AnnounceOptions, EventKind, RunEvent, RunStart};
use relflow_core::{Config, Message};
use relflow_store::{RunOutcome, RunRecord, RunStatus, TaskCounts};
use serde_json::{json, Value};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(relflow_announce::SCHEMA).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).expect("the schema is valid JSON Schema")
}

fn assert_valid(v: &jsonschema::Validator, body: &Value) {
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{body:#}");
}

fn compose_message() -> Message {
    let bytes = std::fs::read(relflow_testkit::fixture(
        "messages/org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json",
    ))
    .unwrap();
    Message::decode(&bytes, "test", usize::MAX).unwrap()
}

fn start<'a>(msg: &'a Message, with_body: bool) -> RunStart<'a> {
    RunStart {
        run_id: "3f2a-run",
        rule: "compose-finished",
        playbook: "compose/finished.yml",
        attempt: 2,
        worker: "host:42",
        started_at: Utc::now() - Duration::seconds(90),
        msg,
        with_body,
    }
}

fn outcome(status: RunStatus, tasks: Value, error: Option<String>) -> RunOutcome {
    RunOutcome {
        status,
        exit_code: Some(2),
        counts: TaskCounts { ok: 3, changed: 1, failed: 1, ..Default::default() },
        tasks,
        log: "the log never travels".into(),
        error,
    }
}

#[test]
fn every_kind_of_event_matches_the_schema() {
    let v = validator();
    let msg = compose_message();
    let run = start(&msg, false);
    let started = RunEvent::started(&run);
    assert_valid(&v, &started.to_json());
    let mut broken = started.to_json();
    broken["status"] = "succeeded".into();
    assert!(!v.is_valid(&broken), "the schema is no rubber stamp: a started event is running");
    assert_eq!((started.event, started.status, started.chain_depth), (EventKind::Started, RunStatus::Running, 1));
    assert_eq!(started.cause.message_id, msg.id);
    assert_eq!(started.cause.topic, "org.fedoraproject.prod.pungi.compose.status.change");
    assert!(started.to_json()["cause"].get("body").is_none(), "no body unless the rule asks for it");

    let tasks = json!([
        {"task": "ok one", "host": "a", "status": "ok", "msg": null},
        {"task": "sync", "host": "b", "status": "failed", "msg": "x".repeat(5000)},
    ]);
    for status in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::TimedOut, RunStatus::Cancelled, RunStatus::Error]
    {
        let e = RunEvent::finished(&run, &outcome(status, tasks.clone(), Some("é".repeat(3000))), Utc::now());
        let body = e.to_json();
        assert_valid(&v, &body);
        assert_eq!(body["event"], EventKind::ended(status).as_str());
        assert!(!body.to_string().contains("the log never travels"));
        assert_eq!(body["failed_task"]["name"], "sync");
        assert!(body["error"].as_str().unwrap().ends_with("..."), "long text is cut");
        assert!(body["duration_seconds"].as_f64().unwrap() >= 90.0);
    }

    let with_body = RunEvent::started(&start(&msg, true)).to_json();
    assert_valid(&v, &with_body);
    assert_eq!(with_body["cause"]["body"]["compose_id"], msg.body["compose_id"], "announce_body = true");

    let last = RunRecord {
        id: "3f2a-run".into(),
        message_id: msg.id.clone(),
        topic: msg.topic.clone(),
        rule: "compose-finished".into(),
        playbook: "compose/finished.yml".into(),
        attempt: 3,
        status: RunStatus::Failed,
        exit_code: Some(2),
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
        counts: TaskCounts::default(),
        error: Some("task sync failed".into()),
        worker: "host:42".into(),
        subject: "Fedora-24-20151208.n.7 FINISHED".into(),
    };
    let dead = RunEvent::dead_lettered(&last, &msg, false, "rule \"compose-finished\" (attempt 3/3): exit 2");
    assert_valid(&v, &dead.to_json());
    assert_eq!(dead.event_id, relflow_announce::dead_letter_event_id(&msg.id, "compose-finished", 3));
}

#[test]
fn a_chained_run_points_at_the_event_that_started_it_one_level_deeper() {
    let v = validator();
    let msg = compose_message();
    let first = RunEvent::finished(&start(&msg, false), &outcome(RunStatus::Succeeded, json!([]), None), Utc::now());
    let new = first.to_new_event("org.fedoraproject.prod.relflow", Vec::new());
    assert_eq!(new.topic, "org.fedoraproject.prod.relflow.run.succeeded");
    assert_eq!(new.headers["fedora_messaging_schema"], "base.message");
    assert_eq!(new.headers["fedora_messaging_severity"], 20);
    assert_eq!(new.headers[chain::CHAIN_DEPTH_HEADER], 1);
    let as_msg = chain::new_message(&new);
    assert_eq!(as_msg.id, first.event_id);

    let second = RunEvent::started(&RunStart { run_id: "second", rule: "sign", ..start(&as_msg, false) });
    assert_valid(&v, &second.to_json());
    assert_eq!(second.cause.message_id, first.event_id);
    assert_eq!(second.cause.run_id.as_deref(), Some("3f2a-run"));
    assert_eq!(second.chain_depth, 2);
    // Someone else's body that only says `run_id` is not a relflow event.
    let mut impostor = Message::new("org.fedoraproject.prod.relflow.run.succeeded", Default::default(), "x").unwrap();
    impostor.body.insert("run_id".into(), "3f2a-run".into());
    assert_eq!(relflow_announce::reported_run(&impostor), None);
}

fn config() -> Config {
    let text = r#"
playbooks_dir = "p"
[announce]
topic_prefix = "org.fedoraproject.prod.relflow"
[[rule]]
name = "compose-finished"
topic = "org.fedoraproject.*.pungi.compose.status.change"
playbook = "compose.yml"
[[rule]]
name = "sign"
topic = "org.fedoraproject.prod.relflow.run.succeeded"
when = 'msg.rule == "compose-finished"'
playbook = "sign.yml"
"#;
    Config::from_toml(std::path::Path::new("/tmp/relflow.toml"), text).unwrap()
}

fn options(amqp: bool) -> AnnounceOptions {
    AnnounceOptions {
        topic_prefix: "org.fedoraproject.prod.relflow".into(),
        max_chain_depth: 5,
        max_pending: 10,
        amqp: amqp.then(|| AmqpOptions {
            url: "amqp://h".into(),
            exchange: "amq.topic".into(),
            tls: None,
            connection_name: "t".into(),
        }),
        fedmsg: None,
    }
}

#[test]
fn an_event_goes_to_the_buses_and_onto_the_queue_only_when_a_rule_wants_it() {
    let config = config();
    let msg = compose_message();
    let run = start(&msg, false);
    let succeeded = RunEvent::finished(&run, &outcome(RunStatus::Succeeded, json!([]), None), Utc::now());
    let failed = RunEvent::finished(&run, &outcome(RunStatus::Failed, json!([]), None), Utc::now());
    assert_eq!(to_outbox(&options(true), &config.rules, &succeeded).destinations, ["amqp", "queue"]);
    assert_eq!(to_outbox(&options(true), &config.rules, &failed).destinations, ["amqp"]);
    assert_eq!(to_outbox(&options(false), &config.rules, &failed).destinations, Vec::<String>::new());
}

#[test]
fn a_dry_run_plan_names_the_topics_destinations_and_the_rules_they_would_start() {
    let config = config();
    let msg = compose_message();
    let p = plan(&options(true), &config.rules, &config.rules[0], &msg, "compose.yml").unwrap();
    assert_eq!(p.started, "org.fedoraproject.prod.relflow.run.started");
    assert_eq!(p.destinations, ["amqp"]);
    assert_eq!(p.triggers.len(), 1, "{p:?}");
    assert_eq!((p.triggers[0].event, p.triggers[0].rules.clone()), (EventKind::Succeeded, vec!["sign".to_string()]));
    let text = p.to_string();
    assert!(text.contains("run.succeeded would start rule \"sign\" (chain depth 2)"), "{text}");
    let deep = AnnounceOptions { max_chain_depth: 1, ..options(true) };
    let p = plan(&deep, &config.rules, &config.rules[0], &msg, "compose.yml").unwrap();
    assert!(p.to_string().contains("would be dead-lettered instead of starting \"sign\": chain depth 2"), "{p}");
}
