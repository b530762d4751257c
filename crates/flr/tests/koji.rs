//! Koji operations against a small in-test XML-RPC hub that implements the
//! few methods flr uses and records every call, so the exact method names,
//! argument order, `__starstar` kwargs and session parameters are asserted.
mod common;
use common::*;
use flr::config::{KojiAuth, KojiCfg};
use flr::koji;
use flr::xmlrpc::{self, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
struct Call {
    query: String,
    method: String,
    params: Vec<Value>,
}

struct Hub {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

fn build(nvr: &str, tag: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert("nvr".to_string(), Value::from(nvr));
    m.insert("tag_name".to_string(), Value::from(tag));
    m.insert("owner_name".to_string(), Value::from("releng"));
    m.insert("build_id".to_string(), Value::Int(42));
    Value::Struct(m)
}

fn answer(c: &Call) -> String {
    let authed = c.query.contains("session-id=");
    let needs_auth = ["tagBuild", "untagBuild", "packageListBlock", "packageListUnblock", "logout"];
    if needs_auth.contains(&c.method.as_str()) && !authed {
        return xmlrpc::fault_response(1002, "ActionNotAllowed: not logged-in");
    }
    if c.params.first() == Some(&Value::from("no-such-tag")) {
        return xmlrpc::fault_response(1000, "GenericError: No such tagInfo: 'no-such-tag'");
    }
    let v = match c.method.as_str() {
        "sslLogin" => {
            let mut m = BTreeMap::new();
            m.insert("session-id".to_string(), Value::Int(12345));
            m.insert("session-key".to_string(), Value::from("1-aBcDeF"));
            Value::Struct(m)
        }
        "tagBuild" => Value::Int(9001),
        "untagBuild" | "packageListBlock" | "packageListUnblock" | "logout" => Value::Nil,
        "getLatestBuilds" => Value::Array(vec![build("bash-5.2.15-5.fc39", "f39")]),
        "listTagged" => Value::Array(vec![build("bash-5.2.15-5.fc39", "f39"), build("bash-5.2.15-3.fc39", "f39")]),
        other => return xmlrpc::fault_response(1000, &format!("Invalid method: {other}")),
    };
    xmlrpc::response(&v)
}

fn start_hub() -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/kojihub", listener.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rec = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            let (method, params) = xmlrpc::parse_call(&String::from_utf8(body).unwrap()).unwrap();
            let call =
                Call { query: target.split_once('?').map(|x| x.1.to_string()).unwrap_or_default(), method, params };
            let reply = answer(&call);
            rec.lock().unwrap().push(call);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    Hub { url, calls }
}

fn cert_files(dir: &std::path::Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (c, k) = (dir.join("client.crt"), dir.join("client.key"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=flr-test"])
        .arg("-keyout")
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some((c, k))
}

fn cfg(hub: &Hub, auth: KojiAuth, cert: Option<(std::path::PathBuf, std::path::PathBuf)>) -> KojiCfg {
    KojiCfg {
        hub: hub.url.clone(),
        auth,
        cert: cert.as_ref().map(|c| c.0.clone()),
        key: cert.map(|c| c.1),
        serverca: None,
        principal: None,
        keytab: None,
    }
}

#[test]
fn reads_are_anonymous_with_exact_calls() {
    let hub = start_hub();
    let c = cfg(&hub, KojiAuth::None, None);
    let r = koji::run(&c, &koji::latest_tagged("f39", Some("bash")).unwrap(), false).unwrap();
    assert_eq!(koji::describe_builds(&r.result)[0].split_whitespace().next(), Some("bash-5.2.15-5.fc39"));
    koji::run(&c, &koji::latest_tagged("f39", None).unwrap(), false).unwrap();
    koji::run(&c, &koji::list_tagged("f39", Some("bash"), true, true).unwrap(), false).unwrap();
    let calls = hub.calls.lock().unwrap().clone();
    let kw = |pairs: Vec<(&str, Value)>| Value::kwargs(pairs);
    assert_eq!(
        calls,
        vec![
            Call {
                query: String::new(),
                method: "getLatestBuilds".into(),
                params: vec!["f39".into(), kw(vec![("package", "bash".into())])]
            },
            Call { query: String::new(), method: "getLatestBuilds".into(), params: vec!["f39".into()] },
            Call {
                query: String::new(),
                method: "listTagged".into(),
                params: vec![
                    "f39".into(),
                    kw(vec![("inherit", true.into()), ("latest", true.into()), ("package", "bash".into())])
                ]
            },
        ]
    );
    // The kwargs struct carries __starstar like koji's own client sends.
    assert_eq!(calls[0].params[1].get("__starstar"), Some(&Value::Bool(true)));
}

#[test]
fn writes_log_in_with_a_client_cert_and_pass_the_session() {
    let t = tempfile::tempdir().unwrap();
    let Some(cert) = cert_files(t.path()) else {
        panic!("openssl not available to make a test certificate: scripts/test.sh installs it");
    };
    let hub = start_hub();
    let c = cfg(&hub, KojiAuth::Cert, Some(cert));
    let r =
        koji::run(&c, &koji::tag_build("f39-updates-candidate", "bash-5.2.15-5.fc39", false).unwrap(), false).unwrap();
    assert_eq!(r.result, Value::Int(9001));
    koji::run(&c, &koji::untag_build("f39-updates-candidate", "bash-5.2.15-5.fc39", true).unwrap(), false).unwrap();
    koji::run(&c, &koji::block_pkg("f39", "bash", true).unwrap(), false).unwrap();
    koji::run(&c, &koji::block_pkg("f39", "bash", false).unwrap(), false).unwrap();
    let calls = hub.calls.lock().unwrap().clone();
    let seq: Vec<(&str, &str)> = calls.iter().map(|c| (c.method.as_str(), c.query.as_str())).collect();
    assert_eq!(
        seq,
        vec![
            ("sslLogin", ""),
            ("tagBuild", "session-id=12345&session-key=1-aBcDeF&callnum=0"),
            ("logout", "session-id=12345&session-key=1-aBcDeF&callnum=1"),
            ("sslLogin", ""),
            ("untagBuild", "session-id=12345&session-key=1-aBcDeF&callnum=0"),
            ("logout", "session-id=12345&session-key=1-aBcDeF&callnum=1"),
            ("sslLogin", ""),
            ("packageListBlock", "session-id=12345&session-key=1-aBcDeF&callnum=0"),
            ("logout", "session-id=12345&session-key=1-aBcDeF&callnum=1"),
            ("sslLogin", ""),
            ("packageListUnblock", "session-id=12345&session-key=1-aBcDeF&callnum=0"),
            ("logout", "session-id=12345&session-key=1-aBcDeF&callnum=1"),
        ]
    );
    assert_eq!(calls[1].params, vec![Value::from("f39-updates-candidate"), Value::from("bash-5.2.15-5.fc39")]);
    assert_eq!(
        calls[4].params,
        vec![
            Value::from("f39-updates-candidate"),
            Value::from("bash-5.2.15-5.fc39"),
            Value::kwargs(vec![("force", true.into())])
        ]
    );
    assert_eq!(calls[7].params, vec![Value::from("f39"), Value::from("bash")]);
}

#[test]
fn dry_run_makes_no_calls_and_faults_are_reported() {
    let hub = start_hub();
    let c = cfg(&hub, KojiAuth::None, None);
    let r = koji::run(&c, &koji::tag_build("f39", "bash-1-1", false).unwrap(), true).unwrap();
    assert!(r.dry_run);
    assert!(hub.calls.lock().unwrap().is_empty());
    // Writes without auth configured: clear error, no call.
    let e = koji::run(&c, &koji::tag_build("f39", "bash-1-1", false).unwrap(), false).unwrap_err();
    assert!(e.to_string().contains("auth = \"cert\""), "{e}");
    let e = koji::run(&cfg(&hub, KojiAuth::Kerberos, None), &koji::tag_build("f39", "bash-1-1", false).unwrap(), false)
        .unwrap_err();
    assert!(e.to_string().contains("not implemented"), "{e}");
    // Hub faults become exit code 4 with koji's message.
    let e = koji::run(&c, &koji::list_tagged("no-such-tag", None, false, false).unwrap(), false).unwrap_err();
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("No such tagInfo"), "{e}");
}

#[test]
fn cli_uses_the_config_and_prints_json() {
    let hub = start_hub();
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("flr.toml");
    std::fs::write(&conf, format!("[koji]\nhub = {:?}\n", hub.url)).unwrap();
    let c = conf.to_str().unwrap();
    let o = flr(&["--config", c, "koji", "list-tagged", "--json", "f39", "--package", "bash", "--latest"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["method"], "listTagged");
    assert_eq!(j["result"][0]["nvr"], "bash-5.2.15-5.fc39");
    let o = flr(&["--config", c, "koji", "tag", "--dry-run", "--json", "f39", "bash-1-1"]);
    assert!(o.status.success());
    assert_eq!(json(&o)["dry_run"], true);
    let o = flr(&["--config", c, "koji", "tag", "f39", "--", "-bash-1-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(hub.calls.lock().unwrap().len(), 1);
    let o = flr(&["koji", "latest-tagged", "f39"]);
    if !std::path::Path::new(flr::config::DEFAULT_CONFIG).exists() {
        assert!(String::from_utf8_lossy(&o.stderr).contains("no [koji] section"));
    }
}
