//! `when` conditions: CEL expressions over `msg`, `topic` and `headers`.
//!
//! CEL is small, side-effect free and always terminates, which is what a
//! condition evaluated on untrusted payloads must be. A condition that looks
//! at a key the message does not have is simply false: payloads differ
//! between schema versions and one odd message must never stop a worker.
//! That holds under a negation too (`!(msg.nosuch == 1)` is false), which is
//! why `has(msg.key)` is the way to ask about a key that may be absent.
//!
//! The language is the whole of standard CEL (regex `matches`, the macros
//! `has`, `all`, `exists`, `exists_one`, `map`, `filter`) plus the `cel`
//! crate's strings, lists and math extensions (`lowerAscii`, `split`,
//! `join`, `distinct`, `math.abs`, ...). Everything that can be refused
//! without a message is refused at compile time, so it fails `relflow check`
//! and the config load instead of making a rule that never fires: syntax,
//! variables other than `msg`, `topic`, `headers` (macro variables are in
//! scope inside their macro), and calls to functions CEL does not have.

mod functions;
mod path;
mod scope;

use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::{extensions, Context, Env, ExecutionError, Program, Value as CelValue};
use serde_json::Value;

pub use path::{Comparison, KeyPath, Kind, Root, Segment};

use crate::Message;

/// The variables a condition may use.
pub const VARIABLES: [&str; 3] = ["msg", "topic", "headers"];

/// The one CEL environment: standard library, macros and extensions. Built
/// once: registering every overload costs more than evaluating a condition.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // These only fail on a duplicate declaration, which would be a bug in
    // this list, caught by every test that compiles a condition.
    env.add_extension(extensions::strings).expect("strings extension");
    env.add_extension(extensions::lists).expect("lists extension");
    env.add_extension(extensions::math).expect("math extension");
    Arc::new(env)
});

/// A compiled `when` expression.
pub struct Condition {
    source: String,
    program: Program,
    paths: Vec<KeyPath>,
    comparisons: Vec<Comparison>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConditionError {
    #[error("condition {expr:?} does not parse: {message}")]
    Parse { expr: String, message: String },
    #[error("condition {expr:?} uses `{name}`; conditions can only use msg, topic and headers")]
    UnknownVariable { expr: String, name: String },
    /// `hint` is the rest of the sentence: what is wrong, and what to write.
    #[error("condition {expr:?} calls `{name}`{hint}")]
    UnknownFunction { expr: String, name: String, hint: String },
}

/// Why evaluating a condition on one message did not give true or false.
/// The worker treats it as "no match" and logs it; `dry-run` shows it.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error("evaluation failed: {0}")]
    Failed(String),
    /// The values in this message do not fit the operation: `msg.build_id >
    /// "5"` compares an int with a string.
    #[error("type mismatch: {0}")]
    Type(String),
    #[error("condition gave {0}, not a boolean")]
    NotBool(String),
    #[error("expression gave {0}, not a string, number or boolean")]
    NotString(String),
}

/// What a condition says about one message, for explaining (`dry-run`,
/// `relflow test`, `check`); the worker only needs [`Condition::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    True,
    False,
    /// The message lacks this key (as written in the condition, e.g.
    /// `msg.update.builds`), so the condition is false.
    Missing(String),
    Error(EvalError),
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        let expr = || source.to_owned();
        let program =
            ENV.compile(source).map_err(|e| ConditionError::Parse { expr: expr(), message: e.to_string() })?;
        // Refuse unknown variables up front: a typo like `mgs.status` would
        // otherwise silently never match.
        let analysis = scope::analyse(program.expression());
        let unknown_call = analysis.calls.iter().find_map(|c| functions::check(c).err().map(|hint| (c, hint)));
        let call_error = |(call, hint): (&scope::Call, String)| ConditionError::UnknownFunction {
            expr: expr(),
            name: call.name.clone(),
            hint,
        };
        // A macro called with the wrong arguments is not expanded, so its
        // variable looks unbound: say what is wrong with the macro first.
        if let Some(misused_macro) = unknown_call.clone().filter(|(c, _)| functions::is_macro(&c.name)) {
            return Err(call_error(misused_macro));
        }
        if let Some(name) = analysis.unknown_variables.into_iter().next() {
            return Err(ConditionError::UnknownVariable { expr: expr(), name });
        }
        if let Some(unknown) = unknown_call {
            return Err(call_error(unknown));
        }
        Ok(Condition { source: source.to_owned(), program, paths: analysis.paths, comparisons: analysis.comparisons })
    }

    /// Every key path the condition reads, as written.
    pub fn paths(&self) -> &[KeyPath] {
        &self.paths
    }

    /// Every comparison of a key path with a literal.
    pub fn comparisons(&self) -> &[Comparison] {
        &self.comparisons
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression's value as text, for `concurrency_group = { expr = ... }`.
    /// Strings come out as they are; numbers and booleans in their CEL form.
    pub fn evaluate_string(&self, input: &Input) -> Result<String, EvalError> {
        match self.program.execute(&input.context) {
            Ok(CelValue::String(s)) => Ok(s.to_string()),
            Ok(CelValue::Int(i)) => Ok(i.to_string()),
            Ok(CelValue::UInt(u)) => Ok(u.to_string()),
            Ok(CelValue::Bool(b)) => Ok(b.to_string()),
            Ok(other) => Err(EvalError::NotString(format!("{other:?}"))),
            Err(e) => Err(eval_error(e)),
        }
    }

    /// `Ok(false)` for a missing key; `Err` for anything else that is not a boolean.
    pub fn evaluate(&self, input: &Input) -> Result<bool, EvalError> {
        match self.program.execute(&input.context) {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::NotBool(format!("{other:?}"))),
            Err(ExecutionError::NoSuchKey(_)) => Ok(false),
            Err(e) => Err(eval_error(e)),
        }
    }

    /// Like [`Condition::evaluate`], saying which key was missing. `msg` is
    /// the message `input` was made from.
    pub fn outcome(&self, input: &Input, msg: &Message) -> Outcome {
        match self.program.execute(&input.context) {
            Ok(CelValue::Bool(true)) => Outcome::True,
            Ok(CelValue::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(EvalError::NotBool(format!("{other:?}"))),
            Err(ExecutionError::NoSuchKey(key)) => Outcome::Missing(self.missing_path(msg, &key)),
            Err(e) => Outcome::Error(eval_error(e)),
        }
    }

    /// The interpreter names only the last key it could not find (`builds`);
    /// the paths read say where it was looked for (`msg.update.builds`).
    fn missing_path(&self, msg: &Message, key: &str) -> String {
        let missing_here = |p: &KeyPath| {
            let depth = p.depth_in(msg);
            matches!(p.segments.get(depth), Some(Segment::Key(k)) if k == key).then(|| p.prefix(depth + 1))
        };
        self.paths.iter().find_map(missing_here).map_or_else(|| key.to_owned(), |p| p.to_string())
    }
}

/// Type errors get their own variant (check reports them as errors), with
/// the operator as written: `>`, not the interpreter's `_>_`.
fn eval_error(e: ExecutionError) -> EvalError {
    match e {
        ExecutionError::NoSuchOverload(o) => {
            let name = o.function();
            let op = if name.starts_with('_') || name.ends_with('_') { name.replace('_', "") } else { name.to_owned() };
            let types = o.argument_types();
            EvalError::Type(if o.is_member_function() && !types.is_empty() {
                format!("no `{op}` method on {} taking ({})", types[0], types[1..].join(", "))
            } else {
                format!("`{op}` does not apply to ({})", types.join(", "))
            })
        }
        e @ (ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::UnsupportedIndex(..)
        | ExecutionError::UnsupportedKeyType(..)
        | ExecutionError::NotSupportedAsMethod { .. }
        | ExecutionError::UnsupportedTargetType { .. }) => EvalError::Type(e.to_string()),
        e => EvalError::Failed(e.to_string()),
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

/// A message converted to CEL values once, then evaluated against every rule.
pub struct Input {
    context: Context<'static, 'static>,
}

impl Input {
    pub fn new(msg: &Message) -> Input {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("msg", to_cel(&Value::Object(msg.body.clone())));
        context.add_variable_from_value("topic", CelValue::from(msg.topic.clone()));
        context.add_variable_from_value("headers", to_cel(&Value::Object(msg.headers.clone())));
        Input { context }
    }
}

/// JSON to CEL by hand, not with `cel::to_value`: that makes every
/// non-negative integer a `uint`, so `type(msg.build_id) == int` would be
/// false and type errors would talk about uints nobody wrote. Integers are
/// `int` where they fit (as in the JSON a release engineer reads), bigger
/// ones `uint`, the rest `double`.
fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            (None, None) => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => CelValue::Map(cel::objects::Map {
            map: Arc::new(map.iter().map(|(k, v)| (cel::objects::Key::from(k.clone()), to_cel(v))).collect()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(body: Value) -> Message {
        Message::new("org.fedoraproject.prod.bodhi.update.request.testing", body.as_object().unwrap().clone(), "t")
            .unwrap()
    }

    fn eval(source: &str, body: Value) -> Outcome {
        let m = msg(body);
        Condition::compile(source).unwrap().outcome(&Input::new(&m), &m)
    }

    #[test]
    fn standard_cel_and_the_extensions_evaluate() {
        let body = json!({"tag": "f41-updates-candidate", "update": {"builds": [{"nvr": "kernel-6.1-1.fc41"}]}});
        for source in [
            r#"msg.tag.matches("^f[0-9]+-updates-candidate$")"#,
            r#"matches(msg.tag, "candidate$")"#,
            "msg.tag.split('-')[0] == 'f41'",
            "msg.tag.upperAscii().startsWith('F41')",
            "msg.update.builds.exists(b, b.nvr.startsWith('kernel'))",
            "msg.update.builds.all(b, b.nvr.endsWith('.fc41'))",
            "msg.update.builds.exists_one(b, b.nvr.contains('kernel'))",
            "msg.update.builds.map(b, b.nvr).join(',') == 'kernel-6.1-1.fc41'",
            "msg.update.builds.filter(b, b.nvr.startsWith('glibc')).size() == 0",
            "has(msg.update.builds) && !has(msg.update.nosuch)",
            "type(msg.tag) == string",
            "math.abs(-1) == 1 && strings.quote('a') == '\"a\"'",
        ] {
            assert_eq!(eval(source, body.clone()), Outcome::True, "{source}");
        }
    }

    #[test]
    fn calls_cel_does_not_have_are_refused_at_compile_time_with_a_suggestion() {
        let e = Condition::compile("msg.tag.startswith('f')").unwrap_err();
        assert_eq!(
            e.to_string(),
            "condition \"msg.tag.startswith('f')\" calls `startswith`, which CEL does not have; did you mean `startsWith`?"
        );
        assert!(matches!(Condition::compile("len(msg.a) > 1"), Err(ConditionError::UnknownFunction { .. })));
        let e = Condition::compile("msg.a.exists(b)");
        assert!(matches!(e, Err(ConditionError::UnknownFunction { .. })), "{e:?}");
        assert!(matches!(Condition::compile("b.nvr == 1"), Err(ConditionError::UnknownVariable { .. })));
    }

    #[test]
    fn missing_keys_are_named_by_their_path_and_type_errors_are_their_own_kind() {
        let body = json!({"build_id": 5, "update": {"title": "x"}});
        assert_eq!(
            eval("msg.update.builds.exists(b, b.nvr == 'x')", body.clone()),
            Outcome::Missing("msg.update.builds".into())
        );
        assert_eq!(eval("!(msg.nosuch == 1)", body.clone()), Outcome::Missing("msg.nosuch".into()));
        assert_eq!(eval("!has(msg.nosuch)", body.clone()), Outcome::True);
        assert_eq!(
            eval("msg.build_id > '5'", body.clone()),
            Outcome::Error(EvalError::Type("`>` does not apply to (int, string)".into()))
        );
        assert!(matches!(eval("msg.update.title", body), Outcome::Error(EvalError::NotBool(_))));
    }
}
