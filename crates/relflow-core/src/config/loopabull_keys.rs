//! Strict keys for a loopabull YAML config.
//!
//! loopabull read its YAML with `dict.get`, so a typo (`routing_key:`) was
//! silently a different config. relflow refuses a key it does not know,
//! naming it, where it is and the closest valid key; a key loopabull used
//! but relflow does not (`loglevel`) loads with a warning that says what to
//! do instead (the looper's settings: `loopabull_looper.rs`).

use serde_yaml::{Mapping, Value};

use super::errors::closest;

/// A key and the keys allowed under it; `None` for a key whose own keys
/// are not checked here.
struct Table {
    keys: &'static [(&'static str, Option<&'static Table>)],
}

const ROOT: Table = Table {
    keys: &[
        ("routing_keys", None),
        ("ansible", Some(&ANSIBLE)),
        ("plugins", Some(&PLUGINS)),
        ("loglevel", None),
        ("path_translator", None),
        ("plugin", None),
        ("relflow", Some(&RELFLOW)),
    ],
};
const ANSIBLE: Table = Table {
    keys: &[("playbooks_dir", None), ("cfg_file_path", None), ("playbook_cmd", None), ("inventory_path", None)],
};
const PLUGINS: Table = Table { keys: &[("looper", None), ("translator", Some(&TRANSLATOR))] };
const TRANSLATOR: Table = Table { keys: &[("name", None)] };
const RELFLOW: Table =
    Table { keys: &[("retries", None), ("retry_delay", None), ("timeout", None), ("concurrency", None)] };

/// Checks every key of the YAML document against what loopabull (and the
/// `relflow:` extension) knows. `Err` names the first unknown key; `Ok`
/// holds the warnings for keys that load but are not used.
pub(crate) fn check(doc: &Value) -> Result<Vec<String>, String> {
    let Value::Mapping(root) = doc else {
        return Err("the file must be a YAML mapping (`routing_keys:`, `ansible:`, ...)".into());
    };
    walk(root, &ROOT, "")?;
    Ok(unused(root))
}

fn walk(map: &Mapping, table: &Table, path: &str) -> Result<(), String> {
    let valid: Vec<String> = table.keys.iter().map(|(k, _)| k.to_string()).collect();
    for (key, value) in map {
        let name = key.as_str().ok_or_else(|| format!("a key {} is not a string", where_(path)))?;
        let Some((_, sub)) = table.keys.iter().find(|(k, _)| *k == name) else {
            let mut message = format!("unknown key `{name}` {}", where_(path));
            if let Some(close) = closest(name, &valid) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            message.push_str(&format!(" Valid keys there: {}.", valid.join(", ")));
            return Err(message);
        };
        match (sub, value) {
            (Some(sub), Value::Mapping(inner)) => walk(inner, sub, &join(path, name))?,
            (Some(_), Value::Null) => {}
            (Some(_), _) => return Err(format!("`{}` must be a mapping", join(path, name))),
            (None, _) => {}
        }
    }
    Ok(())
}

/// Warnings for what loopabull used and relflow does not.
fn unused(root: &Mapping) -> Vec<String> {
    let mut warnings = Vec::new();
    if root.contains_key("loglevel") {
        warnings.push(
            "`loglevel` is not used: set relflow's log level with -v / -vv or RELFLOW_LOG (e.g. \
             RELFLOW_LOG=debug) on the worker"
                .into(),
        );
    }
    warnings
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn where_(path: &str) -> String {
    if path.is_empty() {
        "at the top level".into()
    } else {
        format!("under `{path}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str) -> Result<Vec<String>, String> {
        check(&serde_yaml::from_str(text).unwrap())
    }

    #[test]
    fn unknown_keys_name_the_key_its_path_and_the_closest_one() {
        let e = check_text("routing_key: [a]\nansible: {playbooks_dir: p}\n").unwrap_err();
        assert!(e.starts_with("unknown key `routing_key` at the top level; did you mean `routing_keys`?"), "{e}");
        let e = check_text("routing_keys: [a]\nplugins:\n  translater: {name: rkname}\n").unwrap_err();
        assert!(e.starts_with("unknown key `translater` under `plugins`; did you mean `translator`?"), "{e}");
        let e = check_text("ansible:\n  inventory: hosts\n").unwrap_err();
        assert!(e.starts_with("unknown key `inventory` under `ansible`; did you mean `inventory_path`?"), "{e}");
        let e = check_text("relflow: {retires: 3}\n").unwrap_err();
        assert!(e.contains("`retires` under `relflow`; did you mean `retries`?"), "{e}");
    }

    #[test]
    fn keys_loopabull_used_but_relflow_does_not_are_warnings() {
        let w = check_text("loglevel: debug\nplugins:\n  looper: {name: fedmsgrabbitmq}\n").unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("RELFLOW_LOG"), "{w:?}");
        assert!(check_text("routing_keys: [a]\nansible: {playbooks_dir: p}\n").unwrap().is_empty());
    }
}
