//! The worker against a real Mosquitto: connect, QoS 0/1/2, authentication,
//! TLS, last will, persistent sessions and broker restarts.

mod common;

use common::*;
use mqscope::mqtt::{
    Command, ConnStatus, ConnectionId, Event, EventKind, Message, PublishOutcome, Worker,
};
use mqscope::profile::{Profile, Qos, SubscriptionSpec, WillSettings};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

fn connect(worker: &Worker, conn: ConnectionId, profile: Profile) {
    worker.send(Command::Connect {
        conn,
        profile: Box::new(profile),
    });
}

/// Subscribes and waits for the SUBACK; returns the granted QoS.
fn subscribe(worker: &Worker, conn: ConnectionId, filter: &str, qos: Qos) -> Option<Qos> {
    worker.send(Command::Subscribe {
        conn,
        sub: SubscriptionSpec::new(filter, qos),
    });
    wait_subscribed_event(worker, conn, filter)
}

fn wait_subscribed_event(worker: &Worker, conn: ConnectionId, filter: &str) -> Option<Qos> {
    wait_for(worker, LIMIT, |e| match &e.kind {
        EventKind::Subscribed {
            filter: f, granted, ..
        } if e.conn == conn && f == filter => Some(*granted),
        _ => None,
    })
}

fn publish(worker: &Worker, conn: ConnectionId, token: u64, topic: &str, payload: &str, qos: Qos) {
    worker.send(Command::Publish {
        conn,
        token,
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        qos,
        retain: false,
        props: None,
    });
}

fn message_on(e: &Event, conn: ConnectionId, topic: &str) -> Option<Message> {
    match &e.kind {
        EventKind::Message(m) if e.conn == conn && m.topic == topic => Some(m.clone()),
        _ => None,
    }
}

/// Waits for a status that ends the attempt: `Disconnected` with a reason,
/// or `Reconnecting`. Returns it so the test can say which it expected.
fn wait_failure(worker: &Worker, conn: ConnectionId) -> ConnStatus {
    wait_status(worker, conn, LIMIT, |s| {
        matches!(
            s,
            ConnStatus::Disconnected { reason: Some(_) } | ConnStatus::Reconnecting { .. }
        )
    })
}

fn failure_reason(status: &ConnStatus) -> String {
    match status {
        ConnStatus::Disconnected { reason: Some(r) } => r.clone(),
        ConnStatus::Reconnecting { reason, .. } => reason.clone(),
        other => format!("{other:?}"),
    }
}

/// Publishes at `qos` on a topic the connection subscribed to and checks the
/// outcome and the message that comes back.
fn round_trip(worker: &Worker, conn: ConnectionId, token: u64, topic: &str, qos: Qos) {
    let payload = format!("payload at {qos}");
    publish(worker, conn, token, topic, &payload, qos);
    let mut outcome = None;
    let mut message = None;
    wait_for(worker, LIMIT, |e| {
        match &e.kind {
            EventKind::Published {
                token: t,
                outcome: o,
            } if e.conn == conn && *t == token => outcome = Some(o.clone()),
            _ => {
                if let Some(m) = message_on(e, conn, topic) {
                    message = Some(m);
                }
            }
        }
        (outcome.is_some() && message.is_some()).then_some(())
    });
    let expected = match qos {
        Qos::AtMostOnce => PublishOutcome::Sent,
        _ => PublishOutcome::Acknowledged,
    };
    assert_eq!(outcome, Some(expected), "outcome of the {qos} publish");
    let message = message.unwrap_or_else(|| unreachable!());
    assert_eq!(message.topic, topic);
    assert_eq!(&message.payload[..], payload.as_bytes());
    assert_eq!(message.qos, qos, "QoS of the received message");
    assert!(!message.retain);
}

#[test]
fn broker_starts_and_accepts_mosquitto_clients() {
    let broker = Broker::start();
    let sub = mosquitto_sub(
        &broker,
        &["-i", "harness-sub", "-t", "harness/#", "-v", "-C", "1"],
    );
    let mut sub = Lines::new(sub);
    broker.wait_subscribed("harness-sub", "harness/#");
    mosquitto_pub(&broker, &["-t", "harness/x", "-m", "hello"]);
    assert_eq!(
        sub.next_line(Duration::from_secs(5)).as_deref(),
        Some("harness/x hello"),
        "broker log:\n{}",
        broker.log()
    );
    let (code, err) = sub.finish(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn publishes_and_receives_at_qos_0_1_and_2() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, profile_for(&broker));
    let session_present = wait_connected(&worker, 1);
    assert!(!session_present, "a clean session has no stored state");
    assert_eq!(
        subscribe(&worker, 1, "qos/#", Qos::ExactlyOnce),
        Some(Qos::ExactlyOnce)
    );
    for (token, qos) in Qos::ALL.into_iter().enumerate() {
        round_trip(
            &worker,
            1,
            token as u64,
            &format!("qos/{}", qos.as_u8()),
            qos,
        );
    }
}

#[test]
fn messages_from_other_clients_arrive_with_their_topic_and_payload() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    connect(&worker, 7, profile_for(&broker));
    wait_connected(&worker, 7);
    subscribe(&worker, 7, "sensors/+/temp", Qos::AtLeastOnce);
    mosquitto_pub(
        &broker,
        &["-t", "sensors/kitchen/temp", "-m", "21.5", "-q", "1"],
    );
    mosquitto_pub(&broker, &["-t", "sensors/kitchen/humidity", "-m", "40"]);
    mosquitto_pub(&broker, &["-t", "sensors/hall/temp", "-m", "19", "-r"]);
    let mut got = Vec::new();
    wait_for(&worker, LIMIT, |e| {
        if let EventKind::Message(m) = &e.kind {
            got.push((
                m.topic.clone(),
                String::from_utf8_lossy(&m.payload).to_string(),
            ));
        }
        (got.len() == 2).then_some(())
    });
    assert_eq!(
        got,
        [
            ("sensors/kitchen/temp".to_string(), "21.5".to_string()),
            ("sensors/hall/temp".to_string(), "19".to_string())
        ],
        "the humidity topic does not match the filter"
    );
}

#[test]
fn wrong_password_is_refused_once_and_not_retried() {
    let broker = Broker::builder().password("alice", "s3cret").start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    profile.password = "wrong".into();
    connect(&worker, 1, profile);
    let status = wait_failure(&worker, 1);
    let ConnStatus::Disconnected {
        reason: Some(reason),
    } = &status
    else {
        panic!("a refused login must stop, not retry: {status:?}");
    };
    // Mosquitto 2 answers a wrong password on MQTT 3.1.1 with CONNACK code 5
    // ("not authorised" in mosquitto_sub's words), not code 4.
    let lower = reason.to_lowercase();
    assert!(lower.contains("not authori"), "reason: {reason}");
    assert!(lower.contains("refused"), "reason: {reason}");

    // No reconnect loop: no further attempts during the next second and a half.
    let later = collect_for(&worker, Duration::from_millis(1500));
    assert!(
        !later.iter().any(|e| matches!(
            e.kind,
            EventKind::Status(ConnStatus::Connecting | ConnStatus::Reconnecting { .. })
        )),
        "the worker tried again after a refusal:\n{}",
        format_events(&later)
    );
    assert_eq!(
        broker.log().matches("not authorised").count(),
        1,
        "the broker saw more than one attempt:\n{}",
        broker.log()
    );

    // The right password on the same broker works.
    connect(&worker, 2, profile_for(&broker));
    wait_connected(&worker, 2);
}

#[test]
fn tls_connects_to_a_server_verified_by_its_ca() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.server_tls()).start();
    let worker = Worker::spawn(None);
    let profile = profile_for(&broker);
    assert!(profile.tls.verify_server);
    connect(&worker, 1, profile);
    wait_connected(&worker, 1);
    subscribe(&worker, 1, "tls/#", Qos::AtLeastOnce);
    round_trip(&worker, 1, 1, "tls/x", Qos::AtLeastOnce);
}

fn mutual_tls(cert: impl Fn(&Pki) -> (std::path::PathBuf, std::path::PathBuf)) {
    let pki = Pki::generate();
    let broker = Broker::builder()
        .tls(pki.server_tls())
        .require_certificate(true)
        .start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    let (cert, key) = cert(&pki);
    profile.tls.client_cert = Some(cert);
    profile.tls.client_key = Some(key);
    connect(&worker, 1, profile);
    wait_connected(&worker, 1);
    subscribe(&worker, 1, "mtls/#", Qos::ExactlyOnce);
    round_trip(&worker, 1, 1, "mtls/x", Qos::ExactlyOnce);
}

#[test]
fn mutual_tls_with_rsa_pkcs8_client_key() {
    mutual_tls(|pki| (pki.client_rsa_cert.clone(), pki.client_rsa_key.clone()));
}

#[test]
fn mutual_tls_with_ec_sec1_client_key() {
    mutual_tls(|pki| (pki.client_ec_cert.clone(), pki.client_ec_key.clone()));
}

#[test]
fn mutual_tls_with_ec_pkcs8_client_key() {
    mutual_tls(|pki| (pki.client_ec_cert.clone(), pki.client_ec_key_pkcs8.clone()));
}

#[test]
fn unknown_ca_is_reported_as_an_untrusted_certificate() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.server_tls()).start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    profile.tls.ca_file = Some(pki.other_ca_cert.clone());
    connect(&worker, 1, profile);
    let status = wait_failure(&worker, 1);
    let reason = failure_reason(&status);
    assert!(
        matches!(status, ConnStatus::Disconnected { .. }),
        "an untrusted certificate cannot be fixed by retrying: {status:?}"
    );
    let lower = reason.to_lowercase();
    assert!(lower.contains("certificate"), "reason: {reason}");
    assert!(
        lower.contains("unknown issuer") || lower.contains("trusted ca"),
        "reason: {reason}"
    );
}

#[test]
fn verification_off_connects_to_a_server_of_an_unknown_ca() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.other_server_tls()).start();
    let worker = Worker::spawn(None);

    // Verified against our CA, the other CA's server certificate is refused...
    connect(&worker, 1, profile_for(&broker));
    let refused = wait_failure(&worker, 1);
    assert!(
        failure_reason(&refused).contains("certificate"),
        "{refused:?}"
    );

    // ...and accepted once the user turns verification off.
    let mut profile = profile_for(&broker);
    profile.tls.verify_server = false;
    connect(&worker, 2, profile);
    wait_connected(&worker, 2);
    subscribe(&worker, 2, "insecure/#", Qos::AtLeastOnce);
    round_trip(&worker, 2, 1, "insecure/x", Qos::AtLeastOnce);
}

#[test]
fn missing_client_certificate_is_reported() {
    let pki = Pki::generate();
    let broker = Broker::builder()
        .tls(pki.server_tls())
        .require_certificate(true)
        .start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, profile_for(&broker));
    let status = wait_failure(&worker, 1);
    let reason = failure_reason(&status);
    assert!(
        reason.to_lowercase().contains("client certificate"),
        "the user must learn that a client certificate is needed: {status:?}"
    );
    assert!(
        matches!(status, ConnStatus::Disconnected { .. }),
        "retrying without a certificate cannot succeed: {status:?}"
    );
}

#[test]
fn last_will_fires_when_the_connection_drops_but_not_on_disconnect() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);

    // B watches the wills.
    connect(&worker, 2, profile_for(&broker));
    wait_connected(&worker, 2);
    subscribe(&worker, 2, "will/#", Qos::AtLeastOnce);

    let with_will = |topic: &str, payload: &str| {
        let mut p = profile_for(&broker);
        p.keep_alive_secs = 5;
        p.will = WillSettings {
            enabled: true,
            topic: topic.into(),
            payload: payload.into(),
            qos: Qos::AtLeastOnce,
            retain: false,
            ..WillSettings::default()
        };
        p
    };

    // A drops its TCP connection without DISCONNECT: the broker publishes its will.
    connect(&worker, 1, with_will("will/a", "a is gone"));
    wait_connected(&worker, 1);
    worker.send(Command::Drop { conn: 1 });
    let will = wait_for(&worker, LIMIT, |e| message_on(e, 2, "will/a"));
    assert_eq!(&will.payload[..], b"a is gone");
    assert_eq!(will.qos, Qos::AtLeastOnce);

    // C says goodbye properly: the broker discards its will.
    connect(&worker, 3, with_will("will/c", "c is gone"));
    wait_connected(&worker, 3);
    worker.send(Command::Disconnect { conn: 3 });
    wait_status(&worker, 3, LIMIT, |s| {
        matches!(s, ConnStatus::Disconnected { .. })
    });
    let after = collect_for(&worker, Duration::from_secs(2));
    assert!(
        !after.iter().any(|e| message_on(e, 2, "will/c").is_some()),
        "a graceful disconnect fired the will:\n{}",
        format_events(&after)
    );
}

#[test]
fn persistent_session_gets_messages_queued_while_offline() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    profile.client_id = "mqscope-persistent".into();
    profile.clean_session = false;

    connect(&worker, 1, profile.clone());
    wait_connected(&worker, 1);
    subscribe(&worker, 1, "persist/#", Qos::AtLeastOnce);
    worker.send(Command::Disconnect { conn: 1 });
    wait_status(&worker, 1, LIMIT, |s| {
        matches!(s, ConnStatus::Disconnected { .. })
    });

    for i in 1..=5 {
        mosquitto_pub(
            &broker,
            &["-t", "persist/n", "-q", "1", "-m", &format!("m{i}")],
        );
    }

    connect(&worker, 1, profile);
    let mut session_present = None;
    let mut payloads = Vec::new();
    wait_for(&worker, LIMIT, |e| {
        match &e.kind {
            EventKind::Status(ConnStatus::Connected {
                session_present: p, ..
            }) => session_present = Some(*p),
            EventKind::Message(m) if m.topic == "persist/n" => {
                payloads.push(String::from_utf8_lossy(&m.payload).to_string())
            }
            _ => {}
        }
        (session_present.is_some() && payloads.len() >= 5).then_some(())
    });
    assert_eq!(session_present, Some(true));
    assert_eq!(payloads, ["m1", "m2", "m3", "m4", "m5"]);
}

#[test]
fn reconnects_and_resubscribes_after_a_broker_restart() {
    let mut broker = Broker::start();
    let worker = Worker::spawn(None);
    let profile = profile_for(&broker);
    connect(&worker, 1, profile);
    wait_connected(&worker, 1);
    subscribe(&worker, 1, "re/#", Qos::AtLeastOnce);

    broker.stop();
    let status = wait_status(&worker, 1, LIMIT, |s| {
        matches!(s, ConnStatus::Reconnecting { .. })
    });
    let ConnStatus::Reconnecting {
        attempt, retry_in, ..
    } = status
    else {
        unreachable!()
    };
    assert!(attempt >= 1);
    assert!(retry_in > Duration::ZERO && retry_in <= Duration::from_secs(30));

    broker.restart();
    let session_present = wait_connected(&worker, 1);
    assert!(
        !session_present,
        "the restarted broker has no stored session"
    );
    // The worker subscribes again by itself.
    wait_subscribed_event(&worker, 1, "re/#");
    mosquitto_pub(&broker, &["-t", "re/x", "-q", "1", "-m", "back"]);
    let m = wait_for(&worker, LIMIT, |e| message_on(e, 1, "re/x"));
    assert_eq!(&m.payload[..], b"back");
}

// ----- packet records (the timeline's raw material) -----

use mqscope::model::packet::{Direction, PacketKind, PacketRecord};

/// Collects the connection's packet records until `done` says stop.
fn records_until(
    worker: &Worker,
    conn: ConnectionId,
    mut done: impl FnMut(&Event) -> bool,
) -> Vec<PacketRecord> {
    let mut out = Vec::new();
    wait_for(worker, LIMIT, |e| {
        if let EventKind::Packet(r) = &e.kind
            && e.conn == conn
        {
            out.push(r.clone());
        }
        done(e).then_some(())
    });
    out
}

fn shape(records: &[PacketRecord]) -> Vec<(Direction, PacketKind, usize)> {
    let mut v: Vec<_> = records.iter().map(|r| (r.dir, r.kind, r.bytes)).collect();
    v.sort_by_key(|(d, k, b)| (format!("{d:?}{k:?}"), *b));
    v
}

fn remaining_length_bytes(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        _ => 3,
    }
}

/// MQTT 3.1.1 §3.3: fixed header + topic (2-byte length) + packet id (QoS > 0) + payload.
fn publish_bytes(topic: &str, qos: u8, payload: &str) -> usize {
    let rem = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload.len();
    1 + remaining_length_bytes(rem) + rem
}

#[test]
fn packet_records_have_the_sizes_computed_by_hand_for_qos_0_1_and_2() {
    use Direction::{In, Out};
    use PacketKind::*;
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    profile.client_id = "mqscope-sizes".into(); // 13 bytes
    profile.subscriptions.clear();
    connect(&worker, 1, profile);
    let connected = records_until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Status(ConnStatus::Connected { .. }))
    });
    // CONNECT §3.1: "MQTT" (2+4) + level + flags + keep-alive (2) = 10, client id 2+13.
    let connect_rem = 10 + 2 + 13;
    assert_eq!(
        shape(&connected),
        shape_of(&[(Out, Connect, 1 + 1 + connect_rem), (In, Connack, 4)])
    );
    let connect = &connected[0];
    assert_eq!(connect.kind, Connect, "CONNECT comes before CONNACK");
    assert_eq!(connect.detail.clean_session, Some(true));
    assert_eq!(connect.detail.keep_alive, Some(60));

    worker.send(Command::Subscribe {
        conn: 1,
        sub: SubscriptionSpec::new("a/b", Qos::ExactlyOnce),
    });
    let sub = records_until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Subscribed { .. })
    });
    // SUBSCRIBE §3.8: packet id 2 + (2 + "a/b" + requested QoS 1) = 8; SUBACK 2 + 1.
    assert_eq!(
        shape(&sub),
        shape_of(&[(Out, Subscribe, 10), (In, Suback, 5)])
    );
    assert_eq!(sub[1].detail.granted, [2]);

    let expected = |qos: u8| -> Vec<(Direction, PacketKind, usize)> {
        let p = publish_bytes("a/b", qos, "hello");
        match qos {
            0 => shape_of(&[(Out, Publish, p), (In, Publish, p)]),
            1 => shape_of(&[
                (Out, Publish, p),
                (In, Puback, 4),
                (In, Publish, p),
                (Out, Puback, 4),
            ]),
            _ => shape_of(&[
                (Out, Publish, p),
                (In, Pubrec, 4),
                (Out, Pubrel, 4),
                (In, Pubcomp, 4),
                (In, Publish, p),
                (Out, Pubrec, 4),
                (In, Pubrel, 4),
                (Out, Pubcomp, 4),
            ]),
        }
    };
    assert_eq!(
        publish_bytes("a/b", 1, "hello"),
        14,
        "the issue's own example"
    );
    for (token, qos) in [
        (10, Qos::AtMostOnce),
        (11, Qos::AtLeastOnce),
        (12, Qos::ExactlyOnce),
    ] {
        publish(&worker, 1, token, "a/b", "hello", qos);
        let (mut acked, mut delivered) = (false, false);
        let mut records = records_until(&worker, 1, |e| {
            match &e.kind {
                EventKind::Published { token: t, .. } if *t == token => acked = true,
                EventKind::Message(m) if m.topic == "a/b" => delivered = true,
                _ => {}
            }
            acked && delivered
        });
        // The last ack of the delivery leg is written right after the event
        // that ended the wait; take it too.
        let want = expected(qos.as_u8()).len();
        while records.len() < want {
            match worker.recv_timeout(LIMIT) {
                Some(Event {
                    kind: EventKind::Packet(r),
                    ..
                }) => records.push(r),
                Some(_) => {}
                None => break,
            }
        }
        assert_eq!(
            shape(&records),
            expected(qos.as_u8()),
            "{qos}: {records:#?}"
        );
        // Within each leg the handshake runs in protocol order.
        let order = |dir_of_publish: Direction| -> Vec<PacketKind> {
            let first = records
                .iter()
                .find(|r| r.kind == Publish && r.dir == dir_of_publish)
                .expect("a PUBLISH of that leg");
            records
                .iter()
                .filter(|r| r.pkid == first.pkid && (r.kind != Publish || r.dir == dir_of_publish))
                .map(|r| r.kind)
                .collect()
        };
        if qos == Qos::ExactlyOnce {
            assert_eq!(order(Out), [Publish, Pubrec, Pubrel, Pubcomp]);
            assert_eq!(order(In), [Publish, Pubrec, Pubrel, Pubcomp]);
        }
    }

    worker.send(Command::Disconnect { conn: 1 });
    let bye = records_until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Status(ConnStatus::Disconnected { .. }))
    });
    assert_eq!(shape(&bye), shape_of(&[(Out, Disconnect, 2)]));
}

fn shape_of(items: &[(Direction, PacketKind, usize)]) -> Vec<(Direction, PacketKind, usize)> {
    let mut v = items.to_vec();
    v.sort_by_key(|(d, k, b)| (format!("{d:?}{k:?}"), *b));
    v
}

#[test]
fn persistent_session_reconnect_shows_session_present_and_the_queued_deliveries() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    profile.client_id = "mqscope-timeline-persist".into();
    profile.clean_session = false;
    profile.subscriptions.clear();
    connect(&worker, 1, profile.clone());
    wait_connected(&worker, 1);
    subscribe(&worker, 1, "queued/#", Qos::AtLeastOnce);
    worker.send(Command::Disconnect { conn: 1 });
    wait_status(&worker, 1, LIMIT, |s| {
        matches!(s, ConnStatus::Disconnected { .. })
    });
    for i in 1..=3 {
        mosquitto_pub(
            &broker,
            &["-t", "queued/x", "-q", "1", "-m", &format!("q{i}")],
        );
    }

    connect(&worker, 1, profile);
    let mut delivered = 0;
    let records = records_until(&worker, 1, |e| {
        if matches!(&e.kind, EventKind::Message(m) if m.topic == "queued/x") {
            delivered += 1;
        }
        delivered == 3
    });
    let connect = records
        .iter()
        .find(|r| r.kind == PacketKind::Connect)
        .expect("CONNECT recorded");
    assert_eq!(connect.detail.clean_session, Some(false));
    let connack = records
        .iter()
        .find(|r| r.kind == PacketKind::Connack)
        .expect("CONNACK recorded");
    assert_eq!(connack.detail.session_present, Some(true));
    let queued: Vec<_> = records
        .iter()
        .filter(|r| r.kind == PacketKind::Publish && r.dir == Direction::In)
        .collect();
    assert_eq!(queued.len(), 3, "{records:#?}");
    assert!(
        queued
            .iter()
            .all(|r| r.qos == Some(1) && r.t_us > connack.t_us)
    );
}

#[test]
fn a_16_mib_payload_arrives_whole_and_is_kept_by_the_store() {
    use mqscope::model::store::{HistoryLimits, Store};
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    let mut profile = profile_for(&broker);
    profile.subscriptions.clear();
    connect(&worker, 1, profile);
    wait_connected(&worker, 1);
    subscribe(&worker, 1, "big/#", Qos::AtMostOnce);

    let payload: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("blob.bin");
    std::fs::write(&file, &payload).expect("payload file");
    mosquitto_pub(
        &broker,
        &["-t", "big/blob", "-f", &file.display().to_string()],
    );

    let m = wait_for(&worker, Duration::from_secs(30), |e| {
        message_on(e, 1, "big/blob")
    });
    assert_eq!(
        m.payload.len(),
        payload.len(),
        "far above rumqttc's 10 KiB default"
    );
    assert!(m.payload[..] == payload[..], "byte for byte");

    let mut store = Store::new(HistoryLimits::default());
    store.apply_message(&m);
    let node = store.find("big/blob").expect("in the tree");
    assert_eq!(
        store.last_payload(node).map(<[u8]>::len),
        Some(payload.len())
    );
    assert_eq!(store.truncated_payloads(), 0);

    // Over a smaller per-message cap it is kept truncated, and says so.
    let mut small = Store::new(HistoryLimits {
        max_payload: 1024 * 1024,
        ..HistoryLimits::default()
    });
    small.apply_message(&m);
    assert_eq!(small.truncated_payloads(), 1);
    let node = small.find("big/blob").expect("in the tree");
    let item = small.history(node).next().expect("the message");
    assert_eq!(item.truncated(), Some(payload.len()));
}
