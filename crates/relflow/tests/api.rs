//! `relflow serve` from the outside: the real binary on a free port, real
//! HTTP requests, real playbook runs, and docs/openapi.json checked against
//! what the live server answers.

mod common;

use common::serve::{value, Answer, Serve, TOKEN};
use common::{play, Env};
use serde_json::{json, Value};

const RULES: &str = r#"
[[rule]]
name = "hello"
topic = "relflow.test.hello"
playbook = "hello.yml"

[[rule]]
name = "flaky"
topic = "relflow.test.flaky"
playbook = "flaky.yml"

[[rule]]
name = "missing"
topic = "relflow.test.missing"
playbook = "does-not-exist.yml"
"#;

fn env_with_playbooks() -> Env {
    let env = Env::new(RULES);
    env.playbook("hello.yml", &play("    - debug:\n        msg: \"hello from relflow: {{ msg.text }}\"\n"));
    // Fails until the marker file exists: the dead letter it leaves can be
    // replayed once "fixed".
    let marker = env.path("fixed");
    env.playbook("flaky.yml", &play(&format!("    - command: test -f {}\n", marker.display())));
    env
}

#[test]
fn messages_flow_through_serve_and_the_api_shows_runs_logs_dead_letters_and_metrics() {
    let s = Serve::start(env_with_playbooks(), &[]);
    assert_eq!(s.get("/healthz").status, 200);
    let ready = s.get_json("/readyz");
    assert_eq!(ready["ready"], true, "{ready}");

    let before = s.metrics();
    assert_eq!(value(&before, "relflow_messages_received_total", &[]), 0.0);

    // Mutations need the token.
    let hello = json!({"text": "<b>hi</b>"});
    for token in [None, Some("wrong-token")] {
        let a = s.call("POST", "/api/publish?topic=relflow.test.hello", token, Some(&hello.to_string()));
        assert_eq!(a.status, 401, "publish with {token:?}: {}", a.body);
        assert_eq!(a.header("www-authenticate"), Some("Bearer"));
        assert!(a.json()["error"].as_str().unwrap().contains("token"), "{}", a.body);
    }
    let bad = s.call("POST", "/api/publish", Some(TOKEN), Some("{\"not\": \"a message\"}"));
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.json()["error"].as_str().unwrap().contains("?topic="), "the error says what to do: {}", bad.body);

    let published = s.publish("relflow.test.hello", &hello);
    s.publish("relflow.test.nobody-listens", &json!({}));
    s.publish("relflow.test.flaky", &json!({"n": 1}));
    s.settle();

    // The run, its task results and its log.
    let runs = s.runs("rule=hello");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        (runs[0]["status"].as_str(), runs[0]["message_id"].as_str()),
        (Some("succeeded"), published["id"].as_str())
    );
    let id = runs[0]["id"].as_str().unwrap();
    let run = s.get_json(&format!("/api/runs/{id}"));
    assert_eq!(run["tasks"][0]["status"], "ok", "{run:#}");
    assert!(run["tasks"][0]["duration_ms"].is_u64(), "each task's duration: {run:#}");
    assert!(run.get("log").is_none(), "the log has its own endpoint");
    let short = s.get_json(&format!("/api/runs/{}", &id[..8]));
    assert_eq!(short["id"], id, "a unique prefix finds the run");
    assert_eq!(s.get("/api/runs/no-such-run").status, 404);
    let log = s.get(&format!("/api/runs/{id}/log"));
    assert!(log.content_type.starts_with("text/plain"), "{}", log.content_type);
    assert!(log.body.contains("hello from relflow: <b>hi</b>"), "{}", log.body);
    let stream = s.get(&format!("/api/runs/{id}/log/stream"));
    assert!(stream.content_type.starts_with("text/event-stream"), "{}", stream.content_type);
    assert!(stream.body.contains("event: log") && stream.body.contains("hello from relflow"), "{}", stream.body);
    assert!(stream.body.contains("event: end\ndata: {\"status\":\"succeeded\"}"), "{}", stream.body);

    // The failed run left a dead letter; replay needs the token.
    let dead = s.get_json("/api/dead-letters")["dead_letters"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0]["topic"], "relflow.test.flaky");
    let dead_id = dead[0]["id"].as_u64().unwrap();
    assert_eq!(s.call("POST", &format!("/api/dead-letters/{dead_id}/replay"), None, None).status, 401);
    assert_eq!(s.call("DELETE", "/api/dead-letters", None, None).status, 401);
    assert_eq!(s.call("POST", "/api/dead-letters/999999/replay", Some(TOKEN), None).status, 404);
    std::fs::write(s.env.path("fixed"), "").unwrap();
    let replayed = s.call("POST", &format!("/api/dead-letters/{dead_id}/replay"), Some(TOKEN), None);
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    s.settle();
    let flaky = s.runs("rule=flaky");
    assert_eq!(flaky.iter().map(|r| r["status"].as_str().unwrap()).collect::<Vec<_>>(), ["succeeded", "failed"]);
    assert!(s.get_json("/api/dead-letters")["dead_letters"].as_array().unwrap().is_empty());

    // Rules with their run counts.
    let rules = s.get_json("/api/rules");
    let flaky_rule = rules["rules"].as_array().unwrap().iter().find(|r| r["name"] == "flaky").unwrap().clone();
    assert_eq!((flaky_rule["runs"].as_u64(), flaky_rule["runs_by_status"]["failed"].as_u64()), (Some(2), Some(1)));

    // The counters moved with the messages.
    let after = s.metrics();
    let m = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels);
    assert_eq!(m("relflow_messages_received_total", &[("source", "http")]), 3.0);
    assert_eq!(m("relflow_messages_rejected_total", &[("source", "http"), ("reason", "decode")]), 1.0);
    assert_eq!(m("relflow_messages_noop_total", &[("source", "http")]), 1.0);
    assert_eq!(m("relflow_messages_matched_total", &[("source", "http")]), 3.0, "hello, flaky, flaky replayed");
    assert_eq!(m("relflow_runs_total", &[("rule", "hello"), ("outcome", "succeeded")]), 1.0);
    assert_eq!(m("relflow_runs_total", &[("rule", "flaky"), ("outcome", "failed")]), 1.0);
    assert_eq!(m("relflow_run_duration_seconds_count", &[("rule", "flaky")]), 2.0);
    assert_eq!(m("relflow_dead_letters_total", &[]), 1.0);
    assert_eq!(m("relflow_dead_letter_replays_total", &[]), 1.0);
    assert_eq!(m("relflow_queue_depth", &[("state", "ready")]), 0.0);
    assert!(after.samples.iter().any(|s| s.metric == "relflow_queue_depth"), "queue depth is exported");
    assert_eq!(m("relflow_worker_busy_slots", &[]), 0.0);
    assert_eq!(m("relflow_worker_slots", &[]), 2.0);

    // Purge, with the token.
    let purged = s.call("DELETE", "/api/dead-letters", Some(TOKEN), None);
    assert_eq!((purged.status, purged.json()["purged"].as_u64()), (200, Some(0)));
}

#[test]
fn runs_are_filtered_and_paginated() {
    let s = Serve::start(env_with_playbooks(), &[]);
    // A missing playbook records an error run at once (no ansible needed).
    for n in 0..4 {
        s.publish("relflow.test.missing", &json!({"n": n}));
    }
    s.publish("relflow.test.hello", &json!({"text": "x", "compose_id": "Fedora-Rawhide-20261124.n.0"}));
    s.settle();

    let page = |q: &str| s.get_json(&format!("/api/runs?{q}"));
    let all = page("limit=500");
    assert_eq!(all["total"], 5);
    let newest_first: Vec<Value> = all["runs"].as_array().unwrap().clone();
    let ids = |v: &Value| v["runs"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect::<Vec<_>>();

    let first = page("limit=2");
    let second = page("limit=2&offset=2");
    let last = page("limit=2&offset=4");
    assert_eq!(
        (first["total"].as_u64(), first["limit"].as_u64(), second["offset"].as_u64()),
        (Some(5), Some(2), Some(2))
    );
    let mut paged = ids(&first);
    paged.extend(ids(&second));
    paged.extend(ids(&last));
    assert_eq!(paged, newest_first.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(), "pages tile the list");
    assert_eq!(ids(&last).len(), 1);
    assert!(ids(&page("offset=10")).is_empty());

    assert_eq!(page("status=error")["total"], 4);
    assert_eq!(page("status=succeeded&rule=hello")["total"], 1);
    assert_eq!(page("rule=missing&status=succeeded")["total"], 0);
    assert_eq!(page("topic=relflow.test.hello")["total"], 1);
    // Topic patterns, as in rules.
    assert_eq!(page("topic=relflow.test.*")["total"], 5);
    assert_eq!(page("topic=relflow.%23")["total"], 5);
    assert_eq!(page("topic=*.*.missing")["total"], 4);
    assert_eq!(page("topic=relflow.*")["total"], 0, "`*` is one word");
    // Search over the message body, whole or by prefix, with the subject.
    let found = page("search=Fedora-Rawhide-20261124.n.0");
    assert_eq!((found["total"].as_u64(), found["runs"][0]["rule"].as_str()), (Some(1), Some("hello")), "{found}");
    assert_eq!(found["runs"][0]["subject"], "test.hello", "an unknown topic's subject is its last two words");
    assert_eq!(page("search=fedora-rawhide&status=succeeded")["total"], 1);
    assert_eq!(page("search=Fedora-Rawhide-20261125")["total"], 0);
    assert_eq!(page("search=fedora-rawhide&rule=missing")["total"], 0);
    assert_eq!(page("since=1h")["total"], 5);
    assert_eq!(page("until=2000-01-01T00:00:00Z")["total"], 0);
    assert_eq!(
        page(&format!("since={}", urlencode(&(chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339())))["total"],
        0
    );
    let error = &newest_first.iter().find(|r| r["status"] == "error").unwrap();
    assert!(error["error"].as_str().unwrap().contains("does not exist"), "{error}");

    for (q, says) in [
        ("status=bogus", "unknown status"),
        ("limit=0", "limit"),
        ("since=yesterday-ish", "since"),
        ("since=99999999999d", "too long ago"),
        ("colour=red", "filters are"),
        ("search=%21%3F", "no word to look for"),
        ("topic=relflow.te*", "whole words"),
    ] {
        let a = s.get(&format!("/api/runs?{q}"));
        assert_eq!(a.status, 400, "{q}: {}", a.body);
        assert!(a.json()["error"].as_str().unwrap().contains(says), "{q}: {}", a.body);
    }
    let overflow = s.get("/api/stats/runs-per-hour?since=99999999999d");
    assert_eq!(overflow.status, 400, "{}", overflow.body);
    let hours = s.get_json("/api/stats/runs-per-hour?since=2h");
    let total: u64 = hours["hours"].as_array().unwrap().iter().map(|h| h["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 5, "{hours}");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[test]
fn reads_can_require_the_token_and_health_stays_open() {
    let env = env_with_playbooks();
    let text = std::fs::read_to_string(&env.config).unwrap();
    // [http] goes before the first [[rule]] table.
    let text = text.replacen("[[rule]]", "[http]\nprotect_reads = true\nworker = false\n\n[[rule]]", 1);
    std::fs::write(&env.config, text).unwrap();
    let s = Serve::start(env, &[]);
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
    assert_eq!(s.get("/").status, 200, "the page itself holds no data");
    for path in ["/api/runs", "/api/queue", "/api/dead-letters", "/api/rules", "/metrics"] {
        assert_eq!(s.get(path).status, 401, "{path}");
        assert_eq!(s.call("GET", path, Some(TOKEN), None).status, 200, "{path}");
    }
    assert_eq!(s.call("GET", "/api/info", Some(TOKEN), None).json()["worker"], false, "worker = false in [http]");
}

#[test]
fn the_page_is_served_so_message_text_can_never_run_as_script() {
    let s = Serve::start(env_with_playbooks(), &["--no-worker"]);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("<script src=\"/assets/app.js\""), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap_or_default().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "inline script is blocked: {csp}");
    let script = s.get("/assets/app.js");
    assert!(script.content_type.starts_with("text/javascript"));
    assert!(
        !script.body.contains("innerHTML") && !script.body.contains("insertAdjacentHTML"),
        "values are set as text only"
    );
    assert_eq!(s.get("/assets/style.css").status, 200);
    // Logs and JSON are never sniffed into HTML.
    assert_eq!(s.get("/api/runs").header("x-content-type-options"), Some("nosniff"));
    // With --no-worker the message waits on the queue.
    s.publish("relflow.test.hello", &json!({"text": "</pre><script>alert(1)</script>"}));
    assert_eq!(s.get_json("/api/queue")["depth"]["ready"], 1);
    assert_eq!(s.get_json("/api/info")["worker"], false);
}

#[test]
fn the_openapi_description_matches_the_live_server() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo_root().join("docs/openapi.json")).unwrap()).unwrap();
    let s = Serve::start(env_with_playbooks(), &[]);
    assert_eq!(s.get_json("/api/openapi.json"), doc, "the server serves the checked-in description");
    // A run (error: missing playbook) and the dead letter it leaves.
    s.publish("relflow.test.missing", &json!({"n": 1}));
    s.settle();
    let run_id = s.runs("")[0]["id"].as_str().unwrap().to_owned();
    let msg_id = s.runs("")[0]["message_id"].as_str().unwrap().to_owned();
    let dead_id = s.get_json("/api/dead-letters")["dead_letters"][0]["id"].to_string();

    let served = [
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
        ("get", "/api/info"),
        ("get", "/api/runs"),
        ("get", "/api/runs/{id}"),
        ("get", "/api/runs/{id}/log"),
        ("get", "/api/runs/{id}/log/stream"),
        ("get", "/api/stats/runs-per-hour"),
        ("get", "/api/queue"),
        ("get", "/api/rules"),
        ("get", "/api/batches"),
        ("get", "/api/timers"),
        ("get", "/api/workers"),
        ("get", "/api/dead-letters"),
        ("get", "/api/audit"),
        ("post", "/api/dead-letters/{id}/replay"),
        ("delete", "/api/dead-letters"),
        ("post", "/api/publish"),
        ("post", "/api/runs/{id}/rerun"),
        ("post", "/api/runs/{id}/cancel"),
        ("post", "/api/runs/{id}/approve"),
        ("post", "/api/runs/{id}/deny"),
        ("get", "/api/messages/{id}/history"),
    ];
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|k| ["get", "post", "delete"].contains(&k.as_str())) {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut expected: Vec<(String, String)> = served.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    documented.sort();
    assert_eq!(documented, expected, "docs/openapi.json lists exactly the served operations");

    for (method, path) in served {
        let op = &doc["paths"][path][method];
        let id = match path {
            p if p.contains("dead-letters") => dead_id.as_str(),
            p if p.contains("messages") => msg_id.as_str(),
            _ => run_id.as_str(),
        };
        let concrete = path.replace("{id}", id);
        let (url, body) = match path {
            "/api/publish" => (format!("{concrete}?topic=relflow.test.openapi"), Some("{\"k\": 1}")),
            _ => (concrete, None),
        };
        let mutating = method != "get";
        if mutating {
            let a = s.call(&method.to_uppercase(), &url, None, body);
            check_response(&doc, op, &a, &format!("{method} {path} without token"));
            assert_eq!(a.status, 401);
        }
        let a = s.call(&method.to_uppercase(), &url, Some(TOKEN), body);
        // The one run has ended (and never awaited approval): cancelling,
        // approving or denying it is a documented conflict.
        let conflict = ["/cancel", "/approve", "/deny"].iter().any(|end| path.ends_with(end));
        let want = if conflict { 409..410 } else { 200..300 };
        assert!(want.contains(&a.status), "{method} {path}: {} {}", a.status, a.body);
        check_response(&doc, op, &a, &format!("{method} {path}"));
    }
    // An error answer is documented too.
    let a = s.get("/api/runs/no-such-run");
    check_response(&doc, &doc["paths"]["/api/runs/{id}"]["get"], &a, "get a missing run");
}

/// The status is documented for the operation, the content type matches, and
/// a JSON body fits the documented schema.
fn check_response(doc: &Value, op: &Value, a: &Answer, what: &str) {
    let spec = &op["responses"][a.status.to_string()];
    assert!(spec.is_object(), "{what}: status {} is not documented ({})", a.status, a.body);
    let Some(content) = spec["content"].as_object() else { return };
    let media = a.content_type.split(';').next().unwrap().trim();
    let schema = &content.get(media).unwrap_or_else(|| panic!("{what}: content type {media} not documented"))["schema"];
    if media == "application/json" {
        if let Err(e) = conforms(doc, schema, &a.json(), "$") {
            panic!("{what}: the answer does not fit docs/openapi.json: {e}\n{}", a.body);
        }
    }
}

/// A small JSON Schema check (the subset docs/openapi.json uses: $ref, type,
/// properties, required, items, enum, additionalProperties).
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").ok_or(format!("unsupported $ref {r}"))?;
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => return Err(format!("{at}: expected {t}, found {v}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""))) => {
            return Err(format!("{at}: expected one of {ts:?}, found {v}"))
        }
        _ => {}
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            return Err(format!("{at}: {v} not in {values:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(key.as_str().unwrap()) {
                return Err(format!("{at}: missing required {key}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, item) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => conforms(doc, s, item, &format!("{at}.{k}"))?,
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{at}: undocumented property {k:?}")),
                    s @ Value::Object(_) => conforms(doc, s, item, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// `[[http.token]]` tables, one per role, each secret in its own file.
fn env_with_roles() -> Env {
    let roles = [("vera", "viewer"), ("otto", "operator"), ("april", "approver")];
    let mut tables = String::new();
    for (name, role) in roles {
        tables.push_str(&format!(
            "[[http.token]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = [\"releng\"]\n\
             token_file = \"{name}.token\"\n"
        ));
    }
    let env = Env::with_tables("", &tables, RULES);
    for (name, _) in roles {
        std::fs::write(env.path(&format!("{name}.token")), format!("{name}-secret-0123456789\n")).unwrap();
    }
    env.playbook("hello.yml", &play("    - debug:\n        msg: hello\n"));
    env
}

fn secret(name: &str) -> String {
    format!("{name}-secret-0123456789")
}

#[test]
fn each_role_may_do_only_its_own_actions_and_every_attempt_is_audited() {
    let s = Serve::start(env_with_roles(), &[]);
    // A dead letter to replay (its playbook is missing).
    s.publish("relflow.test.missing", &json!({"n": 1}));
    s.settle();
    let dead = s.get_json("/api/dead-letters")["dead_letters"][0]["id"].to_string();
    let replay = format!("/api/dead-letters/{dead}/replay");
    let publish = "/api/publish?topic=relflow.test.hello";
    let (vera, otto, april) = (secret("vera"), secret("otto"), secret("april"));

    // Reads are open to every token (and to none, without protect_reads).
    for t in [&vera, &otto, &april] {
        assert_eq!(s.call("GET", "/api/runs", Some(t), None).status, 200);
    }
    // A viewer may change nothing; the 403 says which role it would take.
    for (method, path, needs) in [("POST", replay.as_str(), "operator"), ("DELETE", "/api/dead-letters", "admin")] {
        let a = s.call(method, path, Some(&vera), None);
        assert_eq!(a.status, 403, "viewer {method} {path}: {}", a.body);
        assert!(a.json()["error"].as_str().unwrap().contains(needs), "{}", a.body);
    }
    let a = s.call("POST", publish, Some(&vera), Some("{\"text\": \"v\"}"));
    let doc: Value = serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap();
    check_response(&doc, &doc["paths"]["/api/publish"]["post"], &a, "viewer publish");
    assert_eq!(a.status, 403);
    // An approver approves; it does not operate.
    assert_eq!(s.call("POST", publish, Some(&april), Some("{\"text\": \"a\"}")).status, 403);
    // An operator replays and publishes, but may not purge (admin only).
    assert_eq!(s.call("POST", &replay, Some(&otto), None).status, 200);
    assert_eq!(s.call("POST", publish, Some(&otto), Some("{\"text\": \"o\"}")).status, 202);
    assert_eq!(s.call("DELETE", "/api/dead-letters", Some(&otto), None).status, 403);
    // The shared [http] token is the admin.
    assert_eq!(s.call("DELETE", "/api/dead-letters", Some(TOKEN), None).status, 200);
    // A wrong token is no one: 401, and no audit entry (no name to write).
    assert_eq!(s.call("POST", &replay, Some("nobody-0123456789"), None).status, 401);
    s.settle();

    let expected = [
        ("[http] token", "publish", "ok"),
        ("vera", "replay", "denied"),
        ("vera", "purge", "denied"),
        ("vera", "publish", "denied"),
        ("april", "publish", "denied"),
        ("otto", "replay", "ok"),
        ("otto", "publish", "ok"),
        ("otto", "purge", "denied"),
        ("[http] token", "purge", "ok"),
    ];
    let export = s.env.ok(&["audit", "export", "--format", "jsonl"]);
    let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seen: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|e| (e["who"].as_str().unwrap(), e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, expected, "{export}");
    assert_eq!(lines[5]["target"], dead.as_str(), "the target is the dead letter's id");
    assert_eq!(lines[1]["role"], "viewer");
    assert!(lines.iter().all(|e| e["peer"].as_str().unwrap().starts_with("127.0.0.1:")), "{export}");
    // The API shows the same entries, and so does a later --since.
    let api = s.get_json("/api/audit")["entries"].as_array().unwrap().clone();
    assert_eq!(api, lines);
    assert!(s.env.ok(&["audit", "export", "--since", "1h"]).lines().count() == expected.len());
}

#[test]
fn a_token_config_mistake_is_refused_when_serve_starts() {
    let env = Env::with_tables("", "[[http.token]]\nname = \"x\"\nrole = \"viewer\"\ntoken_file = \"x.token\"\n", "");
    let out = env.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"x\" token_file") && err.contains("x.token"), "{err}");
    let env = Env::with_tables("", "[[http.token]]\nname = \"x\"\nrole = \"root\"\ntoken_file = \"x.token\"\n", "");
    let err = String::from_utf8_lossy(&env.run(&["check"]).stderr).into_owned();
    assert!(err.contains("viewer") && err.contains("admin"), "{err}");
}

#[test]
fn a_rerun_from_the_api_is_recorded_under_the_tokens_name() {
    let s = Serve::start(env_with_roles(), &[]);
    s.publish("relflow.test.hello", &json!({"n": 1}));
    s.settle();
    let first = s.runs("")[0].clone();
    let (id, msg_id) = (first["id"].as_str().unwrap(), first["message_id"].as_str().unwrap());
    assert_eq!(first["status"], "succeeded", "{first}");
    let a = s.call("POST", &format!("/api/runs/{id}/rerun"), Some(&secret("otto")), None);
    assert_eq!(a.status, 202, "{}", a.body);
    s.settle();
    let history = s.get_json(&format!("/api/messages/{msg_id}/history"))["history"].as_array().unwrap().clone();
    let rerun = history.iter().find(|e| e["kind"] == "rerun_requested").expect("the re-run is in the history");
    assert_eq!(rerun["by"], "otto", "{history:?}");
}
