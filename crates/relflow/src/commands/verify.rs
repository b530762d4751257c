//! `relflow verify FILE...`: are these fedmsg envelopes validly signed?
//!
//! Checks each file against `[fedmsg]` (CA, CRL, routing_policy, and
//! `validate_at_message_time`) exactly as a `require_signature` source
//! would, and prints one line per file. Messages exported from datagrepper
//! are fixed up the way fedmsg's `fix_datagrepper_message` does when they
//! do not verify as they are.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use relflow_core::Config;
use relflow_fedmsg::{canonical, fix_datagrepper_message, SignerInfo, Verifier, VerifyError};
use serde_json::json;

pub fn run(config: &Config, files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let fedmsg = config.fedmsg.as_ref().with_context(|| {
        format!(
            "{} has no [fedmsg] section: add one with ca_cert (and crl) to verify signatures",
            config.path.display()
        )
    })?;
    let verifier = Verifier::from_config(fedmsg).context("[fedmsg]: cannot load the CA or CRL")?;
    let mut all_valid = true;
    let mut results = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let result = super::read_input(file)
            .map_err(|e| format!("{e:#}"))
            .and_then(|bytes| check(&verifier, &bytes).map_err(|e| format!("{e} [{}]", e.kind())));
        all_valid &= result.is_ok();
        match (&result, json) {
            (Ok(s), false) => println!("{name}: valid (signed by {}, serial {})", s.common_name, s.serial),
            (Err(reason), false) => println!("{name}: invalid: {reason}"),
            (Ok(s), true) => {
                results.push(json!({"file": name, "valid": true, "signer": s.common_name, "serial": s.serial}))
            }
            (Err(reason), true) => results.push(json!({"file": name, "valid": false, "reason": reason})),
        }
    }
    if json {
        super::print_json(&results)?;
    }
    Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Verifies as is; a datagrepper export that fails is retried with
/// datagrepper's changes undone (and keeps the first error if that fails too).
fn check(verifier: &Verifier, bytes: &[u8]) -> Result<SignerInfo, VerifyError> {
    let first = match verifier.verify(bytes) {
        Ok(signer) => return Ok(signer),
        Err(e) => e,
    };
    let Ok(mut envelope) = canonical::parse(bytes) else { return Err(first) };
    if !fix_datagrepper_message(&mut envelope) {
        return Err(first);
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    verifier.verify_json_at(&envelope, now).map_err(|_| first)
}
