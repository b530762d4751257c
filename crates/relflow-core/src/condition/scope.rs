//! One walk over a compiled condition's syntax tree that finds what the
//! `cel` crate's own `references()` cannot tell apart: which identifiers are
//! free variables and which are bound by a macro (`b` in
//! `builds.exists(b, ...)`), which names are functions (`strings.quote` is a
//! namespaced function, not a field of a variable `strings`), and which key
//! paths are read.

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};

use super::path::{Comparison, KeyPath, Kind, Root, Segment};
use super::{ENV, VARIABLES};

/// What a condition refers to.
#[derive(Debug, Default)]
pub(super) struct Analysis {
    /// Identifiers that are none of `msg`, `topic`, `headers`, a macro's
    /// variable or a type name, in order of appearance.
    pub unknown_variables: Vec<String>,
    pub calls: Vec<Call>,
    /// Every key path read, as written (`msg.a.b`, without also `msg.a`).
    pub paths: Vec<KeyPath>,
    /// Paths compared with literals.
    pub comparisons: Vec<Comparison>,
}

/// A function call as written: `x.name(...)` is a member call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Call {
    /// Qualified for namespaced functions: `strings.quote`.
    pub name: String,
    pub member: bool,
}

pub(super) fn analyse(expr: &IdedExpr) -> Analysis {
    let mut walker = Walker::default();
    walker.walk(expr);
    walker.out.paths.sort();
    walker.out.paths.dedup();
    walker.out
}

/// What a macro's variable stands for.
enum Binding {
    /// An element of a list the condition reads: `b` in `msg.builds.all(b, ...)`.
    Each(KeyPath),
    /// Anything else (the accumulator, an element of a computed list).
    Value,
}

#[derive(Default)]
struct Walker {
    /// Innermost last, so a nested macro's variable shadows an outer one.
    scopes: Vec<(String, Binding)>,
    /// How many negations (`!`, `!=`) enclose the current node.
    negated: u32,
    out: Analysis,
}

impl Walker {
    fn walk(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => self.ident(name),
            Expr::Select(s) => match self.path(e) {
                Some(p) => self.record(p, s.test),
                None => self.walk(&s.operand),
            },
            Expr::Call(call) if is_operator(&call.func_name) => {
                if call.func_name == operators::INDEX {
                    if let Some(p) = self.path(e) {
                        return self.record(p, false);
                    }
                }
                self.comparison(&call.func_name, &call.args);
                let negation = call.func_name == operators::LOGICAL_NOT || call.func_name == operators::NOT_EQUALS;
                self.negated += u32::from(negation);
                call.target.iter().for_each(|t| self.walk(t));
                call.args.iter().for_each(|a| self.walk(a));
                self.negated -= u32::from(negation);
            }
            Expr::Call(call) => {
                match call.target.as_deref() {
                    // `strings.quote(x)`: the target names a namespace, not a value.
                    Some(target) if self.namespace(target).is_some() => {
                        let name = format!("{}.{}", self.namespace(target).unwrap_or_default(), call.func_name);
                        self.out.calls.push(Call { name, member: false });
                    }
                    Some(target) => {
                        self.out.calls.push(Call { name: call.func_name.clone(), member: true });
                        self.walk(target);
                    }
                    None => self.out.calls.push(Call { name: call.func_name.clone(), member: false }),
                }
                call.args.iter().for_each(|a| self.walk(a));
            }
            Expr::Comprehension(c) => {
                // The range and the initial value are evaluated outside the
                // macro's scope; the loop and the result inside it.
                self.walk(&c.iter_range);
                self.walk(&c.accu_init);
                let element = match self.path(&c.iter_range) {
                    Some(p) => Binding::Each(p.child(Segment::Each)),
                    None => Binding::Value,
                };
                let depth = self.scopes.len();
                self.scopes.push((c.iter_var.clone(), element));
                if let Some(v2) = &c.iter_var2 {
                    self.scopes.push((v2.clone(), Binding::Value));
                }
                self.scopes.push((c.accu_var.clone(), Binding::Value));
                self.walk(&c.loop_cond);
                self.walk(&c.loop_step);
                self.walk(&c.result);
                self.scopes.truncate(depth);
            }
            Expr::List(list) => list.elements.iter().for_each(|x| self.walk(x)),
            Expr::Map(map) => map.entries.iter().for_each(|entry| self.entry(&entry.expr)),
            Expr::Struct(s) => s.entries.iter().for_each(|entry| self.entry(&entry.expr)),
        }
    }

    fn comparison(&mut self, op: &str, args: &[IdedExpr]) {
        let (text, path, literal) = match (op, args) {
            (operators::EQUALS | operators::NOT_EQUALS, [a, b]) => {
                let (path, lit) = match (self.path(a), self.path(b)) {
                    (Some(p), None) => (p, literal_kind(b)),
                    (None, Some(p)) => (p, literal_kind(a)),
                    _ => return,
                };
                let shown = if op == operators::EQUALS { "==" } else { "!=" };
                (format!("{path} {shown} {}", literal_text(if self.path(a).is_some() { b } else { a })), path, lit)
            }
            (operators::IN, [a, list_expr]) => {
                let (Some(path), Expr::List(list)) = (self.path(a), &list_expr.expr) else { return };
                let kinds: Vec<_> = list.elements.iter().map(literal_kind).collect();
                let first = kinds.first().copied().flatten();
                let same = kinds.iter().all(|k| *k == first);
                (format!("{path} in [...]"), path, if same { first } else { None })
            }
            _ => return,
        };
        if let Some(literal) = literal {
            self.out.comparisons.push(Comparison { path, literal, text });
        }
    }

    fn entry(&mut self, entry: &EntryExpr) {
        match entry {
            EntryExpr::StructField(field) => self.walk(&field.value),
            EntryExpr::MapEntry(e) => {
                self.walk(&e.key);
                self.walk(&e.value);
            }
        }
    }

    fn ident(&mut self, name: &str) {
        // `@`-names are the macros' own hidden variables.
        let known = name.starts_with('@')
            || self.bound(name).is_some()
            || VARIABLES.contains(&name)
            || ENV.types().find_type(name).is_some();
        if !known && !self.out.unknown_variables.iter().any(|n| n == name) {
            self.out.unknown_variables.push(name.to_owned());
        }
    }

    fn bound(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    fn record(&mut self, mut path: KeyPath, tested: bool) {
        path.tested = tested;
        path.negated = self.negated > 0;
        self.out.paths.push(path);
    }

    /// The key path `e` reads, if it is one: `msg.a["b"].c`, `b.nvr` for a
    /// macro variable `b` over a path, `has(msg.a)` (the path `msg.a`).
    fn path(&self, e: &IdedExpr) -> Option<KeyPath> {
        match &e.expr {
            Expr::Ident(name) => match (self.bound(name), name.as_str()) {
                (Some(Binding::Each(p)), _) => Some(p.clone()),
                (Some(Binding::Value), _) => None,
                (None, "msg") => Some(KeyPath::root(Root::Msg)),
                (None, "headers") => Some(KeyPath::root(Root::Headers)),
                _ => None,
            },
            Expr::Select(s) => Some(self.path(&s.operand)?.child(Segment::Key(s.field.clone()))),
            Expr::Call(call) if call.func_name == operators::INDEX && call.args.len() == 2 => {
                let base = self.path(&call.args[0])?;
                match &call.args[1].expr {
                    Expr::Literal(LiteralValue::String(k)) => Some(base.child(Segment::Key(k.inner().to_owned()))),
                    Expr::Literal(LiteralValue::Int(_) | LiteralValue::UInt(_)) => Some(base.child(Segment::Each)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `a.b` when `target` spells a dotted name whose root is no variable:
    /// then `a.b.f(x)` calls the function `a.b.f`.
    fn namespace(&self, target: &IdedExpr) -> Option<String> {
        let mut segments = Vec::new();
        let mut e = target;
        loop {
            match &e.expr {
                Expr::Ident(name) => {
                    if self.bound(name).is_some() || VARIABLES.contains(&name.as_str()) {
                        return None;
                    }
                    segments.push(name.as_str());
                    break;
                }
                Expr::Select(s) if !s.test => {
                    segments.push(s.field.as_str());
                    e = &s.operand;
                }
                _ => return None,
            }
        }
        segments.reverse();
        let name = segments.join(".");
        // Only if some function lives there; otherwise it is an unknown
        // variable, which the walk of the target reports.
        super::functions::is_namespace(&name).then_some(name)
    }
}

fn literal_kind(e: &IdedExpr) -> Option<Kind> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(_)) => Some(Kind::String),
        Expr::Literal(LiteralValue::Int(_) | LiteralValue::UInt(_) | LiteralValue::Double(_)) => Some(Kind::Number),
        Expr::Literal(LiteralValue::Boolean(_)) => Some(Kind::Bool),
        _ => None,
    }
}

fn literal_text(e: &IdedExpr) -> String {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => format!("{:?}", s.inner()),
        Expr::Literal(LiteralValue::Int(i)) => i.inner().to_string(),
        Expr::Literal(LiteralValue::Boolean(b)) => format!("{b:?}").to_lowercase(),
        _ => "...".into(),
    }
}

/// Operators and the macros' internal calls, as opposed to functions a
/// user names: `_==_`, `!_`, `-_`, `@in`, `@not_strictly_false`.
fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('!') || name.starts_with('-') || name.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(source: &str) -> Analysis {
        analyse(ENV.compile(source).unwrap().expression())
    }

    fn paths(source: &str) -> Vec<String> {
        analysis(source).paths.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn macro_variables_are_bound_only_inside_their_macro() {
        assert!(analysis("msg.update.builds.exists(b, b.nvr.startsWith('kernel'))").unknown_variables.is_empty());
        assert!(analysis("msg.a.all(x, msg.b.exists(y, x == y))").unknown_variables.is_empty());
        assert!(analysis("msg.a.map(x, x + 1).filter(y, y > 2).size() > 0").unknown_variables.is_empty());
        assert!(analysis("msg.a.exists_one(x, x == 1)").unknown_variables.is_empty());
        // `b` is out of scope after the macro, and a typo is still caught inside it.
        assert_eq!(analysis("msg.a.exists(b, true) && b == 1").unknown_variables, ["b"]);
        assert_eq!(analysis("msg.a.exists(b, c.nvr == 1)").unknown_variables, ["c"]);
        assert_eq!(analysis("mgs.status == 'x'").unknown_variables, ["mgs"]);
        assert!(analysis("type(msg.a) == int && type(msg.b) == string").unknown_variables.is_empty());
    }

    #[test]
    fn paths_follow_macro_variables_indexes_and_has() {
        assert_eq!(
            paths("msg.update.builds.exists(b, b.nvr.startsWith('kernel')) && msg['update'].status == 'stable'"),
            ["msg.update.builds", "msg.update.builds[].nvr", "msg.update.status"]
        );
        let a = analysis("has(msg.x) && !(msg.y == 1) && headers.z != 2");
        let flags: Vec<_> = a.paths.iter().map(|p| (p.to_string(), p.tested, p.negated)).collect();
        assert_eq!(
            flags,
            [("msg.x".into(), true, false), ("msg.y".into(), false, true), ("headers.z".into(), false, true)]
        );
        assert_eq!(paths("msg.builds[0].nvr == topic"), ["msg.builds[].nvr"]);
    }

    #[test]
    fn comparisons_with_literals_are_recorded_with_the_literal_kind() {
        let a =
            analysis("msg.new == '1' && 2 != msg.old && msg.status in ['A', 'B'] && msg.x == msg.y && 'a' in msg.l");
        let found: Vec<_> = a.comparisons.iter().map(|c| (c.text.as_str(), c.literal)).collect();
        assert_eq!(
            found,
            [("msg.new == \"1\"", Kind::String), ("msg.old != 2", Kind::Number), ("msg.status in [...]", Kind::String)]
        );
    }

    #[test]
    fn calls_are_told_apart_as_methods_functions_and_namespaced_functions() {
        let calls = analysis("size(msg.a) > 0 && msg.b.lowerAscii() == strings.quote(msg.c)").calls;
        let calls: Vec<_> = calls.iter().map(|c| (c.name.as_str(), c.member)).collect();
        assert_eq!(calls, [("size", false), ("lowerAscii", true), ("strings.quote", false)]);
    }
}
