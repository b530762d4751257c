//! Which functions a condition may call, decided when the config loads.
//!
//! The interpreter only finds out that `msg.tag.startswith("f")` names no
//! function when it runs, and the worker then treats the rule as "no match"
//! on every message: a rule that silently never fires. So each call is
//! checked at compile time by asking the same interpreter: a probe call
//! `null.name()` (or `name()`) is "undeclared" exactly when no overload of
//! that name exists, whatever the arguments. The answer comes from the
//! environment itself, so it can never disagree with evaluation.
//!
//! [`VOCABULARY`] is only the spelling list for "did you mean"; a test
//! checks that every name on it is one the interpreter knows.

use cel::{Context, ExecutionError};

use super::scope::Call;
use super::ENV;

/// Functions and methods offered (standard CEL, and the strings, lists and
/// math extensions), for suggestions.
const VOCABULARY: &[(&str, bool)] = &[
    ("contains", true),
    ("startsWith", true),
    ("endsWith", true),
    ("matches", true),
    ("size", true),
    ("charAt", true),
    ("indexOf", true),
    ("lastIndexOf", true),
    ("lowerAscii", true),
    ("upperAscii", true),
    ("trim", true),
    ("replace", true),
    ("split", true),
    ("substring", true),
    ("format", true),
    ("reverse", true),
    ("join", true),
    ("slice", true),
    ("flatten", true),
    ("distinct", true),
    ("sort", true),
    ("hasValue", true),
    ("orValue", true),
    ("size", false),
    ("matches", false),
    ("int", false),
    ("uint", false),
    ("double", false),
    ("string", false),
    ("bool", false),
    ("bytes", false),
    ("type", false),
    ("dyn", false),
    ("strings.quote", false),
    ("lists.range", false),
    ("math.abs", false),
    ("math.ceil", false),
    ("math.floor", false),
    ("math.round", false),
    ("math.trunc", false),
    ("math.sign", false),
    ("math.sqrt", false),
    ("math.isNaN", false),
    ("math.isInf", false),
    ("math.isFinite", false),
    ("optional.of", false),
    ("optional.none", false),
];

/// Macros are expanded by the parser only when called with the right
/// arguments; otherwise they are left as calls to functions that do not exist.
const MACROS: &[(&str, &str)] = &[
    ("has", "has(msg.key)"),
    ("all", "list.all(x, <condition on x>)"),
    ("exists", "list.exists(x, <condition on x>)"),
    ("exists_one", "list.exists_one(x, <condition on x>)"),
    ("map", "list.map(x, <expression of x>)"),
    ("filter", "list.filter(x, <condition on x>)"),
    ("sortBy", "list.sortBy(x, <key of x>)"),
];

/// What people write coming from Python and Jinja, and the CEL spelling.
const PYTHON_NAMES: &[(&str, &str)] = &[
    ("startswith", "startsWith"),
    ("endswith", "endsWith"),
    ("lower", "lowerAscii"),
    ("upper", "upperAscii"),
    ("strip", "trim"),
    ("len", "size"),
    ("find", "indexOf"),
    ("rfind", "lastIndexOf"),
    ("match", "matches"),
    ("search", "matches"),
    ("fullmatch", "matches"),
    ("any", "exists"),
    ("str", "string"),
    ("float", "double"),
];

/// `Err(hint)` when CEL has no such function; the hint says what to write.
pub(super) fn check(call: &Call) -> Result<(), String> {
    let name = call.name.as_str();
    if exists(name, call.member) {
        return Ok(());
    }
    if let Some((_, usage)) = MACROS.iter().find(|(m, _)| *m == name) {
        return Err(format!(" with the wrong arguments: `{name}` is a macro, written `{usage}`"));
    }
    if exists(name, !call.member) {
        return Err(if call.member {
            format!(" as a method, but it is a function: write `{name}(value)`")
        } else {
            format!(" as a function, but it is a method: write `value.{name}(...)`")
        });
    }
    let suggestion = suggest(name).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
    Err(format!(", which CEL does not have{suggestion}"))
}

pub(super) fn is_macro(name: &str) -> bool {
    MACROS.iter().any(|(m, _)| *m == name)
}

/// Whether functions live under `name.` (`strings.quote`, `math.abs`).
pub(super) fn is_namespace(name: &str) -> bool {
    VOCABULARY.iter().any(|(f, _)| f.strip_prefix(name).is_some_and(|rest| rest.starts_with('.')))
}

fn exists(name: &str, member: bool) -> bool {
    if member && name.contains('.') {
        // Namespaced functions are never methods.
        return false;
    }
    let probe = if member { format!("null.{name}()") } else { format!("{name}()") };
    let Ok(program) = ENV.compile(&probe) else {
        // Not a name the probe can spell: leave the verdict to evaluation.
        return true;
    };
    !matches!(program.execute(&Context::with_env(ENV.clone())), Err(ExecutionError::UndeclaredReference(_)))
}

fn suggest(name: &str) -> Option<&'static str> {
    if let Some((_, cel)) = PYTHON_NAMES.iter().find(|(py, _)| *py == name) {
        return Some(cel);
    }
    let names = VOCABULARY.iter().map(|(f, _)| *f).chain(MACROS.iter().map(|(m, _)| *m));
    if let Some(same) = names.clone().find(|f| f.eq_ignore_ascii_case(name)) {
        return Some(same);
    }
    names
        .map(|f| (strsim::jaro_winkler(f, name), f))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, member: bool) -> Call {
        Call { name: name.into(), member }
    }

    #[test]
    fn every_suggested_name_is_one_the_interpreter_knows() {
        for (name, member) in VOCABULARY {
            assert_eq!(check(&call(name, *member)), Ok(()), "{name} (member: {member})");
        }
        for (_, cel) in PYTHON_NAMES {
            let known = exists(cel, true) || exists(cel, false) || MACROS.iter().any(|(m, _)| m == cel);
            assert!(known, "{cel}");
        }
    }

    #[test]
    fn unknown_functions_get_the_cel_spelling() {
        let unknown = |s: &str| Err(format!(", which CEL does not have{s}"));
        assert_eq!(check(&call("startswith", true)), unknown("; did you mean `startsWith`?"));
        assert_eq!(check(&call("lower", true)), unknown("; did you mean `lowerAscii`?"));
        assert_eq!(check(&call("lowerascii", true)), unknown("; did you mean `lowerAscii`?"));
        assert_eq!(check(&call("conatins", true)), unknown("; did you mean `contains`?"));
        assert_eq!(check(&call("frobnicate", true)), unknown(""));
        assert!(check(&call("exists", true)).unwrap_err().contains("macro"));
        assert!(check(&call("startsWith", false)).unwrap_err().contains("but it is a method"));
        assert!(check(&call("int", true)).unwrap_err().contains("but it is a function"));
        assert_eq!(check(&call("strings.quot", false)), unknown("; did you mean `strings.quote`?"));
    }
}
