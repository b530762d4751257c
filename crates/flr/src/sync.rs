//! Publish a finished compose: check it, rsync it to `<target>/<COMPOSE_ID>/`,
//! then atomically point `<target>/latest-<release>` at it.
//!
//! Idempotent: a second run transfers nothing and leaves the link alone.
//! rsync is run with an argv (never a shell); every path is canonical and
//! inside the configured roots, and the compose id is a plain name, so no
//! argument can be read as an rsync option.

use crate::checksum;
use crate::compose::{self, Compose};
use crate::error::{Error, Result};
use crate::validate;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Inputs of [`sync`].
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub compose_dir: PathBuf,
    pub target_dir: PathBuf,
    /// Name in `latest-<release>`; defaults to composeinfo's `<short>-<version>`.
    pub release: Option<String>,
    pub verify_checksums: bool,
    pub dry_run: bool,
    pub rsync: PathBuf,
    pub compose_roots: Vec<PathBuf>,
    pub sync_roots: Vec<PathBuf>,
}

/// What [`sync`] did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub compose_id: String,
    pub status: String,
    pub source: PathBuf,
    pub destination: PathBuf,
    pub link: PathBuf,
    pub link_target: String,
    /// `created`, `updated`, `unchanged`, or `would-create`/`would-update` (dry run).
    pub link_action: String,
    /// Items rsync reported as changed (from `--itemize-changes`).
    pub changes: usize,
    pub rsync_argv: Vec<String>,
    pub dry_run: bool,
}

/// The rsync argv for copying `src` into `dst`.
pub fn rsync_argv(rsync: &Path, src: &Path, dst: &Path, dry_run: bool) -> Result<Vec<String>> {
    let s = src.to_string_lossy().to_string();
    let d = dst.to_string_lossy().to_string();
    validate::not_an_option("rsync source", &s)?;
    validate::not_an_option("rsync destination", &d)?;
    let mut argv = vec![
        rsync.to_string_lossy().to_string(),
        "-rlptH".into(),
        "--safe-links".into(),
        "--delete-after".into(),
        "--delay-updates".into(),
        "--itemize-changes".into(),
    ];
    if dry_run {
        argv.push("--dry-run".into());
    }
    argv.push("--".into());
    argv.push(format!("{}/", s.trim_end_matches('/')));
    argv.push(format!("{}/", d.trim_end_matches('/')));
    Ok(argv)
}

/// Run rsync; returns the number of itemized changes.
fn run_rsync(argv: &[String]) -> Result<usize> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| Error::External(format!("cannot run {}: {e} (install rsync or set [tools] rsync)", argv[0])))?;
    if !out.status.success() {
        return Err(Error::External(format!(
            "rsync failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count())
}

/// Point `link` at `target` (relative) atomically: symlink to a temp name,
/// then rename over. Returns the action taken.
pub fn update_link(link: &Path, target: &str, dry_run: bool) -> Result<String> {
    match link.symlink_metadata() {
        Ok(md) if md.file_type().is_symlink() => {
            let cur = std::fs::read_link(link).map_err(|e| Error::io("read link", link, e))?;
            if cur == Path::new(target) {
                return Ok("unchanged".into());
            }
            if dry_run {
                return Ok("would-update".into());
            }
        }
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "{} exists and is not a symlink; move it away before syncing",
                link.display()
            )))
        }
        Err(_) if dry_run => return Ok("would-create".into()),
        Err(_) => {}
    }
    let existed = link.symlink_metadata().is_ok();
    let dir = link.parent().unwrap_or(Path::new("."));
    let tmp =
        dir.join(format!(".{}.flr-tmp-{}", link.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io("create symlink", &tmp, e))?;
    std::fs::rename(&tmp, link).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("replace symlink", link, e)
    })?;
    Ok(if existed { "updated" } else { "created" }.into())
}

/// Check, copy and publish a compose. See the module docs.
pub fn sync(opts: &SyncOptions) -> Result<SyncReport> {
    let src_dir = validate::within_roots("compose directory", &opts.compose_dir, &opts.compose_roots)?;
    let target = validate::within_roots("target directory", &opts.target_dir, &opts.sync_roots)?;
    if !target.is_dir() {
        return Err(Error::Invalid(format!("target {} is not a directory", target.display())));
    }
    let status = compose::check_status(&src_dir)?;
    let c = Compose::open(&src_dir)?;
    // `open` may step up from compose/ to the root: that must be allowed too.
    validate::within_roots("compose root", &c.root, &opts.compose_roots)?;
    let ci = c.composeinfo()?;
    let id = c.id()?;
    if ci.compose.id != id {
        return Err(Error::CheckFailed(format!(
            "COMPOSE_ID ({id}) and composeinfo.json ({}) disagree; refusing to publish",
            ci.compose.id
        )));
    }
    let release = opts.release.clone().unwrap_or_else(|| ci.release_id());
    validate::simple_name("release", &release)?;
    if opts.verify_checksums {
        let report = checksum::verify(&c.root.join("compose"), true, false, None)?;
        if !report.ok {
            return Err(Error::CheckFailed(format!(
                "checksum verification failed, not syncing: {}",
                report.failures().join("; ")
            )));
        }
    }
    let destination = target.join(&id);
    let argv = rsync_argv(&opts.rsync, &c.root, &destination, opts.dry_run)?;
    let changes = run_rsync(&argv)?;
    let link = target.join(format!("latest-{release}"));
    if !opts.dry_run {
        // Never point the link at something that did not arrive complete.
        let copied = std::fs::read_to_string(destination.join("COMPOSE_ID")).unwrap_or_default();
        if copied.trim() != id {
            return Err(Error::External(format!(
                "{} does not hold compose {id} after rsync; not updating {}",
                destination.display(),
                link.display()
            )));
        }
    }
    let link_action = update_link(&link, &id, opts.dry_run)?;
    Ok(SyncReport {
        compose_id: id.clone(),
        status: status.status,
        source: c.root,
        destination,
        link,
        link_target: id,
        link_action,
        changes,
        rsync_argv: argv,
        dry_run: opts.dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_has_no_shell_and_ends_options() {
        let a = rsync_argv(Path::new("/usr/bin/rsync"), Path::new("/a/b"), Path::new("/c/d"), true).unwrap();
        assert_eq!(a[0], "/usr/bin/rsync");
        assert!(a.contains(&"--dry-run".to_string()));
        let dd = a.iter().position(|x| x == "--").unwrap();
        assert_eq!(&a[dd + 1..], ["/a/b/", "/c/d/"]);
        assert!(rsync_argv(Path::new("rsync"), Path::new("-e sh"), Path::new("/x"), false).is_err());
    }

    #[test]
    fn link_is_replaced_atomically_and_idempotently() {
        let t = tempfile::tempdir().unwrap();
        let link = t.path().join("latest-Fedora-39");
        assert_eq!(update_link(&link, "A", true).unwrap(), "would-create");
        assert_eq!(update_link(&link, "A", false).unwrap(), "created");
        assert_eq!(update_link(&link, "A", false).unwrap(), "unchanged");
        assert_eq!(update_link(&link, "B", false).unwrap(), "updated");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("B"));
        std::fs::create_dir(t.path().join("latest-x")).unwrap();
        assert!(update_link(&t.path().join("latest-x"), "B", false).is_err());
    }
}
