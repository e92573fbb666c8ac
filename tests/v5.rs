//! MQTT 5 through the worker against a real Mosquitto, next to MQTT 3.1.1
//! where the difference is the point: properties end to end, reason codes
//! on PUBACK / PUBREC / SUBACK / UNSUBACK, the broker's Maximum Packet
//! Size, session expiry, CONNACK properties, packet sizes with properties.

mod common;
#[path = "common/v5.rs"]
mod v5util;

use bytes::Bytes;
use common::*;
use mqscope::model::flows::{FlowKind, FlowState, PacketLog};
use mqscope::model::packet::{Direction, PacketKind, PacketRecord};
use mqscope::model::protocol::Properties;
use mqscope::mqtt::{
    Command, ConnStatus, ConnectionId, Event, EventKind, Message, PublishOutcome, Worker,
};
use mqscope::profile::{Profile, Qos, SubscriptionSpec};
use std::time::Duration;
use v5util::*;

const LIMIT: Duration = Duration::from_secs(10);

fn connect(worker: &Worker, conn: ConnectionId, profile: Profile) {
    worker.send(Command::Connect {
        conn,
        profile: Box::new(profile),
    });
}

fn publish_with(
    worker: &Worker,
    conn: ConnectionId,
    token: u64,
    topic: &str,
    payload: &[u8],
    qos: Qos,
    props: Option<Properties>,
) {
    worker.send(Command::Publish {
        conn,
        token,
        topic: topic.into(),
        payload: payload.to_vec(),
        qos,
        retain: false,
        props: props.map(Box::new),
    });
}

/// Waits for the outcome of publish `token` on `conn`.
fn outcome(worker: &Worker, conn: ConnectionId, token: u64) -> PublishOutcome {
    wait_for(worker, LIMIT, |e| match &e.kind {
        EventKind::Published { token: t, outcome } if e.conn == conn && *t == token => {
            Some(outcome.clone())
        }
        _ => None,
    })
}

/// Subscribes with `spec` and waits for its SUBACK answer.
fn subscribe(
    worker: &Worker,
    conn: ConnectionId,
    spec: SubscriptionSpec,
) -> (Option<Qos>, Option<String>) {
    let filter = spec.filter.clone();
    worker.send(Command::Subscribe { conn, sub: spec });
    wait_subscribed(worker, conn, &filter)
}

fn wait_subscribed(
    worker: &Worker,
    conn: ConnectionId,
    filter: &str,
) -> (Option<Qos>, Option<String>) {
    wait_for(worker, LIMIT, |e| match &e.kind {
        EventKind::Subscribed {
            filter: f,
            granted,
            reason,
        } if e.conn == conn && f == filter => Some((*granted, reason.clone())),
        _ => None,
    })
}

/// Everything `conn` reports until `done` holds: its packet records and the
/// other events, in order.
fn until(
    worker: &Worker,
    conn: ConnectionId,
    mut done: impl FnMut(&Event) -> bool,
) -> (Vec<PacketRecord>, Vec<Event>) {
    let mut records = Vec::new();
    let mut events = Vec::new();
    wait_for(worker, LIMIT, |e| {
        if e.conn == conn {
            match &e.kind {
                EventKind::Packet(r) => records.push(r.clone()),
                _ => events.push(e.clone()),
            }
        }
        done(e).then_some(())
    });
    (records, events)
}

fn message_of(e: &Event, conn: ConnectionId) -> Option<&Message> {
    match &e.kind {
        EventKind::Message(m) if e.conn == conn => Some(m),
        _ => None,
    }
}

fn request_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        content_type: Some("application/json".into()),
        response_topic: Some("props/reply".into()),
        // Binary, not UTF-8: must come back byte for byte.
        correlation_data: Some(Bytes::from_static(&[0x00, 0x01, 0xfe, 0xff, 0x80])),
        user_property: vec![
            ("unit".into(), "C".into()),
            ("site".into(), "north".into()),
            ("unit".into(), "F".into()),
        ],
        ..Properties::default()
    }
}

#[test]
fn publish_properties_reach_a_v5_subscriber_with_its_subscription_identifier() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, v5_profile(&broker, "v5-props-sub"));
    wait_connected(&worker, 1);
    connect(&worker, 3, v311_profile(&broker, "v311-props-sub"));
    wait_connected(&worker, 3);
    let mut with_id = SubscriptionSpec::new("props/#", Qos::AtLeastOnce);
    with_id.subscription_identifier = Some(42);
    assert_eq!(
        subscribe(&worker, 1, with_id),
        (Some(Qos::AtLeastOnce), Some("0x01 Granted QoS 1".into()))
    );
    assert_eq!(
        subscribe(
            &worker,
            3,
            SubscriptionSpec::new("props/#", Qos::AtLeastOnce)
        ),
        (Some(Qos::AtLeastOnce), None),
        "a 3.1.1 SUBACK has no reason code to put in words"
    );
    connect(&worker, 2, v5_profile(&broker, "v5-props-pub"));
    wait_connected(&worker, 2);
    publish_with(
        &worker,
        2,
        1,
        "props/x",
        br#"{"t":21.5}"#,
        Qos::AtLeastOnce,
        Some(request_props()),
    );

    let mut v5_msg = None;
    let mut v311_msg = None;
    let mut sub_records = Vec::new();
    let mut acked = None;
    wait_for(&worker, LIMIT, |e| {
        match &e.kind {
            EventKind::Packet(r) if e.conn == 1 => sub_records.push(r.clone()),
            EventKind::Message(m) if e.conn == 1 => v5_msg = Some(m.clone()),
            EventKind::Message(m) if e.conn == 3 => v311_msg = Some(m.clone()),
            EventKind::Published { token: 1, outcome } if e.conn == 2 => {
                acked = Some(outcome.clone())
            }
            _ => {}
        }
        (v5_msg.is_some() && v311_msg.is_some() && acked.is_some()).then_some(())
    });
    assert_eq!(acked, Some(PublishOutcome::Acknowledged));
    let m = v5_msg.expect("v5 message");
    assert_eq!(m.topic, "props/x");
    assert_eq!(&m.payload[..], br#"{"t":21.5}"#);
    let props = m
        .props
        .as_deref()
        .expect("the v5 message carries properties");
    let sent = request_props();
    assert_eq!(props.payload_format_indicator, Some(1));
    assert_eq!(props.content_type, sent.content_type);
    assert_eq!(props.response_topic, sent.response_topic);
    assert_eq!(props.correlation_data, sent.correlation_data);
    assert_eq!(
        props.user_property, sent.user_property,
        "user properties keep their order and the repeated key"
    );
    assert_eq!(props.subscription_identifier, vec![42]);
    // The broker forwards the time left, which can have ticked down a second.
    let expiry = props.message_expiry_interval.expect("message expiry");
    assert!((58..=60).contains(&expiry), "expiry left: {expiry}");
    assert_eq!(props.topic_alias, None, "Mosquitto sends the topic itself");

    // The message names the PUBLISH record that carried it.
    let seq = m.packet_seq.expect("a message links to its PUBLISH record");
    let carrier = sub_records
        .iter()
        .find(|r| r.seq == seq)
        .unwrap_or_else(|| panic!("no record with seq {seq}: {sub_records:#?}"));
    assert_eq!(
        (carrier.dir, carrier.kind),
        (Direction::In, PacketKind::Publish)
    );
    assert_eq!(carrier.detail.topic.as_deref(), Some("props/x"));
    assert_eq!(carrier.pkid, Some(m.pkid));
    assert_eq!(carrier.detail.props.as_deref(), Some(props));

    // MQTT 3.1.1 has no properties: the same message arrives bare.
    let old = v311_msg.expect("3.1.1 message");
    assert_eq!(&old.payload[..], br#"{"t":21.5}"#);
    assert!(old.props.is_none(), "{:?}", old.props);
}

#[test]
fn properties_set_by_mosquitto_pub_arrive_and_overlapping_subscriptions_each_name_their_id() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, v5_profile(&broker, "v5-mosq-props"));
    wait_connected(&worker, 1);
    for (filter, id) in [("dev/+/temp", 7), ("dev/#", 8)] {
        let mut spec = SubscriptionSpec::new(filter, Qos::AtMostOnce);
        spec.subscription_identifier = Some(id);
        assert_eq!(subscribe(&worker, 1, spec).0, Some(Qos::AtMostOnce));
    }
    mosquitto_pub(
        &broker,
        &[
            "-V",
            "5",
            "-t",
            "dev/a/temp",
            "-m",
            "20",
            "-D",
            "publish",
            "user-property",
            "k",
            "1",
            "-D",
            "publish",
            "user-property",
            "k",
            "2",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "correlation-data",
            "abc",
        ],
    );
    let mut ids = Vec::new();
    wait_for(&worker, LIMIT, |e| {
        if let Some(m) = message_of(e, 1) {
            let p = m.props.as_deref().expect("properties");
            assert_eq!(
                p.user_property,
                vec![("k".into(), "1".into()), ("k".into(), "2".into())]
            );
            assert_eq!(p.content_type.as_deref(), Some("text/plain"));
            assert_eq!(p.correlation_data.as_deref(), Some(&b"abc"[..]));
            ids.extend(p.subscription_identifier.iter().copied());
        }
        (ids.len() >= 2).then_some(())
    });
    ids.sort_unstable();
    // Mosquitto sends one copy per matching subscription, each with its id.
    assert_eq!(ids, vec![7, 8]);
}

// ----- reason codes -----

/// Feeds records into a packet log and returns the state of the flow of the
/// outgoing PUBLISH.
fn publish_flow_state(records: &[PacketRecord]) -> FlowState {
    let mut log = PacketLog::new(1000);
    let mut flow = None;
    for r in records {
        let id = log.push(r.clone());
        if r.kind == PacketKind::Publish && r.dir == Direction::Out {
            flow = Some(id);
        }
    }
    let flow = log
        .flow(flow.expect("an outgoing PUBLISH"))
        .expect("its flow");
    assert!(matches!(flow.kind, FlowKind::Publish { .. }));
    flow.state
}

#[test]
fn a_publish_the_acl_denies_fails_with_puback_0x87_and_its_flow_is_refused() {
    let (broker, _acl) = acl_broker();
    let worker = Worker::spawn(None);
    connect(&worker, 1, v5_profile(&broker, "v5-acl"));
    wait_connected(&worker, 1);
    publish_with(&worker, 1, 1, "secret/x", b"no", Qos::AtLeastOnce, None);
    let (records, events) = until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Published { token: 1, .. })
    });
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            EventKind::Published { outcome: PublishOutcome::Failed(why), .. }
                if why == "PUBACK 0x87 Not authorized"
        )),
        "{}",
        format_events(&events)
    );
    let puback = records
        .iter()
        .find(|r| r.kind == PacketKind::Puback)
        .expect("PUBACK record");
    assert_eq!(puback.detail.reason, Some(0x87));
    assert_eq!(
        puback.detail.reason_text.as_deref(),
        Some("0x87 Not authorized")
    );
    assert_eq!(
        publish_flow_state(&records),
        FlowState::Refused {
            kind: PacketKind::Puback,
            reason: 0x87
        }
    );

    // QoS 2: Mosquitto refuses in the PUBREC, and the exchange ends there.
    publish_with(&worker, 1, 2, "secret/y", b"no", Qos::ExactlyOnce, None);
    let (records, events) = until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Published { token: 2, .. })
    });
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            EventKind::Published { outcome: PublishOutcome::Failed(why), .. }
                if why == "PUBREC 0x87 Not authorized"
        )),
        "{}",
        format_events(&events)
    );
    assert_eq!(
        publish_flow_state(&records),
        FlowState::Refused {
            kind: PacketKind::Pubrec,
            reason: 0x87
        }
    );

    // An allowed topic on the same connection is acknowledged, with the
    // note MQTT 5 adds when nobody listens.
    publish_with(&worker, 1, 3, "open/x", b"ok", Qos::AtLeastOnce, None);
    assert_eq!(
        outcome(&worker, 1, 3),
        PublishOutcome::AcknowledgedWith("PUBACK 0x10 No matching subscribers".into())
    );

    // MQTT 3.1.1 cannot say no: the same denied publish is acknowledged and
    // silently dropped by the broker.
    connect(&worker, 2, v311_profile(&broker, "v311-acl"));
    wait_connected(&worker, 2);
    publish_with(&worker, 2, 4, "secret/x", b"no", Qos::AtLeastOnce, None);
    assert_eq!(outcome(&worker, 2, 4), PublishOutcome::Acknowledged);
}

#[test]
fn suback_reason_codes_per_filter_as_mosquitto_sends_them() {
    let (broker, _dynsec) = dynsec_broker();
    let worker = Worker::spawn(None);
    // Three filters in the profile go out in one SUBSCRIBE on connect.
    let mut profile = v5_profile(&broker, "v5-suback");
    profile.subscriptions = vec![
        SubscriptionSpec::new("open/a", Qos::AtLeastOnce),
        SubscriptionSpec::new("secret/a", Qos::AtLeastOnce),
        SubscriptionSpec::new("$share/g/secret/b", Qos::AtMostOnce),
    ];
    connect(&worker, 1, profile);
    let mut answers = Vec::new();
    let (records, _) = until(&worker, 1, |e| {
        if let EventKind::Subscribed {
            filter,
            granted,
            reason,
        } = &e.kind
        {
            answers.push((filter.clone(), *granted, reason.clone()));
        }
        answers.len() == 3
    });
    assert_eq!(
        answers,
        vec![
            (
                "open/a".to_string(),
                Some(Qos::AtLeastOnce),
                Some("0x01 Granted QoS 1".to_string())
            ),
            (
                "secret/a".to_string(),
                None,
                Some("0x87 Not authorized".to_string())
            ),
            (
                "$share/g/secret/b".to_string(),
                None,
                Some("0x87 Not authorized".to_string())
            ),
        ]
    );
    let suback = records
        .iter()
        .find(|r| r.kind == PacketKind::Suback)
        .expect("SUBACK record");
    assert_eq!(suback.detail.granted, vec![0x01, 0x87, 0x87]);
    assert_eq!(suback.pkid, records[2].pkid, "SUBACK answers the SUBSCRIBE");

    // 3.1.1 refuses with 0x80 and no reason.
    let mut profile = v311_profile(&broker, "v311-suback");
    profile.subscriptions = vec![
        SubscriptionSpec::new("open/a", Qos::AtLeastOnce),
        SubscriptionSpec::new("secret/a", Qos::AtLeastOnce),
    ];
    connect(&worker, 2, profile);
    let mut answers = Vec::new();
    until(&worker, 2, |e| {
        if let EventKind::Subscribed {
            filter, granted, ..
        } = &e.kind
        {
            answers.push((filter.clone(), *granted));
        }
        answers.len() == 2
    });
    assert_eq!(
        answers,
        vec![
            ("open/a".to_string(), Some(Qos::AtLeastOnce)),
            ("secret/a".to_string(), None)
        ]
    );
}

#[test]
fn unsuback_says_no_subscription_existed() {
    let broker = Broker::start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, v5_profile(&broker, "v5-unsub"));
    wait_connected(&worker, 1);
    subscribe(&worker, 1, SubscriptionSpec::new("here/#", Qos::AtMostOnce));
    let unsubscribed = |worker: &Worker, filter: &str| {
        worker.send(Command::Unsubscribe {
            conn: 1,
            filter: filter.into(),
        });
        let mut records = Vec::new();
        let reason = wait_for(worker, LIMIT, |e| match &e.kind {
            EventKind::Packet(r) => {
                records.push(r.clone());
                None
            }
            EventKind::Unsubscribed { filter: f, reason } if f == filter => Some(reason.clone()),
            _ => None,
        });
        (reason, records)
    };
    let (reason, records) = unsubscribed(&worker, "never/subscribed");
    assert_eq!(reason.as_deref(), Some("0x11 No subscription existed"));
    let unsuback = records
        .iter()
        .find(|r| r.kind == PacketKind::Unsuback)
        .expect("UNSUBACK record");
    assert_eq!(unsuback.detail.reasons, vec![0x11]);
    let (reason, _) = unsubscribed(&worker, "here/#");
    assert_eq!(reason, None, "success needs no words");
}

// ----- limits and sessions -----

#[test]
fn connack_properties_arrive_with_the_assigned_client_identifier() {
    let broker = Broker::builder()
        .config_line("max_packet_size 2000")
        .config_line("max_inflight_messages 7")
        .start();
    let worker = Worker::spawn(None);
    // Empty client id + clean start: the broker names the client.
    connect(&worker, 1, v5_profile(&broker, ""));
    let (records, events) = until(&worker, 1, |e| matches!(e.kind, EventKind::Connack { .. }));
    let props = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Connack {
                session_present,
                props,
            } => {
                assert!(!session_present);
                Some(props.clone())
            }
            _ => None,
        })
        .flatten()
        .expect("CONNACK properties");
    let assigned = props
        .assigned_client_identifier
        .as_deref()
        .expect("assigned client identifier");
    assert!(assigned.starts_with("auto-"), "{assigned}");
    assert_eq!(props.maximum_packet_size, Some(2000));
    assert_eq!(props.receive_maximum, Some(7));
    // Mosquitto's default (`max_topic_alias` is a per-listener option).
    assert_eq!(props.topic_alias_maximum, Some(10));
    let connack = records
        .iter()
        .find(|r| r.kind == PacketKind::Connack)
        .expect("CONNACK record");
    assert_eq!(connack.detail.props.as_deref(), Some(&*props));
    assert_eq!(connack.detail.reason, Some(0));
    assert_eq!(connack.detail.reason_text.as_deref(), Some("0x00 Success"));
    // The record's size is the wire's: fixed header 2, flags 1, code 1,
    // properties (length 1 + the properties themselves).
    let props_len = (1 + 4) // maximum packet size
        + (1 + 2) // receive maximum
        + (1 + 2) // topic alias maximum
        + (1 + 2 + assigned.len()); // assigned client identifier
    assert_eq!(connack.bytes, 2 + 1 + 1 + 1 + props_len, "{connack:#?}");
}

#[test]
fn a_publish_over_the_brokers_maximum_packet_size_fails_in_words_and_the_connection_stays() {
    let broker = Broker::builder()
        .config_line("max_packet_size 2000")
        .start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, v5_profile(&broker, "v5-too-large"));
    wait_connected(&worker, 1);
    publish_with(&worker, 1, 1, "big/x", &[7u8; 3000], Qos::AtLeastOnce, None);
    let (_, events) = until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Published { token: 1, .. })
    });
    let why = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Published {
                outcome: PublishOutcome::Failed(why),
                ..
            } => Some(why.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the publish must fail: {}", format_events(&events)));
    // 1 + 2 (remaining length 3010) + 2 + "big/x" + packet id 2 +
    // properties length 1 + 3000.
    assert_eq!(
        why,
        "PUBLISH of 3013 bytes is larger than the broker's Maximum Packet Size (2000 bytes, from CONNACK)"
    );
    // Nothing was sent, so the connection is still up and a smaller publish
    // goes through.
    publish_with(&worker, 1, 2, "big/x", &[7u8; 100], Qos::AtLeastOnce, None);
    let (_, events) = until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Published { token: 2, .. })
    });
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Status(_))),
        "{}",
        format_events(&events)
    );
}

#[test]
fn mqtt_311_has_no_maximum_packet_size_so_mosquitto_just_closes_the_connection() {
    let broker = Broker::builder()
        .config_line("max_packet_size 2000")
        .start();
    let worker = Worker::spawn(None);
    connect(&worker, 1, v311_profile(&broker, "v311-too-large"));
    wait_connected(&worker, 1);
    publish_with(&worker, 1, 1, "big/x", &[7u8; 3000], Qos::AtLeastOnce, None);
    let (_, events) = until(&worker, 1, |e| {
        matches!(e.kind, EventKind::Published { token: 1, .. })
    });
    let statuses: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Status(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(
        matches!(statuses.first(), Some(ConnStatus::Reconnecting { .. })),
        "{}",
        format_events(&events)
    );
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            EventKind::Published { outcome: PublishOutcome::Failed(why), .. }
                if why.contains("connection dropped")
        )),
        "{}",
        format_events(&events)
    );
}

/// Connects `conn` with a persistent session of `expiry` seconds,
/// subscribes at QoS 1 and disconnects; a QoS 1 message is published while
/// it is away; then it reconnects. Returns CONNACK's session-present flag
/// and the payloads that arrived within a second.
fn away_and_back(broker: &Broker, client_id: &str, expiry: Option<u32>) -> (bool, Vec<String>) {
    let worker = Worker::spawn(None);
    let mut profile = v5_profile(broker, client_id);
    profile.clean_session = false;
    profile.v5.session_expiry_interval = expiry;
    connect(&worker, 1, profile.clone());
    assert!(!wait_connected(&worker, 1), "a new session is not present");
    let topic = format!("expiry/{client_id}");
    subscribe(&worker, 1, SubscriptionSpec::new(&topic, Qos::AtLeastOnce));
    worker.send(Command::Disconnect { conn: 1 });
    wait_status(&worker, 1, LIMIT, |s| {
        matches!(s, ConnStatus::Disconnected { .. })
    });
    mosquitto_pub(
        broker,
        &["-V", "5", "-t", &topic, "-m", "while away", "-q", "1"],
    );
    // Reconnect without subscriptions of its own: only a kept session
    // brings the message.
    connect(&worker, 1, profile);
    let present = wait_connected(&worker, 1);
    let got = collect_for(&worker, Duration::from_secs(1))
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Message(m) => Some(String::from_utf8_lossy(&m.payload).into_owned()),
            _ => None,
        })
        .collect();
    (present, got)
}

#[test]
fn a_session_with_expiry_0_ends_with_the_connection_and_one_of_60_s_keeps_its_messages() {
    let broker = Broker::start();
    let (present, got) = away_and_back(&broker, "v5-expiry-0", Some(0));
    assert!(!present, "expiry 0: the broker kept nothing");
    assert!(got.is_empty(), "{got:?}");
    let (present, got) = away_and_back(&broker, "v5-expiry-60", Some(60));
    assert!(present, "expiry 60 s: CONNACK says the session is present");
    assert_eq!(got, ["while away"]);
}

// ----- publishes caught by a broker restart (rumqttc clears its queue) -----

/// Pauses the broker, publishes five QoS 1 messages, kills and restarts
/// the broker (it keeps no sessions: persistence is off), so the reconnect
/// gets session-present 0. Returns each token's outcome in token order.
fn publishes_caught_by_a_restart(broker: &mut Broker, profile: Profile) -> Vec<PublishOutcome> {
    let worker = Worker::spawn(None);
    connect(&worker, 1, profile);
    wait_connected(&worker, 1);
    // A paused broker reads nothing and acknowledges nothing; the kernel
    // still takes what the client writes.
    signal(listener_pid(broker.port), "STOP");
    for token in 1..=5 {
        publish_with(&worker, 1, token, "open/q", b"x", Qos::AtLeastOnce, None);
    }
    // The first PUBLISH is on the wire before the broker goes away.
    let mut outcomes = std::collections::BTreeMap::new();
    let record = |outcomes: &mut std::collections::BTreeMap<u64, PublishOutcome>, e: &Event| {
        if let EventKind::Published { token, outcome } = &e.kind {
            assert!(
                outcomes.insert(*token, outcome.clone()).is_none(),
                "publish {token} reported twice"
            );
        }
    };
    wait_for(&worker, LIMIT, |e| {
        record(&mut outcomes, e);
        match &e.kind {
            EventKind::Packet(r) if r.kind == PacketKind::Publish && r.dir == Direction::Out => {
                Some(())
            }
            _ => None,
        }
    });
    broker.restart();
    wait_for(&worker, Duration::from_secs(20), |e| {
        record(&mut outcomes, e);
        (outcomes.len() == 5).then_some(())
    });
    assert!(
        !wait_connected(&worker, 1),
        "the restarted broker kept nothing"
    );
    // Nothing more is reported for them, and the connection works again.
    publish_with(&worker, 1, 6, "open/q", b"after", Qos::AtLeastOnce, None);
    wait_for(&worker, LIMIT, |e| {
        record(&mut outcomes, e);
        matches!(e.kind, EventKind::Published { token: 6, .. }).then_some(())
    });
    let after = outcomes.remove(&6);
    assert!(
        matches!(
            after,
            Some(PublishOutcome::Acknowledged | PublishOutcome::AcknowledgedWith(_))
        ),
        "{after:?}"
    );
    outcomes.into_values().collect()
}

#[test]
fn v5_publishes_queued_when_a_restarted_broker_lost_the_session_are_reported_failed() {
    // Receive Maximum 1: one publish goes on the wire, four wait in
    // rumqttc's queue, unsent.
    let mut broker = Broker::builder()
        .config_line("max_inflight_messages 1")
        .start();
    let profile = v5_profile(&broker, "v5-restart-queue");
    let outcomes = publishes_caught_by_a_restart(&mut broker, profile);
    assert_eq!(
        outcomes,
        vec![
            PublishOutcome::Failed(
                "the connection dropped before it was acknowledged (the broker did not keep the session)"
                    .into()
            ),
            PublishOutcome::Failed("the connection dropped before it was sent".into()),
            PublishOutcome::Failed("the connection dropped before it was sent".into()),
            PublishOutcome::Failed("the connection dropped before it was sent".into()),
            PublishOutcome::Failed("the connection dropped before it was sent".into()),
        ]
    );
}

#[test]
fn v311_publishes_caught_by_a_broker_restart_are_reported_failed() {
    // 3.1.1 has no Receive Maximum: all five go on the wire and are lost
    // with the session.
    let mut broker = Broker::start();
    let profile = v311_profile(&broker, "v311-restart-queue");
    let outcomes = publishes_caught_by_a_restart(&mut broker, profile);
    assert_eq!(outcomes.len(), 5);
    for o in outcomes {
        assert!(
            matches!(&o, PublishOutcome::Failed(why) if why.starts_with("the connection dropped before")),
            "{o:?}"
        );
    }
}
