//! A run's log over Server-Sent Events: the live file while the run runs,
//! then an `end` event with how it ended.
//!
//! The worker tees a running playbook's output to its live log
//! ([`relflow_engine::RunLogs`], removed once the run is recorded). The
//! stream tails that file; when the store says the run is over, it sends
//! what is left and ends. A run that
//! was already over (or whose file it never saw) is sent from the store.
//! Each `log` event's data is JSON `{"text": ...}`, so any bytes survive SSE.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use relflow_store::RunStatus;
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::error::ApiError;
use super::runs::find_run;
use super::AppState;

const CHUNK: usize = 64 << 10;
const POLL: Duration = Duration::from_millis(300);

struct Tail {
    state: AppState,
    run_id: String,
    file: Option<tokio::fs::File>,
    /// Bytes read that end inside a UTF-8 character, kept for the next read.
    partial: Vec<u8>,
    ready: VecDeque<Event>,
    done: bool,
}

fn text_event(text: &str) -> Event {
    Event::default().event("log").data(json!({ "text": text }).to_string())
}

fn end_event(status: RunStatus) -> Event {
    Event::default().event("end").data(json!({ "status": status }).to_string())
}

/// Splits `bytes` into text that is complete UTF-8 and a trailing partial
/// character (invalid bytes become U+FFFD).
fn take_text(bytes: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(bytes) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        Err(_) => 0,
    };
    let rest = bytes.split_off(bytes.len() - keep);
    let text = String::from_utf8_lossy(bytes).into_owned();
    *bytes = rest;
    text
}

fn chunks(text: &str) -> impl Iterator<Item = Event> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(text_event(head))
    })
}

impl Tail {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            if self.file.is_none() {
                self.file = self.state.logs.open(&self.run_id).await;
            }
            if let Some(file) = &mut self.file {
                let mut buf = vec![0u8; CHUNK];
                if let Ok(n @ 1..) = file.read(&mut buf).await {
                    self.partial.extend_from_slice(&buf[..n]);
                    let text = take_text(&mut self.partial);
                    if !text.is_empty() {
                        return Some(text_event(&text));
                    }
                    continue;
                }
            }
            // Nothing new: is the run still going?
            let detail = match self.state.store.get(&self.run_id).await {
                Ok(Some(d)) => d,
                _ => {
                    self.done = true;
                    continue;
                }
            };
            let status = detail.record.status;
            if status != RunStatus::Running {
                if self.file.is_none() {
                    // Over before we saw it run: the store has the whole log.
                    self.ready.extend(chunks(&detail.log).collect::<Vec<_>>());
                } else if !self.partial.is_empty() {
                    let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
                    self.ready.push_back(text_event(&rest));
                }
                self.ready.push_back(end_event(status));
                self.done = true;
                continue;
            }
            tokio::select! {
                _ = self.state.shutdown.cancelled() => self.done = true,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// `GET /api/runs/{id}/log/stream`
pub async fn stream_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let run = find_run(&state, &id).await?;
    let tail =
        Tail { state, run_id: run.record.id, file: None, partial: Vec::new(), ready: VecDeque::new(), done: false };
    let events = stream::unfold(tail, |mut tail| async move {
        let event = tail.next_event().await?;
        Some((Ok(event), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// `GET /api/runs/{id}/log`: the whole log as text (so far, while running).
pub async fn log_text(State(state): State<AppState>, Path(id): Path<String>) -> Result<String, ApiError> {
    let run = find_run(&state, &id).await?;
    if run.record.status == RunStatus::Running {
        if let Some(text) = state.logs.read(&run.record.id).await {
            return Ok(text);
        }
    }
    Ok(run.log)
}

#[cfg(test)]
mod tests {
    use super::take_text;

    #[test]
    fn a_character_split_across_reads_is_kept_whole() {
        let mut bytes = "ok é".as_bytes().to_vec();
        let last = bytes.pop().unwrap();
        assert_eq!(take_text(&mut bytes), "ok ");
        bytes.push(last);
        assert_eq!(take_text(&mut bytes), "é");
        assert!(bytes.is_empty());
    }
}
