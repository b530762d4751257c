//! Several broker addresses (`url` + `failover_urls`): an address that does
//! not answer is skipped, on the first connect and on every reconnect.
//! Against the machine's RabbitMQ, in a vhost of the test's own; the
//! "dead" address is a port nobody listens on.

use std::net::TcpListener;
use std::time::Duration;

use relflow_amqp::{AmqpQueue, AmqpQueueOptions};
use relflow_queue::{QueueError, WorkQueue};
use relflow_testkit::Vhost;

/// An AMQP URL on a port that refuses connections.
fn dead_url(vh: &Vhost) -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("amqp://guest:guest@127.0.0.1:{port}/{}", vh.name())
}

#[tokio::test]
async fn a_dead_address_is_skipped_on_connect_and_on_reconnect() {
    let vh = Vhost::new("amqp-failover");
    let opts = AmqpQueueOptions { url: dead_url(&vh), failover_urls: vec![vh.url()], ..AmqpQueueOptions::default() };
    let q = AmqpQueue::connect(opts).await.expect("the second address answers");
    q.enqueue(b"one").await.unwrap();
    q.close().await;
    // The reconnect goes round the list again.
    q.enqueue(b"two").await.unwrap();
    assert_eq!(q.connection_generation().await, 2);
    for want in [&b"one"[..], b"two"] {
        let d = q.claim(Duration::from_secs(20)).await.unwrap().expect("a delivery");
        assert_eq!(d.payload, want);
        q.ack(&d).await.unwrap();
    }
}

#[tokio::test]
async fn refused_only_when_every_address_refuses() {
    let vh = Vhost::new("amqp-failover-refused");
    let wrong = vh.url().replacen("guest:guest", "guest:wrong", 1);
    let opts = AmqpQueueOptions {
        url: wrong.clone(),
        failover_urls: vec![wrong],
        reconnect_timeout: Duration::from_secs(2),
        ..AmqpQueueOptions::default()
    };
    let err = AmqpQueue::connect(opts).await.unwrap_err();
    assert!(matches!(err, QueueError::Refused(_)), "{err}");
    assert!(!err.to_string().contains("wrong"), "the password is not shown: {err}");
}
