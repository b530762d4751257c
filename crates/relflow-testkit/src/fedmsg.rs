//! The real Python fedmsg publisher and a test Datagrepper, as child
//! processes (scripts in crates/relflow-ingest/tests/py, run with the
//! project venv's Python: `RELFLOW_TEST_PY=1 scripts/setup.sh`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

fn script(name: &str) -> PathBuf {
    crate::repo_root().join("crates/relflow-ingest/tests/py").join(name)
}

/// A running `fedmsg_sequence.py`: one fedmsg publisher bound on an
/// endpoint for its whole life, signing with the fixtures' test
/// certificate, so fedmsg's `i` counts on across everything it sends.
/// Topic `org.fedoraproject.test.relflow.seq`, body `{"n": N}`.
pub struct FedmsgPublisher {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl FedmsgPublisher {
    /// Binds on `endpoint` (`tcp://127.0.0.1:PORT`).
    pub fn start(endpoint: &str) -> FedmsgPublisher {
        let mut child = Command::new(crate::venv_python())
            .arg(script("fedmsg_sequence.py"))
            .arg(endpoint)
            .arg(crate::fixtures_dir().join("fedmsg-crypto/keys"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python fedmsg publisher");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the publisher's first line");
        assert_eq!(line.trim(), "ready", "the publisher did not start");
        FedmsgPublisher { child, stdin, stdout }
    }

    /// Publishes the next `n` messages; returns each envelope as fedmsg
    /// encoded it (one JSON text each). What no subscriber receives is
    /// lost, as on the real bus.
    pub fn send(&mut self, n: usize) -> Vec<String> {
        writeln!(self.stdin.as_mut().expect("open until drop"), "{n}").expect("the publisher died");
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).expect("publisher output") > 0, "the publisher died");
            if line.trim() == "sent" {
                return out;
            }
            out.push(line.trim_end().to_owned());
        }
    }
}

impl Drop for FedmsgPublisher {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `datagrepper.py`: Datagrepper's `/v2/search` JSON over the
/// envelopes of a file, on a free port; stopped when dropped.
pub struct Datagrepper {
    child: Child,
    url: String,
}

impl Datagrepper {
    /// Serves `envelopes` (JSON texts, as [`FedmsgPublisher::send`] gives
    /// them), written to `dir/datagrepper.jsonl`.
    pub fn serve(dir: &Path, envelopes: &[String]) -> Datagrepper {
        let file = dir.join("datagrepper.jsonl");
        std::fs::write(&file, envelopes.join("\n") + "\n").expect("write the envelopes");
        let mut child = Command::new(crate::venv_python())
            .arg(script("datagrepper.py"))
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the test Datagrepper");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("its first line");
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("datagrepper.py: {line:?}"));
        Datagrepper { url: url.to_owned(), child }
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Datagrepper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
