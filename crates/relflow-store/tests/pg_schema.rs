//! Opening a PostgreSQL store whose schema is current must not lock its
//! tables: every CLI call opens the store while workers write to it, and a
//! `CREATE INDEX IF NOT EXISTS` or `ALTER TABLE` there (which lock the table
//! even when there is nothing to do) deadlocked with a worker recording a run.

use relflow_store::{PgStore, RunStore};
use tokio_postgres::NoTls;

#[tokio::test]
async fn opening_a_current_store_takes_no_table_lock() {
    let db = relflow_testkit::PgDatabase::new();
    drop(PgStore::connect(&db.url()).await.expect("the first open creates the schema"));

    // Another session writing to every relflow table, as a busy worker does.
    let (mut writer, connection) = tokio_postgres::connect(&db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    let tx = writer.transaction().await.unwrap();
    let tables: Vec<String> = tx
        .query("SELECT tablename FROM pg_tables WHERE tablename LIKE 'relflow%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() > 10, "the schema's tables: {tables:?}");
    for table in &tables {
        tx.batch_execute(&format!("LOCK TABLE {table} IN ROW EXCLUSIVE MODE")).await.unwrap();
    }

    // A DDL statement waiting for one of those locks fails after a second.
    let impatient = format!("{} options='-c lock_timeout=1000'", db.url());
    let store = PgStore::connect(&impatient).await.expect("a current schema is opened without waiting for a lock");
    assert_eq!(store.count(&Default::default()).await.unwrap(), 0);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_changed_schema_is_upgraded_on_open() {
    let db = relflow_testkit::PgDatabase::new();
    drop(PgStore::connect(&db.url()).await.unwrap());
    // As an earlier release left it: no index on rule, another fingerprint.
    db.sql("DROP INDEX relflow_runs_rule_started; UPDATE relflow_schema SET fingerprint = 'earlier'");
    drop(PgStore::connect(&db.url()).await.unwrap());
    db.sql("DO $$ BEGIN IF to_regclass('relflow_runs_rule_started') IS NULL THEN RAISE 'not upgraded'; END IF; END $$");
}
