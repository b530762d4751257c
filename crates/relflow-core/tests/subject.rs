//! Subjects of the real Fedora messages in shared/fixtures: the line an
//! operator sees in run lists.

use relflow_core::{subject, Message, DEFAULT_MAX_MESSAGE_BYTES as MAX};

fn subject_of(fixture: &str) -> String {
    let bytes = std::fs::read(relflow_testkit::fixture(&format!("messages/{fixture}"))).unwrap();
    let msg = Message::decode(&bytes, "fedmsg", MAX).unwrap();
    subject(&msg.topic, &msg.body)
}

#[test]
fn a_compose_status_names_the_compose_and_its_status() {
    let s = subject_of("org.fedoraproject.prod.pungi.compose.status.change--FINISHED.json");
    assert_eq!(s, "Fedora-24-20151208.n.7 FINISHED");
    let s = subject_of("org.fedoraproject.prod.pungi.compose.status.change--FINISHED_INCOMPLETE-2018.json");
    assert!(s.ends_with(" FINISHED_INCOMPLETE") && s.starts_with("Fedora-"), "{s}");
}

#[test]
fn a_tag_names_the_build_and_the_tag() {
    let s = subject_of("org.fedoraproject.prod.buildsys.tag--signed.json");
    assert_eq!(s, "template-glib-3.25.92-1.fc28 tagged f28");
    let s = subject_of("org.fedoraproject.prod.buildsys.untag--signed.json");
    assert!(s.contains(" untagged "), "{s}");
}

#[test]
fn a_bodhi_update_names_its_alias_and_status() {
    let s = subject_of("org.fedoraproject.prod.bodhi.update.complete.testing.json");
    assert_eq!(s, "FEDORA-2019-02cd019281 testing");
    let s = subject_of("org.fedoraproject.prod.bodhi.update.comment.json");
    assert!(s.starts_with("FEDORA-2019-46910daf41 "), "{s}");
    // Before aliases, an update was known by its title.
    let s = subject_of("org.fedoraproject.prod.bodhi.update.request.testing.json");
    assert_eq!(s, "gnome-settings-daemon-3.6.1-1.fc18 control-center-3.6.1-1.fc18 pending");
}

#[test]
fn other_topics_show_their_last_two_words() {
    assert_eq!(subject_of("org.fedoraproject.prod.buildsys.repo.done.json"), "repo.done");
    assert_eq!(subject_of("org.fedoraproject.prod.git.receive.json"), "git.receive");
}
