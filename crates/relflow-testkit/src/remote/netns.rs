//! A network namespace joined to this machine by a veth pair: the remote
//! host's network. Only the two ends of the pair are in it, so nothing
//! sent to its address leaves the machine.

use std::net::Ipv4Addr;
use std::process::Command;

/// The namespace, its veth pair and their addresses; deleted on drop.
#[derive(Debug)]
pub(crate) struct Netns {
    pub name: String,
    /// The end in the machine's own namespace.
    host_link: String,
    pub host_addr: Ipv4Addr,
    /// The end inside the namespace (where the remote host listens).
    pub addr: Ipv4Addr,
}

/// Runs `ip` with `args`, panicking with its output unless it succeeds.
pub(crate) fn ip(args: &[&str]) -> String {
    crate::run(Command::new("ip").args(args), &format!("ip {} (iproute2 installed, as root?)", args.join(" ")))
}

impl Netns {
    /// Creates namespace `name` with the veth pair `<link>h` (here, at
    /// `host_addr`) and `<link>n` (in there, at `addr`), both in one /30.
    pub fn create(name: &str, link: &str, host_addr: Ipv4Addr, addr: Ipv4Addr) -> Netns {
        ip(&["netns", "add", name]);
        // From here on, a panic still deletes what exists (Drop ignores errors).
        let ns = Netns { name: name.to_owned(), host_link: format!("{link}h"), host_addr, addr };
        let peer = format!("{link}n");
        ip(&["link", "add", &ns.host_link, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", name]);
        ip(&["addr", "add", &format!("{host_addr}/30"), "dev", &ns.host_link]);
        ip(&["link", "set", &ns.host_link, "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{addr}/30"), "dev", &peer]);
        ns.exec(&["ip", "link", "set", &peer, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `argv` inside the namespace, panicking unless it succeeds.
    pub fn exec(&self, argv: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        ip(&args)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Pids of every process in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        let out = Command::new("ip").args(["netns", "pids", &self.name]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        text.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end deletes the pair.
        let _ = Command::new("ip").args(["link", "del", &self.host_link]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A veth name stem for `unique` (interface names hold 15 bytes): `rf`
/// and 8 hex digits of its hash; `h` and `n` are appended for the ends.
pub(crate) fn link_name(unique: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    // Seeded per process: fine, the name only has to differ from others now.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(unique.as_bytes());
    format!("rf{:08x}", h.finish() as u32)
}

/// A /30 in 10.200.0.0/14 that overlaps no network of this machine's
/// interfaces, picked from `seed` (tests pass their unique suffix, so
/// parallel tests pick different ones): `(our end, its end)`.
pub(crate) fn free_pair(seed: &str) -> (Ipv4Addr, Ipv4Addr) {
    use std::hash::{BuildHasher, Hasher};
    let used = networks(&ip(&["-4", "-o", "addr", "show"]));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(seed.as_bytes());
    let mut n = h.finish();
    for _ in 0..64 {
        // 2^16 /30s: 10.200.0.0 - 10.203.255.252.
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + (n % (1 << 16)) as u32 * 4;
        if !used.iter().any(|&(net, prefix)| overlaps((base, 30), (net, prefix))) {
            return (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        }
        n = n.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    }
    panic!("no free /30 in 10.200.0.0/14");
}

/// `(address, prefix length)` of every `inet A/P` in `ip -4 -o addr` output.
fn networks(text: &str) -> Vec<(u32, u32)> {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "inet")
        .filter_map(|w| {
            let (addr, prefix) = w[1].split_once('/')?;
            Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), prefix.parse().ok()?))
        })
        .collect()
}

/// Whether two networks share an address: equal under the shorter mask.
fn overlaps((a, pa): (u32, u32), (b, pb): (u32, u32)) -> bool {
    let p = pa.min(pb).min(32);
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_decided_by_the_shorter_prefix() {
        let a = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        assert!(overlaps((a("10.200.0.4"), 30), (a("10.200.0.6"), 30)));
        assert!(!overlaps((a("10.200.0.4"), 30), (a("10.200.0.8"), 30)));
        assert!(overlaps((a("10.200.7.4"), 30), (a("10.0.0.1"), 8)), "inside someone's 10/8");
        assert!(!overlaps((a("10.200.7.4"), 30), (a("127.0.0.1"), 8)));
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 172.17.0.2/16 brd 172.17.255.255";
        assert_eq!(networks(text), [(a("127.0.0.1"), 8), (a("172.17.0.2"), 16)]);
    }
}
