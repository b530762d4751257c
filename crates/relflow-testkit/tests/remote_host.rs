//! The remote host does what tests using it rely on, seen from a real ssh
//! client: key logins as its own users only, sudo exactly as its drop-ins
//! say, its processes visible, and nothing of it left after drop.

use std::process::Command;
use std::time::Duration;

use relflow_testkit::{wait_until, RemoteHost};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn exists(user: &str) -> bool {
    Command::new("getent").args(["passwd", user]).output().unwrap().status.success()
}

#[test]
fn users_log_in_with_their_key_and_sudo_only_what_their_drop_in_allows() {
    let host = RemoteHost::start();
    let (alice, bob) = (host.add_user("alice"), host.add_user("bob"));
    let who = host.ssh(&alice, &["id", "-un"]);
    assert!(who.status.success(), "{}\n{}", String::from_utf8_lossy(&who.stderr), host.sshd_log());
    assert_eq!(stdout(&who), alice.name());
    // The words arrive as they were, one argument each.
    let echo = host.ssh(&alice, &["printf", "%s|", "a b", "it's", "$HOME", ";id"]);
    assert_eq!(stdout(&echo), "a b|it's|$HOME|;id|");

    // Bob's key does not open Alice's account.
    let mut opts = host.ssh_options(&alice);
    let i = opts.iter().position(|o| o == "-i").unwrap();
    opts[i + 1] = bob.key().display().to_string();
    let out = Command::new("ssh").args(&opts).arg(host.address().to_string()).arg("true").output().unwrap();
    assert!(!out.status.success(), "logged in with someone else's key");

    // sudo: nothing until a drop-in allows one command, then only that one.
    let tool = host.install("bin/hello", "#!/bin/sh\necho \"hello $1 from $(id -un)\"\n", 0o755);
    let tool_s = tool.to_str().unwrap();
    assert!(!host.ssh(&alice, &["sudo", "-n", tool_s, "x"]).status.success());
    let rule = format!("{} ALL=(root) NOPASSWD: {tool_s} *\n", alice.name());
    let drop_in = host.install_sudoers(&alice, &rule);
    let out = host.ssh(&alice, &["sudo", "-n", tool_s, "world"]);
    assert_eq!(stdout(&out), "hello world from root", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!host.ssh(&alice, &["sudo", "-n", "/bin/sh", "-c", "id"]).status.success(), "a shell is not allowed");
    assert!(!host.ssh(&bob, &["sudo", "-n", tool_s, "world"]).status.success(), "bob has no rule");

    // A remote process shows up, and goes when its login is cut.
    let mut sleeper = Command::new("ssh")
        .args(host.ssh_options(&bob))
        .args(["-tt", &host.address().to_string(), "sleep", "4301"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the remote sleep", || {
        host.processes().iter().any(|(_, cmd)| cmd == "sleep 4301")
    });
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    wait_until(Duration::from_secs(30), "the remote sleep to end with its login", || {
        !host.processes().iter().any(|(_, cmd)| cmd == "sleep 4301")
    });

    let (netns, names) = (host.netns().to_owned(), [alice.name().to_owned(), bob.name().to_owned()]);
    drop(host);
    assert!(!drop_in.exists(), "the sudoers drop-in is removed");
    assert!(names.iter().all(|n| !exists(n)), "the users are removed");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&netns), "the namespace is removed");
}

#[test]
fn parallel_hosts_get_their_own_addresses() {
    let (a, b) = (RemoteHost::start(), RemoteHost::start());
    assert_ne!(a.address(), b.address());
    assert_ne!(a.netns(), b.netns());
}
