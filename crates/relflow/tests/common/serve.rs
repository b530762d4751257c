//! A running `relflow serve` for the HTTP tests: the real binary on a free
//! port, real requests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{wait_for, Env};

/// The shared admin token every `Serve` starts with.
pub const TOKEN: &str = "test-token-0123456789";
/// How long a test waits for the server's work to settle.
pub const LIMIT: Duration = Duration::from_secs(180);

/// A running `relflow serve`, stopped when dropped.
pub struct Serve {
    child: Child,
    pub base: String,
    agent: ureq::Agent,
    pub env: Env,
}

pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Serve {
    pub fn start(env: Env, extra: &[&str]) -> Serve {
        let log = std::fs::File::create(env.path("serve.log")).unwrap();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = env
            .command(&args)
            .env("RELFLOW_HTTP_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("relflow serve: listening on ").unwrap_or_else(|| {
            panic!(
                "serve did not start: {line:?}\n{}",
                std::fs::read_to_string(env.path("serve.log")).unwrap_or_default()
            )
        });
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Serve { child, base: base.to_owned(), agent, env }
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let response = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("POST", body) => {
                let mut r = self.agent.post(&url).header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or(""))
            }
            _ => panic!("method {method}"),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect::<Vec<_>>();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        Answer { status, content_type, headers, body }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, None)
    }

    pub fn get_json(&self, path: &str) -> Value {
        let a = self.get(path);
        assert_eq!(a.status, 200, "GET {path}: {}", a.body);
        a.json()
    }

    pub fn publish(&self, topic: &str, body: &Value) -> Value {
        let a = self.call("POST", &format!("/api/publish?topic={topic}"), Some(TOKEN), Some(&body.to_string()));
        assert_eq!(a.status, 202, "publish: {}", a.body);
        a.json()
    }

    pub fn runs(&self, query: &str) -> Vec<Value> {
        self.get_json(&format!("/api/runs?limit=500&{query}"))["runs"].as_array().unwrap().clone()
    }

    /// Waits until the queue has nothing pending (ready, delayed, in flight).
    pub fn settle(&self) {
        wait_for(LIMIT, "the queue to drain", || {
            let d = &self.get_json("/api/queue")["depth"];
            let pending: u64 = ["ready", "in_flight", "delayed"].iter().map(|k| d[k].as_u64().unwrap()).sum();
            let running = self.runs("status=running").len();
            (pending == 0 && running == 0).then_some(())
        });
    }

    pub fn metrics(&self) -> prometheus_parse::Scrape {
        let a = self.get("/metrics");
        assert_eq!(a.status, 200);
        parse_metrics(&a.body)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.env.path("serve.log")).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- relflow serve log\n{}", self.log());
        }
    }
}

/// A `/metrics` body, parsed; panics with the text if it does not parse.
pub fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
}

/// Sum of a counter (or gauge) over the samples whose labels include
/// `labels` (a histogram counts its observations); 0 if there are none.
pub fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}
