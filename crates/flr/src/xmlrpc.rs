//! Minimal XML-RPC (the subset koji uses): values, method calls, responses,
//! faults. Koji extends XML-RPC with `<nil/>` (allow_none) and `<i8>` for
//! large ints; both are handled. Keyword arguments are a trailing struct
//! with `"__starstar": true`, which [`Value::kwargs`] builds.

use crate::error::{Error, Result};
use quick_xml::escape::escape;
use quick_xml::events::Event;
use serde::Serialize;
use std::collections::BTreeMap;

/// An XML-RPC value. Serializes to the obvious JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Also used for dateTime.iso8601 and base64 (kept as text).
    String(String),
    Array(Vec<Value>),
    Struct(BTreeMap<String, Value>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl Value {
    /// Python-style keyword arguments: a struct marked `__starstar`.
    pub fn kwargs(pairs: Vec<(&str, Value)>) -> Value {
        let mut m: BTreeMap<String, Value> = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        m.insert("__starstar".into(), Value::Bool(true));
        Value::Struct(m)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Struct(m) => m.get(key),
            _ => None,
        }
    }

    fn write(&self, out: &mut String) {
        out.push_str("<value>");
        match self {
            Value::Nil => out.push_str("<nil/>"),
            Value::Bool(b) => out.push_str(&format!("<boolean>{}</boolean>", u8::from(*b))),
            Value::Int(i) if i32::try_from(*i).is_ok() => out.push_str(&format!("<int>{i}</int>")),
            Value::Int(i) => out.push_str(&format!("<i8>{i}</i8>")),
            Value::Double(d) => out.push_str(&format!("<double>{d}</double>")),
            Value::String(s) => out.push_str(&format!("<string>{}</string>", escape(s.as_str()))),
            Value::Array(a) => {
                out.push_str("<array><data>");
                for v in a {
                    v.write(out);
                }
                out.push_str("</data></array>");
            }
            Value::Struct(m) => {
                out.push_str("<struct>");
                for (k, v) in m {
                    out.push_str(&format!("<member><name>{}</name>", escape(k.as_str())));
                    v.write(out);
                    out.push_str("</member>");
                }
                out.push_str("</struct>");
            }
        }
        out.push_str("</value>");
    }
}

/// Encode a `<methodCall>`.
pub fn method_call(method: &str, params: &[Value]) -> String {
    let mut s = format!("<?xml version='1.0'?>\n<methodCall><methodName>{}</methodName><params>", escape(method));
    for p in params {
        s.push_str("<param>");
        p.write(&mut s);
        s.push_str("</param>");
    }
    s.push_str("</params></methodCall>\n");
    s
}

/// Encode a successful `<methodResponse>` (used by test servers).
pub fn response(v: &Value) -> String {
    let mut s = String::from("<?xml version='1.0'?>\n<methodResponse><params><param>");
    v.write(&mut s);
    s.push_str("</param></params></methodResponse>\n");
    s
}

/// Encode a fault response (used by test servers).
pub fn fault_response(code: i64, msg: &str) -> String {
    let mut m = BTreeMap::new();
    m.insert("faultCode".to_string(), Value::Int(code));
    m.insert("faultString".to_string(), Value::String(msg.into()));
    let mut s = String::from("<?xml version='1.0'?>\n<methodResponse><fault>");
    Value::Struct(m).write(&mut s);
    s.push_str("</fault></methodResponse>\n");
    s
}

/// A tiny DOM: enough for XML-RPC documents.
#[derive(Debug, Default)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn need(&self, name: &str) -> Result<&Node> {
        self.child(name).ok_or_else(|| Error::External(format!("XML-RPC: <{}> has no <{name}>", self.name)))
    }
}

fn local_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.rsplit(':').next().unwrap_or_default().to_string()
}

fn parse_dom(xml: &str) -> Result<Node> {
    let bad = |e: String| Error::External(format!("malformed XML-RPC document: {e}"));
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => stack.push(Node { name: local_name(e.name().as_ref()), ..Node::default() }),
            Event::Empty(e) => {
                let n = Node { name: local_name(e.name().as_ref()), ..Node::default() };
                stack.last_mut().expect("root").children.push(n);
            }
            Event::End(_) => {
                let n = stack.pop().expect("balanced");
                stack.last_mut().ok_or_else(|| bad("unbalanced tags".into()))?.children.push(n);
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| bad(e.to_string()))?;
                stack.last_mut().expect("root").text.push_str(&s);
            }
            Event::CData(c) => {
                stack.last_mut().expect("root").text.push_str(&String::from_utf8_lossy(&c.into_inner()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(bad("unclosed tags".into()));
    }
    let mut root = stack.pop().expect("root");
    root.children.pop().ok_or_else(|| bad("empty document".into()))
}

fn value_of(node: &Node) -> Result<Value> {
    let bad = |m: String| Error::External(format!("XML-RPC value: {m}"));
    let Some(typed) = node.children.first() else {
        return Ok(Value::String(node.text.clone()));
    };
    let t = typed.text.trim();
    Ok(match typed.name.as_str() {
        "nil" => Value::Nil,
        "boolean" => Value::Bool(t == "1" || t.eq_ignore_ascii_case("true")),
        "int" | "i4" | "i8" => Value::Int(t.parse().map_err(|_| bad(format!("bad int {t:?}")))?),
        "double" => Value::Double(t.parse().map_err(|_| bad(format!("bad double {t:?}")))?),
        "string" | "dateTime.iso8601" | "base64" => Value::String(typed.text.clone()),
        "array" => {
            let data = typed.need("data")?;
            Value::Array(data.children.iter().filter(|c| c.name == "value").map(value_of).collect::<Result<_>>()?)
        }
        "struct" => {
            let mut m = BTreeMap::new();
            for mem in typed.children.iter().filter(|c| c.name == "member") {
                m.insert(mem.need("name")?.text.clone(), value_of(mem.need("value")?)?);
            }
            Value::Struct(m)
        }
        other => return Err(bad(format!("unknown type <{other}>"))),
    })
}

/// A fault returned by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub code: i64,
    pub message: String,
}

/// Decode a `<methodResponse>`: `Ok(Ok(value))` or `Ok(Err(fault))`.
pub fn parse_response(xml: &str) -> Result<std::result::Result<Value, Fault>> {
    let root = parse_dom(xml)?;
    if root.name != "methodResponse" {
        return Err(Error::External(format!("expected <methodResponse>, got <{}>", root.name)));
    }
    if let Some(f) = root.child("fault") {
        let v = value_of(f.need("value")?)?;
        let code = match v.get("faultCode") {
            Some(Value::Int(i)) => *i,
            _ => 0,
        };
        let message = v.get("faultString").and_then(Value::as_str).unwrap_or("unknown fault").to_string();
        return Ok(Err(Fault { code, message }));
    }
    let params = root.need("params")?;
    match params.child("param") {
        Some(p) => Ok(Ok(value_of(p.need("value")?)?)),
        None => Ok(Ok(Value::Nil)),
    }
}

/// Decode a `<methodCall>` into (method, params) (used by test servers).
pub fn parse_call(xml: &str) -> Result<(String, Vec<Value>)> {
    let root = parse_dom(xml)?;
    if root.name != "methodCall" {
        return Err(Error::External(format!("expected <methodCall>, got <{}>", root.name)));
    }
    let name = root.need("methodName")?.text.trim().to_string();
    let params = match root.child("params") {
        Some(p) => p
            .children
            .iter()
            .filter(|c| c.name == "param")
            .map(|c| c.need("value").and_then(value_of))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    Ok((name, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_roundtrip_with_kwargs() {
        let params = vec![
            Value::from("f39 & <x>"),
            Value::Int(1 << 40),
            Value::Nil,
            Value::kwargs(vec![("latest", true.into()), ("package", "bash".into())]),
        ];
        let xml = method_call("listTagged", &params);
        assert!(xml.contains("<name>__starstar</name><value><boolean>1</boolean></value>"));
        let (m, p) = parse_call(&xml).unwrap();
        assert_eq!(m, "listTagged");
        assert_eq!(p, params);
    }

    #[test]
    fn parses_python_style_response_and_fault() {
        let xml = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n<value><struct>\n<member>\n<name>nvr</name>\n<value><string>bash-5.2-1.fc39</string></value>\n</member>\n<member>\n<name>build_id</name>\n<value><int>42</int></value>\n</member>\n<member><name>owner</name><value>plain</value></member>\n<member><name>x</name><value><ex:nil/></value></member>\n</struct></value>\n</data></array></value>\n</param>\n</params>\n</methodResponse>\n";
        let v = parse_response(xml).unwrap().unwrap();
        let Value::Array(a) = v else { panic!() };
        assert_eq!(a[0].get("nvr").unwrap().as_str(), Some("bash-5.2-1.fc39"));
        assert_eq!(a[0].get("build_id"), Some(&Value::Int(42)));
        assert_eq!(a[0].get("owner").unwrap().as_str(), Some("plain"));
        assert_eq!(a[0].get("x"), Some(&Value::Nil));
        let f = parse_response(&fault_response(1000, "GenericError: no such tag")).unwrap().unwrap_err();
        assert_eq!(f, Fault { code: 1000, message: "GenericError: no such tag".into() });
    }
}
