//! Koji hub operations over XML-RPC.
//!
//! Method names and argument order follow kojihub: `tagBuild(tag, build,
//! force=False, fromtag=None)`, `untagBuild(tag, build, strict=True,
//! force=False)`, `packageListBlock(taginfo, pkginfo)`,
//! `packageListUnblock(taginfo, pkginfo)`, `getLatestBuilds(tag, event=None,
//! package=None, type=None)`, `listTagged(tag, event=None, inherit=False,
//! prefix=None, latest=False, package=None, owner=None, type=None)`.
//! Non-default keyword arguments travel as a trailing struct with
//! `"__starstar": true`, exactly like koji's own client.
//!
//! Auth: `cert` does a TLS client-certificate handshake (rustls) and
//! `sslLogin`; the returned `session-id`/`session-key` (plus `callnum`) go in
//! the query string of every later call, then `logout` ends the session.
//! Kerberos (GSSAPI) is not implemented: it needs the system GSSAPI library,
//! and flr stays free of C dependencies. Use a service certificate instead.

use crate::config::{KojiAuth, KojiCfg};
use crate::error::{Error, Result};
use crate::validate;
use crate::xmlrpc::{self, Value};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// A connection to a koji hub.
pub struct KojiClient {
    hub: String,
    auth: KojiAuth,
    agent: ureq::Agent,
    session: Option<(String, String)>,
    callnum: u64,
}

fn read_pem(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

fn tls_config(cfg: &KojiCfg) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{parse_pem, ClientCert, PemItem, RootCerts, TlsConfig};
    let mut b = TlsConfig::builder();
    if let Some(ca) = &cfg.serverca {
        let certs: Vec<_> = parse_pem(&read_pem(ca)?)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(Error::Invalid(format!("serverca {} holds no PEM certificate", ca.display())));
        }
        b = b.root_certs(RootCerts::new_with_certs(&certs));
    }
    if cfg.auth == KojiAuth::Cert {
        let cert_path = cfg
            .cert
            .as_ref()
            .ok_or_else(|| Error::Invalid("[koji] auth = \"cert\" needs cert = \"/path/to/client.pem\"".into()))?;
        let mut pem = read_pem(cert_path)?;
        if let Some(k) = &cfg.key {
            pem.extend_from_slice(b"\n");
            pem.extend(read_pem(k)?);
        }
        let (mut chain, mut key) = (Vec::new(), None);
        for item in parse_pem(&pem) {
            match item.map_err(|e| Error::Invalid(format!("client certificate PEM: {e}")))? {
                PemItem::Certificate(c) => chain.push(c),
                PemItem::PrivateKey(k) => key = Some(k),
                _ => {}
            }
        }
        let key =
            key.ok_or_else(|| Error::Invalid(format!("no private key in {} (or [koji] key)", cert_path.display())))?;
        if chain.is_empty() {
            return Err(Error::Invalid(format!("no certificate in {}", cert_path.display())));
        }
        b = b.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(b.build())
}

impl KojiClient {
    /// Build a client from config; reads certificates, does not connect.
    pub fn new(cfg: &KojiCfg) -> Result<KojiClient> {
        validate::not_an_option("koji hub", &cfg.hub)?;
        if !(cfg.hub.starts_with("https://") || cfg.hub.starts_with("http://")) {
            return Err(Error::Invalid(format!("koji hub {:?} must be an http(s) URL", cfg.hub)));
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls_config(cfg)?)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build();
        Ok(KojiClient { hub: cfg.hub.clone(), auth: cfg.auth, agent: config.into(), session: None, callnum: 0 })
    }

    /// Call a hub method; faults become [`Error::External`].
    pub fn call(&mut self, method: &str, params: &[Value]) -> Result<Value> {
        let mut url = self.hub.clone();
        if let Some((id, key)) = &self.session {
            let sep = if url.contains('?') { '&' } else { '?' };
            url.push_str(&format!("{sep}session-id={id}&session-key={key}&callnum={}", self.callnum));
            self.callnum += 1;
        }
        let body = xmlrpc::method_call(method, params);
        let mut resp = self
            .agent
            .post(&url)
            .header("Content-Type", "text/xml")
            .send(body)
            .map_err(|e| Error::External(format!("koji hub {}: {e}", self.hub)))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(|e| Error::External(format!("koji hub {}: reading reply: {e}", self.hub)))?;
        if !status.is_success() {
            return Err(Error::External(format!("koji hub {} answered HTTP {status} to {method}", self.hub)));
        }
        xmlrpc::parse_response(&text)?
            .map_err(|f| Error::External(format!("koji {method} failed: {} (fault {})", f.message, f.code)))
    }

    /// Log in as configured (needed for every write).
    pub fn login(&mut self) -> Result<()> {
        match self.auth {
            KojiAuth::None => Err(Error::Invalid(
                "this koji operation needs authentication: set [koji] auth = \"cert\" with a client certificate".into(),
            )),
            KojiAuth::Kerberos => Err(Error::Invalid(
                "[koji] auth = \"kerberos\" is not implemented in flr: GSSAPI needs the system Kerberos \
                 libraries, which flr does not link. Use auth = \"cert\" with a service certificate, \
                 or run the koji CLI for this step."
                    .into(),
            )),
            KojiAuth::Cert => {
                let v = self.call("sslLogin", &[])?;
                let id = match v.get("session-id") {
                    Some(Value::Int(i)) => i.to_string(),
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(Error::External("koji sslLogin returned no session-id".into())),
                };
                let key = v
                    .get("session-key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::External("koji sslLogin returned no session-key".into()))?;
                // Both go into a URL: refuse anything that is not URL-safe.
                let safe = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !safe(&id) || !safe(key) {
                    return Err(Error::External("koji sslLogin returned a malformed session".into()));
                }
                self.session = Some((id, key.to_string()));
                self.callnum = 0;
                Ok(())
            }
        }
    }

    /// End the session, if any.
    pub fn logout(&mut self) -> Result<()> {
        if self.session.is_some() {
            self.call("logout", &[])?;
            self.session = None;
        }
        Ok(())
    }
}

/// A koji operation: method, params, and whether it changes the hub.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    pub method: String,
    pub params: Vec<Value>,
    pub writes: bool,
}

fn kwargs_or_nothing(pairs: Vec<(&str, Value)>) -> Option<Value> {
    if pairs.is_empty() {
        None
    } else {
        Some(Value::kwargs(pairs))
    }
}

fn op(method: &str, mut params: Vec<Value>, kw: Option<Value>, writes: bool) -> Op {
    params.extend(kw);
    Op { method: method.into(), params, writes }
}

/// `tagBuild(tag, build[, force=True])`.
pub fn tag_build(tag: &str, nvr: &str, force: bool) -> Result<Op> {
    validate::simple_name("tag", tag)?;
    validate::simple_name("build", nvr)?;
    let kw = kwargs_or_nothing(if force { vec![("force", true.into())] } else { vec![] });
    Ok(op("tagBuild", vec![tag.into(), nvr.into()], kw, true))
}

/// `untagBuild(tag, build[, force=True])`.
pub fn untag_build(tag: &str, nvr: &str, force: bool) -> Result<Op> {
    validate::simple_name("tag", tag)?;
    validate::simple_name("build", nvr)?;
    let kw = kwargs_or_nothing(if force { vec![("force", true.into())] } else { vec![] });
    Ok(op("untagBuild", vec![tag.into(), nvr.into()], kw, true))
}

/// `packageListBlock(taginfo, pkginfo)` or its Unblock twin.
pub fn block_pkg(tag: &str, pkg: &str, block: bool) -> Result<Op> {
    validate::simple_name("tag", tag)?;
    validate::simple_name("package", pkg)?;
    let m = if block { "packageListBlock" } else { "packageListUnblock" };
    Ok(op(m, vec![tag.into(), pkg.into()], None, true))
}

/// `getLatestBuilds(tag[, package=...])`.
pub fn latest_tagged(tag: &str, package: Option<&str>) -> Result<Op> {
    validate::simple_name("tag", tag)?;
    let mut kw = vec![];
    if let Some(p) = package {
        validate::simple_name("package", p)?;
        kw.push(("package", p.into()));
    }
    Ok(op("getLatestBuilds", vec![tag.into()], kwargs_or_nothing(kw), false))
}

/// `listTagged(tag[, inherit=True][, latest=True][, package=...])`.
pub fn list_tagged(tag: &str, package: Option<&str>, latest: bool, inherit: bool) -> Result<Op> {
    validate::simple_name("tag", tag)?;
    let mut kw = vec![];
    if inherit {
        kw.push(("inherit", true.into()));
    }
    if latest {
        kw.push(("latest", true.into()));
    }
    if let Some(p) = package {
        validate::simple_name("package", p)?;
        kw.push(("package", p.into()));
    }
    Ok(op("listTagged", vec![tag.into()], kwargs_or_nothing(kw), false))
}

/// What `flr koji ...` did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub hub: String,
    pub method: String,
    pub params: Vec<Value>,
    pub dry_run: bool,
    /// The hub's answer (task id, build list, nil); null on dry run.
    pub result: Value,
}

/// Run `op` against the hub (logging in first for writes). With `dry_run`,
/// a write is only described; reads still run because they change nothing.
pub fn run(cfg: &KojiCfg, op: &Op, dry_run: bool) -> Result<Outcome> {
    let mut out = Outcome {
        hub: cfg.hub.clone(),
        method: op.method.clone(),
        params: op.params.clone(),
        dry_run: dry_run && op.writes,
        result: Value::Nil,
    };
    if out.dry_run {
        return Ok(out);
    }
    let mut client = KojiClient::new(cfg)?;
    if op.writes {
        client.login()?;
    }
    let res = client.call(&op.method, &op.params);
    // Log out even when the call failed; report the call's error first.
    let lo = client.logout();
    out.result = res?;
    lo?;
    Ok(out)
}

/// One line per build for human output.
pub fn describe_builds(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|b| {
                let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let nvr = s("nvr");
                let tag = s("tag_name");
                let owner = s("owner_name");
                format!("{nvr:<50} {tag:<30} {owner}").trim_end().to_string()
            })
            .collect(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_match_kojihub_signatures() {
        let o = tag_build("f39-updates", "bash-5.2.15-5.fc39", false).unwrap();
        assert_eq!(o.params, vec![Value::from("f39-updates"), Value::from("bash-5.2.15-5.fc39")]);
        let o = untag_build("f39", "bash-1-1", true).unwrap();
        assert_eq!(o.params[2], Value::kwargs(vec![("force", true.into())]));
        assert_eq!(block_pkg("f39", "bash", false).unwrap().method, "packageListUnblock");
        let o = list_tagged("f39", Some("bash"), true, false).unwrap();
        assert_eq!(o.params[1], Value::kwargs(vec![("latest", true.into()), ("package", "bash".into())]));
        assert!(tag_build("-x", "b", false).is_err());
        assert!(tag_build("f39", "a;b", false).is_err());
    }
}
