//! The QoS lab against a real Mosquitto through the real worker: the packets,
//! bytes and round trips it reports per QoS level are the ones on the wire.

mod common;

use common::*;
use mqscope::app::qos_lab::{LabStatus, QosLab};
use mqscope::model::flows::Side;
use mqscope::model::packet::{Direction, PacketKind};
use mqscope::mqtt::{Command, ConnectionId, EventKind, Worker};
use mqscope::profile::{Qos, SubscriptionSpec};
use std::time::{Duration, Instant};

const CONN: ConnectionId = 3;

/// Feeds the worker's events to the lab and sends what it asks, until the
/// run ends; returns every command the lab asked for.
fn drive(worker: &Worker, lab: &mut QosLab, first: Vec<Command>, limit: Duration) -> Vec<String> {
    let mut sent = Vec::new();
    let send = |cmds: Vec<Command>, sent: &mut Vec<String>| {
        for cmd in cmds {
            sent.push(format!("{cmd:?}"));
            worker.send(cmd);
        }
    };
    send(first, &mut sent);
    let deadline = Instant::now() + limit;
    while !lab.is_done() {
        assert!(
            Instant::now() < deadline,
            "the lab did not finish within {limit:?}: {:?}, progress {:?}",
            lab.status(),
            lab.progress()
        );
        if let Some(event) = worker.recv_timeout(Duration::from_millis(100))
            && event.conn == CONN
        {
            let cmds = lab.on_event(&event.kind);
            send(cmds, &mut sent);
        }
        let cmds = lab.tick(Instant::now());
        send(cmds, &mut sent);
    }
    sent
}

/// MQTT 3.1.1 PUBLISH frame: fixed header byte, remaining-length varint,
/// topic length + topic, packet id when QoS > 0, payload.
fn publish_frame(topic_len: usize, qos: u8, payload_len: usize) -> usize {
    let remaining = 2 + topic_len + if qos > 0 { 2 } else { 0 } + payload_len;
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        _ => 3,
    };
    1 + varint + remaining
}

#[test]
fn lab_counts_1_2_4_packets_per_leg_with_wire_sizes_and_round_trips() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile_for(&broker)),
    });
    wait_connected(&worker, CONN);

    let mut lab = QosLab::new(CONN);
    let topic = QosLab::fresh_topic();
    assert!(topic.starts_with("mqscope/lab/"));
    let first = lab.start(CONN, 5, 10, topic.clone());
    let sent = drive(&worker, &mut lab, first, Duration::from_secs(30));
    assert_eq!(lab.status(), &LabStatus::Done);
    assert_eq!(lab.progress(), (15, 15), "all 15 messages came back");
    assert_eq!(sent.iter().filter(|c| c.starts_with("Publish")).count(), 15);
    assert!(
        sent.last().is_some_and(|c| c.starts_with("Unsubscribe")),
        "the lab removes its subscription at the end: {sent:?}"
    );

    let rows = lab.results();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let q = row.qos;
        // 1 + 1, 2 + 2, 4 + 4 packets per message.
        let per_leg = 1usize << q;
        let exact = |s: Option<mqscope::app::qos_lab::Spread>| s.and_then(|s| s.exact());
        assert_eq!(
            exact(row.publish_packets),
            Some(per_leg),
            "QoS {q} publish leg"
        );
        assert_eq!(
            exact(row.delivery_packets),
            Some(per_leg),
            "QoS {q} delivery leg"
        );
        // The PUBLISH frame plus 4-byte acknowledgements, on each leg.
        let frame = publish_frame(topic.len(), q, 10);
        let leg_bytes = frame + 4 * (per_leg - 1);
        assert_eq!(
            exact(row.publish_bytes),
            Some(leg_bytes),
            "QoS {q} publish bytes"
        );
        assert_eq!(
            exact(row.delivery_bytes),
            Some(leg_bytes),
            "QoS {q} delivery bytes"
        );
        assert_eq!((row.completed, row.delivered), (5, 5), "QoS {q}");
        assert_eq!(row.extra_deliveries, 0);
        assert!(!row.incomplete);
        let (Some(median), Some(p99)) = (row.median_rtt_us, row.p99_rtt_us) else {
            panic!("QoS {q}: no latency");
        };
        assert!(median > 0, "QoS {q}: median {median} us");
        assert!(p99 >= median, "QoS {q}: p99 {p99} < median {median}");

        // The representative exchange: both legs, each in its own order.
        assert_eq!(row.representative.len(), 2 * per_leg);
        let leg = |side| -> Vec<(PacketKind, Direction)> {
            row.representative
                .iter()
                .filter(|p| p.side == side)
                .map(|p| (p.record.kind, p.record.dir))
                .collect()
        };
        use Direction::{In, Out};
        use PacketKind as K;
        let (ours, theirs) = match q {
            0 => (vec![(K::Publish, Out)], vec![(K::Publish, In)]),
            1 => (
                vec![(K::Publish, Out), (K::Puback, In)],
                vec![(K::Publish, In), (K::Puback, Out)],
            ),
            _ => (
                vec![
                    (K::Publish, Out),
                    (K::Pubrec, In),
                    (K::Pubrel, Out),
                    (K::Pubcomp, In),
                ],
                vec![
                    (K::Publish, In),
                    (K::Pubrec, Out),
                    (K::Pubrel, In),
                    (K::Pubcomp, Out),
                ],
            ),
        };
        assert_eq!(leg(Side::Ours), ours, "QoS {q} publish leg");
        assert_eq!(leg(Side::Theirs), theirs, "QoS {q} delivery leg");
        assert_eq!(
            row.representative[0].record.detail.topic.as_deref(),
            Some(topic.as_str())
        );
    }
}

#[test]
fn an_overlapping_wildcard_subscription_does_not_change_the_counts() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile_for(&broker)),
    });
    wait_connected(&worker, CONN);
    // What an explorer usually has: everything, at QoS 0.
    worker.send(Command::Subscribe {
        conn: CONN,
        sub: SubscriptionSpec::new("#", Qos::AtMostOnce),
    });
    wait_for(&worker, Duration::from_secs(10), |e| match &e.kind {
        EventKind::Subscribed { filter, .. } if filter == "#" => Some(()),
        _ => None,
    });
    let mut lab = QosLab::new(CONN);
    let first = lab.start(CONN, 3, 10, QosLab::fresh_topic());
    drive(&worker, &mut lab, first, Duration::from_secs(30));
    assert_eq!(lab.status(), &LabStatus::Done);
    let rows = lab.results();
    let packets: Vec<(Option<usize>, Option<usize>)> = rows
        .iter()
        .map(|r| {
            (
                r.publish_packets.and_then(|s| s.exact()),
                r.delivery_packets.and_then(|s| s.exact()),
            )
        })
        .collect();
    assert_eq!(
        packets,
        vec![(Some(1), Some(1)), (Some(2), Some(2)), (Some(4), Some(4))]
    );
    // Mosquitto 2 sends one copy, at the highest QoS of the matching
    // subscriptions (the lab's QoS 2), so none is extra.
    let extra: Vec<usize> = rows.iter().map(|r| r.extra_deliveries).collect();
    assert_eq!(extra, vec![0, 0, 0]);
}

#[test]
fn broker_gone_mid_run_leaves_the_run_incomplete() {
    let mut broker = Broker::start();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile_for(&broker)),
    });
    wait_connected(&worker, CONN);
    let mut lab = QosLab::new(CONN);
    let first = lab.start(CONN, 1000, 10, QosLab::fresh_topic());
    for cmd in first {
        worker.send(cmd);
    }
    // Let some messages go through, then kill the broker.
    let deadline = Instant::now() + Duration::from_secs(20);
    while lab.progress().0 < 20 {
        assert!(Instant::now() < deadline, "no progress: {:?}", lab.status());
        if let Some(event) = worker.recv_timeout(Duration::from_millis(100))
            && event.conn == CONN
        {
            for cmd in lab.on_event(&event.kind) {
                worker.send(cmd);
            }
        }
    }
    broker.stop();
    let rest = drive(&worker, &mut lab, Vec::new(), Duration::from_secs(20));
    let LabStatus::Aborted(why) = lab.status() else {
        panic!("expected an aborted run, got {:?}", lab.status());
    };
    assert!(why.contains("connection"), "{why}");
    assert!(
        rest.iter().any(|c| c.starts_with("Unsubscribe")),
        "{rest:?}"
    );
    let rows = lab.results();
    assert!(rows[0].completed >= 20);
    assert!(rows.iter().all(|r| r.incomplete), "{rows:?}");
    assert!(rows[2].completed < 1000);
}
