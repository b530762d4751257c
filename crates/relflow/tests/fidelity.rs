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
            numbers.push(if numbers.len().is_multiple_of(2) { format!("{f:e}") } else { format!("{f:?}") });
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
    env.drain();

    let runs = env.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}\n{}", env.worker_logs());
    assert_eq!(runs[0]["status"], "succeeded", "{runs:#?}");
    let seen = env.path("seen").join(format!("{}.json", runs[0]["id"].as_str().unwrap()));
    if let Err(diff) = python_same(&sent, &seen) {
        panic!("the playbook did not see the numbers that were sent: {diff}");
    }
}

/// The strings hostile senders try: Jinja (whole, split, escaped), YAML
/// specials, reserved and `ansible_*` names, control and bidi characters.
fn hostile_strings(marker: &Path) -> Vec<String> {
    let touch = format!("lookup('pipe','touch {}')", marker.display());
    let mut s: Vec<String> = vec![
        format!("{{{{ {touch} }}}}"),
        format!("{{% set x = {touch} %}}"),
        format!("{{%raw%}}{{{{ {touch} }}}}{{%endraw%}}"),
        format!("#jinja2:variable_start_string:'[[', variable_end_string:']]'\n[[ {touch} ]]"),
        format!("{{{{ query('pipe', 'touch {}') }}}}", marker.display()),
        format!("{{{{ '{{{{' }}}}{touch}{{{{ '}}}}' }}}}"),
        "{{ msg }}".into(),
        "{{ hostvars }}".into(),
        "{{ ansible_env.HOME }}".into(),
        "{# comment #}".into(),
        "{{".into(),
        "}}".into(),
        "{%".into(),
        "%}".into(),
        "{{ 7*7 }}".into(),
        format!("!!python/object/apply:os.system ['touch {}']", marker.display()),
    ];
    for y in [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "~",
        "null",
        "Null",
        "NULL",
        "true",
        "True",
        "FALSE",
        "0x1F",
        "0o17",
        "012",
        "1_000",
        "1e3",
        "1.0",
        ".inf",
        "-.inf",
        ".nan",
        "2024-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "12:30:45",
        "190:20:30",
        "&anchor",
        "*alias",
        "<<",
        "=",
        "- a",
        "? x",
        ": x",
        "",
        " ",
        "'",
        "\"",
        "|",
        ">",
        "%YAML 1.1",
        "---",
        "...",
        "!unsafe x",
        "!",
        "!!str",
        "@x",
        "`x`",
        "#",
        "a: b",
        "[1, 2]",
        "{a: 1}",
        "\\",
        "\\n",
        "%",
        "&",
        "*",
        ",",
        "[",
        "]",
        "{",
        "}",
    ] {
        s.push(y.into());
    }
    for c in [
        "\u{0}",
        "\u{7}",
        "\u{8}",
        "\u{1b}[2J",
        "\r\n",
        "\r",
        "\t",
        "\u{7f}",
        "\u{85}",
        "\u{a0}",
        "\u{202e}evil",
        "\u{2066}x\u{2069}",
        "\u{200b}",
        "\u{feff}",
        "\u{2028}",
        "\u{2029}",
        "\u{fffe}",
        "\u{ffff}",
        "\u{10ffff}",
        "é",
        "😀",
        "\u{301}",
        "a\u{0}b",
    ] {
        s.push(c.into());
    }
    for name in [
        "ansible_connection",
        "ansible_become",
        "ansible_become_pass",
        "ansible_python_interpreter",
        "ansible_host",
        "ansible_ssh_common_args",
        "hostvars",
        "vars",
        "groups",
        "inventory_hostname",
        "playbook_dir",
        "omit",
        "environment",
        "lookup",
        "msg",
        "topic",
        "msg_id",
        "headers",
        "relflow",
        "sent_at",
        "__proto__",
    ] {
        s.push(name.into());
    }
    s
}

/// One input: something a key, value or nesting level carries.
fn inputs_from(strings: &[String], numbers: &[&str]) -> Vec<String> {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let mut out = Vec::new();
    for s in strings {
        out.push(q(s)); // as a value
        out.push(format!("{{{}: {}}}", q(s), q(s))); // as a key
        out.push(format!("[[{{\"ansible_connection\": {}, {}: [{}]}}]]", q(s), q(s), q(s))); // nested
        out.push(format!("{{\"ansible_become\": true, \"vars\": {{{}: {{\"hostvars\": {}}}}}}}", q(s), q(s)));
    }
    // Jinja split across keys and values of one object.
    for (a, b) in [("{{", "}}"), ("{%", "%}"), ("{{ lookup('pipe'", ",'id') }}")] {
        out.push(format!("{{{}: {}, \"x\": {}}}", q(a), q("lookup('pipe','id')"), q(b)));
    }
    out.extend(numbers.iter().map(|n| n.to_string()));
    out
}

#[test]
fn a_hostile_corpus_stays_data_and_arrives_value_for_value() {
    let env = env_writing_what_it_saw();
    let marker = env.path("PWNED");
    let strings = hostile_strings(&marker);
    let numbers = [
        "0",
        "-0",
        "-0.0",
        "1",
        "-1",
        "9007199254740993",
        "18446744073709551616",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "1E-400",
        "0.1",
        "0.30000000000000004",
        "5e-324",
        "1451606400.4872348",
        "123456789012345678901234567890.5",
        "1.7976931348623157e308",
        "1e22",
        "1e23",
    ];
    let inputs = inputs_from(&strings, &numbers);
    assert!(inputs.len() >= 1000 / 2, "{}", inputs.len());
    // Every input twice (under a plain key and under an `ansible_*` key),
    // 120 inputs per message, one playbook run per message.
    let mut bodies = Vec::new();
    for chunk in inputs.chunks(60) {
        let fields: Vec<String> = chunk
            .iter()
            .enumerate()
            .flat_map(|(i, v)| [format!("\"k{i}\": {v}"), format!("\"ansible_k{i}\": {v}")])
            .collect();
        bodies.push(format!("{{{}}}", fields.join(", ")));
    }
    let total_inputs = inputs.len() * 2;
    assert!(total_inputs >= 1000, "{total_inputs}");
    let hostile_topic = "fidelity.{{lookup('pipe','id')}}.\u{202e}";
    for (i, body) in bodies.iter().enumerate() {
        std::fs::write(env.path(&format!("sent-{i}.json")), body).unwrap();
        let topic = if i % 2 == 0 { format!("fidelity.corpus.{i}") } else { format!("{hostile_topic}{i}") };
        let out = env.run(&["publish", "--topic", &topic, body]);
        assert!(out.status.success(), "message {i} refused:\n{}\n{body}", common::describe(&out));
    }
    // What the door refuses, with a reason, and no crash.
    let refused: [(&str, String, &str); 4] = [
        ("10 MB string", format!("{{\"s\": \"{}\"}}", "x".repeat(10 << 20)), "max_message_bytes"),
        ("too deep", format!("{}1{}", "{\"a\": ".repeat(200), "}".repeat(200)), "recursion limit"),
        ("lone surrogate", r#"{"s": "\ud800"}"#.into(), "not valid JSON"),
        ("not an object", "[1]".into(), "must be a JSON object"),
    ];
    for (what, body, says) in &refused {
        // On stdin: one argument may be at most 128 KiB.
        let file = env.path("refused.json");
        std::fs::write(&file, body).unwrap();
        let stdin = std::fs::File::open(&file).unwrap();
        let out = env.command(&["publish", "--topic", "fidelity.refused"]).stdin(stdin).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.contains(says) && !stderr.contains("panicked"), "{what}: {}", &stderr[..stderr.len().min(500)]);
    }
    for topic in ["a..b", "a.#", "a b", "x\u{7}y", &"t".repeat(10_000)] {
        let out = env.run(&["publish", "--topic", topic, "{}"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("invalid topic") && stderr.len() < 1000, "{}", &stderr[..stderr.len().min(500)]);
    }

    env.drain();
    let runs = env.runs();
    let summary = || format!("{runs:#?}\n{}", env.worker_logs());
    assert_eq!(runs.len(), bodies.len(), "0 lost, none repeated: {}", summary());
    let mut mismatches = Vec::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "an injected variable would break the run: {}", summary());
        let i: usize = run["topic"].as_str().unwrap().rsplit(['.', '\u{202e}']).next().unwrap().parse().unwrap();
        let seen = env.path("seen").join(format!("{}.json", run["id"].as_str().unwrap()));
        let topic = std::fs::read_to_string(seen.with_extension("topic")).unwrap();
        assert_eq!(topic, run["topic"].as_str().unwrap(), "the playbook's `topic` is the message's");
        if let Err(diff) = python_same(&env.path(&format!("sent-{i}.json")), &seen) {
            mismatches.push(format!("message {i}: {diff}"));
        }
    }
    assert!(mismatches.is_empty(), "{} fidelity mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
    assert!(!marker.exists(), "a payload was executed");
}
