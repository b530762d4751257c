//! Surviving the SIGBUS that [`Guard::check`](super::Guard::check) cannot
//! prevent.
//!
//! The check runs before each transaction, but a file can be frozen while
//! one is in flight (a commit waits for its fsync with the `-shm` still to
//! be written). SQLite's next write to that mapping is then a SIGBUS, and
//! by default the process dies on the spot: nothing logged, and the
//! playbooks it was running are killed, so they run again after the
//! restart.
//!
//! The handler installed by [`survive`] makes that write land instead, but
//! only when every one of these holds: the fault is in a writable shared
//! mapping of a `-shm` file that a [`Guard`](super::Guard) watches (by
//! device and inode), and that file really cannot be written any more
//! (`access` says EPERM or EROFS: frozen, or a read-only file system; not
//! truncated, not an I/O error). Then it puts a private copy of the page
//! in its place, copied from the mapping itself (`process_vm_readv` on
//! this process, which reports an unreadable page instead of faulting; the
//! file is never opened, since closing any descriptor of it would drop the
//! POSIX locks SQLite holds on it), and returns; the write runs again on
//! the copy.
//!
//! From then on this process's view of the `-shm` is partly its own, so it
//! must not use the database again: [`caught`] turns every later check
//! into an error, the use that was in flight reports one too (its result
//! is not trusted; after a restart, recovery may still find it committed,
//! as after a crash), and the worker stops the way it does for any
//! unwritable file: its running playbooks finish and their outcomes are
//! kept. It exits without closing its connections (a close could
//! checkpoint from that view). Until then it holds SQLite's locks as a
//! writer that crashed there would have; the other processes see the
//! shared pages as such a writer would have left them.
//!
//! Any other SIGBUS still stops the process, with a message and status 1
//! instead of a silent death.
//!
//! Only async-signal-safe system calls run in the handler (open, read and
//! close of `/proc/self/maps`, access, getpid, process_vm_readv, mmap,
//! mremap, munmap, write, _exit), and it parses `/proc/self/maps` on the
//! stack, without allocating. It keeps `errno` as it found it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

static CAUGHT: AtomicBool = AtomicBool::new(false);
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// Held while a handler copies a page: two threads faulting on the same
/// page must not both copy it (the second copy would drop what the first
/// thread wrote to its copy in between).
static COPYING: AtomicBool = AtomicBool::new(false);
/// The pages copied so far (0: a free slot). A thread that faulted on a
/// page another thread's handler copied meanwhile finds it here (and the
/// page now anonymous), and only runs its write again.
static COPIED: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];
/// The `-shm` files [`Guard`](super::Guard)s watch, as `(device << 32 |
/// ..., inode)` keys (0: a free slot): the only ones the handler copies.
static GUARDED: [(AtomicU64, AtomicU64); 32] = [const { (AtomicU64::new(0), AtomicU64::new(0)) }; 32];

const CAUGHT_NOTE: &[u8] = b"error: SIGBUS: SQLite's -shm file could not be written (made immutable, or its file \
system went read-only); this process keeps a private copy and stops using the database\n";
const FATAL: &[u8] = b"error: stopping: SIGBUS: a memory-mapped file (such as a SQLite -shm) could not be \
written: it was made immutable, or its file system went read-only or failed; make it writable, then restart\n";

/// Whether a SIGBUS on a `-shm` was caught: this process's copy of the
/// shared memory is its own from then on.
pub fn caught() -> bool {
    CAUGHT.load(Ordering::SeqCst)
}

/// Installs the handler for the whole process (the binary calls this
/// first thing). An error means a SIGBUS kills the process silently.
pub fn survive() -> std::io::Result<()> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE_SIZE.store(page as usize, Ordering::SeqCst);
    }
    // SAFETY: a zeroed sigaction is a valid empty one; the handler only
    // makes async-signal-safe calls.
    let failed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A `-shm` file a guard watches (its metadata); the handler may copy its
/// pages. Slots are never freed: a process opens a handful of databases.
pub(super) fn watch(meta: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    let key = (dev_key(libc::major(meta.dev()), libc::minor(meta.dev())), meta.ino());
    for (dev, ino) in &GUARDED {
        if ino.load(Ordering::SeqCst) == key.1 && dev.load(Ordering::SeqCst) == key.0 {
            return;
        }
    }
    for (dev, ino) in &GUARDED {
        if dev.compare_exchange(0, key.0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            ino.store(key.1, Ordering::SeqCst);
            return;
        }
    }
}

fn dev_key(major: u32, minor: u32) -> u64 {
    // Never 0, so a free slot never matches.
    (u64::from(major) << 32 | u64::from(minor)) + 1
}

fn watched(dev: u64, ino: u64) -> bool {
    GUARDED.iter().any(|(d, i)| d.load(Ordering::SeqCst) == dev && i.load(Ordering::SeqCst) == ino)
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler;
    // errno is this thread's.
    let (code, addr, errno) = unsafe { ((*info).si_code, (*info).si_addr() as usize, *libc::__errno_location()) };
    // BUS_ADRERR: a page of a mapped file could not be brought in or made
    // writable (not an alignment or hardware memory error).
    if code == libc::BUS_ADRERR && private_page(addr) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    say(FATAL);
    // SAFETY: _exit is async-signal-safe; returning would fault again.
    unsafe { libc::_exit(1) }
}

fn say(what: &[u8]) {
    // SAFETY: a valid buffer of its length; if fd 2 is closed, write fails
    // harmlessly.
    unsafe { libc::write(2, what.as_ptr().cast(), what.len()) };
}

/// Makes the page holding `addr` a private copy when the module docs'
/// conditions hold, or finds it already is one. False otherwise.
fn private_page(addr: usize) -> bool {
    while COPYING.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
    let page = PAGE_SIZE.load(Ordering::SeqCst);
    let start = addr & !(page - 1);
    let mut path = [0u8; 4096];
    let done = match find_mapping(start, &mut path) {
        Some(Found::Anonymous) => COPIED.iter().any(|p| p.load(Ordering::SeqCst) == start),
        Some(Found::Shm { dev, ino }) if watched(dev, ino) && frozen(&path) => {
            // Before the copy: other threads' next checks refuse already.
            if !CAUGHT.swap(true, Ordering::SeqCst) {
                say(CAUGHT_NOTE);
            }
            let copied = copy_page(start, page);
            if copied {
                // No free slot: a second thread faulting on this page
                // meanwhile stops the process, as without this handler.
                let _ = COPIED.iter().any(|p| p.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst).is_ok());
            }
            copied
        }
        _ => false,
    };
    COPYING.store(false, Ordering::Release);
    done
}

/// Whether the NUL-terminated `path` cannot be written because it is
/// frozen or on a read-only file system.
fn frozen(path: &[u8]) -> bool {
    // SAFETY: `path` is NUL-terminated (find_mapping wrote it so).
    unsafe {
        libc::access(path.as_ptr().cast(), libc::W_OK) != 0
            && matches!(*libc::__errno_location(), libc::EPERM | libc::EROFS)
    }
}

/// Replaces the page at `start` with a private copy of what it holds now.
fn copy_page(start: usize, page: usize) -> bool {
    // SAFETY: plain system calls; `fresh` is a new mapping of `page`
    // bytes; the mremap target is a page of a mapping that exists (it just
    // faulted), replaced whole.
    unsafe {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let fresh = libc::mmap(std::ptr::null_mut(), page, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if fresh == libc::MAP_FAILED {
            return false;
        }
        let local = libc::iovec { iov_base: fresh, iov_len: page };
        let remote = libc::iovec { iov_base: start as *mut libc::c_void, iov_len: page };
        let read = libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0);
        let moved = read == page as isize
            && libc::mremap(fresh, page, page, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, start as *mut libc::c_void)
                != libc::MAP_FAILED;
        if !moved {
            libc::munmap(fresh, page);
        }
        moved
    }
}

/// What holds an address, as far as the handler cares.
#[derive(Debug, PartialEq)]
enum Found {
    /// A writable shared mapping of a file named `*-shm`.
    Shm { dev: u64, ino: u64 },
    /// Private anonymous memory (what a copied page is).
    Anonymous,
}

/// Looks `addr` up in `/proc/self/maps`; for a `-shm`, writes its path,
/// NUL-terminated, into `path`.
fn find_mapping(addr: usize, path: &mut [u8]) -> Option<Found> {
    // SAFETY: a NUL-terminated literal.
    let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let found = scan_lines(
        // SAFETY: reads into the buffer it is given, at most its length.
        |buf| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) },
        |line| mapping(line, addr, path),
    );
    // SAFETY: fd was opened above.
    unsafe { libc::close(fd) };
    found.flatten()
}

/// Feeds `read`'s output to `each`, one line at a time, until `each`
/// returns something. Lines too long for the line buffer are skipped.
fn scan_lines<T>(mut read: impl FnMut(&mut [u8]) -> isize, mut each: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let mut chunk = [0u8; 4096];
    let mut line = [0u8; 4096 + 256];
    let (mut len, mut overflowed) = (0, false);
    loop {
        let n = read(&mut chunk);
        if n <= 0 {
            return if len > 0 && !overflowed { each(&line[..len]) } else { None };
        }
        for &b in &chunk[..n as usize] {
            if b == b'\n' {
                if !overflowed {
                    if let Some(found) = each(&line[..len]) {
                        return Some(found);
                    }
                }
                (len, overflowed) = (0, false);
            } else if len < line.len() {
                line[len] = b;
                len += 1;
            } else {
                overflowed = true;
            }
        }
    }
}

/// For the line (`start-end perms offset major:minor inode   path`) that
/// holds `addr`: `Some(found)`, or `Some(None)` if it is neither kind the
/// handler acts on. `None` for any other line.
fn mapping(line: &[u8], addr: usize, path: &mut [u8]) -> Option<Option<Found>> {
    let mut fields = line.splitn(6, |&b| b == b' ');
    let range = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let (start, end) = (hex(&range[..dash])? as usize, hex(&range[dash + 1..])? as usize);
    if !(start..end).contains(&addr) {
        return None;
    }
    Some(kind(fields, path))
}

fn kind<'a>(mut fields: impl Iterator<Item = &'a [u8]>, path: &mut [u8]) -> Option<Found> {
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let dev = fields.next()?;
    let ino = decimal(fields.next()?)?;
    let file = fields.next().unwrap_or_default().trim_ascii();
    if file.is_empty() && perms.starts_with(b"rw-p") && ino == 0 {
        return Some(Found::Anonymous);
    }
    let colon = dev.iter().position(|&b| b == b':')?;
    let dev = dev_key(hex(&dev[..colon])? as u32, hex(&dev[colon + 1..])? as u32);
    let writable_shared = perms.get(1) == Some(&b'w') && perms.get(3) == Some(&b's');
    if !writable_shared || !file.ends_with(b"-shm") || file.len() >= path.len() {
        return None;
    }
    path[..file.len()].copy_from_slice(file);
    path[file.len()] = 0;
    Some(Found::Shm { dev, ino })
}

fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| Some(n << 4 | (b as char).to_digit(16)? as u64))
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| Some(n * 10 + (b as char).to_digit(10)? as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 1234                       /usr/bin/relflow
7f2a10000000-7f2a10008000 rw-s 00000000 fd:01 99                         /var/lib/relflow/relflow.sqlite3-shm
7f2a10008000-7f2a10010000 rw-s 00008000 fd:01 99                         /var/lib/relflow/relflow.sqlite3-shm
7f2a20000000-7f2a20001000 rw-p 00000000 00:00 0 
7f2a30000000-7f2a30001000 r--p 00000000 fd:01 7                          /data/a b-shm
7f2a40000000-7f2a40001000 r--s 00000000 fd:01 8                          /data/ro-shm
7f2a50000000-7f2a50001000 rw-s 00000000 fd:01 9                          /data/gone-shm (deleted)
";

    fn lookup(addr: usize, maps: &str) -> Option<(Found, String)> {
        let mut bytes = maps.as_bytes();
        let mut path = [0u8; 4096];
        let found = scan_lines(
            |buf| {
                // Three bytes at a time: lines cross reads.
                let n = bytes.len().min(3).min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                n as isize
            },
            |line| mapping(line, addr, &mut path),
        )??;
        let nul = path.iter().position(|&b| b == 0).unwrap();
        Some((found, String::from_utf8(path[..nul].to_vec()).unwrap()))
    }

    #[test]
    fn finds_the_shm_mapping_that_holds_the_address() {
        let (found, path) = lookup(0x7f2a1000a123, MAPS).unwrap();
        assert_eq!(found, Found::Shm { dev: dev_key(0xfd, 1), ino: 99 });
        assert_eq!(path, "/var/lib/relflow/relflow.sqlite3-shm");
    }

    #[test]
    fn knows_anonymous_memory_and_ignores_every_other_mapping() {
        assert_eq!(lookup(0x7f2a20000010, MAPS).map(|f| f.0), Some(Found::Anonymous));
        assert!(lookup(0x55d0c0a00010, MAPS).is_none(), "the executable");
        assert!(lookup(0x7f2a30000010, MAPS).is_none(), "a private -shm mapping");
        assert!(lookup(0x7f2a40000010, MAPS).is_none(), "a read-only shared -shm mapping");
        assert!(lookup(0x7f2a50000010, MAPS).is_none(), "a deleted -shm");
        assert!(lookup(0x10, MAPS).is_none(), "nothing mapped");
    }

    #[test]
    fn skips_lines_too_long_for_its_buffer() {
        let long = format!("7f2a10000000-7f2a10008000 rw-s 00000000 fd:01 99 /{}-shm\n", "d".repeat(5000));
        assert!(lookup(0x7f2a10000010, &long).is_none());
        let (_, path) = lookup(0x7f2a10000010, &format!("{long}{MAPS}")).unwrap();
        assert!(path.ends_with("relflow.sqlite3-shm"));
    }

    #[test]
    fn only_watched_files_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let shm = dir.path().join("w.sqlite3-shm");
        std::fs::write(&shm, b"x").unwrap();
        let meta = std::fs::metadata(&shm).unwrap();
        use std::os::unix::fs::MetadataExt;
        let key = (dev_key(libc::major(meta.dev()), libc::minor(meta.dev())), meta.ino());
        assert!(!watched(key.0, key.1));
        watch(&meta);
        watch(&meta);
        assert!(watched(key.0, key.1));
        assert_eq!(GUARDED.iter().filter(|(_, i)| i.load(Ordering::SeqCst) == key.1).count(), 1, "once");
    }
}
