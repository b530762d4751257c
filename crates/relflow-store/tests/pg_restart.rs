//! Concurrency-group locks on a PostgreSQL server that restarts or loses a
//! holder. The server is the test's own (relflow_testkit::PgServer): the
//! machine's shared one is never restarted.

use std::sync::Arc;
use std::time::Duration;

use relflow_store::{PgStore, RunStore};
use relflow_testkit::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_group_lock_outlives_a_database_restart() {
    let server = Arc::new(tokio::task::spawn_blocking(PgServer::start).await.unwrap());
    let store = PgStore::connect(&server.url()).await.unwrap();
    let held = store.lock("deploy").await.unwrap();
    let waiter = store.lock("deploy");
    tokio::pin!(waiter);
    assert!(tokio::time::timeout(Duration::from_millis(300), &mut waiter).await.is_err(), "the waiter waits");

    // The restart ends every session, the holder's too; the holder's run
    // goes on, so the group must stay taken: past the holder's renewal
    // under its new session, and while it keeps renewing.
    let restarting = Arc::clone(&server);
    let restart = tokio::task::spawn_blocking(move || restarting.restart());
    assert!(
        tokio::time::timeout(Duration::from_secs(8), &mut waiter).await.is_err(),
        "nobody takes a held group after a restart"
    );
    restart.await.unwrap();
    drop(held);
    let next = tokio::time::timeout(Duration::from_secs(30), waiter).await.expect("released on drop");
    next.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_died_frees_its_group_at_once() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let url = server.url();
    // A worker that takes the group and dies: its runtime goes away without
    // giving the lock back, so the row stays, left by a session that is gone.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = PgStore::connect(&url).await.unwrap();
            std::mem::forget(store.lock("deploy").await.unwrap());
        });
    })
    .join()
    .unwrap();
    let store = PgStore::connect(&server.url()).await.unwrap();
    let left = server.sql("SELECT count(*) FROM relflow_group_locks");
    assert_eq!(left.trim(), "1", "the dead holder's row is still there");
    tokio::time::timeout(Duration::from_secs(30), store.lock("deploy"))
        .await
        .expect("a dead holder's group is free")
        .unwrap();
}
