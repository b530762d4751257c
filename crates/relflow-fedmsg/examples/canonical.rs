//! Prints the canonical JSON fedmsg would sign for the envelope on stdin
//! (without `signature`/`certificate`): handy to debug a signature mismatch
//! by diffing against Python's `json.dumps(..., sort_keys=True, separators=(',', ':'))`.

use std::io::{Read, Write};

fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("read stdin");
    match relflow_fedmsg::canonical::parse(&input) {
        Ok(v) => {
            let out = relflow_fedmsg::signed_bytes(&v);
            std::io::stdout().write_all(out.as_bytes()).expect("write stdout");
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
