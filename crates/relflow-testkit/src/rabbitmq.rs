//! The machine's shared RabbitMQ (127.0.0.1:5672, guest/guest): a test
//! only ever touches its own vhost there.

use std::process::Command;

/// Runs `rabbitmqctl` against the shared broker; panics with its output
/// unless it succeeds. Returns stdout.
///
/// Only for things that stay inside a test's own vhost (or read-only
/// listings): never stop, reconfigure or restart the shared broker; use a
/// [`RabbitNode`](crate::RabbitNode) for that.
pub fn rabbitmqctl(args: &[&str]) -> String {
    crate::run(Command::new("rabbitmqctl").args(args), &format!("rabbitmqctl {args:?} (RabbitMQ installed, as root?)"))
}

/// A private vhost on the shared broker, with all permissions for `guest`,
/// deleted (with its queues and connections) when dropped.
#[derive(Debug)]
pub struct Vhost {
    name: String,
}

/// One queue of a vhost, as `rabbitmqctl list_queues` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStat {
    /// The queue's name.
    pub name: String,
    /// Messages waiting to be delivered.
    pub ready: u64,
    /// Messages delivered and not yet acked.
    pub unacked: u64,
}

impl Vhost {
    /// Creates `relflow-<tag>-<unique>`; `tag` says which test it is for
    /// (it shows in `rabbitmqctl list_vhosts` if a killed test leaves it).
    pub fn new(tag: &str) -> Vhost {
        let name = format!("relflow-{tag}-{}", crate::unique_suffix());
        rabbitmqctl(&["-q", "add_vhost", &name]);
        let vhost = Vhost { name };
        rabbitmqctl(&["-q", "set_permissions", "-p", &vhost.name, "guest", ".*", ".*", ".*"]);
        vhost
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `amqp://guest:guest@127.0.0.1:5672/<name>`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Publishes `lines` (fedora-messaging JSON, one message per line) to
    /// `amq.topic` with the real `fedora-messaging publish` CLI from the
    /// project venv (`RELFLOW_TEST_PY=1 scripts/setup.sh` installs it),
    /// writing its config and the messages file into `dir`.
    pub fn fedora_messaging_publish(&self, dir: &std::path::Path, lines: &[String]) {
        let conf = dir.join("fedora-messaging.toml");
        let toml = format!(
            "amqp_url = \"{}\"\npublish_exchange = \"amq.topic\"\n[client_properties]\napp = \"relflow tests\"\n",
            self.url()
        );
        std::fs::write(&conf, toml).unwrap();
        let file = dir.join("messages.jsonl");
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        let cli = crate::repo_root().join(".venv/bin/fedora-messaging");
        let mut cmd = Command::new(cli);
        cmd.arg("--conf").arg(&conf).arg("publish").arg(&file).stdin(std::process::Stdio::null());
        crate::run(&mut cmd, "fedora-messaging publish (RELFLOW_TEST_PY=1 scripts/setup.sh installs it)");
    }

    /// Closes every client connection of this vhost, as a broker restart or
    /// a network cut would, without touching anyone else's.
    pub fn close_connections(&self) {
        rabbitmqctl(&["-q", "close_all_connections", "-p", &self.name, "test"]);
    }

    /// The vhost's queues with their ready and unacked counts.
    pub fn queues(&self) -> Vec<QueueStat> {
        let out = rabbitmqctl(&[
            "-q",
            "list_queues",
            "-p",
            &self.name,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--no-table-headers",
        ]);
        out.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                Some(QueueStat {
                    name: f.first()?.to_string(),
                    ready: f.get(1)?.parse().ok()?,
                    unacked: f.get(2)?.parse().ok()?,
                })
            })
            .collect()
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        // Not `rabbitmqctl()`: a panic in drop during a failing test would
        // abort and hide the real failure.
        let _ = Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.name]).output();
    }
}
