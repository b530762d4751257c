//! Pungi compose metadata, in productmd's formats.
//!
//! There is no Rust productmd, so these are serde models of the JSON files
//! pungi writes (`compose/metadata/{composeinfo,rpms,images}.json`), each a
//! `{"header": {"type": "productmd.<kind>", "version": "1.2"}, "payload": {...}}`.
//! Old files (header version < 1.0) have no `type` in the header and call the
//! release `product`; both load into the same model.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Compose states pungi writes to `STATUS`, the ones that end a compose.
pub const TERMINAL_STATES: &[&str] = &["FINISHED", "FINISHED_INCOMPLETE", "DOOMED", "TERMINATED"];
/// The states that mean the compose is usable.
pub const GOOD_STATES: &[&str] = &["FINISHED", "FINISHED_INCOMPLETE"];

/// productmd metadata header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    /// `productmd.composeinfo` etc.; absent in pre-1.1 files.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub version: String,
}

impl Header {
    /// Version as (major, minor).
    pub fn version_tuple(&self) -> Result<(u32, u32)> {
        let mut it = self.version.split('.');
        let parse = |s: Option<&str>| s.and_then(|v| v.parse::<u32>().ok());
        match (parse(it.next()), parse(it.next()), it.next()) {
            (Some(a), Some(b), None) => Ok((a, b)),
            _ => Err(Error::Invalid(format!("metadata header version {:?} is not N.N", self.version))),
        }
    }

    /// Check the header type. productmd requires it from 1.1 on, but real
    /// 1.1 files without it exist (productmd's own f23 test data), so only a
    /// *different* type is refused.
    pub fn check(&self, expected: &str) -> Result<()> {
        self.version_tuple()?;
        match &self.kind {
            Some(k) if k != expected => {
                Err(Error::Invalid(format!("metadata type is {k:?}, expected {expected:?}: is this the right file?")))
            }
            _ => Ok(()),
        }
    }
}

/// `payload.compose`: which compose this is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComposeMeta {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Missing in 0.x files (derived from the id there).
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub respin: Option<i64>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

/// `payload.release` (or `payload.product` in old files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Release {
    pub name: String,
    pub short: String,
    pub version: String,
    #[serde(rename = "type", default = "default_release_type")]
    pub kind: String,
    #[serde(default)]
    pub is_layered: bool,
    #[serde(default)]
    pub internal: bool,
}

fn default_release_type() -> String {
    "ga".into()
}

/// One variant (`Server`, `Everything`, `Server-optional`, ...).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Variant {
    pub id: String,
    pub uid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub arches: Vec<String>,
    /// path kind (`os_tree`, `isos`, ...) -> arch -> relative path.
    #[serde(default)]
    pub paths: BTreeMap<String, BTreeMap<String, String>>,
    /// Child variant ids (absent in legacy files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct ComposeInfoPayload {
    compose: ComposeMeta,
    release: Option<Release>,
    product: Option<Release>,
    base_product: Option<Release>,
    #[serde(default)]
    variants: BTreeMap<String, Variant>,
}

#[derive(Debug, Deserialize)]
struct Document<P> {
    header: Header,
    payload: P,
}

/// `composeinfo.json`, normalized (old `product` becomes `release`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComposeInfo {
    pub header: Header,
    pub compose: ComposeMeta,
    pub release: Release,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_product: Option<Release>,
    /// Keyed by variant UID.
    pub variants: BTreeMap<String, Variant>,
}

impl ComposeInfo {
    /// Parse composeinfo JSON (any productmd version).
    pub fn from_json(text: &str) -> Result<ComposeInfo> {
        let doc: Document<ComposeInfoPayload> =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("composeinfo.json: {e}")))?;
        doc.header.check("productmd.composeinfo")?;
        let p = doc.payload;
        let release = p
            .release
            .or(p.product)
            .ok_or_else(|| Error::Invalid("composeinfo.json has neither payload.release nor payload.product".into()))?;
        Ok(ComposeInfo {
            header: doc.header,
            compose: p.compose,
            release,
            base_product: p.base_product,
            variants: p.variants,
        })
    }

    /// `Fedora-39` style release id, used for `latest-<release>` links.
    pub fn release_id(&self) -> String {
        format!("{}-{}", self.release.short, self.release.version)
    }

    /// All arches across variants, sorted.
    pub fn arches(&self) -> Vec<String> {
        let mut a: Vec<String> = self.variants.values().flat_map(|v| v.arches.clone()).collect();
        a.sort();
        a.dedup();
        a
    }
}

/// One image from `images.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Image {
    pub path: String,
    pub mtime: i64,
    pub size: u64,
    #[serde(default)]
    pub volume_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_format")]
    pub format: String,
    pub arch: String,
    pub disc_number: i64,
    pub disc_count: i64,
    /// algorithm (`sha256`, ...) -> hex digest.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
    #[serde(default)]
    pub implant_md5: Option<String>,
    #[serde(default)]
    pub bootable: bool,
    /// Absent before 1.1.
    #[serde(default)]
    pub subvariant: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unified: bool,
}

fn default_format() -> String {
    "iso".into()
}

#[derive(Debug, Deserialize)]
struct ImagesPayload {
    compose: ComposeMeta,
    #[serde(default)]
    images: BTreeMap<String, BTreeMap<String, Vec<Image>>>,
}

/// `images.json`: variant -> arch -> images.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Images {
    pub header: Header,
    pub compose: ComposeMeta,
    pub images: BTreeMap<String, BTreeMap<String, Vec<Image>>>,
}

impl Images {
    pub fn from_json(text: &str) -> Result<Images> {
        let doc: Document<ImagesPayload> =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("images.json: {e}")))?;
        doc.header.check("productmd.images")?;
        Ok(Images { header: doc.header, compose: doc.payload.compose, images: doc.payload.images })
    }

    /// Flattened `(variant, image)` list, optionally filtered.
    pub fn list(&self, variant: Option<&str>, arch: Option<&str>) -> Vec<(String, Image)> {
        let mut out = Vec::new();
        for (v, arches) in &self.images {
            if variant.is_some_and(|want| want != v) {
                continue;
            }
            for (a, imgs) in arches {
                if arch.is_some_and(|want| want != a) {
                    continue;
                }
                out.extend(imgs.iter().map(|i| (v.clone(), i.clone())));
            }
        }
        out
    }
}

/// One RPM entry; v1.x has `path`/`category`, 0.x `path`/`type`, 2.0 `location`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpmEntry {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub sigkey: Option<String>,
    #[serde(default, alias = "type")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<serde_json::Value>,
}

/// variant -> arch -> srpm NEVRA -> rpm NEVRA -> entry.
pub type RpmMap = BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeMap<String, RpmEntry>>>>;

#[derive(Debug, Deserialize)]
struct RpmsPayload {
    compose: ComposeMeta,
    rpms: Option<RpmMap>,
    /// 0.x name of `rpms`.
    manifest: Option<RpmMap>,
}

/// `rpms.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rpms {
    pub header: Header,
    pub compose: ComposeMeta,
    pub rpms: RpmMap,
}

impl Rpms {
    pub fn from_json(text: &str) -> Result<Rpms> {
        let doc: Document<RpmsPayload> =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("rpms.json: {e}")))?;
        doc.header.check("productmd.rpms")?;
        let p = doc.payload;
        let rpms = p.rpms.or(p.manifest).unwrap_or_default();
        Ok(Rpms { header: doc.header, compose: p.compose, rpms })
    }

    /// Number of RPMs per variant (all arches).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.rpms
            .iter()
            .map(|(v, arches)| {
                let n = arches.values().flat_map(|s| s.values()).map(|r| r.len()).sum();
                (v.clone(), n)
            })
            .collect()
    }
}

/// A compose on disk: its root (with `COMPOSE_ID`, `STATUS`) and metadata dir.
#[derive(Debug, Clone)]
pub struct Compose {
    pub root: PathBuf,
    pub metadata_dir: PathBuf,
}

impl Compose {
    /// Find the compose for `dir`, which may be the compose root or its
    /// `compose/` subdirectory (what pungi's messages put in `location`).
    pub fn open(dir: &Path) -> Result<Compose> {
        let candidates = [dir.to_path_buf(), dir.parent().map(Path::to_path_buf).unwrap_or_default()];
        for root in candidates {
            if root.join("COMPOSE_ID").is_file() {
                let metadata_dir = root.join("compose").join("metadata");
                return Ok(Compose { root, metadata_dir });
            }
        }
        Err(Error::Invalid(format!("{} is not a pungi compose (no COMPOSE_ID here or in its parent)", dir.display())))
    }

    fn read(&self, p: &Path) -> Result<String> {
        std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))
    }

    /// Contents of `COMPOSE_ID`.
    pub fn id(&self) -> Result<String> {
        let id = self.read(&self.root.join("COMPOSE_ID"))?.trim().to_string();
        crate::validate::simple_name("COMPOSE_ID", &id)?;
        Ok(id)
    }

    /// Contents of `STATUS` (e.g. `FINISHED`).
    pub fn status(&self) -> Result<String> {
        Ok(self.read(&self.root.join("STATUS"))?.trim().to_string())
    }

    pub fn composeinfo(&self) -> Result<ComposeInfo> {
        ComposeInfo::from_json(&self.read(&self.metadata_dir.join("composeinfo.json"))?)
    }

    /// `images.json`, if the compose has one.
    pub fn images(&self) -> Result<Option<Images>> {
        let p = self.metadata_dir.join("images.json");
        if !p.exists() {
            return Ok(None);
        }
        Images::from_json(&self.read(&p)?).map(Some)
    }

    /// `rpms.json`, if the compose has one.
    pub fn rpms(&self) -> Result<Option<Rpms>> {
        let p = self.metadata_dir.join("rpms.json");
        if !p.exists() {
            return Ok(None);
        }
        Rpms::from_json(&self.read(&p)?).map(Some)
    }
}

/// What `flr compose status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub compose_id: String,
    pub status: String,
    /// FINISHED or FINISHED_INCOMPLETE.
    pub finished: bool,
    pub path: PathBuf,
}

/// Read the status and fail with [`Error::CheckFailed`] unless it is good.
pub fn check_status(dir: &Path) -> Result<StatusReport> {
    let c = Compose::open(dir)?;
    let report = status_report(&c)?;
    if !report.finished {
        return Err(Error::CheckFailed(format!(
            "compose {} is {}, not FINISHED/FINISHED_INCOMPLETE",
            report.compose_id, report.status
        )));
    }
    Ok(report)
}

fn status_report(c: &Compose) -> Result<StatusReport> {
    let status = c.status()?;
    Ok(StatusReport {
        compose_id: c.id()?,
        finished: GOOD_STATES.contains(&status.as_str()),
        status,
        path: c.root.clone(),
    })
}

/// Poll `STATUS` until the compose reaches a terminal state or `timeout`
/// passes. DOOMED/TERMINATED and timeouts are [`Error::CheckFailed`].
pub fn wait(dir: &Path, timeout: std::time::Duration, interval: std::time::Duration) -> Result<StatusReport> {
    let c = Compose::open(dir)?;
    let start = std::time::Instant::now();
    loop {
        // A missing STATUS means pungi has not written it yet: keep waiting.
        if c.root.join("STATUS").exists() {
            let r = status_report(&c)?;
            if r.finished {
                return Ok(r);
            }
            if TERMINAL_STATES.contains(&r.status.as_str()) {
                return Err(Error::CheckFailed(format!("compose {} ended as {}", r.compose_id, r.status)));
            }
        }
        if start.elapsed() >= timeout {
            return Err(Error::CheckFailed(format!(
                "compose at {} not finished after {}s; raise --timeout or check pungi",
                c.root.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(interval);
    }
}

/// What `flr compose info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct InfoReport {
    pub compose_id: String,
    pub status: String,
    pub path: PathBuf,
    pub metadata_version: String,
    pub compose: ComposeMeta,
    pub release: Release,
    pub release_id: String,
    pub arches: Vec<String>,
    pub variants: Vec<VariantSummary>,
    pub image_count: usize,
    /// RPM count per variant, when rpms.json exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm_counts: Option<BTreeMap<String, usize>>,
}

/// A variant as listed by `flr compose info`.
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    pub uid: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub arches: Vec<String>,
}

/// Gather everything `flr compose info` shows.
pub fn info(dir: &Path) -> Result<InfoReport> {
    let c = Compose::open(dir)?;
    let ci = c.composeinfo()?;
    let id = c.id()?;
    if ci.compose.id != id {
        return Err(Error::CheckFailed(format!(
            "COMPOSE_ID says {id} but composeinfo.json says {}: the compose is inconsistent",
            ci.compose.id
        )));
    }
    let images = c.images()?;
    Ok(InfoReport {
        compose_id: id,
        status: c.status().unwrap_or_else(|_| "UNKNOWN".into()),
        path: c.root.clone(),
        metadata_version: ci.header.version.clone(),
        release_id: ci.release_id(),
        arches: ci.arches(),
        variants: ci
            .variants
            .values()
            .map(|v| VariantSummary {
                uid: v.uid.clone(),
                name: v.name.clone(),
                kind: v.kind.clone(),
                arches: v.arches.clone(),
            })
            .collect(),
        image_count: images.as_ref().map(|i| i.list(None, None).len()).unwrap_or(0),
        rpm_counts: c.rpms()?.map(|r| r.counts()),
        compose: ci.compose,
        release: ci.release,
    })
}

/// One row of `flr compose images`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageRow {
    pub variant: String,
    #[serde(flatten)]
    pub image: Image,
}

/// Images of a compose, optionally filtered by variant and arch.
pub fn images(dir: &Path, variant: Option<&str>, arch: Option<&str>) -> Result<Vec<ImageRow>> {
    let c = Compose::open(dir)?;
    let imgs = c.images()?.ok_or_else(|| Error::Invalid(format!("{} has no images.json", c.metadata_dir.display())))?;
    Ok(imgs.list(variant, arch).into_iter().map(|(variant, image)| ImageRow { variant, image }).collect())
}
