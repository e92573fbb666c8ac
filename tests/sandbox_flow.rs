//! Flow control in the sandbox: a subscriber that keeps reading gets every
//! message (its publishers are slowed down instead), QoS 1/2 deliveries go
//! through an inflight window, an offline session's queue drops oldest QoS 0
//! first and counts it per client, and a subscriber that stops reading is
//! cut off (its will fires) without the others noticing.

mod sandbox_util;

use mqscope::sandbox::Limits;
use rumqttc::{Packet, PubAck, Publish, QoS};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use sandbox_util::*;

/// `n` QoS 0 PUBLISH frames on `topic`, payloads "0", "1", ... padded to
/// `pad` bytes.
fn burst(topic: &str, n: usize, pad: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let payload = format!("{i:0>pad$}");
        out.extend(encode(&Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            payload,
        ))));
    }
    out
}

/// A raw publisher writing `bytes` as fast as the socket takes them, then
/// disconnecting; joined by the returned handle.
fn publish_raw(port: u16, id: &str, bytes: Vec<u8>) -> std::thread::JoinHandle<bool> {
    let (mut raw, _) = Raw::connect(port, id, true);
    std::thread::spawn(move || {
        let ok = raw.try_send_bytes(&bytes) && raw.try_send_bytes(&encode(&Packet::Disconnect));
        raw.s.flush().ok();
        ok
    })
}

#[test]
fn subscriber_reading_at_full_speed_gets_a_200k_burst_whole() {
    const N: usize = 200_000;
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let sub = Command::new("mosquitto_sub")
        .args(["-p", &p, "-t", "live/#", "-C", &N.to_string(), "-W", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_sub: {e}"));
    wait_subscriptions(&s, 1);
    let publisher = publish_raw(s.port(), "firehose", burst("live/x", N, 1));
    let out = sub
        .wait_with_output()
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"));
    assert!(
        publisher.join().unwrap_or(false),
        "the publisher was cut off"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut expected = 0usize;
    for line in text.lines() {
        assert_eq!(line, expected.to_string(), "message lost or reordered");
        expected += 1;
    }
    assert_eq!(expected, N, "only {expected} of {N} messages arrived");
    assert_eq!(s.stats().dropped, 0);
}

#[test]
fn slow_reader_slows_its_publisher_down_and_loses_nothing() {
    const N: usize = 20_000;
    let s = broker(Limits {
        max_queued_bytes: 16 * 1024,
        ..Limits::default()
    });
    let (mut sub, _) = Raw::connect(s.port(), "slow", true);
    sub.subscribe("slow/#", QoS::AtMostOnce);
    let publisher = publish_raw(s.port(), "fast", burst("slow/x", N, 100));
    let mut got = 0usize;
    while got < N {
        // A reader about ten times slower than the publisher could be.
        if got.is_multiple_of(200) {
            std::thread::sleep(Duration::from_millis(2));
        }
        match sub.recv(WAIT) {
            Some(Packet::Publish(p)) => {
                let n: usize = String::from_utf8_lossy(&p.payload)
                    .parse()
                    .unwrap_or(usize::MAX);
                assert_eq!(n, got, "message lost or reordered");
                got += 1;
            }
            other => panic!("after {got} messages: {other:?}"),
        }
    }
    assert!(
        publisher.join().unwrap_or(false),
        "the publisher was cut off"
    );
    assert_eq!(s.stats().dropped, 0);
}

#[test]
fn qos1_deliveries_wait_for_the_inflight_window() {
    let s = broker(Limits::default());
    let (mut sub, _) = Raw::connect(s.port(), "no-acks", true);
    sub.subscribe("w", QoS::AtLeastOnce);
    let (mut publisher, _) = Raw::connect(s.port(), "pub", true);
    for i in 0..30u16 {
        let mut p = Publish::new("w", QoS::AtLeastOnce, i.to_string());
        p.pkid = i + 1;
        publisher.send(Packet::Publish(p));
        assert!(matches!(publisher.recv(WAIT), Some(Packet::PubAck(_))));
    }
    let mut unacked = Vec::new();
    while let Some(packet) = sub.recv(Duration::from_millis(700)) {
        match packet {
            Packet::Publish(p) => unacked.push(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Mosquitto's max_inflight_messages: 20 sent, 10 waiting.
    assert_eq!(unacked.len(), 20);
    let mut received = unacked.len();
    // Each acknowledgement lets exactly one more through, in order.
    for expected in 20..30 {
        let first = unacked.remove(0);
        sub.send(Packet::PubAck(PubAck::new(first.pkid)));
        match sub.recv(WAIT) {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.payload, expected.to_string());
                unacked.push(p);
                received += 1;
            }
            other => panic!("after an ack: {other:?}"),
        }
    }
    assert_eq!(received, 30);
}

#[test]
fn offline_session_queue_drops_oldest_and_counts_per_client() {
    let s = broker(Limits {
        max_queued_messages: 10,
        sys_interval: Duration::from_millis(200),
        ..Limits::default()
    });
    let (mut sub, ack) = Raw::connect(s.port(), "away", false);
    assert!(!ack.session_present);
    sub.subscribe("hw/#", QoS::AtLeastOnce);
    sub.send(Packet::Disconnect);
    assert!(sub.closed_within(WAIT));
    wait_until(WAIT, "session offline", || s.stats().clients == 0);
    let (mut publisher, _) = Raw::connect(s.port(), "teacher", true);
    for i in 0..15u16 {
        let mut p = Publish::new("hw/due", QoS::AtLeastOnce, i.to_string());
        p.pkid = i + 1;
        publisher.send(Packet::Publish(p));
        assert!(matches!(publisher.recv(WAIT), Some(Packet::PubAck(_))));
    }
    assert_eq!(s.stats().dropped, 5);
    assert_eq!(s.broker().drops_by_client(), [("away".to_string(), 5)]);
    let (mut back, ack) = Raw::connect(s.port(), "away", false);
    assert!(ack.session_present);
    for expected in 5..15 {
        match back.recv(WAIT) {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.payload, expected.to_string());
                back.send(Packet::PubAck(PubAck::new(p.pkid)));
            }
            other => panic!("expected message {expected}: {other:?}"),
        }
    }
    // The count is published where `$SYS/#` subscribers look.
    let sys = Client::spawn(
        "mosquitto_sub",
        &["-p", &port_arg(&s), "-t", "$SYS/broker/messages/#", "-v"],
    );
    for line in [
        "$SYS/broker/messages/dropped 5",
        "$SYS/broker/messages/dropped/away 5",
    ] {
        assert!(sys.wait_for(WAIT, |l| l == line).is_some(), "no '{line}'");
    }
}

#[test]
fn subscriber_that_stops_reading_is_cut_off_and_its_will_fires() {
    const N: usize = 20_000;
    let s = broker(Limits {
        max_queued_bytes: 64 * 1024,
        write_timeout: Duration::from_secs(1),
        ..Limits::default()
    });
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "lab/stuck", "-v"]);
    let healthy = Command::new("mosquitto_sub")
        .args(["-p", &p, "-t", "flood/#", "-C", &N.to_string(), "-W", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_sub: {e}"));
    // Its stdout is read all along: a full pipe would stop it reading too.
    let healthy = std::thread::spawn(move || healthy.wait_with_output());
    let will = rumqttc::LastWill::new("lab/stuck", "gone", QoS::AtMostOnce, false);
    let (mut stuck, _) = Raw::connect_with(s.port(), "stuck", true, 60, Some(will));
    stuck.subscribe("flood/#", QoS::AtMostOnce);
    wait_subscriptions(&s, 3);
    // 20 MB: more than the socket buffers between the broker and `stuck`.
    let publisher = publish_raw(s.port(), "flood", burst("flood/x", N, 1000));
    assert_eq!(
        watcher.next_line(WAIT).as_deref(),
        Some("lab/stuck gone"),
        "the stuck subscriber's will did not fire"
    );
    let line = wait_log(&s, "client 'stuck'");
    assert!(
        line.contains("stopped reading") || line.contains("took nothing"),
        "{line}"
    );
    assert!(
        publisher.join().unwrap_or(false),
        "the publisher was cut off"
    );
    let out = healthy
        .join()
        .unwrap_or_else(|_| panic!("reader thread panicked"))
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"));
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        lines,
        N,
        "the healthy subscriber lost messages\n{}",
        log(&s)
    );
    drop(stuck);
}

/// 200 publishers at once (the broker routes on several threads), each with
/// its own topic and QoS 1, into one mosquitto_sub (QoS 0) and one raw QoS 1
/// subscriber that acknowledges as it reads: every message arrives, in each
/// publisher's order.
#[test]
fn many_publishers_at_once_lose_nothing_and_keep_each_publisher_s_order() {
    const PUBS: usize = 200;
    const EACH: usize = 500;
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let total = PUBS * EACH;
    let sub = Command::new("mosquitto_sub")
        .args([
            "-p",
            &p,
            "-t",
            "many/#",
            "-v",
            "-C",
            &total.to_string(),
            "-W",
            "60",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_sub: {e}"));
    let (mut acked, _) = Raw::connect(s.port(), "many-q1", true);
    acked.subscribe("many/#", QoS::AtLeastOnce);
    wait_subscriptions(&s, 2);
    // Each publisher writes its whole burst, then reads its 500 PUBACKs
    // before it leaves (closing with PUBACKs unread would reset the socket
    // and discard publishes the broker has not read yet).
    let publishers: Vec<_> = (0..PUBS)
        .map(|i| {
            let mut bytes = Vec::new();
            for n in 0..EACH {
                let mut p = Publish::new(format!("many/{i}"), QoS::AtLeastOnce, n.to_string());
                p.pkid = u16::try_from(n + 1).unwrap_or(1);
                bytes.extend(encode(&Packet::Publish(p)));
            }
            let (mut raw, _) = Raw::connect(s.port(), &format!("p{i}"), true);
            std::thread::spawn(move || {
                if !raw.try_send_bytes(&bytes) {
                    return false;
                }
                let mut acks = 0;
                while acks < EACH {
                    match raw.recv(WAIT) {
                        Some(Packet::PubAck(_)) => acks += 1,
                        Some(_) => {}
                        None => return false,
                    }
                }
                raw.try_send_bytes(&encode(&Packet::Disconnect))
            })
        })
        .collect();
    // The QoS 1 subscriber acknowledges as it reads (inflight window 20).
    let reader = std::thread::spawn(move || {
        let mut next = vec![0usize; PUBS];
        let mut got = 0;
        while got < total {
            let Some(packet) = acked.recv(WAIT) else {
                break;
            };
            if let Packet::Publish(p) = packet {
                assert_eq!(p.qos, QoS::AtLeastOnce);
                acked.send(Packet::PubAck(PubAck::new(p.pkid)));
                let topic = p.topic.clone();
                let i: usize = topic["many/".len()..].parse().unwrap_or(usize::MAX);
                let n: usize = String::from_utf8_lossy(&p.payload)
                    .parse()
                    .unwrap_or(usize::MAX);
                assert_eq!(next.get(i), Some(&n), "{topic}: out of order or lost");
                next[i] += 1;
                got += 1;
            }
        }
        got
    });
    for p in publishers {
        assert!(
            p.join().unwrap_or(false),
            "a publisher lost PUBACKs or was cut off"
        );
    }
    let out = sub
        .wait_with_output()
        .unwrap_or_else(|e| panic!("mosquitto_sub: {e}"));
    let mut next = vec![0usize; PUBS];
    let mut lines = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (topic, payload) = line.split_once(' ').unwrap_or_default();
        let i: usize = topic
            .trim_start_matches("many/")
            .parse()
            .unwrap_or(usize::MAX);
        let n: usize = payload.parse().unwrap_or(usize::MAX);
        assert_eq!(next.get(i), Some(&n), "{line}: out of order or lost");
        next[i] += 1;
        lines += 1;
    }
    assert_eq!(lines, total, "mosquitto_sub got {lines} of {total}");
    assert_eq!(reader.join().unwrap_or(0), total, "the QoS 1 subscriber");
    assert_eq!(s.stats().dropped, 0);
}
