//! Which run started a run, and which runs its events started: for `relflow
//! runs show` and the run page. Nothing extra is stored for it: a run
//! started by an event has that event as its message, and event ids are
//! derived from the run they report (`event::event_ids`).

use std::fmt;

use relflow_core::Message;
use relflow_store::{RunDetail, RunFilter, RunRecord, RunStatus, RunStore};
use serde::Serialize;

use crate::event::{event_ids, reported_run};

/// A run at the other end of a chain link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // the run's own words
pub struct RunLink {
    pub id: String,
    pub rule: String,
    pub status: RunStatus,
}

impl From<&RunRecord> for RunLink {
    fn from(r: &RunRecord) -> Self {
        RunLink { id: r.id.clone(), rule: r.rule.clone(), status: r.status }
    }
}

/// Where a run sits in a chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lineage {
    /// The run whose event started this one.
    pub triggered_by: Option<RunLink>,
    /// The runs this one's events started, oldest first.
    pub triggered: Vec<RunLink>,
}

/// A run with its lineage, as `relflow runs show --json` and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The run.
    #[serde(flatten)]
    pub run: RunDetail,
    /// `triggered_by` and `triggered`.
    #[serde(flatten)]
    pub lineage: Lineage,
}

/// `run` with its [`lineage`].
pub async fn view(store: &dyn RunStore, run: RunDetail) -> relflow_store::Result<RunView> {
    Ok(RunView { lineage: lineage(store, &run).await?, run })
}

/// The lineage of `run`. A message that only claims to be a relflow event
/// (anyone can publish that body) links to nothing: the run it names must
/// exist and really have announced an event with that message's id.
pub async fn lineage(store: &dyn RunStore, run: &RunDetail) -> relflow_store::Result<Lineage> {
    let mut lineage = Lineage::default();
    if let Ok(msg) = serde_json::from_value::<Message>(run.message.clone()) {
        if let Some(parent) = reported_run(&msg) {
            if let Some(p) = store.get(parent).await.ok().flatten() {
                if event_ids(&p.record).contains(&msg.id) {
                    lineage.triggered_by = Some(RunLink::from(&p.record));
                }
            }
        }
    }
    let mut triggered = Vec::new();
    for id in event_ids(&run.record) {
        triggered.extend(store.list(&RunFilter { message_id: Some(id), limit: 100, ..Default::default() }).await?);
    }
    triggered.sort_by_key(|r| r.started_at);
    lineage.triggered = triggered.iter().map(RunLink::from).collect();
    Ok(lineage)
}

impl fmt::Display for RunLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run {} (rule {}, {})", self.id, self.rule, self.status)
    }
}

impl fmt::Display for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.triggered_by {
            writeln!(f, "triggered by {p}")?;
        }
        for t in &self.triggered {
            writeln!(f, "triggered  {t}")?;
        }
        Ok(())
    }
}
