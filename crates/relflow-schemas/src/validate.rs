//! A message body checked against its class's schema.

use serde_json::{Map, Value};

use crate::SchemaSet;

/// Why a body fails its schema: for each class its topic resolves to, the
/// first error the validator found (a body is valid when one class
/// accepts it, so every class's objection is part of the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reasons.join("; "))]
pub struct Invalid {
    /// `bodhi.update.comment.v1: at /comment/karma: "x" is not of type "integer"`.
    pub reasons: Vec<String>,
}

impl SchemaSet {
    /// Checks `body` against the schema of its topic. `Ok(None)`: no
    /// installed schema describes the topic; `Ok(Some(name))`: the class
    /// that accepts it.
    pub fn validate(
        &self,
        topic: &str,
        headers: &Map<String, Value>,
        body: &Map<String, Value>,
    ) -> Result<Option<&str>, Invalid> {
        let classes = self.for_message(topic, headers);
        if classes.is_empty() {
            return Ok(None);
        }
        let body = Value::Object(body.clone());
        let mut reasons = Vec::new();
        for i in classes {
            let name = &self.entries[i].name;
            match &self.validators[i] {
                Err(e) => reasons.push(format!("{name}: the schema itself is invalid: {e}")),
                Ok(v) => match v.validate(&body) {
                    Ok(()) => return Ok(Some(name)),
                    Err(e) => reasons.push(format!("{name}: at {:?}: {e}", e.instance_path().to_string())),
                },
            }
        }
        Err(Invalid { reasons })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use crate::{Entry, SchemaSet};

    fn entry(name: &str, schema: serde_json::Value) -> Entry {
        let (class, topic) = ("m:C".into(), "bodhi.update.comment".into());
        Entry { name: name.into(), class, topic, package: None, version: None, file: String::new(), schema }
    }

    #[test]
    fn a_body_passes_when_one_class_of_its_topic_accepts_it() {
        let v1 = json!({"type": "object", "required": ["comment"], "properties": {"comment": {"type": "object"}}});
        let v2 = json!({"type": "object", "required": ["karma"], "properties": {"karma": {"type": "integer"}}});
        let set = SchemaSet::new(PathBuf::new(), vec![entry("c.v1", v1), entry("c.v2", v2)]);
        let none = serde_json::Map::new();
        let body = |v: serde_json::Value| v.as_object().unwrap().clone();
        let topic = "org.fedoraproject.prod.bodhi.update.comment";
        assert_eq!(set.validate(topic, &none, &body(json!({"karma": 1}))), Ok(Some("c.v2")));
        assert_eq!(set.validate("org.fedoraproject.prod.other", &none, &body(json!({}))), Ok(None));
        let bad = set.validate(topic, &none, &body(json!({"karma": "x"}))).unwrap_err();
        assert_eq!(bad.reasons.len(), 2, "{bad}");
        assert!(
            bad.reasons[0].starts_with("c.v1: ") && bad.reasons[0].contains("\"comment\" is a required property"),
            "{bad}"
        );
        assert!(bad.reasons[1].contains("/karma") && bad.reasons[1].contains("integer"), "{bad}");
    }
}
