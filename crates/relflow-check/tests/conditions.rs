//! The acceptance table: conditions a release engineer would write, over
//! the real Fedora fixture messages. Each one either matches exactly the
//! messages a release engineer expects, or `check` refuses it (at load, or
//! on the samples) naming the problem, or warns naming the trap.

use std::path::{Path, PathBuf};

use relflow_check::{check_rule, Sample};
use relflow_core::{Config, Message};

fn fixtures() -> PathBuf {
    std::env::var_os("RELFLOW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"))
        .join("messages")
}

fn samples() -> Vec<Sample> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures())
        .expect("shared/fixtures next to the repo (or RELFLOW_FIXTURES)")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let message = Message::decode(&std::fs::read(&p).unwrap(), "test", usize::MAX).unwrap();
            Sample { name: p.file_name().unwrap().to_string_lossy().into_owned(), message }
        })
        .collect()
}

enum Want {
    /// Matches the samples whose file names contain these, and no others;
    /// `check` has nothing to say.
    Match(&'static [&'static str]),
    /// Refused, at load or by `check`, with this in the message.
    Reject(&'static str),
    /// Matches these, and `check` warns with this in the warning.
    Warn(&'static [&'static str], &'static str),
}
use Want::*;

const PUNGI: &str = "org.fedoraproject.*.pungi.compose.status.change";
const KOJI: &str = "org.fedoraproject.prod.buildsys.build.state.change";
const BODHI: &str = "org.fedoraproject.*.bodhi.update.#";
const TAG: &str = "org.fedoraproject.prod.buildsys.tag";

const TABLE: &[(&str, &str, Want)] = &[
    (PUNGI, r#"msg.status == "FINISHED""#, Match(&["--FINISHED.json"])),
    (PUNGI, r#"msg.status in ["FINISHED", "FINISHED_INCOMPLETE"]"#, Match(&["--FINISHED.json", "INCOMPLETE"])),
    (PUNGI, r#"msg.status != "STARTED""#, Match(&["--FINISHED.json", "INCOMPLETE", "TERMINATED"])),
    (PUNGI, r#"msg.status.startsWith("FINISHED")"#, Match(&["--FINISHED.json", "INCOMPLETE"])),
    (PUNGI, r#"msg.status.startswith("FINISHED")"#, Reject("calls `startswith`, which CEL does not have; did you mean `startsWith`?")),
    (PUNGI, r#"msg.compose_id.matches("^Fedora-[0-9]+-[0-9]{8}\\.n\\.[0-9]+$")"#, Match(&["--FINISHED.json", "STARTED", "TERMINATED"])),
    (PUNGI, r#"msg.compose_id.matches("Rawhide")"#, Match(&["INCOMPLETE"])),
    (PUNGI, r#"msg.stauts == "FINISHED""#, Warn(&[], "`msg.stauts`: no sample of org.fedoraproject.prod.pungi.compose.status.change has it; did you mean `status`?")),
    (PUNGI, "!(msg.nosuch == 1)", Warn(&[], "a missing key makes the whole condition false, even under `!`")),
    (PUNGI, "!has(msg.compose_respin)", Match(&["--FINISHED.json", "STARTED", "TERMINATED"])),
    (PUNGI, "has(msg.compose_respin) && msg.compose_respin == 0", Match(&["INCOMPLETE"])),
    (PUNGI, r#"msg.location.contains("/rawhide/")"#, Match(&["--FINISHED.json", "INCOMPLETE", "STARTED", "TERMINATED"])),
    (PUNGI, r#"msg.status.lowerAscii() == "finished""#, Match(&["--FINISHED.json"])),
    (PUNGI, r#"msg.compose_id.split("-")[1] == "24""#, Match(&["--FINISHED.json", "STARTED", "TERMINATED"])),
    (PUNGI, "msg.status == FINISHED", Reject("uses `FINISHED`; conditions can only use msg, topic and headers")),
    (PUNGI, r#"msg.status = "FINISHED""#, Reject("does not parse")),
    (PUNGI, "msg.status", Reject("not a boolean")),
    (PUNGI, r#"msg.release_version != "Rawhide""#, Warn(&[], "3 of 4 samples have no `msg.release_version`")),
    (KOJI, "msg.new == 1", Match(&["COMPLETE-unsigned"])),
    (KOJI, r#"msg.new == "1""#, Reject("compares `msg.new` with a string, but the samples have a number there")),
    (KOJI, r#"msg.build_id > "5""#, Reject("type mismatch: `>` does not apply to (int, string)")),
    (KOJI, "msg.build_id > 900000", Match(&["amqp-2025", "--signed"])),
    (KOJI, r#"msg.owner == "kevin" || msg.name == "slf4j""#, Match(&["COMPLETE-unsigned", "--signed"])),
    (KOJI, r#"msg.release.endsWith(".el7")"#, Match(&["COMPLETE-unsigned"])),
    (KOJI, r#"msg.release.matches("\\.fc[0-9]+$")"#, Match(&["amqp-2025"])),
    (KOJI, "type(msg.build_id) == int", Match(&["COMPLETE-unsigned", "amqp-2025", "--signed"])),
    (KOJI, r#"msg.version.split(".").size() == 3"#, Match(&["COMPLETE-unsigned", "amqp-2025", "--signed"])),
    (KOJI, r#"msg.new == 1 && msg.owner != "releng""#, Match(&["COMPLETE-unsigned"])),
    (KOJI, "has(headers.fedora_messaging_schema)", Match(&["amqp-2025"])),
    (BODHI, r#"msg.update.builds.exists(b, b.nvr.startsWith("gnome-"))"#, Match(&["request.testing"])),
    (BODHI, r#"msg.update.builds.exists(b, b.nvr.startsWith("kernel"))"#, Match(&[])),
    (BODHI, r#"msg.update.builds.all(b, b.nvr.contains(".fc2"))"#, Match(&["requirements_met", "complete.testing"])),
    (BODHI, r#"msg.update.builds.exists_one(b, b.nvr.startsWith("control-center"))"#, Match(&["request.testing"])),
    (BODHI, r#"msg.update.builds.map(b, b.nvr).exists(n, n.matches("^python-"))"#, Match(&["requirements_met"])),
    (BODHI, r#"msg.update.builds.filter(b, b.nvr.endsWith(".fc18")).size() == 2"#, Match(&["request.testing"])),
    (BODHI, r#"msg.update.builds.exists(b, b.nvrr == "x")"#, Warn(&[], "`msg.update.builds[].nvrr`: no sample of the 4 topics it matches has it; did you mean `nvr`?")),
    (BODHI, r#"has(msg.update.alias) && msg.update.alias.startsWith("FEDORA-2019")"#, Match(&["complete.testing"])),
    (BODHI, r#"msg.update.release.name == "F29""#, Match(&["complete.testing"])),
    (BODHI, "msg.update.builds.exists(b)", Reject("`exists` is a macro, written `list.exists(x, <condition on x>)`")),
    (BODHI, "size(msg.update.builds) >= 2", Match(&["request.testing"])),
    (BODHI, r#"msg.update.builds.exists(b, b.nvr.startswith("kernel"))"#, Reject("did you mean `startsWith`?")),
    (TAG, r#"msg.tag.matches("^f[0-9]+$")"#, Match(&["tag--signed"])),
    (TAG, r#"msg.tag.matches("^f[0-9]+-updates-candidate$")"#, Match(&[])),
    ("org.fedoraproject.prod.buildsys.#", r#"topic.endsWith(".untag")"#, Match(&["untag--signed"])),
];

#[test]
fn conditions_over_real_fedora_messages_match_as_expected_or_are_refused_naming_the_problem() {
    assert!(TABLE.len() >= 30);
    let samples = samples();
    let mut failures = Vec::new();
    for (topic, when, want) in TABLE {
        if let Err(why) = one(&samples, topic, when, want) {
            failures.push(format!("{when}  [{topic}]\n    {why}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases are wrong:\n{}", failures.len(), TABLE.len(), failures.join("\n"));
}

fn one(samples: &[Sample], topic: &str, when: &str, want: &Want) -> Result<(), String> {
    let toml = format!(
        "playbooks_dir = 'p'\n[[rule]]\nname = 'r'\ntopic = '{topic}'\nwhen = '''{when}'''\nplaybook = 'a.yml'\n"
    );
    let config = match Config::from_toml(Path::new("relflow.toml"), &toml) {
        Ok(c) => c,
        Err(e) => {
            return match want {
                Reject(what) if e.to_string().contains(what) => Ok(()),
                _ => Err(format!("refused at load: {e}")),
            }
        }
    };
    let rule = &config.rules[0];
    let report = check_rule(rule, samples);
    let mut matched: Vec<&str> =
        samples.iter().filter(|s| rule.explain(&s.message, &mut None).is_match()).map(|s| s.name.as_str()).collect();
    matched.sort();
    let same =
        |names: &[&str]| names.len() == matched.len() && names.iter().all(|n| matched.iter().any(|m| m.contains(n)));
    match want {
        Reject(what) if report.errors.iter().any(|e| e.contains(what)) => Ok(()),
        Reject(_) => Err(format!("not refused; errors {:?}, matched {matched:?}", report.errors)),
        _ if !report.errors.is_empty() => Err(format!("refused: {:?}", report.errors)),
        Match(names) if same(names) && report.warnings.is_empty() => Ok(()),
        Warn(names, what) if same(names) && report.warnings.iter().any(|w| w.contains(what)) => Ok(()),
        _ => Err(format!("matched {matched:?}, warnings {:?}", report.warnings)),
    }
}
