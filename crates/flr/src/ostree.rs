//! OSTree ref and summary updates, through the real `ostree` binary.
//!
//! Fedora publishes ostree commits by moving a ref (e.g.
//! `fedora/39/x86_64/silverblue`) to a new commit and regenerating the
//! repo summary. `ostree` is run with an argv; the repo must be inside the
//! configured roots; refs and commits are validated so they can never be
//! parsed as options.

use crate::error::{Error, Result};
use crate::validate;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A ref name: `[A-Za-z0-9._-]` components separated by single `/`.
pub fn validate_ref(r: &str) -> Result<()> {
    validate::not_an_option("ref", r)?;
    let ok = !r.starts_with('/')
        && !r.ends_with('/')
        && r.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        });
    if !ok {
        return Err(Error::Invalid(format!(
            "ref {r:?} is not a plain ostree ref like fedora/39/x86_64/silverblue (remote: prefixes are refused)"
        )));
    }
    Ok(())
}

/// A full commit checksum (64 lowercase hex digits).
pub fn validate_commit(c: &str) -> Result<()> {
    if c.len() != 64 || !c.chars().all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch)) {
        return Err(Error::Invalid(format!("commit {c:?} must be a full 64-hex-digit ostree checksum")));
    }
    Ok(())
}

/// Runs the ostree binary against one repo.
pub struct Repo {
    pub ostree: PathBuf,
    pub path: PathBuf,
}

impl Repo {
    /// Open `path` (canonical, inside `roots`) as an ostree repo.
    pub fn open(ostree: &Path, path: &Path, roots: &[PathBuf]) -> Result<Repo> {
        let path = validate::within_roots("ostree repo", path, roots)?;
        if !path.join("config").is_file() || !path.join("objects").is_dir() {
            return Err(Error::Invalid(format!("{} is not an ostree repository", path.display())));
        }
        Ok(Repo { ostree: ostree.to_path_buf(), path })
    }

    fn run(&self, args: &[&str]) -> Result<std::result::Result<String, String>> {
        let repo_arg = format!("--repo={}", self.path.display());
        let out = Command::new(&self.ostree).arg(args[0]).arg(&repo_arg).args(&args[1..]).output().map_err(|e| {
            Error::External(format!(
                "cannot run {}: {e} (apt-get install ostree, or set [tools] ostree)",
                self.ostree.display()
            ))
        })?;
        if out.status.success() {
            Ok(Ok(String::from_utf8_lossy(&out.stdout).to_string()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    fn run_ok(&self, args: &[&str]) -> Result<String> {
        self.run(args)?.map_err(|e| Error::External(format!("ostree {} failed: {e}", args[0])))
    }

    /// The commit a ref points at, or None if the ref does not exist.
    pub fn rev_parse(&self, r: &str) -> Result<Option<String>> {
        Ok(self.run(&["rev-parse", r])?.ok().map(|s| s.trim().to_string()))
    }

    /// Whether the commit object exists in the repo.
    pub fn has_commit(&self, c: &str) -> Result<bool> {
        Ok(self.run(&["show", c])?.is_ok())
    }

    /// All refs with their commits.
    pub fn refs(&self) -> Result<Vec<RefInfo>> {
        let mut out = Vec::new();
        for r in self.run_ok(&["refs"])?.lines().map(str::trim).filter(|l| !l.is_empty()) {
            out.push(RefInfo { name: r.to_string(), commit: self.rev_parse(r)?.unwrap_or_default() });
        }
        Ok(out)
    }
}

/// A ref and its commit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefInfo {
    #[serde(rename = "ref")]
    pub name: String,
    pub commit: String,
}

/// What `flr ostree update-ref` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateRefReport {
    pub repo: PathBuf,
    #[serde(rename = "ref")]
    pub name: String,
    pub previous: Option<String>,
    pub commit: String,
    /// `created`, `updated`, `unchanged`, `would-create`, `would-update`.
    pub action: String,
}

/// Point `r` at `commit` (which must already be in the repo). Idempotent.
pub fn update_ref(repo: &Repo, r: &str, commit: &str, dry_run: bool) -> Result<UpdateRefReport> {
    validate_ref(r)?;
    validate_commit(commit)?;
    if !repo.has_commit(commit)? {
        return Err(Error::Invalid(format!(
            "commit {commit} is not in {}; pull or import it first",
            repo.path.display()
        )));
    }
    let previous = repo.rev_parse(r)?;
    let action = match (&previous, dry_run) {
        (Some(p), _) if p == commit => "unchanged",
        (Some(_), true) => "would-update",
        (None, true) => "would-create",
        (prev, false) => {
            let create = format!("--create={r}");
            repo.run_ok(&["refs", &create, "--force", commit])?;
            if prev.is_some() {
                "updated"
            } else {
                "created"
            }
        }
    };
    Ok(UpdateRefReport {
        repo: repo.path.clone(),
        name: r.into(),
        previous,
        commit: commit.into(),
        action: action.into(),
    })
}

/// What `flr ostree summary` did.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryReport {
    pub repo: PathBuf,
    /// Whether the summary file was regenerated.
    pub updated: bool,
    pub dry_run: bool,
    pub refs: Vec<RefInfo>,
}

/// Regenerate the summary (unless `dry_run`) and list refs. `gpg_key`
/// signs it (`--gpg-sign`), with an optional `--gpg-homedir`.
pub fn summary(
    repo: &Repo,
    update: bool,
    gpg_key: Option<&str>,
    gpg_homedir: Option<&Path>,
    dry_run: bool,
) -> Result<SummaryReport> {
    let mut updated = false;
    if update && !dry_run {
        let mut args: Vec<String> = vec!["summary".into(), "--update".into()];
        if let Some(k) = gpg_key {
            validate::simple_name("gpg key id", k)?;
            args.push(format!("--gpg-sign={k}"));
        }
        if let Some(h) = gpg_homedir {
            let h = validate::canonical("gpg homedir", h)?;
            args.push(format!("--gpg-homedir={}", h.display()));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        repo.run_ok(&refs)?;
        updated = true;
    }
    Ok(SummaryReport { repo: repo.path.clone(), updated, dry_run, refs: repo.refs()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_commits_are_validated() {
        assert!(validate_ref("fedora/39/x86_64/silverblue").is_ok());
        assert!(validate_ref("-x").is_err());
        assert!(validate_ref("a/../b").is_err());
        assert!(validate_ref("remote:a/b").is_err());
        assert!(validate_ref("a//b").is_err());
        assert!(validate_commit(&"a".repeat(64)).is_ok());
        assert!(validate_commit("HEAD").is_err());
        assert!(validate_commit(&"A".repeat(64)).is_err());
    }
}
