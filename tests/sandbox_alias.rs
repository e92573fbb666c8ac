//! Topic aliases from the sandbox to MQTT 5 clients that accept them: the
//! first delivery on a topic carries topic + alias, later ones an empty
//! topic + alias; the client's Topic Alias Maximum is respected, and when
//! all its aliases are bound the least recently used one is bound again. Checked
//! end to end with mqscope's own worker, mosquitto_sub -V 5 and a raw
//! client that reads the frames.

mod common;
mod sandbox_util;

use mqscope::model::packet::{Direction, PacketKind};
use mqscope::mqtt::{Command, EventKind, Worker};
use mqscope::profile::{Profile, ProtocolVersion, Qos, SubscriptionSpec, V5Settings};
use rumqttc::mqttbytes::QoS;
use sandbox_util::{Client, Raw5, WAIT, broker, q5, v5p, wait_subscriptions};
use std::time::{Duration, Instant};

fn alias_max(max: u16) -> Option<v5p::ConnectProperties> {
    let mut p = v5p::ConnectProperties::new();
    p.topic_alias_max = Some(max);
    Some(p)
}

fn alias_of(p: &v5p::Publish) -> Option<u16> {
    p.properties.as_ref().and_then(|pp| pp.topic_alias)
}

#[test]
fn repeated_topics_are_sent_as_aliases_within_the_client_s_maximum() {
    let s = broker(mqscope::sandbox::Limits::default());
    let (mut sub, ack) = Raw5::connect_with(s.port(), "aliased", true, alias_max(2), None);
    assert_eq!(ack.code, v5p::ConnectReturnCode::Success);
    sub.subscribe(v5p::Filter::new("al/#", q5(QoS::AtLeastOnce)), None);
    for (topic, qos) in [
        ("al/a", QoS::AtMostOnce),
        ("al/a", QoS::AtLeastOnce),
        ("al/b", QoS::AtLeastOnce),
        ("al/c", QoS::AtMostOnce),
        ("al/b", QoS::AtMostOnce),
        ("al/c", QoS::AtMostOnce),
    ] {
        s.broker().publish(topic, "x", qos, false);
    }
    let mut seen = Vec::new();
    for _ in 0..6 {
        let p = sub.next_publish(WAIT).expect("a delivery");
        if p.pkid != 0 {
            sub.send(v5p::Packet::PubAck(v5p::PubAck::new(p.pkid, None)));
        }
        seen.push((String::from_utf8_lossy(&p.topic).into_owned(), alias_of(&p)));
    }
    let expect = |t: &str, a: Option<u16>| (t.to_string(), a);
    assert_eq!(
        seen,
        vec![
            expect("al/a", Some(1)),
            // Later: empty topic, the alias alone (QoS 1 too: the packet id
            // sits right after the empty topic).
            expect("", Some(1)),
            expect("al/b", Some(2)),
            // Both aliases taken: al/a's (least recently used) is bound
            // again, to al/c, with the topic.
            expect("al/c", Some(1)),
            expect("", Some(2)),
            expect("", Some(1)),
        ]
    );
}

/// Five topics interleaved through a client that takes only 2 aliases:
/// every frame carries an alias, bound again (topic + alias) to the topic
/// that needs it, and an alias is used bare only for the topic it was last
/// bound to.
#[test]
fn a_small_alias_maximum_is_reused_on_the_wire() {
    let s = broker(mqscope::sandbox::Limits::default());
    let (mut sub, _) = Raw5::connect_with(s.port(), "two-aliases", true, alias_max(2), None);
    sub.subscribe(v5p::Filter::new("mix/#", q5(QoS::AtMostOnce)), None);
    let order = [0, 1, 0, 2, 0, 3, 3, 4, 0, 1, 1, 2, 4, 4, 0];
    for (i, t) in order.iter().enumerate() {
        s.broker()
            .publish(&format!("mix/t{t}"), format!("{i}"), QoS::AtMostOnce, false);
    }
    let mut bound: [Option<String>; 2] = [None, None];
    let (mut rebinds, mut bare) = (0, 0);
    for (i, t) in order.iter().enumerate() {
        let p = sub.next_publish(WAIT).expect("a delivery");
        assert_eq!(p.payload.as_ref(), i.to_string().as_bytes());
        let alias = alias_of(&p).expect("every delivery carries an alias");
        assert!((1..=2).contains(&alias), "alias {alias} over the maximum");
        let slot = &mut bound[usize::from(alias - 1)];
        if p.topic.is_empty() {
            bare += 1;
        } else {
            if slot.is_some() {
                rebinds += 1;
            }
            *slot = Some(String::from_utf8_lossy(&p.topic).into_owned());
        }
        assert_eq!(
            slot.as_deref(),
            Some(format!("mix/t{t}").as_str()),
            "delivery {i}"
        );
    }
    // Counted from the order above with least-recently-used re-binding.
    assert_eq!((rebinds, bare), (8, 5));
}

/// mqscope's own MQTT 5 worker (rumqttc v5) with Topic Alias Maximum 2 and
/// six topics interleaved, QoS 0 and 1: every message arrives under its
/// own topic, and the timeline shows which came by alias.
#[test]
fn mqscope_s_worker_follows_re_bound_aliases() {
    let s = broker(mqscope::sandbox::Limits::default());
    let worker = Worker::spawn(None);
    let profile = Profile {
        name: "two aliases".into(),
        host: "127.0.0.1".into(),
        port: s.port(),
        protocol: ProtocolVersion::V5,
        subscriptions: vec![SubscriptionSpec::new("mix/#", Qos::AtLeastOnce)],
        v5: V5Settings {
            topic_alias_maximum: Some(2),
            ..V5Settings::default()
        },
        ..Profile::default()
    };
    worker.send(Command::Connect {
        conn: 1,
        profile: Box::new(profile),
    });
    common::wait_connected(&worker, 1);
    wait_subscriptions(&s, 1);
    let sent: Vec<(String, String)> = (0..60)
        .map(|i| {
            // 0 1 0 2 0 3 ... : topic 0 hot, five others in turn.
            let t = if i % 2 == 0 { 0 } else { 1 + (i / 2) % 5 };
            (format!("mix/{t}"), format!("{i}"))
        })
        .collect();
    for (i, (topic, payload)) in sent.iter().enumerate() {
        let qos = if i % 3 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        s.broker().publish(topic, payload.clone(), qos, false);
    }
    let mut got = Vec::new();
    let mut by_alias = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {}: {got:?}",
            got.len(),
            sent.len()
        );
        let Some(e) = worker.recv_timeout(left) else {
            continue;
        };
        match e.kind {
            EventKind::Message(m) => {
                got.push((m.topic, String::from_utf8_lossy(&m.payload).into_owned()))
            }
            EventKind::Packet(r)
                if r.dir == Direction::In
                    && r.kind == PacketKind::Publish
                    && r.detail.topic_from_alias == Some(true) =>
            {
                by_alias += 1;
            }
            _ => {}
        }
    }
    assert_eq!(got, sent);
    // The hot topic keeps its alias: all but its first of 30 come bare.
    assert!(by_alias >= 29, "only {by_alias} deliveries by alias alone");
}

#[test]
fn clients_that_announce_no_maximum_get_no_aliases() {
    let s = broker(mqscope::sandbox::Limits::default());
    let mut sub = Raw5::connect(s.port(), "plain5");
    sub.subscribe(v5p::Filter::new("al/#", q5(QoS::AtMostOnce)), None);
    for _ in 0..2 {
        s.broker().publish("al/a", "x", QoS::AtMostOnce, false);
    }
    for _ in 0..2 {
        let p = sub.next_publish(WAIT).expect("a delivery");
        assert_eq!(p.topic.as_ref(), b"al/a");
        assert_eq!(alias_of(&p), None);
    }
}

#[test]
fn mqscope_s_worker_shows_the_real_topic_of_aliased_deliveries() {
    let s = broker(mqscope::sandbox::Limits::default());
    let worker = Worker::spawn(None);
    let profile = Profile {
        name: "aliases".into(),
        host: "127.0.0.1".into(),
        port: s.port(),
        protocol: ProtocolVersion::V5,
        subscriptions: vec![SubscriptionSpec::new("fleet/#", Qos::AtLeastOnce)],
        v5: V5Settings {
            topic_alias_maximum: Some(8),
            ..V5Settings::default()
        },
        ..Profile::default()
    };
    worker.send(Command::Connect {
        conn: 1,
        profile: Box::new(profile),
    });
    common::wait_connected(&worker, 1);
    wait_subscriptions(&s, 1);
    for i in 0..3 {
        s.broker().publish(
            "fleet/truck1/speed",
            format!("{i}"),
            QoS::AtLeastOnce,
            false,
        );
    }
    let mut topics = Vec::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while topics.len() < 3 || records.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "got {topics:?} and {records:?}");
        let Some(e) = worker.recv_timeout(left) else {
            continue;
        };
        match e.kind {
            EventKind::Message(m) => {
                topics.push((m.topic, String::from_utf8_lossy(&m.payload).into_owned()))
            }
            EventKind::Packet(r) if r.dir == Direction::In && r.kind == PacketKind::Publish => {
                records.push((r.detail.topic.clone(), r.detail.topic_from_alias));
            }
            _ => {}
        }
    }
    let t = "fleet/truck1/speed".to_string();
    assert_eq!(
        topics,
        vec![
            (t.clone(), "0".to_string()),
            (t.clone(), "1".to_string()),
            (t.clone(), "2".to_string())
        ]
    );
    assert_eq!(
        records,
        vec![
            (Some(t.clone()), None),
            (Some(t.clone()), Some(true)),
            (Some(t), Some(true))
        ]
    );
}

/// libmosquitto 2.0.11 (mosquitto_sub) announces no Topic Alias Maximum,
/// so it gets whole topics; forced with `-D connect topic-alias-maximum N`
/// it rejects a PUBLISH with an empty topic as a protocol error (its own
/// limit: it cannot resolve aliases). MQTT.js and mqscope's worker can; see
/// sandbox_ws.rs and the test above.
#[test]
fn mosquitto_sub_v5_is_sent_whole_topics_and_prints_them() {
    let s = broker(mqscope::sandbox::Limits::default());
    let p = s.port().to_string();
    let sub = Client::spawn(
        "mosquitto_sub",
        &["-V", "5", "-p", &p, "-t", "book/#", "-v"],
    );
    wait_subscriptions(&s, 1);
    let sent = [
        "book/a 1", "book/b 2", "book/a 3", "book/b 4", "book/a 5", "book/c 6",
    ];
    for line in sent {
        let (topic, payload) = line.split_once(' ').unwrap_or_default();
        s.broker()
            .publish(topic, payload.to_string(), QoS::AtMostOnce, false);
    }
    for want in sent {
        assert_eq!(sub.next_line(WAIT).as_deref(), Some(want));
    }
}
