//! `relflow test`: the `[[rule.test]]` table tests beside the rules, and a
//! syntax check of every playbook, reported like `cargo test`.
//!
//! A test passes only for the right reason: a message that does not match
//! because its condition fails to evaluate is a failure even when
//! `expect = "no-match"`, since the rule is broken for that message.

use std::fmt;

use relflow_core::condition::Outcome;
use relflow_core::{Config, Expect, Rule, RuleTest};
use serde::Serialize;
use serde_json::Value;

/// Every test and how it went.
#[derive(Debug, Serialize)]
pub struct TestReport {
    /// Every test, rule tests first, then playbooks.
    pub tests: Vec<TestCase>,
    /// How many passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
}

/// One test: a rule on a message, or a playbook's syntax check.
#[derive(Debug, Serialize)]
pub struct TestCase {
    /// `rule: message (expects match)` or `playbook name (syntax)`.
    pub name: String,
    /// The rule tested (none for a playbook check).
    pub rule: Option<String>,
    /// The message file, relative to the config.
    pub message: Option<String>,
    /// Why it failed: `None` if it passed.
    pub failure: Option<String>,
}

impl TestReport {
    /// Whether every test passed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

/// Runs every rule test in `config`, then syntax-checks every playbook.
pub fn run_tests(config: &Config) -> TestReport {
    let mut tests = Vec::new();
    for rule in &config.rules {
        for t in &rule.tests {
            let message = crate::samples::display(config, &t.message);
            let expects = match t.expect {
                Expect::Match => "match",
                Expect::NoMatch => "no-match",
            };
            tests.push(TestCase {
                name: format!("{}: {message} (expects {expects})", rule.name),
                rule: Some(rule.name.clone()),
                failure: run_one(config, rule, t).err(),
                message: Some(message),
            });
        }
    }
    for p in crate::playbooks::syntax_check_all(config) {
        tests.push(TestCase {
            name: format!("playbook {} (syntax)", p.name),
            rule: None,
            message: None,
            failure: p.error,
        });
    }
    let failed = tests.iter().filter(|t| t.failure.is_some()).count();
    TestReport { passed: tests.len() - failed, failed, tests }
}

fn run_one(config: &Config, rule: &Rule, test: &RuleTest) -> Result<(), String> {
    let msg = crate::samples::read(config, &test.message)?;
    let verdict = rule.explain(&msg, &mut None);
    let condition =
        rule.when.as_ref().map(|c| format!("\ncondition: {}{}", c.source(), values(c, &msg))).unwrap_or_default();
    let topic = format!("\ntopic: {} (pattern {})", msg.topic, rule.topic);
    if let Some(Outcome::Error(e)) = &verdict.condition {
        return Err(format!("the condition cannot be evaluated on this message: {e}{condition}"));
    }
    match (test.expect, verdict.is_match()) {
        (Expect::Match, false) => Err(format!("expected match, but {verdict}{condition}{topic}")),
        (Expect::NoMatch, true) => Err(format!("expected no-match, but the rule {verdict}{condition}{topic}")),
        (Expect::NoMatch, false) => Ok(()),
        (Expect::Match, true) => {
            let vars = relflow_engine::extra_vars(&msg, &rule.name, "test", 1, &config.compat).to_json();
            let wrong: Vec<String> = test
                .vars
                .iter()
                .filter_map(|(path, want)| match lookup(&vars, path) {
                    None => Some(format!("`{path}`: not in the extra vars; expected {want}")),
                    Some(got) if got != want => Some(format!("`{path}`: expected {want}, got {got}")),
                    Some(_) => None,
                })
                .collect();
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("the rule matches, but the playbook would get other extra vars:\n{}", wrong.join("\n")))
            }
        }
    }
}

/// What the keys the condition reads hold in this message: the usual why.
fn values(cond: &relflow_core::condition::Condition, msg: &relflow_core::Message) -> String {
    let shown: Vec<String> = cond
        .paths()
        .iter()
        .map(|p| match p.values_in(msg).as_slice() {
            [] => format!("{p}: missing"),
            [one] => format!("{p} = {one}"),
            many => format!("{p} = {}", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ")),
        })
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!("\nin this message: {}", shown.join(", "))
    }
}

/// `msg.update.builds.0.nvr` in the extra vars: keys, and indexes into lists.
fn lookup<'v>(vars: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(vars, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "running {} test{}", self.tests.len(), if self.tests.len() == 1 { "" } else { "s" })?;
        for t in &self.tests {
            writeln!(f, "test {} ... {}", t.name, if t.failure.is_none() { "ok" } else { "FAILED" })?;
        }
        let failures: Vec<_> = self.tests.iter().filter_map(|t| Some((&t.name, t.failure.as_ref()?))).collect();
        if !failures.is_empty() {
            writeln!(f, "\nfailures:\n")?;
            for (name, why) in &failures {
                writeln!(f, "---- {name} ----\n{why}\n")?;
            }
            writeln!(f, "failures:")?;
            for (name, _) in &failures {
                writeln!(f, "    {name}")?;
            }
        }
        let result = if self.ok() { "ok" } else { "FAILED" };
        writeln!(f, "\ntest result: {result}. {} passed, {} failed", self.passed, self.failed)
    }
}
