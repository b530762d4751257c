//! Passwords in `[queue] url`, `[store] url` and an AMQP `[[source]] url`
//! never reach stdout or stderr: not in `relflow check` (text or JSON), not
//! in the errors of commands that cannot connect, not in the bridge's logs.
//! Every address points at port 1, where nothing listens, so connects fail
//! at once (the queue still retries for its reconnect timeout).

mod common;

use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::{describe, wait_for, Env};

/// Three pieces no other part of the output has; each would show if a
/// redactor cut the password at an `@` or a `:`.
const PIECES: [&str; 3] = ["Pw1", "Pw2", "Pw3"];

fn assert_no_password(what: &str, text: &str) {
    for piece in PIECES {
        assert!(!text.contains(piece), "{what} shows {piece:?}:\n{text}");
    }
}

fn assert_clean(what: &str, out: &Output) {
    assert_no_password(what, &describe(out));
}

fn spawn(env: &Env, args: &[&str], stderr: Stdio) -> Child {
    env.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn().unwrap()
}

#[test]
fn passwords_stay_out_of_check_and_failed_connects() {
    let env = Env::with_tables(
        "",
        "[queue]\nurl = \"amqp://relflow:Pw1@Pw2:Pw3@127.0.0.1:1/%2f\"\n\n\
         [store]\nurl = \"postgres://relflow:Pw1@Pw2:Pw3@127.0.0.1:1/relflow?connect_timeout=2\"\n",
        "",
    );
    // The two commands that wait out the queue's reconnect timeout run side by side.
    let publish = spawn(&env, &["-v", "publish", "--topic", "t.x", "{}"], Stdio::piped());
    let status = spawn(&env, &["-v", "status"], Stdio::piped());

    let check = env.run(&["check"]);
    assert_clean("check", &check);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("queue:         amqp://relflow:***@127.0.0.1:1/%2f"), "{}", describe(&check));
    assert!(text.contains("store:         postgres://relflow:***@127.0.0.1:1/relflow"), "{}", describe(&check));
    let check = env.run(&["check", "--json"]);
    assert_clean("check --json", &check);
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["queue"], "amqp://relflow:***@127.0.0.1:1/%2f");
    assert_eq!(json["store"], "postgres://relflow:***@127.0.0.1:1/relflow?connect_timeout=2");

    let runs = env.run(&["-v", "runs", "list"]);
    assert!(!runs.status.success(), "{}", describe(&runs));
    assert!(String::from_utf8_lossy(&runs.stderr).contains("relflow:***@127.0.0.1:1"), "{}", describe(&runs));
    assert_clean("runs list", &runs);

    for (what, child) in [("publish", publish), ("status", status)] {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{what}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot connect to amqp://relflow:***@127.0.0.1:1/%2f"), "{what}: {}", describe(&out));
        assert_clean(what, &out);
    }
}

#[test]
fn passwords_stay_out_of_the_bridge_log_and_keyword_store_urls() {
    let env = Env::with_tables(
        "",
        "[store]\nurl = \"host=127.0.0.1 port=1 user=relflow password='Pw1@Pw2 :Pw3' connect_timeout=2\"\n\n\
         [[source]]\ntype = \"amqp\"\nname = \"bus\"\nurl = \"amqp://relflow:Pw1@Pw2:Pw3@127.0.0.1:1/%2f\"\n",
        "",
    );
    let check = env.run(&["check", "--json"]);
    assert_clean("check --json", &check);
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(json["store"], "host=127.0.0.1 port=1 user=relflow password=*** connect_timeout=2");
    let runs = env.run(&["runs", "list"]);
    assert!(!runs.status.success(), "{}", describe(&runs));
    assert_clean("runs list", &runs);

    let log_path = env.path("bridge.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut bridge = spawn(&env, &["-v", "bridge"], log.into());
    let log = wait_for(Duration::from_secs(30), "the bridge to fail to connect twice", || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        (log.matches("reconnecting").count() >= 2).then_some(log)
    });
    bridge.kill().unwrap();
    bridge.wait().unwrap();
    assert!(log.contains("cannot connect to amqp://relflow:***@127.0.0.1:1/%2f"), "{log}");
    assert_no_password("bridge log", &log);
}
