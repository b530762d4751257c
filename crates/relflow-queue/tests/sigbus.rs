//! The SIGBUS handler (`relflow_queue::file::sigbus`), in a process of its
//! own (this test binary; the handler is process-wide). A write through a
//! shared mapping of a `-shm` file frozen with `chattr +i` is what SQLite
//! does when a file is frozen during a transaction.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use relflow_queue::file::{sigbus, Guard};
use relflow_testkit::Immutable;

/// Maps `path` shared and writable, as SQLite maps its `-shm`.
fn map_shared(path: &Path, len: usize) -> *mut u8 {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a fresh mapping of an open file; the fd may close after.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, std::os::fd::AsRawFd::as_raw_fd(&file), 0)
    };
    assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
    p.cast()
}

#[test]
fn a_write_to_a_frozen_shm_lands_on_a_private_copy_and_the_database_is_not_used_again() {
    sigbus::survive().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, shm) = (dir.path().join("x.sqlite3"), dir.path().join("x.sqlite3-shm"));
    let page = 4096;
    let content: Vec<u8> = (0..2 * page).map(|i| (i % 251) as u8).collect();
    std::fs::write(&shm, &content).unwrap();
    let mapped = map_shared(&shm, content.len());
    let guard = Guard::new(&db);
    guard.check().unwrap();

    let frozen = Immutable::new(std::slice::from_ref(&shm));
    // SAFETY: within the mapping. The second page was never touched, so
    // this write faults, and with the file frozen the fault is a SIGBUS.
    unsafe { mapped.add(page + 5).write_volatile(0xAB) };

    assert!(sigbus::caught());
    // SAFETY: within the mapping.
    let seen = unsafe { std::slice::from_raw_parts(mapped, content.len()) };
    assert_eq!(seen[page + 5], 0xAB, "the write landed");
    let mut expected = content.clone();
    expected[page + 5] = 0xAB;
    assert_eq!(seen, &expected[..], "the copy holds what the file held");
    assert_eq!(std::fs::read(&shm).unwrap(), content, "the frozen file is unchanged");

    let e = guard.check().unwrap_err();
    assert!(e.to_string().contains("x.sqlite3-shm cannot be written"), "{e}");
    drop(frozen);
    let e = guard.confirm().unwrap_err();
    assert!(e.to_string().contains("x.sqlite3-shm cannot be written"), "writable again, still refused: {e}");
}

/// Run by the tests below in a child process: writes through a mapping of
/// `RELFLOW_SIGBUS_CHILD_FILE` after doing `RELFLOW_SIGBUS_CHILD_CASE` to it.
#[test]
#[ignore = "the child process of the tests below"]
fn child_writes_through_a_mapping_that_cannot_be_written() {
    let path = std::env::var_os("RELFLOW_SIGBUS_CHILD_FILE").expect("RELFLOW_SIGBUS_CHILD_FILE: the file to map");
    let path = std::path::PathBuf::from(path);
    sigbus::survive().unwrap();
    let mapped = map_shared(&path, 4096);
    let case = std::env::var("RELFLOW_SIGBUS_CHILD_CASE").unwrap_or_default();
    let _frozen = match case.as_str() {
        "frozen" => Some(Immutable::new(std::slice::from_ref(&path))),
        "watched and frozen" => {
            let db = path.to_str().unwrap().strip_suffix("-shm").expect("a -shm file");
            Guard::new(Path::new(db)).check().unwrap();
            Some(Immutable::new(std::slice::from_ref(&path)))
        }
        "watched and truncated" => {
            let db = path.to_str().unwrap().strip_suffix("-shm").expect("a -shm file");
            Guard::new(Path::new(db)).check().unwrap();
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
            None
        }
        other => panic!("unknown case {other:?}"),
    };
    // SAFETY: within the mapping; faults, as above (past the end of the
    // file when it was truncated).
    unsafe { mapped.write_volatile(1) };
    println!("the write went through");
    std::process::exit(if sigbus::caught() { 42 } else { 0 });
}

/// Runs the child on a 4 KiB file called `name` after `case`.
fn child(name: &str, case: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, vec![0u8; 4096]).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writes_through_a_mapping_that_cannot_be_written", "--ignored", "--nocapture"])
        .env("RELFLOW_SIGBUS_CHILD_FILE", &file)
        .env("RELFLOW_SIGBUS_CHILD_CASE", case)
        .output()
        .unwrap();
    let _ = Command::new("chattr").arg("-i").arg(&file).status();
    out
}

fn assert_stopped_with_the_message(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{what}: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(stderr.contains("error: stopping: SIGBUS: a memory-mapped file"), "{what}: {stderr}");
}

#[test]
fn a_frozen_file_that_is_not_a_shm_stops_the_process_with_a_message_not_a_signal() {
    assert_stopped_with_the_message(&child("data.bin", "frozen"), "not a -shm");
}

#[test]
fn a_frozen_shm_no_guard_watches_stops_the_process() {
    assert_stopped_with_the_message(&child("other.sqlite3-shm", "frozen"), "an unwatched -shm");
}

/// Past the end of a truncated file is a SIGBUS too, but the file can be
/// written: copying the page would hide a zeroed wal-index from SQLite.
#[test]
fn a_truncated_shm_stops_the_process() {
    assert_stopped_with_the_message(&child("t.sqlite3-shm", "watched and truncated"), "a truncated -shm");
}

/// The positive case in a process of its own too, as the worker meets it.
#[test]
fn a_watched_frozen_shm_survives_in_a_fresh_process() {
    let out = child("w.sqlite3-shm", "watched and frozen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "{stderr}");
    assert!(stderr.contains("keeps a private copy"), "{stderr}");
}
