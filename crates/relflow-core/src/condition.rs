//! `when` conditions: CEL expressions over `msg`, `topic` and `headers`.
//!
//! CEL is small, side-effect free and always terminates, which is what a
//! condition evaluated on untrusted payloads must be. A condition that looks
//! at a key the message does not have is simply false: payloads differ
//! between schema versions and one odd message must never stop a worker.

use std::fmt;

use cel::{Context, ExecutionError, Program, Value as CelValue};
use serde_json::Value;

use crate::Message;

/// The variables a condition may use.
pub const VARIABLES: [&str; 3] = ["msg", "topic", "headers"];

/// A compiled `when` expression.
pub struct Condition {
    source: String,
    program: Program,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConditionError {
    #[error("condition {expr:?} does not parse: {message}")]
    Parse { expr: String, message: String },
    #[error("condition {expr:?} uses `{name}`; conditions can only use msg, topic and headers")]
    UnknownVariable { expr: String, name: String },
}

/// Why evaluating a condition on one message did not give true or false.
/// The worker treats it as "no match" and logs it; `dry-run` shows it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error("evaluation failed: {0}")]
    Failed(String),
    #[error("condition gave {0}, not a boolean")]
    NotBool(String),
    #[error("expression gave {0}, not a string, number or boolean")]
    NotString(String),
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        let program = Program::compile(source)
            .map_err(|e| ConditionError::Parse { expr: source.to_owned(), message: e.to_string() })?;
        // Refuse unknown variables up front: a typo like `mgs.status` would
        // otherwise silently never match.
        let refs = program.references();
        if let Some(name) = refs.variables().into_iter().find(|v| !VARIABLES.contains(v)) {
            return Err(ConditionError::UnknownVariable { expr: source.to_owned(), name: name.to_owned() });
        }
        Ok(Condition { source: source.to_owned(), program })
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
            Err(e) => Err(EvalError::Failed(e.to_string())),
        }
    }

    /// `Ok(false)` for a missing key; `Err` for anything else that is not a boolean.
    pub fn evaluate(&self, input: &Input) -> Result<bool, EvalError> {
        match self.program.execute(&input.context) {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::NotBool(format!("{other:?}"))),
            Err(ExecutionError::NoSuchKey(_)) => Ok(false),
            Err(e) => Err(EvalError::Failed(e.to_string())),
        }
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
        let mut context = Context::default();
        context.add_variable_from_value("msg", to_cel(&Value::Object(msg.body.clone())));
        context.add_variable_from_value("topic", CelValue::from(msg.topic.clone()));
        context.add_variable_from_value("headers", to_cel(&Value::Object(msg.headers.clone())));
        Input { context }
    }
}

fn to_cel(v: &Value) -> CelValue {
    // Every JSON value has a CEL counterpart, so this cannot fail; `Null`
    // keeps the worker going if a future cel release decides otherwise.
    cel::to_value(v).unwrap_or(CelValue::Null)
}
