//! `[[timer]]`s end to end: real worker processes racing for each slot, on
//! SQLite (two workers, one host) and on PostgreSQL + RabbitMQ (two "hosts":
//! two data dirs), real ansible-playbook; catch-up after downtime from the
//! store state a stopped fleet leaves; `relflow timers`, `check`, `status`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::{play, Env, Shared};
use relflow_store::{PgStore, RunStore, SqliteStore, TimerAdvance};
use relflow_testkit::wait_until;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(240);

/// `timers` and one rule for all their messages.
fn rules(timers: &str) -> String {
    format!("{timers}\n[[rule]]\nname = \"on-timer\"\ntopic = \"relflow.timer.*\"\nplaybook = \"tick.yml\"\n")
}

/// The rule's playbook: writes what it got to `<out>/<run id>.json`.
fn recorder(env: &Env, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    env.playbook(
        "tick.yml",
        &play(&format!(
            "    - copy:\n        dest: \"{}/{{{{ relflow.run_id }}}}.json\"\n        \
             content: \"{{{{ {{'msg': msg, 'msg_id': msg_id, 'topic': topic}} | to_json }}}}\"\n",
            out.display()
        )),
    );
}

/// What the recorder wrote, one value per run.
fn recorded(out: &Path) -> Vec<Value> {
    let Ok(dir) = std::fs::read_dir(out) else { return Vec::new() };
    dir.flatten().filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()).collect()
}

/// Runs per (timer, scheduled_at) of scheduled slots (operator fires left out).
fn runs_per_slot(out: &Path) -> BTreeMap<(String, String), usize> {
    let mut per = BTreeMap::new();
    for r in recorded(out).iter().filter(|r| !r["msg_id"].as_str().unwrap().contains("-fire-")) {
        let key =
            (r["msg"]["name"].as_str().unwrap().to_owned(), r["msg"]["scheduled_at"].as_str().unwrap().to_owned());
        *per.entry(key).or_insert(0) += 1;
    }
    per
}

fn stop(mut worker: Child) {
    use nix::sys::signal::{kill, Signal};
    kill(nix::unistd::Pid::from_raw(worker.id() as i32), Signal::SIGTERM).unwrap();
    worker.wait().unwrap();
}

/// How many times the workers' logs say they queued `timer`'s `slot`.
fn fired_lines(logs: &str, timer: &str, slot: &str) -> usize {
    logs.lines().filter(|l| l.contains("timer fired") && l.contains(&format!("timer={timer} slot={slot} "))).count()
}

const EVERY_MINUTE: &str = "[[timer]]\nname = \"tick\"\nschedule = \"* * * * *\"\nbody = { release = \"rawhide\" }\n";

#[test]
fn one_run_per_slot_with_two_workers_on_sqlite_and_two_hosts_on_postgresql() {
    let out = tempfile::tempdir().unwrap();
    let (lite_out, pg_out) = (out.path().join("sqlite"), out.path().join("pg"));
    let lite = Env::new(&rules(EVERY_MINUTE));
    let shared = Shared::new();
    let hosts = [(), ()].map(|_| Env::with_tables("", &shared.tables(), &rules(EVERY_MINUTE)));
    recorder(&lite, &lite_out);
    hosts.iter().for_each(|h| recorder(h, &pg_out));
    let workers =
        vec![lite.spawn_worker(&[]), lite.spawn_worker(&[]), hosts[0].spawn_worker(&[]), hosts[1].spawn_worker(&[])];
    wait_until(LONG, "two slots run on each store", || {
        runs_per_slot(&lite_out).len() >= 2 && runs_per_slot(&pg_out).len() >= 2
    });
    workers.into_iter().for_each(stop);
    let pg_logs = hosts[0].worker_logs() + &hosts[1].worker_logs();
    for (out, env, logs) in [(&lite_out, &lite, lite.worker_logs()), (&pg_out, &hosts[0], pg_logs)] {
        let per = runs_per_slot(out);
        assert!(per.values().all(|n| *n == 1), "exactly one run per slot: {per:?}\n{logs}");
        for (_, slot) in per.keys() {
            assert_eq!(fired_lines(&logs, "tick", slot), 1, "one message for slot {slot}:\n{logs}");
        }
        let runs = env.runs();
        assert_eq!(runs.len(), per.len(), "{runs:#?}");
        assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
        let r = &recorded(out)[0];
        assert_eq!(r["topic"], "relflow.timer.tick");
        assert_eq!(r["msg"]["release"], "rawhide", "the static body: {r}");
        let (scheduled, fired) = (time(&r["msg"]["scheduled_at"]), time(&r["msg"]["fired_at"]));
        assert_eq!(scheduled.timestamp() % 60, 0, "a slot is on the minute: {r}");
        assert!(fired >= scheduled, "{r}");
    }
    let list = hosts[1].json(&["timers", "list"]);
    assert_eq!(list[0]["name"], "tick");
    assert_eq!(list[0]["missed"], 0, "{list:#}");
    assert!(list[0]["last_fire"]["slot"].is_string(), "{list:#}");
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

const CATCH_UP: &str = "
[[timer]]
name = \"t-skip\"
schedule = \"* * * * *\"
catch_up = \"skip\"

[[timer]]
name = \"t-latest\"
schedule = \"* * * * *\"
catch_up = \"latest\"

[[timer]]
name = \"t-all\"
schedule = \"* * * * *\"
catch_up = \"all\"
";

/// The three timers as a fleet stopped for 3 slots leaves them: the last
/// slot handled 3 minutes before the current one. Returns that slot.
async fn seed(store: &dyn RunStore) -> DateTime<Utc> {
    // Far from the next minute, so the workers start before a 4th slot is due.
    while Utc::now().timestamp() % 60 > 30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let last = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() - TimeDelta::minutes(3);
    for name in ["t-skip", "t-latest", "t-all"] {
        let seen = TimerAdvance {
            timer: name.into(),
            from: None,
            to: last,
            fire: Vec::new(),
            claimant: "stopped-fleet".into(),
            lease: Duration::from_secs(60),
        };
        assert_eq!(store.advance_timer(&seen).await.unwrap(), Some(Vec::new()));
    }
    last
}

fn catch_up_after_downtime(env: Env, out: &Path, last: DateTime<Utc>) {
    recorder(&env, out);
    let missed: Vec<Value> =
        env.json(&["timers", "list"]).as_array().unwrap().iter().map(|t| t["missed"].clone()).collect();
    assert_eq!(missed, [3, 3, 3], "3 slots missed while no worker ran");
    let workers = [env.spawn_worker(&[]), env.spawn_worker(&[])];
    let slot = |n: i64| (last + TimeDelta::minutes(n)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let key = |t: &str, n| (t.to_owned(), slot(n));
    let caught_up = |per: &BTreeMap<(String, String), usize>| {
        (1..=3).all(|n| per.contains_key(&key("t-all", n))) && per.contains_key(&key("t-latest", 3))
    };
    wait_until(LONG, "the catch-up runs", || caught_up(&runs_per_slot(out)));
    // The skip timer was decided in the same pass: its last slot moved on.
    wait_until(LONG, "t-skip to pass its missed slots", || {
        let list = env.json(&["timers", "list"]);
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "t-skip" && time(&t["last_slot"]) >= last + TimeDelta::minutes(3))
    });
    let fired = env.ok(&["timers", "fire", "t-skip"]);
    assert!(fired.contains("fired t-skip: message relflow-timer-t-skip-fire-"), "{fired}");
    wait_until(LONG, "the operator's fire to run", || {
        recorded(out).iter().any(|r| r["msg_id"].as_str().unwrap().starts_with("relflow-timer-t-skip-fire-"))
    });
    workers.into_iter().for_each(stop);
    let logs = env.worker_logs();
    // Only the slots up to the seeded downtime: a 4th may have come due since, on schedule.
    let per: BTreeMap<_, _> = runs_per_slot(out).into_iter().filter(|((_, s), _)| *s <= slot(3)).collect();
    let expected: BTreeMap<_, _> =
        [key("t-all", 1), key("t-all", 2), key("t-all", 3), key("t-latest", 3)].into_iter().map(|k| (k, 1)).collect();
    assert_eq!(per, expected, "skip: none, latest: the newest, all: each, once\n{logs}");
    for (timer, slot) in expected.keys() {
        assert_eq!(fired_lines(&logs, timer, slot), 1, "{timer} {slot} queued once:\n{logs}");
    }
    let audit = env.ok(&["audit", "export"]);
    assert!(audit.contains("\"action\":\"timer.fire\"") && audit.contains("t-skip fire-"), "{audit}");
    let status = env.json(&["status"]);
    assert_eq!(status["timers"]["count"], 3, "{status:#}");
    let list = env.json(&["timers", "list"]);
    assert_eq!(list[0]["last_fire"]["manual"], true, "{list:#}");
    assert_fits_the_api_description(&list);
}

/// `relflow timers list --json` is what `GET /api/timers` serves: it fits
/// docs/openapi.json.
fn assert_fits_the_api_description(list: &Value) {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo_root().join("docs/openapi.json")).unwrap()).unwrap();
    let schema = &doc["paths"]["/api/timers"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let validator = jsonschema::options().should_validate_formats(true).build(schema).unwrap();
    let body = serde_json::json!({ "timers": list });
    let errors: Vec<String> = validator.iter_errors(&body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{body:#}");
}

#[test]
fn catch_up_after_downtime_on_sqlite() {
    let out = tempfile::tempdir().unwrap();
    let env = Env::new(&rules(CATCH_UP));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last = rt.block_on(async {
        std::fs::create_dir_all(env.path("data")).unwrap();
        seed(&SqliteStore::open(env.path("data/relflow.sqlite3")).unwrap()).await
    });
    catch_up_after_downtime(env, out.path(), last);
}

#[test]
fn catch_up_after_downtime_on_postgresql() {
    let out = tempfile::tempdir().unwrap();
    let shared = Shared::new();
    let env = Env::with_tables("", &shared.tables(), &rules(CATCH_UP));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last = rt.block_on(async { seed(&PgStore::connect(&shared.db.url()).await.unwrap()).await });
    catch_up_after_downtime(env, out.path(), last);
}

#[test]
fn check_lists_timers_and_warns_when_no_rule_takes_their_messages() {
    let env = Env::new(&format!(
        "{EVERY_MINUTE}\n[[rule]]\nname = \"other\"\ntopic = \"org.fedoraproject.#\"\nplaybook = \"x.yml\"\n"
    ));
    env.playbook("x.yml", &play("    - debug: msg=hi\n"));
    let out = env.ok(&["check"]);
    assert!(out.contains("1 timer(s):") && out.contains("tick") && out.contains("-> relflow.timer.tick"), "{out}");
    assert!(
        out.contains(
            "warning: timer \"tick\": no rule's topic matches relflow.timer.tick, so its messages will be no-ops"
        ),
        "{out}"
    );
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config).unwrap() + "\n[[timer]]\nname = \"x\"\nschedle = \"* * * * *\"\n",
    )
    .unwrap();
    let bad = env.run(&["check"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success()
            && err.contains("unknown key `schedle` in [[timer]]")
            && err.contains("did you mean `schedule`?"),
        "{err}"
    );
}
