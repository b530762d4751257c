//! Input validation shared by every command.
//!
//! flr runs under sudo, so the caller is less trusted than flr itself. Every
//! path is canonicalized (resolving `..` and symlinks) and checked against the
//! configured roots; every string that ends up in an argv of rsync/ostree is
//! checked so it can never be read as an option.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Refuse values that an external tool could parse as an option, or that
/// contain characters no legitimate value has (NUL, newlines).
pub fn not_an_option(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Invalid(format!("{what} must not be empty")));
    }
    if value.starts_with('-') {
        return Err(Error::Invalid(format!(
            "{what} {value:?} starts with '-': refusing a value that could be read as an option"
        )));
    }
    if value.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
        return Err(Error::Invalid(format!("{what} {value:?} contains control characters")));
    }
    Ok(())
}

/// A name made only of `[A-Za-z0-9._+~^-]`, not starting with `-` or `.`:
/// koji tags, NVRs, package names, compose ids.
pub fn simple_name(what: &str, value: &str) -> Result<()> {
    not_an_option(what, value)?;
    let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || "._+~^-".contains(c));
    if !ok || value.starts_with('.') {
        return Err(Error::Invalid(format!(
            "{what} {value:?} may only contain letters, digits and . _ + ~ ^ - (and must not start with '.' or '-')"
        )));
    }
    Ok(())
}

/// Canonicalize an existing path (resolving `..` and symlinks).
pub fn canonical(what: &str, path: &Path) -> Result<PathBuf> {
    let s = path.to_string_lossy();
    not_an_option(what, &s)?;
    path.canonicalize().map_err(|e| Error::Invalid(format!("{what} {}: {e} (give an existing path)", path.display())))
}

/// Canonicalize `path` and require it to be inside one of `roots` (if any
/// roots are configured). `roots` empty means "unrestricted", which
/// [`crate::config::Config::roots_for`] only allows when not run via sudo.
pub fn within_roots(what: &str, path: &Path, roots: &[PathBuf]) -> Result<PathBuf> {
    let p = canonical(what, path)?;
    if roots.is_empty() {
        return Ok(p);
    }
    for root in roots {
        if let Ok(r) = root.canonicalize() {
            if p.starts_with(&r) {
                return Ok(p);
            }
        }
    }
    Err(Error::Invalid(format!(
        "{what} {} is outside the allowed roots ({}); add its root to the flr config if this is intended",
        p.display(),
        roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
    )))
}

/// A relative path taken from a metadata file (CHECKSUM entry, images.json):
/// must stay inside the directory it is relative to.
pub fn relative_inside(what: &str, rel: &str) -> Result<()> {
    let p = Path::new(rel);
    let bad =
        rel.is_empty() || p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_)));
    if bad {
        return Err(Error::Invalid(format!(
            "{what} {rel:?} is not a plain relative path (absolute paths and '..' are refused)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_refused() {
        assert!(not_an_option("x", "-rf").is_err());
        assert!(not_an_option("x", "--rsh=sh").is_err());
        assert!(not_an_option("x", "").is_err());
        assert!(not_an_option("x", "a\nb").is_err());
        assert!(not_an_option("x", "fine").is_ok());
    }

    #[test]
    fn simple_names() {
        assert!(simple_name("tag", "f39-updates-candidate").is_ok());
        assert!(simple_name("nvr", "bash-5.2.15-5.fc39").is_ok());
        assert!(simple_name("nvr", "a b").is_err());
        assert!(simple_name("nvr", "../x").is_err());
        assert!(simple_name("nvr", ".hidden").is_err());
    }

    #[test]
    fn relative_paths() {
        assert!(relative_inside("f", "a/b.iso").is_ok());
        assert!(relative_inside("f", "../b.iso").is_err());
        assert!(relative_inside("f", "a/../../b").is_err());
        assert!(relative_inside("f", "/etc/passwd").is_err());
    }

    #[test]
    fn roots_are_enforced() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("inner")).unwrap();
        std::fs::create_dir_all(t.path().join("outside")).unwrap();
        let roots = vec![root.clone()];
        assert!(within_roots("d", &root.join("inner"), &roots).is_ok());
        assert!(within_roots("d", &root.join("inner/../../outside"), &roots).is_err());
        std::os::unix::fs::symlink(t.path().join("outside"), root.join("link")).unwrap();
        assert!(within_roots("d", &root.join("link"), &roots).is_err());
    }
}
