//! update-ref and summary against a real local repo made with Debian's `ostree`.
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn ostree(args: &[&str]) -> String {
    let o = Command::new("ostree").args(args).output().unwrap();
    assert!(o.status.success(), "ostree {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A repo with two commits on branch test/src; returns (repo, c1, c2).
fn repo(dir: &Path) -> (String, String, String) {
    let repo = dir.join("repo");
    let r = format!("--repo={}", repo.display());
    ostree(&["init", &r, "--mode=archive"]);
    let mut commits = Vec::new();
    for i in 0..2 {
        let tree = dir.join(format!("tree{i}"));
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("file"), format!("version {i}")).unwrap();
        let t = format!("--tree=dir={}", tree.display());
        commits.push(ostree(&["commit", &r, "--branch=test/src", &t, "-s", "test"]));
    }
    (repo.to_string_lossy().to_string(), commits[0].clone(), commits[1].clone())
}

#[test]
fn update_ref_creates_moves_and_is_idempotent() {
    if !have("ostree") {
        panic!("ostree not installed (apt-get install ostree): scripts/test.sh installs it");
    }
    let t = tempfile::tempdir().unwrap();
    let (repo, c1, c2) = repo(t.path());
    let r = format!("--repo={repo}");
    let refname = "fedora/39/x86_64/silverblue";

    let o = flr(&["ostree", "update-ref", "--json", "--dry-run", &repo, refname, &c1]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["action"], "would-create");
    assert!(!ostree(&["refs", &r]).contains(refname));

    let o = flr(&["ostree", "update-ref", "--json", &repo, refname, &c1]);
    assert_eq!(json(&o)["action"], "created");
    assert_eq!(ostree(&["rev-parse", &r, refname]), c1);

    let o = flr(&["ostree", "update-ref", "--json", &repo, refname, &c1]);
    assert_eq!(json(&o)["action"], "unchanged");

    let o = flr(&["ostree", "update-ref", "--json", &repo, refname, &c2]);
    let j = json(&o);
    assert_eq!(j["action"], "updated");
    assert_eq!(j["previous"], c1.as_str());
    assert_eq!(ostree(&["rev-parse", &r, refname]), c2);

    // Unknown commit, bad ref, option-looking ref: refused, ref unchanged.
    let missing = "0".repeat(64);
    assert_eq!(flr(&["ostree", "update-ref", &repo, refname, &missing]).status.code(), Some(2));
    assert_eq!(flr(&["ostree", "update-ref", &repo, "a/../b", &c1]).status.code(), Some(2));
    assert_eq!(flr(&["ostree", "update-ref", &repo, "--", "--help", &c1]).status.code(), Some(2));
    assert_eq!(ostree(&["rev-parse", &r, refname]), c2);
}

#[test]
fn summary_update_and_listing() {
    if !have("ostree") {
        panic!("ostree not installed (apt-get install ostree): scripts/test.sh installs it");
    }
    let t = tempfile::tempdir().unwrap();
    let (repo, _c1, c2) = repo(t.path());
    let summary = Path::new(&repo).join("summary");
    let o = flr(&["ostree", "summary", "--json", "--update", "--dry-run", &repo]);
    assert!(o.status.success());
    assert_eq!(json(&o)["updated"], false);
    assert!(!summary.exists());
    let o = flr(&["ostree", "summary", "--json", "--update", &repo]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["updated"], true);
    assert_eq!(j["refs"][0]["ref"], "test/src");
    assert_eq!(j["refs"][0]["commit"], c2.as_str());
    assert!(summary.is_file());
    assert_eq!(flr(&["ostree", "summary", t.path().to_str().unwrap()]).status.code(), Some(2));
}
