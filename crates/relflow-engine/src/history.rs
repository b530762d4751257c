//! The worker's part in a message's history (beside its runs): taking an
//! operator's re-run request, and the deliveries and settlements that are
//! not plain first-time successes. A failed write is logged and never
//! changes how the message is handled: history is for people.

use relflow_core::Message;
use relflow_queue::Delivery;
use relflow_store::{HistoryEvent, Request};
use tracing::{info, warn};

use crate::control::RERUN_HEADER;
use crate::settle::Settle;
use crate::worker::Worker;

impl Worker {
    /// `msg` without the re-run header, and the re-run request it names if
    /// this worker could take it (with the id for the new run). A header
    /// naming no untaken request for this message (made up on the bus, or a
    /// copy of a re-run that already ran) is dropped and changes nothing.
    pub(crate) async fn take_rerun(&self, msg: &Message) -> (Message, Option<(Request, String)>) {
        let mut msg = msg.clone();
        let Some(header) = msg.headers.remove(RERUN_HEADER) else { return (msg, None) };
        let Some(id) = header.as_str() else { return (msg, None) };
        let run_id = uuid::Uuid::new_v4().to_string();
        match self.store.take_rerun(id, &msg.id, &run_id).await {
            Ok(Some(req)) => {
                info!(msg_id = %msg.id, rule = %req.rule, rerun_of = %req.run_id, by = %req.by, "re-running on request");
                (msg, Some((req, run_id)))
            }
            Ok(None) => (msg, None),
            Err(e) => {
                warn!(msg_id = %msg.id, "cannot take the re-run request (running as an ordinary message): {e}");
                (msg, None)
            }
        }
    }

    /// A delivery that is not the first of its attempt: its last holder
    /// stopped (died, or was shut down) before settling it.
    pub(crate) async fn note_redelivery(&self, d: &Delivery, msg: &Message) {
        if d.deliveries <= 1 {
            return;
        }
        let detail =
            format!("delivered again (delivery {}): the worker holding it stopped before settling it", d.deliveries);
        self.note(msg, "redelivered", Some(d.attempt), detail).await;
    }

    /// Retries and dead letters, with their delay and reason.
    pub(crate) async fn note_settle(&self, d: &Delivery, msg: &Message, decision: &Settle) {
        match decision {
            Settle::Retry { delay, reason } => {
                let detail = format!("retry in {}: {reason}", humantime_secs(*delay));
                self.note(msg, "retry", Some(d.attempt), detail).await;
            }
            Settle::DeadLetter(reason) => self.note(msg, "dead_lettered", Some(d.attempt), reason.clone()).await,
            Settle::Ack | Settle::Release => {}
        }
    }

    async fn note(&self, msg: &Message, kind: &str, attempt: Option<u32>, detail: String) {
        let mut event = HistoryEvent::now(&msg.id, kind, detail);
        event.attempt = attempt;
        event.by = Some(self.id.clone());
        if let Err(e) = self.store.record_event(&event).await {
            warn!(msg_id = %msg.id, "cannot record {kind} in the message's history: {e}");
        }
    }
}

/// A delay in whole seconds, as people read it (`30s`).
fn humantime_secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}
