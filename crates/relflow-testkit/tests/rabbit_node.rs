//! The test-owned RabbitMQ node does what the tests using it rely on, seen
//! from a real client (lapin): it takes connections, keeps confirmed
//! messages across a graceful stop and a SIGKILL, talks TLS with SASL
//! EXTERNAL, and clusters.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, DefaultConnectionBuilder};
use relflow_testkit::{wait_for, RabbitNode};

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default()).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args
}

/// Declares the durable quorum queue `q` and publishes `body` to it,
/// persistent, waiting for the broker's confirm.
async fn publish_confirmed(ch: &Channel, body: &[u8]) {
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.queue_declare("q".into(), QueueDeclareOptions::durable(), quorum()).await.unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "q".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack(), "the broker confirmed the message");
}

async fn get(ch: &Channel) -> Option<Vec<u8>> {
    let got = ch.basic_get("q".into(), BasicGetOptions { no_ack: true }).await.unwrap();
    got.map(|m| m.delivery.data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_confirmed_messages_across_stop_and_kill_9() {
    let mut node = RabbitNode::start();
    assert!(node.name().starts_with("relflow-test-") && node.amqp_port() != 5672);
    let status = node.ctl(&["status"]);
    assert!(status.contains(node.name()), "rabbitmqctl reaches this node, not the shared one:\n{status}");

    let conn = connect(&node.url()).await;
    publish_confirmed(&conn.create_channel().await.unwrap(), b"one").await;
    publish_confirmed(&conn.create_channel().await.unwrap(), b"two").await;
    drop(conn);

    node.stop();
    assert!(!node.is_running());
    assert!(Connection::connect(&node.url(), ConnectionProperties::default()).await.is_err(), "it is down");
    node.restart();
    let conn = connect(&node.url()).await;
    assert_eq!(get(&conn.create_channel().await.unwrap()).await.as_deref(), Some(&b"one"[..]));
    drop(conn);

    node.kill_9();
    assert!(!node.is_running());
    node.restart();
    let conn = connect(&node.url()).await;
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(get(&ch).await.as_deref(), Some(&b"two"[..]), "a confirmed message survives SIGKILL");
    assert_eq!(get(&ch).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_logs_in_with_sasl_external() {
    let node = RabbitNode::builder().tls().start();
    let tls = node.tls().expect("started with TLS");
    let config = OwnedTLSConfig {
        identity: Some(OwnedIdentity::PKCS8 {
            pem: std::fs::read(&tls.client_cert).unwrap(),
            key: std::fs::read(&tls.client_key).unwrap(),
        }),
        cert_chain: Some(std::fs::read_to_string(&tls.ca_cert).unwrap()),
    };
    let url = node.amqps_url().unwrap();
    let conn = DefaultConnectionBuilder::new()
        .unwrap()
        .with_uri_str(url.clone())
        .with_tls_config(config)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}\n{}", node.log_tail()));
    publish_confirmed(&conn.create_channel().await.unwrap(), b"over tls").await;
    assert_eq!(get(&conn.create_channel().await.unwrap()).await.as_deref(), Some(&b"over tls"[..]));

    let listed = node.ctl(&["list_connections", "user", "ssl", "auth_mechanism", "--no-table-headers"]);
    let fields: Vec<&str> = listed.split_whitespace().collect();
    assert_eq!(fields, [tls.client_name.as_str(), "true", "EXTERNAL"], "one TLS connection, logged in by certificate");
    // The plain port still takes guest/guest.
    connect(&node.url()).await;
}

fn running_nodes(node: &RabbitNode) -> Vec<String> {
    let status: serde_json::Value =
        serde_json::from_str(&node.ctl(&["cluster_status", "--formatter", "json"])).unwrap();
    let mut running: Vec<String> =
        status["running_nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
    running.sort();
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_cluster_and_a_quorum_queue_outlives_one_of_them() {
    let mut cluster = RabbitNode::builder().cluster(3);
    let mut names: Vec<String> = cluster.nodes().iter().map(|n| n.name().to_owned()).collect();
    names.sort();
    for node in cluster.nodes() {
        assert_eq!(running_nodes(node), names, "seen from {}", node.name());
    }
    assert_eq!(cluster.urls().len(), 3);

    // Declared on node 0, so its replicas are on all three.
    let first = connect(&cluster.nodes()[0].url()).await;
    publish_confirmed(&first.create_channel().await.unwrap(), b"before").await;

    // One node of three down: the other two are a majority, and still
    // confirm a publish.
    cluster.node_mut(2).kill_9();
    let second = connect(&cluster.nodes()[1].url()).await;
    publish_confirmed(&second.create_channel().await.unwrap(), b"while down").await;

    // Back, it rejoins by itself and serves the queue's messages.
    cluster.node_mut(2).restart();
    wait_for(Duration::from_secs(120), "node 2 to rejoin", || {
        (running_nodes(&cluster.nodes()[0]) == names).then_some(())
    });
    let third = connect(&cluster.nodes()[2].url()).await;
    let ch = third.create_channel().await.unwrap();
    let mut got = Vec::new();
    // Its replica may still be catching up: ask until both are there.
    for _ in 0..600 {
        if let Some(body) = get(&ch).await {
            got.push(body);
        }
        if got.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, [b"before".to_vec(), b"while down".to_vec()]);
}
