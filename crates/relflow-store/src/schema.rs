//! Forward upgrades of the runs tables for a store at scale: the indexes the
//! listings seek with, counters kept by triggers (so no request counts
//! rows), and logs in a table of their own (so listing rows stay small).
//!
//! Each step is idempotent and keyed on what exists, so a database made by
//! any earlier relflow upgrades in place when it is opened, and workers
//! opening it at once take turns (SQLite's write lock, PostgreSQL's schema
//! advisory lock).

use rusqlite::{Connection, OptionalExtension};

/// Indexes for every listing filter, each ending in the sort order
/// `(started_at, id)` so a page is an index walk that stops at its limit.
const SQLITE_INDEXES: &str = "
DROP INDEX IF EXISTS runs_started;
CREATE INDEX IF NOT EXISTS runs_started_id ON runs (started_at, id);
CREATE INDEX IF NOT EXISTS runs_rule_started ON runs (rule, started_at, id);
CREATE INDEX IF NOT EXISTS runs_status_started ON runs (status, started_at, id);
CREATE INDEX IF NOT EXISTS runs_rule_status_started ON runs (rule, status, started_at, id);
CREATE INDEX IF NOT EXISTS runs_topic_started ON runs (topic, started_at, id);
";

/// Counters per (rule, status) and per (hour, status), kept by triggers so
/// every writer (the worker, a re-run, a prune) keeps them right.
const SQLITE_COUNTERS: &str = "
CREATE TABLE run_counts (rule TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
                         PRIMARY KEY (rule, status)) WITHOUT ROWID;
CREATE TABLE run_hours (hour INTEGER NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
                        PRIMARY KEY (hour, status)) WITHOUT ROWID;
INSERT INTO run_counts SELECT rule, status, COUNT(*) FROM runs GROUP BY rule, status;
INSERT INTO run_hours SELECT started_at / 3600000 * 3600000, status, COUNT(*) FROM runs GROUP BY 1, 2;
CREATE TRIGGER runs_counted_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_counts VALUES (NEW.rule, NEW.status, 1)
        ON CONFLICT (rule, status) DO UPDATE SET n = n + 1;
    INSERT INTO run_hours VALUES (NEW.started_at / 3600000 * 3600000, NEW.status, 1)
        ON CONFLICT (hour, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER runs_counted_update AFTER UPDATE OF status ON runs WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE run_counts SET n = n - 1 WHERE rule = OLD.rule AND status = OLD.status;
    INSERT INTO run_counts VALUES (NEW.rule, NEW.status, 1)
        ON CONFLICT (rule, status) DO UPDATE SET n = n + 1;
    UPDATE run_hours SET n = n - 1 WHERE hour = OLD.started_at / 3600000 * 3600000 AND status = OLD.status;
    INSERT INTO run_hours VALUES (NEW.started_at / 3600000 * 3600000, NEW.status, 1)
        ON CONFLICT (hour, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER runs_counted_delete AFTER DELETE ON runs BEGIN
    UPDATE run_counts SET n = n - 1 WHERE rule = OLD.rule AND status = OLD.status;
    UPDATE run_hours SET n = n - 1 WHERE hour = OLD.started_at / 3600000 * 3600000 AND status = OLD.status;
END;
";

/// Logs move out of `runs` (its `log` column stays, empty, for older
/// readers of the file).
const SQLITE_LOGS: &str = "
CREATE TABLE run_logs (id TEXT PRIMARY KEY, log TEXT NOT NULL);
INSERT INTO run_logs SELECT id, log FROM runs WHERE log <> '';
UPDATE runs SET log = '' WHERE log <> '';
CREATE TRIGGER runs_log_delete AFTER DELETE ON runs BEGIN
    DELETE FROM run_logs WHERE id = OLD.id;
END;
";

/// Search terms per run (see `search.rs`), gone with their run.
const SQLITE_TERMS: &str = "
CREATE TABLE run_terms (term TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (term, run_id)) WITHOUT ROWID;
CREATE INDEX run_terms_run ON run_terms (run_id);
CREATE TRIGGER runs_terms_delete AFTER DELETE ON runs BEGIN
    DELETE FROM run_terms WHERE run_id = OLD.id;
END;
";

/// Upgrades the SQLite runs tables (already created) in one transaction.
pub(crate) fn upgrade_sqlite(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SQLITE_INDEXES)?;
    let has = |table: &str| {
        tx.query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |_| Ok(()))
            .optional()
            .map(|found| found.is_some())
    };
    if !has("run_counts")? {
        tx.execute_batch(SQLITE_COUNTERS)?;
    }
    if !has("run_logs")? {
        tx.execute_batch(SQLITE_LOGS)?;
    }
    let has_subject = tx.query_row("SELECT 1 FROM pragma_table_info('runs') WHERE name = 'subject'", [], |_| Ok(()));
    if has_subject.optional()?.is_none() {
        tx.execute_batch("ALTER TABLE runs ADD COLUMN subject TEXT")?;
    }
    if !has("run_terms")? {
        tx.execute_batch(SQLITE_TERMS)?;
        let n = crate::reindex::sqlite(&tx)?;
        tracing::info!("indexed {n} earlier runs for search");
    }
    tx.commit()
}

/// The PostgreSQL twin of the SQLite upgrade. Ids also get a `C`-collated
/// index: a prefix range means byte order, whatever the database's locale.
pub(crate) const POSTGRES: &str = r#"
DROP INDEX IF EXISTS relflow_runs_started;
CREATE INDEX IF NOT EXISTS relflow_runs_started_id ON relflow_runs (started_at, id);
CREATE INDEX IF NOT EXISTS relflow_runs_rule_started ON relflow_runs (rule, started_at, id);
CREATE INDEX IF NOT EXISTS relflow_runs_status_started ON relflow_runs (status, started_at, id);
CREATE INDEX IF NOT EXISTS relflow_runs_rule_status_started ON relflow_runs (rule, status, started_at, id);
CREATE INDEX IF NOT EXISTS relflow_runs_topic_started ON relflow_runs (topic, started_at, id);
CREATE INDEX IF NOT EXISTS relflow_runs_id_bytes ON relflow_runs (id COLLATE "C");
ALTER TABLE relflow_runs ADD COLUMN IF NOT EXISTS subject TEXT;

DO $upgrade$ BEGIN
IF to_regclass('relflow_run_counts') IS NULL THEN
    CREATE TABLE relflow_run_counts (rule TEXT NOT NULL, status TEXT NOT NULL, n BIGINT NOT NULL,
                                     PRIMARY KEY (rule, status));
    CREATE TABLE relflow_run_hours (hour BIGINT NOT NULL, status TEXT NOT NULL, n BIGINT NOT NULL,
                                    PRIMARY KEY (hour, status));
    INSERT INTO relflow_run_counts SELECT rule, status, COUNT(*) FROM relflow_runs GROUP BY rule, status;
    INSERT INTO relflow_run_hours SELECT started_at / 3600000 * 3600000, status, COUNT(*) FROM relflow_runs GROUP BY 1, 2;
END IF;
IF to_regclass('relflow_run_terms') IS NULL THEN
    -- C collation: a search word's prefix range is byte order, whatever the locale.
    CREATE TABLE relflow_run_terms (term TEXT COLLATE "C" NOT NULL, run_id TEXT NOT NULL,
                                    PRIMARY KEY (term, run_id));
    CREATE INDEX relflow_run_terms_run ON relflow_run_terms (run_id);
END IF;
IF to_regclass('relflow_run_logs') IS NULL THEN
    CREATE TABLE relflow_run_logs (id TEXT PRIMARY KEY, log TEXT NOT NULL);
    INSERT INTO relflow_run_logs SELECT id, log FROM relflow_runs WHERE log <> '';
    UPDATE relflow_runs SET log = '' WHERE log <> '';
END IF;
END $upgrade$;

CREATE OR REPLACE FUNCTION relflow_runs_counted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE relflow_run_counts SET n = n - 1 WHERE rule = OLD.rule AND status = OLD.status;
        UPDATE relflow_run_hours SET n = n - 1
            WHERE hour = OLD.started_at / 3600000 * 3600000 AND status = OLD.status;
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM relflow_run_logs WHERE id = OLD.id;
        DELETE FROM relflow_run_terms WHERE run_id = OLD.id;
    ELSE
        INSERT INTO relflow_run_counts VALUES (NEW.rule, NEW.status, 1)
            ON CONFLICT (rule, status) DO UPDATE SET n = relflow_run_counts.n + 1;
        INSERT INTO relflow_run_hours VALUES (NEW.started_at / 3600000 * 3600000, NEW.status, 1)
            ON CONFLICT (hour, status) DO UPDATE SET n = relflow_run_hours.n + 1;
    END IF;
    RETURN NULL;
END $fn$;
CREATE OR REPLACE TRIGGER relflow_runs_counted AFTER INSERT OR DELETE OR UPDATE OF status ON relflow_runs
    FOR EACH ROW EXECUTE FUNCTION relflow_runs_counted();
"#;
