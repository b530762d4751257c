//! What a playbook sees is the JSON that was sent, value for value: the
//! message goes through `relflow publish`, the embedded queue and the worker
//! into a real `ansible-playbook`, which writes `msg | to_json` back out.
//! Python's `json` (what Ansible itself uses) is the judge on both sides.

mod common;

use std::path::Path;
use std::process::Command;

use common::{play, Env};

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Python's verdict: the two files hold equal JSON, types included
/// (`1` is not `1.0`, `0` is not `-0.0`). Prints the first difference.
fn python_same(sent: &Path, seen: &Path) -> Result<(), String> {
    const SCRIPT: &str = r#"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def walk(x, y, path):
    if type(x) is not type(y) or (not isinstance(x, (dict, list)) and repr(x) != repr(y)):
        sys.exit(f"{path}: sent {x!r}, playbook saw {y!r}")
    if isinstance(x, dict):
        if sorted(x) != sorted(y):
            sys.exit(f"{path}: keys {sorted(set(x) ^ set(y))!r} differ")
        for k in x:
            walk(x[k], y[k], f"{path}.{k}")
    if isinstance(x, list):
        if len(x) != len(y):
            sys.exit(f"{path}: {len(x)} items sent, {len(y)} seen")
        for i, (p, q) in enumerate(zip(x, y)):
            walk(p, q, f"{path}[{i}]")
walk(a, b, "msg")
"#;
    let python = common::ansible_playbook().with_file_name("python");
    let out = Command::new(python).arg("-c").arg(SCRIPT).arg(sent).arg(seen).output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// A rule on `fidelity.#` whose playbook writes the body it got to
/// `seen/<run id>.json`.
fn env_writing_what_it_saw() -> Env {
    let env = Env::new("[[rule]]\nname = \"echo\"\ntopic = \"fidelity.#\"\nplaybook = \"echo.yml\"\n");
    std::fs::create_dir_all(env.path("seen")).unwrap();
    env.playbook(
        "echo.yml",
        &play(&format!(
            "    - copy:\n        content: \"{{{{ msg | to_json }}}}\"\n        dest: \"{seen}/{{{{ relflow.run_id }}}}.json\"\n\
             \x20   - copy:\n        content: \"{{{{ topic }}}}\"\n        dest: \"{seen}/{{{{ relflow.run_id }}}}.topic\"\n",
            seen = env.path("seen").display()
        )),
    );
    env
}

#[test]
fn numbers_reach_the_playbook_exactly_as_sent() {
    let env = env_writing_what_it_saw();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut numbers: Vec<String> = Vec::new();
    // Shortest-form doubles over the whole range, both spellings: the ones
    // parsed without correct rounding come out an ulp or two off.
    while numbers.len() < 3000 {
        let f = f64::from_bits(rng.next());
        if f.is_finite() {
            numbers.push(if numbers.len() % 2 == 0 { format!("{f:e}") } else { format!("{f:?}") });
        }
    }
    // Fedora's float timestamps, integers past 64 bits, and the odd ones.
    numbers.extend(
        [
            "1700000000.123456",
            "1451606400.4872348",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "-0",
            "-0.0",
            "0.1",
            "1E5",
            "1e-7",
            "5e-324",
            "1.7976931348623157e308",
            "2.2250738585072011e-308",
        ]
        .map(String::from),
    );
    let body = format!("{{\"numbers\": [{}]}}", numbers.join(", "));
    let sent = env.path("sent.json");
    std::fs::write(&sent, &body).unwrap();
    env.ok(&["publish", "--topic", "fidelity.numbers", &body]);
    env.ok(&["worker", "--drain"]);

    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}\n{}", env.worker_logs());
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let seen = env.path("seen").join(format!("{}.json", runs[0]["id"].as_str().unwrap()));
    if let Err(diff) = python_same(&sent, &seen) {
        panic!("the playbook did not see the numbers that were sent: {diff}");
    }
}
