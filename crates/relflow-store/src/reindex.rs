//! Runs recorded before search and subjects existed get both when the
//! store upgrades: once, in the upgrade's transaction, when the terms table
//! is created. Read in batches by id, so memory stays flat however many
//! runs there are; the one-time cost is about one run write per run.

use serde_json::Value;

use crate::indexed;
use crate::postgres::pg;

/// Runs read per batch.
const BATCH: i64 = 500;

/// Indexes every run of the SQLite store; how many there were.
pub(crate) fn sqlite(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<u64> {
    let mut read = tx.prepare("SELECT id, topic, message FROM runs WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut subject = tx.prepare("UPDATE runs SET subject = ?2 WHERE id = ?1")?;
    let (mut after, mut done) = (String::new(), 0);
    loop {
        let rows = read
            .query_map(rusqlite::params![after, BATCH], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<(String, String, String)>>>()?;
        let Some(last) = rows.last() else { return Ok(done) };
        after = last.0.clone();
        for (id, topic, message) in &rows {
            let message = serde_json::from_str(message).unwrap_or(Value::Null);
            let (line, words) = indexed(topic, &message);
            subject.execute(rusqlite::params![id, line])?;
            crate::sqlite::insert_terms(tx, id, &words)?;
        }
        done += rows.len() as u64;
    }
}

/// Indexes every run of the PostgreSQL store; how many there were.
pub(crate) async fn postgres(tx: &tokio_postgres::Transaction<'_>) -> crate::Result<u64> {
    let (mut after, mut done) = (String::new(), 0);
    loop {
        let rows = tx
            .query(
                r#"SELECT id, topic, message FROM relflow_runs WHERE id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2"#,
                &[&after, &BATCH],
            )
            .await
            .map_err(pg)?;
        let Some(last) = rows.last() else { return Ok(done) };
        after = last.get(0);
        let (mut ids, mut subjects, mut term_ids, mut terms) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let id: String = row.get(0);
            let (line, words) = indexed(row.get(1), &row.get::<_, Value>(2));
            term_ids.extend(std::iter::repeat_n(id.clone(), words.len()));
            terms.extend(words);
            ids.push(id);
            subjects.push(line);
        }
        // One statement each per batch: arrays unnested side by side.
        tx.execute(
            "UPDATE relflow_runs r SET subject = v.subject FROM unnest($1::text[], $2::text[]) AS v(id, subject)
             WHERE r.id = v.id",
            &[&ids, &subjects],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO relflow_run_terms (term, run_id) SELECT * FROM unnest($1::text[], $2::text[])",
            &[&terms, &term_ids],
        )
        .await
        .map_err(pg)?;
        done += rows.len() as u64;
    }
}
