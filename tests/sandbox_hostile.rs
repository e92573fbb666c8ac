//! Hostile and broken clients against the sandbox, over raw sockets: each
//! one costs only its own connection (closed, with a log line that says
//! why), nothing panics, and a well-behaved client is still served after.

mod sandbox_util;

use mqscope::sandbox::Limits;
use rumqttc::{Connect, LastWill, Packet, Publish, QoS};
use std::time::Duration;

use sandbox_util::*;

#[test]
fn silent_connection_is_closed_after_the_connect_timeout() {
    let s = broker(Limits {
        connect_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let mut raw = Raw::open(s.port());
    // Half a CONNECT, then nothing (slowloris).
    raw.send_bytes(&[0x10, 0x20, 0x00]);
    assert!(raw.closed_within(WAIT));
    wait_log(&s, "no CONNECT within 300ms");
    assert_still_serves(&s);
}

#[test]
fn oversized_connect_is_closed_before_it_is_read() {
    let s = broker(Limits {
        max_connect_size: 4096,
        ..Limits::default()
    });
    let mut raw = Raw::open(s.port());
    // A CONNECT announcing 2 MB: refused on its header.
    raw.send_bytes(&[0x10, 0x80, 0x80, 0x80, 0x01]);
    assert!(raw.closed_within(WAIT));
    wait_log(&s, "over the maximum packet size of 4096 bytes");
    assert_still_serves(&s);
}

#[test]
fn packet_over_the_maximum_size_closes_that_connection_only() {
    let s = broker(Limits {
        max_packet_size: 1024,
        ..Limits::default()
    });
    let (mut raw, _) = Raw::connect(s.port(), "big-mouth", true);
    let p = Publish::new("x", QoS::AtMostOnce, vec![b'x'; 2000]);
    raw.send(Packet::Publish(p));
    assert!(raw.closed_within(WAIT));
    let line = wait_log(&s, "client 'big-mouth'");
    assert!(
        line.contains("over the maximum packet size of 1024 bytes"),
        "{line}"
    );
    assert_still_serves(&s);
}

#[test]
fn keep_alive_expires_and_the_will_fires() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "lab/#", "-v"]);
    wait_subscriptions(&s, 1);
    let will = LastWill::new("lab/sleepy", "timed out", QoS::AtMostOnce, false);
    let (mut raw, _) = Raw::connect_with(s.port(), "sleepy", true, 1, Some(will));
    // Keep-alive 1 s: closed after 1.5 s of silence.
    assert!(raw.closed_within(Duration::from_secs(4)));
    assert_eq!(
        watcher.next_line(WAIT).as_deref(),
        Some("lab/sleepy timed out")
    );
    wait_log(&s, "client 'sleepy' (127.0.0.1");
    assert!(log(&s).contains("keep-alive expired"), "{}", log(&s));
}

#[test]
fn pings_keep_a_connection_alive() {
    let s = broker(Limits::default());
    let (mut raw, _) = Raw::connect_with(s.port(), "pinger", true, 1, None);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        raw.send(Packet::PingReq);
        assert_eq!(raw.recv(WAIT), Some(Packet::PingResp));
    }
}

#[test]
fn keep_alive_zero_is_refused_under_a_max_keepalive() {
    let s = broker(Limits {
        max_keepalive: 60,
        ..Limits::default()
    });
    let mut raw = Raw::open(s.port());
    let mut c = Connect::new("forever");
    c.keep_alive = 0;
    raw.send(Packet::Connect(c));
    // CONNACK 2 (identifier rejected), as Mosquitto answers 3.1.1 clients.
    assert_eq!(raw.recv_bytes(4, WAIT), [0x20, 0x02, 0x00, 0x02]);
    let (_ok, ack) = Raw::connect_with(s.port(), "fine", true, 30, None);
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
}

#[test]
fn connections_over_the_maximum_are_closed_until_one_leaves() {
    let s = broker(Limits {
        max_connections: 3,
        ..Limits::default()
    });
    let mut open: Vec<Raw> = (0..3)
        .map(|i| Raw::connect(s.port(), &format!("c{i}"), true).0)
        .collect();
    let mut extra = Raw::open(s.port());
    assert!(extra.closed_within(WAIT));
    wait_log(&s, "already 3 connections");
    open.pop();
    wait_until(WAIT, "a connection left", || s.stats().clients == 2);
    let (mut again, ack) = Raw::connect(s.port(), "c-again", true);
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    again.send(Packet::PingReq);
    assert_eq!(again.recv(WAIT), Some(Packet::PingResp));
}

#[test]
fn garbage_instead_of_connect_is_closed() {
    let s = broker(Limits::default());
    let mut raw = Raw::open(s.port());
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: sandbox\r\n\r\n");
    assert!(raw.closed_within(WAIT));
    wait_log(&s, "first packet is not a CONNECT");
    assert_still_serves(&s);
}

#[test]
fn garbage_after_connect_closes_that_connection_and_fires_its_will() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "lab/#", "-v"]);
    wait_subscriptions(&s, 1);
    let will = LastWill::new("lab/noisy", "gone", QoS::AtMostOnce, false);
    let (mut raw, _) = Raw::connect_with(s.port(), "noisy", true, 60, Some(will));
    // Packet type 15 is reserved in 3.1.1; the length is malformed too.
    raw.send_bytes(&[0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    assert!(raw.closed_within(WAIT));
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("lab/noisy gone"));
    wait_log(&s, "client 'noisy'");
    assert_still_serves(&s);
}

#[test]
fn truncated_publish_is_not_delivered() {
    let s = broker(Limits::default());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "#", "-v"]);
    wait_subscriptions(&s, 1);
    let (mut raw, _) = Raw::connect(s.port(), "cut", true);
    let frame = encode(&Packet::Publish(Publish::new(
        "half",
        QoS::AtMostOnce,
        "never whole",
    )));
    raw.send_bytes(&frame[..frame.len() - 3]);
    drop(raw);
    wait_until(WAIT, "the cut client gone", || s.stats().clients == 1);
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "marker", "-m", "m"]);
    assert!(ok, "{err}");
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("marker m"));
}

#[test]
fn packets_out_of_order_or_only_for_servers_close_the_connection() {
    let s = broker(Limits::default());
    let frames: [Vec<u8>; 4] = [
        // A second CONNECT.
        encode(&Packet::Connect(Connect::new("again"))),
        // A CONNACK, a SUBACK, a PINGRESP: only servers send those.
        vec![0x20, 0x02, 0x00, 0x00],
        vec![0x90, 0x03, 0x00, 0x01, 0x00],
        vec![0xD0, 0x00],
    ];
    for (i, frame) in frames.iter().enumerate() {
        let id = format!("rude-{i}");
        let (mut raw, _) = Raw::connect(s.port(), &id, true);
        raw.send_bytes(frame);
        assert!(raw.closed_within(WAIT), "frame {i} did not close");
        wait_log(&s, &format!("client '{id}'"));
    }
    // Acknowledging what was never sent is harmless: the broker answers a
    // PUBREL with PUBCOMP (MQTT-4.3.3) and ignores a stray PUBACK.
    let (mut raw, _) = Raw::connect(s.port(), "confused", true);
    raw.send(Packet::PubAck(rumqttc::PubAck::new(42)));
    raw.send(Packet::PubRel(rumqttc::PubRel::new(43)));
    assert!(matches!(raw.recv(WAIT), Some(Packet::PubComp(c)) if c.pkid == 43));
    assert_still_serves(&s);
}

#[test]
fn unreleased_qos2_messages_are_bounded() {
    let s = broker(Limits {
        max_queued_bytes: 16 * 1024,
        ..Limits::default()
    });
    let (mut raw, _) = Raw::connect(s.port(), "hoarder", true);
    // QoS 2 messages whose PUBREL never comes: held up to 4 × 16 KiB.
    let mut closed = false;
    for i in 1..=200u16 {
        let mut p = Publish::new("hoard", QoS::ExactlyOnce, vec![0u8; 1000]);
        p.pkid = i;
        if !raw.try_send_bytes(&encode(&Packet::Publish(p))) {
            closed = true;
            break;
        }
    }
    assert!(closed || raw.closed_within(WAIT), "never closed");
    wait_log(&s, "never released (PUBREL)");
    assert_still_serves(&s);
}
