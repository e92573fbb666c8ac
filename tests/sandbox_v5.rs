//! MQTT 5 in the sandbox, with mosquitto_sub/pub `-V mqttv5`, rumqttc's v5
//! client and a raw v5 socket (for what the clients cannot be made to do):
//! 3.1.1 and 5 clients on one broker, reason codes, properties, expiry,
//! will delay, topic aliases, subscription options, shared subscriptions
//! and the limits both ways.

mod sandbox_util;

use mqscope::sandbox::Limits;
use rumqttc::QoS;
use std::time::{Duration, Instant};

use sandbox_util::*;

fn connect_props() -> v5p::ConnectProperties {
    v5p::ConnectProperties::new()
}

#[test]
fn v5_and_311_clients_share_one_broker_and_user_properties_pass() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let v5_sub = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-V", "mqttv5", "-t", "mix/#", "-F", "%t %p %P"],
    );
    let v4_sub = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-V", "mqttv311", "-t", "mix/#", "-v"],
    );
    wait_subscriptions(&s, 2);
    let (ok, _, err) = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-V",
            "mqttv5",
            "-t",
            "mix/a",
            "-m",
            "from5",
            "-D",
            "publish",
            "user-property",
            "lesson",
            "two",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-V", "mqttv311", "-t", "mix/b", "-m", "from4"],
    );
    assert!(ok, "{err}");
    assert_eq!(
        v5_sub.next_line(WAIT).as_deref(),
        Some("mix/a from5 lesson:two")
    );
    assert_eq!(v5_sub.next_line(WAIT).as_deref(), Some("mix/b from4 "));
    assert_eq!(v4_sub.next_line(WAIT).as_deref(), Some("mix/a from5"));
    assert_eq!(v4_sub.next_line(WAIT).as_deref(), Some("mix/b from4"));
}

#[test]
fn rumqttc_v5_client_round_trip() {
    use rumqttc::v5::{AsyncClient, Event, MqttOptions, mqttbytes::v5::Packet};
    let s = broker(Limits::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let mut opts = MqttOptions::new("rumqttc-v5", "127.0.0.1", s.port());
        opts.set_max_packet_size(Some(1024 * 1024));
        let (client, mut el) = AsyncClient::new(opts, 10);
        client
            .subscribe("rt/#", q5(QoS::AtLeastOnce))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let props = v5p::PublishProperties {
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        client
            .publish_with_properties("rt/x", q5(QoS::AtLeastOnce), false, "hello", props)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = tokio::time::timeout(WAIT, async {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => return p,
                    Ok(_) => {}
                    Err(e) => panic!("rumqttc v5: {e}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no message back"));
        assert_eq!(&got.payload[..], b"hello");
        let props = got.properties.unwrap_or_default();
        assert_eq!(props.user_properties, [("k".to_string(), "v".to_string())]);
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    });
}

#[test]
fn connack_announces_the_limits_and_assigns_a_client_id() {
    let s = broker(Limits::default());
    let mut props = connect_props();
    props.request_response_info = Some(1);
    let (_raw, ack) = Raw5::connect_with(s.port(), "", false, Some(props), None);
    assert_eq!(ack.code, v5p::ConnectReturnCode::Success);
    assert!(!ack.session_present);
    let Some(p) = ack.properties else {
        panic!("CONNACK without properties")
    };
    assert!(
        p.assigned_client_identifier
            .as_deref()
            .is_some_and(|id| id.starts_with("sandbox-auto-")),
        "{p:?}"
    );
    assert_eq!(p.receive_max, Some(20));
    assert_eq!(p.topic_alias_max, Some(10));
    assert_eq!(p.max_packet_size, Some(256 * 1024 * 1024));
    assert_eq!(p.shared_subscription_available, Some(1));
    assert!(p.response_information.is_some());
}

#[test]
fn acks_carry_reason_codes() {
    let s = broker(Limits::default());
    let mut c = Raw5::connect(s.port(), "acks");
    // Nobody subscribes to it: PUBACK 0x10 "no matching subscribers".
    c.publish("nobody/here", QoS::AtLeastOnce, "x", None);
    match c.recv(WAIT) {
        Some(v5p::Packet::PubAck(a)) => {
            assert_eq!(a.reason, v5p::PubAckReason::NoMatchingSubscribers)
        }
        other => panic!("{other:?}"),
    }
    let ack = c.subscribe(v5p::Filter::new("bad/#/filter", q5(QoS::AtMostOnce)), None);
    assert_eq!(
        ack.return_codes,
        [v5p::SubscribeReasonCode::TopicFilterInvalid]
    );
    let ack = c.subscribe(v5p::Filter::new("acks/x", q5(QoS::AtLeastOnce)), None);
    assert_eq!(
        ack.return_codes,
        [v5p::SubscribeReasonCode::Success(q5(QoS::AtLeastOnce))]
    );
    c.publish("acks/x", QoS::AtLeastOnce, "x", None);
    let mut puback = None;
    while puback.is_none() {
        match c.recv(WAIT) {
            Some(v5p::Packet::PubAck(a)) => puback = Some(a.reason),
            Some(_) => {}
            None => panic!("no PUBACK"),
        }
    }
    assert_eq!(puback, Some(v5p::PubAckReason::Success));
    let mut un = v5p::Unsubscribe::new("never/subscribed", None);
    un.pkid = 5;
    c.send(v5p::Packet::Unsubscribe(un));
    match c.recv(WAIT) {
        // Its own message, subscribed to above.
        Some(v5p::Packet::Publish(_)) => {}
        other => panic!("{other:?}"),
    }
    match c.recv(WAIT) {
        Some(v5p::Packet::UnsubAck(a)) => {
            assert_eq!(a.reasons, [v5p::UnsubAckReason::NoSubscriptionExisted])
        }
        other => panic!("{other:?}"),
    }
    c.send(v5p::Packet::PubRel(v5p::PubRel::new(99, None)));
    match c.recv(WAIT) {
        Some(v5p::Packet::PubComp(a)) => {
            assert_eq!(a.reason, v5p::PubCompReason::PacketIdentifierNotFound)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn publish_properties_are_forwarded_unchanged() {
    let s = broker(Limits::default());
    let mut sub = Raw5::connect(s.port(), "sub");
    sub.subscribe(v5p::Filter::new("req/#", q5(QoS::AtMostOnce)), None);
    let mut publisher = Raw5::connect(s.port(), "pub");
    let props = v5p::PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("resp/7".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"\x01\x02")),
        user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        ..Default::default()
    };
    publisher.publish("req/x", QoS::AtMostOnce, "{}", Some(props.clone()));
    let Some(got) = sub.next_publish(WAIT) else {
        panic!("nothing forwarded")
    };
    assert_eq!(got.properties, Some(props));
}

#[test]
fn expired_messages_are_not_delivered_and_the_rest_carry_what_is_left() {
    let s = broker(Limits::default());
    let mut props = connect_props();
    props.session_expiry_interval = Some(60);
    let (mut sub, _) = Raw5::connect_with(s.port(), "later", false, Some(props.clone()), None);
    sub.subscribe(v5p::Filter::new("exp/#", q5(QoS::AtLeastOnce)), None);
    sub.send(v5p::Packet::Disconnect(v5p::Disconnect::new(
        v5p::DisconnectReasonCode::NormalDisconnection,
    )));
    wait_until(WAIT, "offline", || s.stats().clients == 0);
    let mut publisher = Raw5::connect(s.port(), "pub");
    for (payload, expiry) in [("short", 1), ("long", 60)] {
        let p = v5p::PublishProperties {
            message_expiry_interval: Some(expiry),
            ..Default::default()
        };
        publisher.publish("exp/x", QoS::AtLeastOnce, payload, Some(p));
        assert!(matches!(publisher.recv(WAIT), Some(v5p::Packet::PubAck(_))));
    }
    // The 1 s message must be past its expiry when the subscriber returns.
    std::thread::sleep(Duration::from_millis(1100));
    let (mut back, ack) = Raw5::connect_with(s.port(), "later", false, Some(props), None);
    assert!(ack.session_present);
    let Some(got) = back.next_publish(WAIT) else {
        panic!("the long-lived message was not delivered")
    };
    assert_eq!(&got.payload[..], b"long");
    let left = got.properties.and_then(|p| p.message_expiry_interval);
    assert!(left.is_some_and(|l| (58..=60).contains(&l)), "{left:?}");
    assert_eq!(s.stats().expired, 1);
}

#[test]
fn session_expiry_decides_whether_a_session_survives() {
    let s = broker(Limits::default());
    let with_expiry = |e: Option<u32>| {
        let mut p = connect_props();
        p.session_expiry_interval = e;
        Some(p)
    };
    let leave = |mut c: Raw5| {
        c.send(v5p::Packet::Disconnect(v5p::Disconnect::new(
            v5p::DisconnectReasonCode::NormalDisconnection,
        )));
        wait_until(WAIT, "offline", || s.stats().clients == 0);
    };
    // Expiry 0 (the default): the session ends with the connection.
    let (c, _) = Raw5::connect_with(s.port(), "s", false, with_expiry(None), None);
    leave(c);
    let (c, ack) = Raw5::connect_with(s.port(), "s", false, with_expiry(Some(1)), None);
    assert!(!ack.session_present);
    leave(c);
    let (c, ack) = Raw5::connect_with(s.port(), "s", false, with_expiry(Some(1)), None);
    assert!(ack.session_present, "a 1 s session did not survive");
    leave(c);
    std::thread::sleep(Duration::from_millis(1100));
    let (_c, ack) = Raw5::connect_with(s.port(), "s", false, with_expiry(Some(1)), None);
    assert!(!ack.session_present, "an expired session was resumed");
}

fn will(topic: &str, payload: &str, delay: u32) -> v5p::LastWill {
    let mut w = v5p::LastWill::new(topic, payload.to_string(), q5(QoS::AtMostOnce), false, None);
    w.properties = Some(v5p::LastWillProperties {
        delay_interval: Some(delay),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    });
    w
}

#[test]
fn will_delay_waits_and_a_quick_return_cancels_it() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "wd/#", "-v"]);
    wait_subscriptions(&s, 1);
    let mut props = connect_props();
    props.session_expiry_interval = Some(30);
    // Dies and stays away: the will comes, 1 s later.
    let (c, _) = Raw5::connect_with(
        s.port(),
        "gone",
        false,
        Some(props.clone()),
        Some(will("wd/gone", "bye", 1)),
    );
    let died = Instant::now();
    drop(c);
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("wd/gone bye"));
    assert!(
        died.elapsed() >= Duration::from_millis(900),
        "the will did not wait"
    );
    // Dies and is back within the delay: no will.
    let (c, _) = Raw5::connect_with(
        s.port(),
        "back",
        false,
        Some(props.clone()),
        Some(will("wd/back", "bye", 1)),
    );
    drop(c);
    wait_until(WAIT, "offline", || s.stats().clients == 1);
    let (_again, ack) = Raw5::connect_with(s.port(), "back", false, Some(props), None);
    assert!(ack.session_present);
    std::thread::sleep(Duration::from_millis(1300));
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "wd/marker", "-m", "m"]);
    assert!(ok, "{err}");
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("wd/marker m"));
}

#[test]
fn topic_aliases_from_a_client_are_resolved_and_bounded() {
    let s = broker(Limits::default());
    let mut sub = Raw5::connect(s.port(), "sub");
    sub.subscribe(v5p::Filter::new("alias/#", q5(QoS::AtMostOnce)), None);
    let mut c = Raw5::connect(s.port(), "aliaser");
    let alias = |n| {
        Some(v5p::PublishProperties {
            topic_alias: Some(n),
            ..Default::default()
        })
    };
    c.publish("alias/long/topic", QoS::AtMostOnce, "one", alias(3));
    c.publish("", QoS::AtMostOnce, "two", alias(3));
    for payload in ["one", "two"] {
        let Some(got) = sub.next_publish(WAIT) else {
            panic!("no '{payload}'")
        };
        assert_eq!(&got.topic[..], b"alias/long/topic");
        assert_eq!(&got.payload[..], payload.as_bytes());
    }
    c.publish("alias/x", QoS::AtMostOnce, "three", alias(11));
    assert_eq!(
        c.disconnect_reason(WAIT),
        Some(v5p::DisconnectReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn subscription_identifiers_come_back_with_the_message() {
    let s = broker(Limits::default());
    let mut c = Raw5::connect(s.port(), "ids");
    c.subscribe(v5p::Filter::new("ids/#", q5(QoS::AtMostOnce)), Some(7));
    c.subscribe(v5p::Filter::new("ids/+", q5(QoS::AtMostOnce)), Some(9));
    let mut publisher = Raw5::connect(s.port(), "pub");
    publisher.publish("ids/x", QoS::AtMostOnce, "x", None);
    let Some(got) = c.next_publish(WAIT) else {
        panic!("nothing")
    };
    let mut ids = got
        .properties
        .map(|p| p.subscription_identifiers)
        .unwrap_or_default();
    ids.sort_unstable();
    assert_eq!(ids, [7, 9]);
    // One copy for two overlapping subscriptions.
    publisher.publish("ids/marker", QoS::AtMostOnce, "m", None);
    let next = c.next_publish(WAIT).map(|p| p.payload);
    assert_eq!(next.as_deref(), Some(&b"m"[..]));
}

#[test]
fn no_local_retain_as_published_and_retain_handling() {
    let s = broker(Limits::default());
    let mut me = Raw5::connect(s.port(), "me");
    let mut f = v5p::Filter::new("nl", q5(QoS::AtMostOnce));
    f.nolocal = true;
    me.subscribe(f, None);
    me.publish("nl", QoS::AtMostOnce, "mine", None);
    let mut other = Raw5::connect(s.port(), "other");
    other.publish("nl", QoS::AtMostOnce, "theirs", None);
    assert_eq!(
        me.next_publish(WAIT).map(|p| p.payload).as_deref(),
        Some(&b"theirs"[..])
    );

    // Retain as published: the live copy keeps its retain flag.
    let mut rap = v5p::Filter::new("rap", q5(QoS::AtMostOnce));
    rap.preserve_retain = true;
    me.subscribe(rap, None);
    let mut plain = Raw5::connect(s.port(), "plain");
    plain.subscribe(v5p::Filter::new("rap", q5(QoS::AtMostOnce)), None);
    let mut p = v5p::Publish::new("rap", q5(QoS::AtMostOnce), "r", None);
    p.retain = true;
    other.send(v5p::Packet::Publish(p));
    assert_eq!(me.next_publish(WAIT).map(|p| p.retain), Some(true));
    assert_eq!(plain.next_publish(WAIT).map(|p| p.retain), Some(false));

    // Retain handling 2: never; 1: only for a new subscription.
    let mut never = Raw5::connect(s.port(), "never");
    let mut f = v5p::Filter::new("rap", q5(QoS::AtMostOnce));
    f.retain_forward_rule = v5p::RetainForwardRule::Never;
    never.subscribe(f, None);
    let mut once = Raw5::connect(s.port(), "once");
    let mut f = v5p::Filter::new("rap", q5(QoS::AtMostOnce));
    f.retain_forward_rule = v5p::RetainForwardRule::OnNewSubscribe;
    once.subscribe(f.clone(), None);
    assert_eq!(once.next_publish(WAIT).map(|p| p.retain), Some(true));
    once.subscribe(f, None);
    other.publish("rap", QoS::AtMostOnce, "live", None);
    assert_eq!(
        once.next_publish(WAIT).map(|p| p.payload).as_deref(),
        Some(&b"live"[..])
    );
    assert_eq!(
        never.next_publish(WAIT).map(|p| p.payload).as_deref(),
        Some(&b"live"[..])
    );
}

#[test]
fn shared_subscription_gives_each_message_to_one_member() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let mut a = Raw5::connect(s.port(), "worker-a");
    let mut b = Raw5::connect(s.port(), "worker-b");
    for w in [&mut a, &mut b] {
        let ack = w.subscribe(
            v5p::Filter::new("$share/workers/jobs/+", q5(QoS::AtMostOnce)),
            None,
        );
        assert_eq!(
            ack.return_codes,
            [v5p::SubscribeReasonCode::Success(q5(QoS::AtMostOnce))]
        );
    }
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-V", "mqttv5", "-t", "jobs/x", "-l"],
    );
    // (-l with empty stdin publishes nothing: the real jobs follow.)
    assert!(ok, "{err}");
    let mut publisher = Raw5::connect(s.port(), "boss");
    for i in 0..10 {
        publisher.publish("jobs/x", QoS::AtMostOnce, &i.to_string(), None);
    }
    let mut got = Vec::new();
    for w in [&mut a, &mut b] {
        for _ in 0..5 {
            match w.next_publish(WAIT) {
                Some(p) => got.push(String::from_utf8_lossy(&p.payload).into_owned()),
                None => panic!("a worker got fewer than 5 of 10"),
            }
        }
    }
    got.sort_by_key(|g| g.parse::<u32>().unwrap_or(u32::MAX));
    let expected: Vec<String> = (0..10).map(|i: u32| i.to_string()).collect();
    assert_eq!(got, expected);
}

#[test]
fn client_receive_maximum_and_maximum_packet_size_are_respected() {
    let s = broker(Limits::default());
    let mut props = connect_props();
    props.receive_maximum = Some(3);
    props.max_packet_size = Some(200);
    let (mut sub, _) = Raw5::connect_with(s.port(), "small", true, Some(props), None);
    sub.subscribe(v5p::Filter::new("lim/#", q5(QoS::AtLeastOnce)), None);
    let mut publisher = Raw5::connect(s.port(), "pub");
    publisher.publish("lim/big", QoS::AtMostOnce, &"x".repeat(500), None);
    for i in 0..10 {
        publisher.publish("lim/x", QoS::AtLeastOnce, &i.to_string(), None);
    }
    let mut got = Vec::new();
    while let Some(p) = sub.next_publish(Duration::from_millis(700)) {
        got.push(p);
    }
    // The 500-byte message is over its 200-byte maximum: dropped, counted.
    assert_eq!(got.len(), 3, "receive maximum 3 not respected");
    assert_eq!(&got[0].payload[..], b"0");
    assert_eq!(s.broker().drops_by_client(), [("small".to_string(), 1)]);
    // Acknowledging one lets one more through.
    sub.send(v5p::Packet::PubAck(v5p::PubAck::new(got[0].pkid, None)));
    assert_eq!(
        sub.next_publish(WAIT).map(|p| p.payload).as_deref(),
        Some(&b"3"[..])
    );
}

#[test]
fn server_disconnects_say_why() {
    let mut s = broker(Limits {
        max_packet_size: 1024,
        ..Limits::default()
    });
    // Takeover: 0x8E.
    let mut first = Raw5::connect(s.port(), "twin");
    let _second = Raw5::connect(s.port(), "twin");
    assert_eq!(
        first.disconnect_reason(WAIT),
        Some(v5p::DisconnectReasonCode::SessionTakenOver)
    );
    // Too large: 0x95.
    let mut big = Raw5::connect(s.port(), "big");
    big.publish("x", QoS::AtMostOnce, &"x".repeat(2000), None);
    assert_eq!(
        big.disconnect_reason(WAIT),
        Some(v5p::DisconnectReasonCode::PacketTooLarge)
    );
    // Keep-alive: 0x8D.
    let mut sleepy = Raw5::open(s.port());
    sleepy.send(v5p::Packet::Connect(
        v5p::Connect {
            keep_alive: 1,
            client_id: "sleepy".into(),
            clean_start: true,
            properties: None,
        },
        None,
        None,
    ));
    assert_eq!(
        sleepy.disconnect_reason(Duration::from_secs(4)),
        Some(v5p::DisconnectReasonCode::KeepAliveTimeout)
    );
    // Shutdown: 0x8B.
    let mut last = Raw5::connect(s.port(), "last");
    s.stop();
    assert_eq!(
        last.disconnect_reason(WAIT),
        Some(v5p::DisconnectReasonCode::ServerShuttingDown)
    );
}

#[test]
fn mosquitto_v5_clients_exchange_and_keep_a_session() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let (ok, _, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-V",
            "mqttv5",
            "-c",
            "-x",
            "60",
            "-i",
            "v5-student",
            "-q",
            "1",
            "-t",
            "hw5/#",
            "-E",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        "mosquitto_pub",
        &[
            "-p", &p, "-V", "mqttv5", "-t", "hw5/due", "-q", "1", "-m", "soon",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-V",
            "mqttv5",
            "-c",
            "-x",
            "60",
            "-i",
            "v5-student",
            "-q",
            "1",
            "-t",
            "hw5/#",
            "-C",
            "1",
            "-W",
            "5",
        ],
    );
    assert!(ok, "queued message not delivered: {err}");
    assert_eq!(out, "soon\n");
}

#[test]
fn a_normal_v5_disconnect_keeps_the_will_and_a_wildcard_will_is_refused() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "#", "-v"]);
    wait_subscriptions(&s, 1);
    // mosquitto_pub ends with a bare DISCONNECT (E0 00).
    let (ok, _, err) = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-V",
            "mqttv5",
            "-t",
            "w/x",
            "-m",
            "x",
            "--will-topic",
            "w/will",
            "--will-payload",
            "should not appear",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("w/x x"));
    // (mosquitto_pub refuses such a will itself: a raw CONNECT says it.)
    let (mut raw, ack) = Raw5::connect_with(
        s.port(),
        "w",
        true,
        None,
        Some(will("w/#", "LEAKED-WILL", 0)),
    );
    assert_eq!(ack.code, v5p::ConnectReturnCode::TopicNameInvalid);
    assert_eq!(raw.recv(WAIT), None, "not closed after the refusal");
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "w/marker", "-m", "m"]);
    assert!(ok, "{err}");
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("w/marker m"));
}
