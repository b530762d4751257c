//! Fedora CHECKSUM files: create and verify, hashing in parallel.
//!
//! Format (what Fedora publishes next to ISOs and images), BSD-style lines
//! with a size comment before each:
//!
//! ```text
//! # Fedora-Server-dvd-x86_64-39-1.5.iso: 2612854784 bytes
//! SHA256 (Fedora-Server-dvd-x86_64-39-1.5.iso) = 2755cdff...
//! ```
//!
//! Published files are then clearsigned by sigul; flr recognises a
//! clearsigned file, verifies the hashes inside it, and refuses to overwrite
//! it (that would silently drop the signature). It does not check the OpenPGP
//! signature itself: do that with `gpgv --keyring <fedora keys> FILE`.

use crate::error::{Error, Result};
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

const SIG_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const SIG_BLOCK: &str = "-----BEGIN PGP SIGNATURE-----";

/// Supported digest algorithms (the ones sha2 provides; Fedora uses SHA256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Algorithm {
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    pub fn parse(s: &str) -> Result<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(Error::Invalid(format!("unsupported checksum algorithm {s:?} (use SHA256 or SHA512)"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

/// One `ALG (file) = hex` line, with the size from its `# file: N bytes` comment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub algorithm: Algorithm,
    pub file: String,
    pub digest: String,
    pub size: Option<u64>,
}

/// A parsed CHECKSUM file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChecksumFile {
    /// Whether the file is an OpenPGP clearsigned message.
    pub signed: bool,
    pub entries: Vec<Entry>,
}

/// True if `text` is a clearsigned OpenPGP message.
pub fn is_signed(text: &str) -> bool {
    text.lines().find(|l| !l.trim().is_empty()).map(str::trim_end) == Some(SIG_BEGIN)
}

/// The signed body of a clearsigned message, dash-escaping undone.
fn signed_body(text: &str) -> Result<Vec<String>> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    lines.next(); // the BEGIN line
                  // Armor headers ("Hash: SHA256") up to the first empty line.
    for l in lines.by_ref() {
        if l.trim().is_empty() {
            break;
        }
    }
    let mut body = Vec::new();
    for l in lines {
        if l.trim_end() == SIG_BLOCK {
            return Ok(body);
        }
        body.push(l.strip_prefix("- ").unwrap_or(l).to_string());
    }
    Err(Error::Invalid("clearsigned CHECKSUM has no signature block: truncated file?".into()))
}

/// Parse CHECKSUM text (plain or clearsigned).
pub fn parse(text: &str) -> Result<ChecksumFile> {
    let signed = is_signed(text);
    let lines: Vec<String> = if signed { signed_body(text)? } else { text.lines().map(String::from).collect() };
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut entries = Vec::new();
    for (n, raw) in lines.iter().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            // "# name: 123 bytes"; other comments are ignored.
            if let Some((name, rest)) = c.trim().rsplit_once(": ") {
                if let Some(num) = rest.strip_suffix(" bytes") {
                    if let Ok(sz) = num.trim().parse() {
                        sizes.insert(name.to_string(), sz);
                    }
                }
            }
            continue;
        }
        let bad = || Error::Invalid(format!("CHECKSUM line {}: cannot parse {line:?}", n + 1));
        let (alg, rest) = line.split_once(" (").ok_or_else(bad)?;
        let (file, digest) = rest.rsplit_once(") = ").ok_or_else(bad)?;
        let algorithm = Algorithm::parse(alg)?;
        let digest = digest.trim().to_ascii_lowercase();
        let want_len = match algorithm {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        };
        if digest.len() != want_len || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        entries.push(Entry { algorithm, file: file.to_string(), digest, size: None });
    }
    for e in &mut entries {
        e.size = sizes.get(&e.file).copied();
    }
    Ok(ChecksumFile { signed, entries })
}

/// Render entries in Fedora's format.
pub fn render(entries: &[Entry]) -> String {
    let mut s = String::new();
    for e in entries {
        if let Some(sz) = e.size {
            s.push_str(&format!("# {}: {sz} bytes\n", e.file));
        }
        s.push_str(&format!("{} ({}) = {}\n", e.algorithm.name(), e.file, e.digest));
    }
    s
}

/// Hash one file, adding bytes read to `progress`.
pub fn hash_file(path: &Path, alg: Algorithm, progress: &AtomicU64) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h256 = sha2::Sha256::new();
    let mut h512 = sha2::Sha512::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        match alg {
            Algorithm::Sha256 => h256.update(&buf[..n]),
            Algorithm::Sha512 => h512.update(&buf[..n]),
        }
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(match alg {
        Algorithm::Sha256 => hex::encode(h256.finalize()),
        Algorithm::Sha512 => hex::encode(h512.finalize()),
    })
}

/// Where progress lines go; `None` silences them (`--json`, `--quiet`).
pub type Progress<'a> = Option<&'a (dyn Fn(&str) + Sync)>;

/// Hash `files` in parallel (one worker per core). Results keep input order.
/// Progress lines are emitted as files complete.
pub fn hash_many(files: &[PathBuf], alg: Algorithm, progress: Progress) -> Vec<Result<String>> {
    let total_bytes: u64 = files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    let bytes = AtomicU64::new(0);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<String>>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= files.len() {
                    break;
                }
                let r = hash_file(&files[i], alg, &bytes);
                results.lock().unwrap()[i] = Some(r);
                let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(p) = progress {
                    let b = bytes.load(Ordering::Relaxed);
                    let pct = (b * 100).checked_div(total_bytes).unwrap_or(100);
                    p(&format!(
                        "checksum: [{d}/{}] {} ({} of {} MiB hashed, {pct}%)",
                        files.len(),
                        files[i].file_name().unwrap_or_default().to_string_lossy(),
                        b >> 20,
                        total_bytes >> 20
                    ));
                }
            });
        }
    });
    results.into_inner().unwrap().into_iter().map(|r| r.expect("every file hashed")).collect()
}

/// Files a CHECKSUM in `dir` covers: regular, non-hidden files, except
/// CHECKSUM files and detached signatures.
pub fn payload_files(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for ent in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let ent = ent.map_err(|e| Error::io("list", dir, e))?;
        let name = ent.file_name().to_string_lossy().to_string();
        let ft = ent.file_type().map_err(|e| Error::io("stat", &ent.path(), e))?;
        if !ft.is_file()
            || name.starts_with('.')
            || name.ends_with("CHECKSUM")
            || name.ends_with(".asc")
            || name.ends_with(".sig")
        {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// What `flr checksum create` did.
#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    pub checksum_file: PathBuf,
    pub entries: Vec<Entry>,
    /// `created`, `updated`, `unchanged`, or `would-write` (dry run).
    pub action: String,
}

/// Write `<dir>/<name>` covering every payload file in `dir`.
pub fn create(
    dir: &Path,
    name: &str,
    alg: Algorithm,
    force: bool,
    dry_run: bool,
    progress: Progress,
) -> Result<CreateReport> {
    crate::validate::simple_name("checksum file name", name)?;
    if !name.ends_with("CHECKSUM") {
        return Err(Error::Invalid(format!("checksum file name {name:?} must end with CHECKSUM")));
    }
    let target = dir.join(name);
    let existing = std::fs::read_to_string(&target).ok();
    if let Some(text) = &existing {
        if is_signed(text) && !force {
            return Err(Error::Invalid(format!(
                "{} is already signed; overwriting it would drop the signature (use --force if you mean it)",
                target.display()
            )));
        }
    }
    let names = payload_files(dir)?;
    if names.is_empty() {
        return Err(Error::Invalid(format!("{} has no files to checksum", dir.display())));
    }
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let digests = hash_many(&paths, alg, progress);
    let mut entries = Vec::new();
    for ((name, path), digest) in names.iter().zip(&paths).zip(digests) {
        let size = path.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        entries.push(Entry { algorithm: alg, file: name.clone(), digest: digest?, size: Some(size) });
    }
    let text = render(&entries);
    let action = if dry_run {
        "would-write"
    } else if existing.as_deref() == Some(text.as_str()) {
        "unchanged"
    } else {
        write_atomic(&target, text.as_bytes())?;
        if existing.is_some() {
            "updated"
        } else {
            "created"
        }
    };
    Ok(CreateReport { checksum_file: target, entries, action: action.into() })
}

/// Write via a temp file + rename so readers never see a partial file.
pub fn write_atomic(target: &Path, data: &[u8]) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.flr-tmp-{}",
        target.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", target, e)
    })
}

/// Result for one entry of a verified CHECKSUM file.
#[derive(Debug, Clone, Serialize)]
pub struct EntryResult {
    pub file: String,
    /// `ok`, `mismatch`, `size-mismatch`, `missing`, `invalid-path`, `error`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Result for one CHECKSUM file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub checksum_file: PathBuf,
    pub signed: bool,
    pub ok: bool,
    pub entries: Vec<EntryResult>,
}

/// What `flr checksum verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub files: Vec<FileResult>,
}

impl VerifyReport {
    /// Human summary of what failed, for the error message.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.files {
            for e in f.entries.iter().filter(|e| e.status != "ok") {
                out.push(format!("{}: {} {}", f.checksum_file.display(), e.file, e.status));
            }
            if f.entries.is_empty() {
                out.push(format!("{}: no entries", f.checksum_file.display()));
            }
        }
        out
    }
}

/// Find CHECKSUM files: `path` itself if a file, else `*CHECKSUM` in the
/// directory (and below it with `recursive`; symlinks are not followed).
pub fn find_checksum_files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for ent in std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let ent = ent.map_err(|e| Error::io("list", &dir, e))?;
            let ft = ent.file_type().map_err(|e| Error::io("stat", &ent.path(), e))?;
            let name = ent.file_name().to_string_lossy().to_string();
            if ft.is_dir() && recursive {
                stack.push(ent.path());
            } else if ft.is_file() && name.ends_with("CHECKSUM") && !name.starts_with('.') {
                out.push(ent.path());
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::Invalid(format!(
            "no *CHECKSUM file in {}{}",
            path.display(),
            if recursive { " or below" } else { " (use --recursive to search subdirectories)" }
        )));
    }
    Ok(out)
}

/// Verify every entry of every CHECKSUM file under `path`.
pub fn verify(path: &Path, recursive: bool, require_signed: bool, progress: Progress) -> Result<VerifyReport> {
    let mut files = Vec::new();
    for cf in find_checksum_files(path, recursive)? {
        let text = std::fs::read_to_string(&cf).map_err(|e| Error::io("read", &cf, e))?;
        let parsed = parse(&text).map_err(|e| Error::Invalid(format!("{}: {e}", cf.display())))?;
        if require_signed && !parsed.signed {
            return Err(Error::CheckFailed(format!("{} is not signed (--require-signed)", cf.display())));
        }
        let dir = cf.parent().unwrap_or(Path::new("."));
        let mut results: Vec<Option<EntryResult>> = Vec::new();
        let mut to_hash: Vec<(usize, PathBuf, Algorithm)> = Vec::new();
        for e in &parsed.entries {
            let res = |status: &str, detail: Option<String>| {
                Some(EntryResult { file: e.file.clone(), status: status.into(), detail })
            };
            if let Err(err) = crate::validate::relative_inside("CHECKSUM entry", &e.file) {
                results.push(res("invalid-path", Some(err.to_string())));
                continue;
            }
            let p = dir.join(&e.file);
            match p.symlink_metadata() {
                Err(_) => results.push(res("missing", None)),
                Ok(md) if !md.is_file() => results.push(res("error", Some("not a regular file".into()))),
                Ok(md) if e.size.is_some_and(|s| s != md.len()) => results.push(res(
                    "size-mismatch",
                    Some(format!("expected {} bytes, found {}", e.size.unwrap_or(0), md.len())),
                )),
                Ok(_) => {
                    to_hash.push((results.len(), p, e.algorithm));
                    results.push(None);
                }
            }
        }
        // Group by algorithm (in practice one per file).
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let idx: Vec<&(usize, PathBuf, Algorithm)> = to_hash.iter().filter(|t| t.2 == alg).collect();
            if idx.is_empty() {
                continue;
            }
            let paths: Vec<PathBuf> = idx.iter().map(|t| t.1.clone()).collect();
            for (t, got) in idx.iter().zip(hash_many(&paths, alg, progress)) {
                let e = &parsed.entries[t.0];
                results[t.0] = Some(match got {
                    Ok(d) if d == e.digest => EntryResult { file: e.file.clone(), status: "ok".into(), detail: None },
                    Ok(d) => EntryResult {
                        file: e.file.clone(),
                        status: "mismatch".into(),
                        detail: Some(format!("expected {}, got {d}", e.digest)),
                    },
                    Err(err) => {
                        EntryResult { file: e.file.clone(), status: "error".into(), detail: Some(err.to_string()) }
                    }
                });
            }
        }
        let entries: Vec<EntryResult> = results.into_iter().map(|r| r.expect("all entries checked")).collect();
        let ok = !entries.is_empty() && entries.iter().all(|e| e.status == "ok");
        files.push(FileResult { checksum_file: cf, signed: parsed.signed, ok, entries });
    }
    Ok(VerifyReport { ok: files.iter().all(|f| f.ok), files })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

# Fedora-Server-netinst-x86_64-39-1.5.iso: 11 bytes
SHA256 (Fedora-Server-netinst-x86_64-39-1.5.iso) = B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEEeGMVNQ==
=abcd
-----END PGP SIGNATURE-----
";

    #[test]
    fn parses_clearsigned() {
        let c = parse(SIGNED).unwrap();
        assert!(c.signed);
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].file, "Fedora-Server-netinst-x86_64-39-1.5.iso");
        assert_eq!(c.entries[0].size, Some(11));
        assert_eq!(c.entries[0].digest, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    }

    #[test]
    fn dash_escaping_is_undone() {
        let body = signed_body(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- -x\n# c\n-----BEGIN PGP SIGNATURE-----\n",
        )
        .unwrap();
        assert_eq!(body, vec!["-x".to_string(), "# c".to_string()]);
    }

    #[test]
    fn truncated_signature_is_an_error() {
        assert!(parse("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSHA256 (a) = 00\n").is_err());
    }

    #[test]
    fn render_parse_roundtrip() {
        let e =
            vec![Entry { algorithm: Algorithm::Sha256, file: "a b.iso".into(), digest: "0".repeat(64), size: Some(5) }];
        let text = render(&e);
        assert_eq!(text, format!("# a b.iso: 5 bytes\nSHA256 (a b.iso) = {}\n", "0".repeat(64)));
        assert_eq!(parse(&text).unwrap().entries, e);
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(parse("SHA256 (x) = nothex\n").is_err());
        assert!(parse("MD5 (x) = d41d8cd98f00b204e9800998ecf8427e\n").is_err());
        assert!(parse("garbage\n").is_err());
    }
}
