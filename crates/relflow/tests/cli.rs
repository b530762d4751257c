//! The CLI as a shell user meets it: pipes, terminals, typos.

mod common;

use common::Env;

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let env = Env::new("");
    let fixture = common::fixture("org.fedoraproject.prod.bodhi.update.comment.json");
    // Thousands of lines: `head -1` closes the pipe long before the end.
    let files = vec![format!("{:?}", fixture.display().to_string()); 50].join(" ");
    let cmd = env.command(&[]);
    let relflow = format!("{:?}", cmd.get_program());
    let config = format!("{:?}", env.config.display().to_string());
    let script = format!("{relflow} -c {config} dry-run {files} | head -1 && {relflow} --help | head -1");
    let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "one line from each");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let env = Env::new("");
    let out = env.run(&["-v", "status"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert!(!out.stderr.is_empty(), "-v logs something on stderr");
    assert!(!out.stderr.contains(&0x1b), "no ANSI escapes off a terminal:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_mistyped_rule_is_an_error_not_an_empty_list() {
    let env = Env::new("[[rule]]\nname = \"compose-finished\"\ntopic = \"a.b\"\nplaybook = \"p.yml\"\n");
    let out = env.run(&["runs", "list", "--rule", "compose-finishd"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no rule named \"compose-finishd\"") && stderr.contains("compose-finished"), "{stderr}");
    assert!(env.ok(&["runs", "list", "--rule", "compose-finished"]).contains("no runs"));
}

#[test]
fn a_since_before_the_calendar_is_an_error_not_a_panic() {
    let env = Env::new("");
    let out = env.run(&["runs", "list", "--since", "99999999999d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--since") && stderr.contains("too long ago") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn control_characters_in_a_message_id_are_escaped_in_output_and_logs() {
    let env = Env::new("");
    let forged = "x\r\n2026-01-01T00:00:00Z ERROR forged line \u{1b}[2J";
    let file = env.path("hostile.json");
    let msg = serde_json::json!({"topic": "a.b", "msg_id": forged, "msg": {"n": 1}, "timestamp": 1_700_000_000});
    std::fs::write(&file, msg.to_string()).unwrap();
    let out = env.run(&["publish", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r"x\r\n2026-01-01T00:00:00Z ERROR forged line \u{1b}[2J"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    // The worker logs the id (no rule matches: a no-op) in text logs.
    let out = env.run(&["worker", "--drain"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains(r"x\r\n2026"), "{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(!stderr.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")), "{stderr}");
}

#[test]
fn a_wrong_broker_password_is_one_clear_error_not_retries() {
    let vhost = relflow_testkit::Vhost::new("cli");
    let url = vhost.url().replacen("guest:guest@", "guest:wrong@", 1);
    assert_ne!(url, vhost.url(), "the vhost URL logs in as guest:guest");
    let env = Env::with_tables("", &format!("[queue]\nurl = {url:?}\n"), "");
    for args in [&["status"][..], &["worker", "--drain"]] {
        let out = env.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("ACCESS_REFUSED") && stderr.contains("check the user, password and vhost"), "{stderr}");
        assert!(!stderr.contains("wrong@"), "the password is never printed: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("ACCESS")).collect();
        assert_eq!(lines.len(), 1, "said once, not once per retry: {stderr}");
    }
}

#[test]
fn check_connect_tries_the_queue_and_the_store_and_says_which_failed() {
    let fine = Env::new("");
    let out = fine.ok(&["check", "--connect"]);
    assert!(out.contains("queue connect: connected (0 ready, 0 dead)"), "{out}");
    assert!(out.contains("store connect: connected (0 run(s) recorded)"), "{out}");

    let vhost = relflow_testkit::Vhost::new("check");
    let wrong = vhost.url().replacen("guest:guest@", "guest:wrong@", 1);
    let db = relflow_testkit::PgDatabase::new();
    let no_db = db.url().replace(db.name(), &format!("nosuch_{}", relflow_testkit::unique_suffix()));
    let env = Env::with_tables("", &format!("[queue]\nurl = {wrong:?}\n\n[store]\nurl = {no_db:?}\n"), "");
    let out = env.run(&["check", "--connect"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("queue connect: cannot connect") && stdout.contains("store connect: cannot connect"));
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors[0].starts_with("error: queue: ") && errors[0].contains("ACCESS_REFUSED"), "{stderr}");
    assert!(errors[1].starts_with("error: store: ") && errors[1].contains("does not exist"), "{stderr}");

    let good =
        Env::with_tables("", &format!("[queue]\nurl = {:?}\n\n[store]\nurl = {:?}\n", vhost.url(), db.url()), "");
    let json = good.json(&["check", "--connect"]);
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(json["connections"]["queue"], serde_json::json!({"ok": true, "detail": "0 ready, 0 dead"}), "{json:#}");
    assert_eq!(json["connections"]["store"]["ok"], true, "{json:#}");
}

#[test]
fn runs_are_found_by_what_their_message_was_about() {
    let env = Env::new("[[rule]]\nname = \"any\"\ntopic = \"org.fedoraproject.#\"\nplaybook = \"ok.yml\"\n");
    env.playbook("ok.yml", &common::play("    - debug: msg=ok\n"));
    for name in [
        "org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json",
        "org.fedoraproject.prod.buildsys.tag--signed.json",
    ] {
        env.ok(&["publish", common::fixture(name).to_str().unwrap()]);
    }
    env.drain();
    assert_eq!(env.runs().len(), 2);

    let compose = env.ok(&["runs", "list", "--search", "Fedora-24-20151208.n.7"]);
    assert_eq!(compose.lines().count(), 1, "{compose}");
    assert!(compose.contains("Fedora-24-20151208.n.7 FINISHED"), "the subject is listed: {compose}");
    let tag = env.ok(&["runs", "list", "--search", "template-glib-3.25"]);
    assert!(tag.contains("template-glib-3.25.92-1.fc28 tagged f28") && tag.lines().count() == 1, "{tag}");
    assert!(env.ok(&["runs", "list", "--search", "Fedora-25"]).contains("no runs"));
    let pattern = env.ok(&["runs", "list", "--topic", "org.fedoraproject.*.buildsys.#"]);
    assert!(pattern.lines().count() == 1 && pattern.contains("tagged"), "{pattern}");

    let out = env.run(&["runs", "list", "--search", "!"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no word to look for"), "{stderr}");
}
