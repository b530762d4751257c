//! `relflow schemas import`: the installed schema packages, written out.
//!
//! Python loads the classes (only it can: they are Python), prints them as
//! one JSON document, and relflow writes the directory, so the layout is
//! owned here: one `<entry point name>.json` body schema per class and an
//! `index.json` that lists them, written last and atomically, so a reader
//! never sees an index naming a file not yet written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::set::{Entry, Index, INDEX};

const SCRIPT: &str = include_str!("import.py");

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The interpreter cannot be started.
    #[error("cannot run {python}: {source} (set [schemas] python, or pass --python)")]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The script failed (no fedora-messaging in that Python, typically).
    #[error("{python} could not list the schemas: {stderr}")]
    Failed {
        /// The interpreter.
        python: PathBuf,
        /// What it said.
        stderr: String,
    },
    /// The script printed something that is not its document.
    #[error("the schema list from {python} is not valid: {message}")]
    Output {
        /// The interpreter.
        python: PathBuf,
        /// The parse error.
        message: String,
    },
    /// The directory cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What an import wrote.
#[derive(Debug, serde::Serialize)]
pub struct ImportReport {
    /// The directory.
    pub dir: PathBuf,
    /// How many classes.
    pub classes: usize,
    /// Each package and its version, with how many classes it has.
    pub packages: BTreeMap<String, (String, usize)>,
    /// Classes that could not be loaded.
    pub errors: Vec<String>,
}

#[derive(Deserialize)]
struct Listed {
    schemas: Vec<ListedClass>,
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct ListedClass {
    name: String,
    class: String,
    topic: String,
    package: Option<String>,
    version: Option<String>,
    schema: Value,
}

/// Lists every class with `python` and writes them into `dir`.
pub fn import(python: &Path, dir: &Path) -> Result<ImportReport, ImportError> {
    let listed = list(python)?;
    std::fs::create_dir_all(dir).map_err(write(dir))?;
    let stale = previous_files(dir);
    let mut index = Index { schemas: Vec::new(), errors: listed.errors };
    for class in listed.schemas {
        let file = format!("{}.json", file_stem(&class.name));
        let path = dir.join(&file);
        std::fs::write(&path, pretty(&class.schema)).map_err(write(&path))?;
        let ListedClass { name, class, topic, package, version, schema } = class;
        index.schemas.push(Entry { name, class, topic, package, version, file, schema });
    }
    let tmp = dir.join(format!(".{INDEX}.tmp"));
    let index_json = serde_json::to_value(&index).unwrap_or_default();
    std::fs::write(&tmp, pretty(&index_json)).map_err(write(&tmp))?;
    std::fs::rename(&tmp, dir.join(INDEX)).map_err(write(&dir.join(INDEX)))?;
    // Classes of a package uninstalled since the last import; only files the
    // old index named, never anything else in the directory.
    for old in stale.iter().filter(|f| !index.schemas.iter().any(|e| &e.file == *f)) {
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(report(dir, index))
}

fn write(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Write { path: path.to_path_buf(), source }
}

fn list(python: &Path) -> Result<Listed, ImportError> {
    let out = Command::new(python)
        .args(["-I", "-c", SCRIPT])
        .output()
        .map_err(|source| ImportError::Spawn { python: python.to_path_buf(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.trim().lines().last().unwrap_or("(no output)").to_owned();
        return Err(ImportError::Failed { python: python.to_path_buf(), stderr: format!("{} ({last})", out.status) });
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| ImportError::Output { python: python.to_path_buf(), message: e.to_string() })
}

fn previous_files(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(INDEX)).unwrap_or_default();
    serde_json::from_str::<Index>(&text).map(|i| i.schemas.into_iter().map(|e| e.file).collect()).unwrap_or_default()
}

/// An entry point name as a file name: entry point names are dotted
/// identifiers, but a package is free to put anything there.
fn file_stem(name: &str) -> String {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    stem.trim_start_matches('.').to_owned()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn report(dir: &Path, index: Index) -> ImportReport {
    let mut packages = BTreeMap::new();
    for e in &index.schemas {
        let name = e.package.clone().unwrap_or_else(|| "(unknown package)".into());
        let slot = packages.entry(name).or_insert_with(|| (e.version.clone().unwrap_or_default(), 0));
        slot.1 += 1;
    }
    ImportReport { dir: dir.to_path_buf(), classes: index.schemas.len(), packages, errors: index.errors }
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} schema(s) from {} package(s) written to {}",
            self.classes,
            self.packages.len(),
            self.dir.display()
        )?;
        for (name, (version, n)) in &self.packages {
            writeln!(f, "  {name} {version}: {n}")?;
        }
        for e in &self.errors {
            writeln!(f, "warning: not imported: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_stems_stay_inside_the_directory() {
        assert_eq!(super::file_stem("bodhi.update.comment.v1"), "bodhi.update.comment.v1");
        assert_eq!(super::file_stem("../../etc/passwd"), "_.._etc_passwd");
    }
}
