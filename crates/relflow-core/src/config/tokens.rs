//! `[[http.token]]`: named API tokens, each with one role.
//!
//! ```toml
//! [[http.token]]
//! name = "alice"                       # who, in the audit log and approvals
//! role = "approver"                    # viewer | operator | approver | admin
//! groups = ["releng"]                  # optional; a rule's `approval.approvers` may name a group
//! token_file = "/etc/relflow/alice.token"   # or token_env = "RELFLOW_TOKEN_ALICE"
//! ```
//!
//! The secret never sits in the config file: it is read from a file or an
//! environment variable when `relflow serve` starts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a token may do. Each HTTP endpoint names the [`Permission`] it
/// needs, and a role is the set of permissions it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Reads, publish, replay, rerun, cancel.
    Operator,
    /// Reads, approve and deny.
    Approver,
    /// Everything, purge included.
    Admin,
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Operate,
    Approve,
    Admin,
}

impl Role {
    pub fn allows(self, need: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Viewer => need == Permission::Read,
            Role::Operator => matches!(need, Permission::Read | Permission::Operate),
            Role::Approver => matches!(need, Permission::Read | Permission::Approve),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// One `[[http.token]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamedToken {
    pub name: String,
    pub role: Role,
    /// Groups a rule's `approval.approvers` may name instead of the token's name.
    #[serde(default)]
    pub groups: Vec<String>,
    /// File holding the secret (surrounding whitespace ignored); relative to the config file.
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the secret.
    pub token_env: Option<String>,
}

/// `[http] token`: one shared secret (the admin token, as before named
/// tokens existed), or a list of named tokens.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TokenSetting {
    Shared(String),
    Named(Vec<NamedToken>),
}

impl<'de> Deserialize<'de> for TokenSetting {
    // By hand rather than `untagged`: a typo inside a `[[http.token]]` then
    // gets serde's own error ("unknown field `rol`") instead of "did not
    // match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(TokenSetting::Shared(s)),
            v @ toml::Value::Array(_) => v.try_into().map(TokenSetting::Named).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "[http] token is a secret string or [[http.token]] tables, not a {}",
                other.type_str()
            ))),
        }
    }
}

/// Checks names are unique and each token says where its secret is.
pub(crate) fn validate(tokens: &[NamedToken]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for t in tokens {
        if t.name.trim().is_empty() {
            return Err("[[http.token]] needs a name (it is who the audit log says acted)".into());
        }
        if !seen.insert(t.name.as_str()) {
            return Err(format!("[[http.token]] name {:?} is used twice; names must be unique", t.name));
        }
        if t.token_file.is_some() == t.token_env.is_some() {
            return Err(format!(
                "[[http.token]] {:?}: set exactly one of token_file or token_env (the secret stays out of the config)",
                t.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_grants_only_its_permissions() {
        use Permission::*;
        let grants = |r: Role| [Read, Operate, Approve, Admin].into_iter().filter(|p| r.allows(*p)).collect::<Vec<_>>();
        assert_eq!(grants(Role::Viewer), [Read]);
        assert_eq!(grants(Role::Operator), [Read, Operate]);
        assert_eq!(grants(Role::Approver), [Read, Approve]);
        assert_eq!(grants(Role::Admin), [Read, Operate, Approve, Admin]);
    }

    #[derive(Deserialize)]
    struct Http {
        token: TokenSetting,
    }

    #[test]
    fn a_token_is_a_shared_secret_or_named_tables() {
        let shared: Http = toml::from_str("token = \"s3cret\"").unwrap();
        assert!(matches!(shared.token, TokenSetting::Shared(s) if s == "s3cret"));
        let named: Http = toml::from_str("[[token]]\nname = \"a\"\nrole = \"viewer\"\ntoken_env = \"A\"\n").unwrap();
        let TokenSetting::Named(named) = named.token else { panic!("not named") };
        assert_eq!((named[0].name.as_str(), named[0].role), ("a", Role::Viewer));
        let typo = toml::from_str::<Http>("[[token]]\nname = \"a\"\nrol = \"viewer\"\n").err().unwrap();
        assert!(typo.to_string().contains("rol"), "{typo}");
        let role = toml::from_str::<Http>("[[token]]\nname = \"a\"\nrole = \"root\"\n").err().unwrap();
        assert!(role.to_string().contains("viewer"), "{role}");
    }

    #[test]
    fn names_are_unique_and_secrets_come_from_one_place() {
        let t = |name: &str, file: bool, env: bool| NamedToken {
            name: name.into(),
            role: Role::Viewer,
            groups: vec![],
            token_file: file.then(|| "f".into()),
            token_env: env.then(|| "E".into()),
        };
        assert!(validate(&[t("a", true, false), t("b", false, true)]).is_ok());
        assert!(validate(&[t("a", true, false), t("a", false, true)]).unwrap_err().contains("twice"));
        assert!(validate(&[t("a", false, false)]).unwrap_err().contains("exactly one"));
        assert!(validate(&[t("a", true, true)]).unwrap_err().contains("exactly one"));
        assert!(validate(&[t(" ", true, false)]).unwrap_err().contains("name"));
    }
}
