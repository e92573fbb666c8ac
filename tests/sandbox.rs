//! The sandbox broker seen from standard clients: mosquitto_sub/pub (the
//! Debian package `mosquitto-clients`) against a sandbox started here on a
//! free port, and the simulated devices' topics.

mod sandbox_util;

use mqscope::sandbox::DemoConfig;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandbox_util::*;

#[test]
fn mosquitto_clients_exchange_a_message() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let sub = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "class/hello", "-v"]);
    wait_subscriptions(&s, 1);
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-t", "class/hello", "-m", "hi there"],
    );
    assert!(ok, "mosquitto_pub failed: {err}");
    assert_eq!(
        sub.wait_for(WAIT, |_| true).as_deref(),
        Some("class/hello hi there")
    );
}

#[test]
fn qos2_passes_through_with_the_four_packet_handshake() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let sub = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "q2", "-q", "2", "-d"]);
    wait_subscriptions(&s, 1);
    let (ok, out, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-t", "q2", "-q", "2", "-m", "exactly once", "-d"],
    );
    assert!(ok, "mosquitto_pub failed: {err}");
    for step in [
        "sending PUBLISH (d0, q2",
        "received PUBREC",
        "sending PUBREL",
        "received PUBCOMP",
    ] {
        assert!(out.contains(step), "publisher did not log '{step}':\n{out}");
    }
    // The subscriber granted QoS 2 receives at QoS 2 and completes its side.
    assert!(
        sub.wait_for(WAIT, |l| l.contains("received PUBLISH (d0, q2"))
            .is_some()
    );
    assert!(
        sub.wait_for(WAIT, |l| l.contains("sending PUBREC"))
            .is_some()
    );
    assert!(
        sub.wait_for(WAIT, |l| l.contains("received PUBREL"))
            .is_some()
    );
    assert!(
        sub.wait_for(WAIT, |l| l.contains("sending PUBCOMP"))
            .is_some()
    );
    assert!(sub.wait_for(WAIT, |l| l == "exactly once").is_some());
}

#[test]
fn retained_message_reaches_a_later_subscriber_until_cleared() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-t", "room/temp", "-r", "-m", "21.5"],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(
        "mosquitto_sub",
        &["-p", &p, "-t", "room/#", "-v", "-C", "1", "-W", "5"],
    );
    assert!(ok, "retained message not delivered: {err}");
    assert_eq!(out.trim(), "room/temp 21.5");
    assert_eq!(s.stats().retained, 1);

    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "room/temp", "-r", "-n"]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(
        "mosquitto_sub",
        &["-p", &p, "-t", "room/#", "-v", "-C", "1", "-W", "1"],
    );
    assert!(!ok, "a cleared retained message was delivered: {out}");
    assert_eq!(s.stats().retained, 0);
}

#[test]
fn five_megabyte_payload_passes_intact() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("big.bin");
    // Not all the same byte, so a shifted or truncated copy cannot match.
    let payload: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &payload).unwrap_or_else(|e| panic!("{e}"));
    let mut sub = Command::new("mosquitto_sub")
        .args(["-p", &p, "-t", "big", "-C", "1", "-N", "-W", "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_sub: {e}"));
    wait_subscriptions(&s, 1);
    let file_arg = file.to_string_lossy().into_owned();
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-t", "big", "-q", "1", "-f", &file_arg],
    );
    assert!(ok, "5 MB publish failed: {err}");
    let mut received = Vec::new();
    if let Some(mut out) = sub.stdout.take() {
        out.read_to_end(&mut received).ok();
    }
    sub.wait().ok();
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "5 MB payload arrived altered");
}

#[test]
fn will_is_published_when_a_client_dies() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "lab/status", "-v"]);
    wait_subscriptions(&s, 1);
    let mut victim = Client::spawn(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-i",
            "victim",
            "-t",
            "lab/other",
            "--will-topic",
            "lab/status",
            "--will-payload",
            "victim died",
        ],
    );
    wait_subscriptions(&s, 2);
    // SIGKILL: no DISCONNECT reaches the broker.
    victim.child.kill().ok();
    victim.child.wait().ok();
    assert_eq!(
        watcher.wait_for(WAIT, |_| true).as_deref(),
        Some("lab/status victim died")
    );
}

#[test]
fn clean_disconnect_does_not_publish_the_will() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "lab/status", "-v"]);
    wait_subscriptions(&s, 1);
    let (ok, _, err) = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-t",
            "lab/x",
            "-m",
            "x",
            "--will-topic",
            "lab/status",
            "--will-payload",
            "should not appear",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(watcher.wait_for(Duration::from_millis(700), |_| true), None);
}

#[test]
fn persistent_session_queues_qos1_messages_while_offline() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    // -E: exit once subscribed; -c: keep the session.
    let (ok, _, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-c",
            "-i",
            "student-7",
            "-q",
            "1",
            "-t",
            "hw/#",
            "-E",
        ],
    );
    assert!(ok, "{err}");
    for m in ["first", "second"] {
        let (ok, _, err) = run(
            "mosquitto_pub",
            &["-p", &p, "-t", "hw/due", "-q", "1", "-m", m],
        );
        assert!(ok, "{err}");
    }
    let (ok, out, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-c",
            "-i",
            "student-7",
            "-q",
            "1",
            "-t",
            "hw/#",
            "-C",
            "2",
            "-W",
            "5",
        ],
    );
    assert!(ok, "queued messages not delivered: {err}");
    assert_eq!(out, "first\nsecond\n");
}

#[test]
fn mqtt_3_1_client_is_refused_with_protocol_version_code() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let (ok, out, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-V", "mqttv31", "-t", "x", "-m", "x"],
    );
    assert!(!ok);
    let said = format!("{out}{err}");
    assert!(
        said.contains("unacceptable protocol version"),
        "mosquitto_pub said: {said}"
    );
}

#[test]
fn extra_demo_topics_appear() {
    let s = start(DemoConfig {
        surf_rate_hz: 10.0,
        flaky: false,
        ..DemoConfig::with_extras()
    });
    let p = port_arg(&s);
    let (ok, out, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-t",
            "surfing/board/1/telemetry",
            "-C",
            "1",
            "-W",
            "5",
        ],
    );
    assert!(ok, "no surfboard telemetry: {err}");
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    for field in ["speed_kmh", "heart_rate_bpm", "water_temp_c"] {
        assert!(v[field].is_number(), "{field} missing in {v}");
    }
    assert!(v["status"].is_string());

    // Retained topics: there for someone who subscribes late.
    let (ok, out, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-t",
            "vehicles/vehicle-1/state",
            "-t",
            "sandbox/info",
            "-t",
            "surfing/competition/status",
            "-v",
            "-C",
            "3",
            "-W",
            "5",
        ],
    );
    assert!(ok, "retained demo topics missing: {err}\n{out}");
    assert!(out.contains("vehicles/vehicle-1/state {"), "{out}");
    assert!(out.contains(&format!("\"port\":{}", s.port())), "{out}");
    assert!(out.contains("surfing/competition/status {"), "{out}");
}

#[test]
fn extra_demo_vehicle_executes_commands_and_reports_errors() {
    let s = start(DemoConfig {
        demo_vehicle: true,
        ..DemoConfig::off()
    });
    let p = port_arg(&s);
    let watcher = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-t", "vehicles/vehicle-1/#", "-v"],
    );
    // The retained state arrives once the vehicle is connected and subscribed.
    let first = watcher.wait_for(WAIT, |l| l.starts_with("vehicles/vehicle-1/state "));
    assert!(
        first
            .as_deref()
            .is_some_and(|l| l.contains("\"engine_on\":false")),
        "{first:?}"
    );
    let publish = |payload: &str| {
        let (ok, _, err) = run(
            "mosquitto_pub",
            &[
                "-p",
                &p,
                "-t",
                "vehicles/vehicle-1/commands",
                "-q",
                "1",
                "-m",
                payload,
            ],
        );
        assert!(ok, "{err}");
    };
    publish(r#"{"cmd":"engine_on"}"#);
    let executed = watcher.wait_for(WAIT, |l| l.starts_with("vehicles/vehicle-1/executed "));
    assert!(
        executed.as_deref().is_some_and(|l| l.contains("engine_on")),
        "{executed:?}"
    );
    let state = watcher.wait_for(WAIT, |l| l.starts_with("vehicles/vehicle-1/state "));
    assert!(
        state
            .as_deref()
            .is_some_and(|l| l.contains("\"engine_on\":true")),
        "{state:?}"
    );

    publish("go faster!!");
    let error = watcher.wait_for(WAIT, |l| l.starts_with("vehicles/vehicle-1/errors "));
    assert!(
        error.as_deref().is_some_and(|l| l.contains("\"error\"")),
        "{error:?}"
    );
    // The vehicle survived the bad command and still obeys.
    publish(r#"{"cmd":"set_speed","kmh":50}"#);
    let state = watcher.wait_for(WAIT, |l| l.starts_with("vehicles/vehicle-1/state "));
    assert!(
        state
            .as_deref()
            .is_some_and(|l| l.contains("\"speed_kmh\":50")),
        "{state:?}"
    );
}

#[test]
fn flaky_device_will_arrives() {
    let s = start(DemoConfig {
        flaky: true,
        flaky_online: (Duration::from_millis(1500), Duration::from_millis(2000)),
        flaky_offline: Duration::from_millis(500),
        ..DemoConfig::off()
    });
    let p = port_arg(&s);
    wait_clients(&s, 1);
    let watcher = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-t", "devices/flaky-sensor/status", "-v"],
    );
    assert!(
        watcher
            .wait_for(WAIT, |l| l == "devices/flaky-sensor/status offline")
            .is_some(),
        "the flaky sensor's will never arrived"
    );
    // And it comes back.
    assert!(
        watcher
            .wait_for(WAIT, |l| l == "devices/flaky-sensor/status online")
            .is_some()
    );
}

#[test]
fn stopping_frees_the_port() {
    let mut s = start(DemoConfig::off());
    let port = s.port();
    s.stop();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still taken after stop"
    );
}

#[test]
fn devices_can_be_switched_off_while_running() {
    let s = start(DemoConfig {
        surfboards: 2,
        surf_rate_hz: 20.0,
        vehicle: false,
        ..DemoConfig::default()
    });
    wait_clients(&s, 2);
    s.set_demo(DemoConfig::off());
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.stats().clients > 0 {
        assert!(Instant::now() < deadline, "surfboards still connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    let p = port_arg(&s);
    let (ok, out, _) = run(
        "mosquitto_sub",
        &["-p", &p, "-t", "surfboards/#", "-C", "1", "-W", "1"],
    );
    assert!(!ok, "readings still flowing after switching off: {out}");
}

// ---- Correctness: what Mosquitto answers, byte for byte ----

#[test]
fn first_persistent_connect_says_no_session_present_and_a_return_says_present() {
    let s = start(DemoConfig::off());
    let connack = |clean: bool| {
        let mut raw = Raw::open(s.port());
        let mut c = rumqttc::Connect::new("returning-student");
        c.clean_session = clean;
        raw.send(rumqttc::Packet::Connect(c));
        let bytes = raw.recv_bytes(4, WAIT);
        raw.send(rumqttc::Packet::Disconnect);
        assert!(raw.closed_within(WAIT), "DISCONNECT did not close");
        bytes
    };
    // MQTT-3.2.2-3: no session was stored, so session present is 0.
    assert_eq!(connack(false), [0x20, 0x02, 0x00, 0x00]);
    wait_until(WAIT, "session offline", || s.stats().clients == 0);
    assert_eq!(connack(false), [0x20, 0x02, 0x01, 0x00]);
    wait_until(WAIT, "session offline", || s.stats().clients == 0);
    // A clean session discards it, and says so.
    assert_eq!(connack(true), [0x20, 0x02, 0x00, 0x00]);
    wait_until(WAIT, "session offline", || s.stats().clients == 0);
    assert_eq!(connack(false), [0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn connect_with_a_wildcard_will_topic_is_refused_and_its_will_never_published() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "#", "-v"]);
    wait_subscriptions(&s, 1);
    // The same client id is connected: a refused CONNECT must not take it over.
    let (mut owner, _) = Raw::connect(s.port(), "lab-7", true);
    wait_clients(&s, 2);
    let mut bad = Raw::open(s.port());
    let mut c = rumqttc::Connect::new("lab-7");
    c.last_will = Some(rumqttc::LastWill::new(
        "a/#",
        "LEAKED-WILL",
        rumqttc::QoS::AtMostOnce,
        false,
    ));
    bad.send(rumqttc::Packet::Connect(c));
    // Closed without a CONNACK.
    assert_eq!(bad.recv_bytes(4, WAIT), Vec::<u8>::new());
    wait_log(&s, "will topic 'a/#' is not a valid topic name");
    // Anything routed for the refused connection was routed before its
    // socket closed, so it would come before this marker.
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "marker", "-m", "after"]);
    assert!(ok, "{err}");
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("marker after"));
    // The owner of the id still has its connection.
    owner.send(rumqttc::Packet::PingReq);
    assert_eq!(owner.recv(WAIT), Some(rumqttc::Packet::PingResp));
}

#[test]
fn qos2_resent_publish_is_delivered_once() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let sub = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "once", "-q", "2"]);
    wait_subscriptions(&s, 1);
    let (mut raw, _) = Raw::connect(s.port(), "resender", true);
    let mut publish = rumqttc::Publish::new("once", rumqttc::QoS::ExactlyOnce, "first");
    publish.pkid = 7;
    raw.send(rumqttc::Packet::Publish(publish.clone()));
    assert!(matches!(raw.recv(WAIT), Some(rumqttc::Packet::PubRec(r)) if r.pkid == 7));
    // The PUBREC "got lost": the client sends it again with DUP.
    publish.dup = true;
    raw.send(rumqttc::Packet::Publish(publish));
    assert!(matches!(raw.recv(WAIT), Some(rumqttc::Packet::PubRec(r)) if r.pkid == 7));
    raw.send(rumqttc::Packet::PubRel(rumqttc::PubRel::new(7)));
    assert!(matches!(raw.recv(WAIT), Some(rumqttc::Packet::PubComp(c)) if c.pkid == 7));
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "once", "-m", "marker"]);
    assert!(ok, "{err}");
    assert_eq!(sub.next_line(WAIT).as_deref(), Some("first"));
    assert_eq!(sub.next_line(WAIT).as_deref(), Some("marker"));
}

#[test]
fn takeover_closes_the_old_connection_without_its_will() {
    let s = start(DemoConfig::off());
    let p = port_arg(&s);
    let watcher = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "lab/#", "-v"]);
    wait_subscriptions(&s, 1);
    let will = rumqttc::LastWill::new("lab/will", "old died", rumqttc::QoS::AtMostOnce, false);
    let (mut old, _) = Raw::connect_with(s.port(), "twin", true, 60, Some(will));
    let (mut new, _) = Raw::connect(s.port(), "twin", true);
    assert!(old.closed_within(WAIT), "old connection not closed");
    new.send(rumqttc::Packet::PingReq);
    assert_eq!(new.recv(WAIT), Some(rumqttc::Packet::PingResp));
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "lab/marker", "-m", "m"]);
    assert!(ok, "{err}");
    assert_eq!(watcher.next_line(WAIT).as_deref(), Some("lab/marker m"));
}

#[test]
fn sys_topics_are_published_as_mosquitto_names_them() {
    let s = start_with(
        DemoConfig::off(),
        mqscope::sandbox::Limits {
            sys_interval: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let p = port_arg(&s);
    let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", "a/b", "-r", "-m", "x"]);
    assert!(ok, "{err}");
    let sys = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "$SYS/#", "-v"]);
    // A plain `#` subscriber does not see them (MQTT-4.7.2-1).
    let all = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "#", "-v"]);
    for (topic, value) in [
        ("$SYS/broker/version", Some("mqscope sandbox")),
        ("$SYS/broker/uptime", None),
        ("$SYS/broker/clients/connected", Some("2")),
        ("$SYS/broker/clients/total", Some("2")),
        ("$SYS/broker/messages/received", Some("1")),
        ("$SYS/broker/messages/sent", None),
        ("$SYS/broker/messages/dropped", Some("0")),
        ("$SYS/broker/retained messages/count", Some("1")),
        ("$SYS/broker/subscriptions/count", Some("2")),
        ("$SYS/broker/bytes/received", None),
        ("$SYS/broker/bytes/sent", None),
        ("$SYS/broker/load/messages/received/1min", None),
        ("$SYS/broker/load/bytes/sent/15min", None),
    ] {
        let prefix = format!("{topic} {}", value.unwrap_or(""));
        let line = sys.wait_for(WAIT, |l| l.starts_with(&prefix));
        assert!(line.is_some(), "no {prefix}");
    }
    assert_eq!(all.next_line(WAIT).as_deref(), Some("a/b x"));
    assert_eq!(all.next_line(Duration::from_millis(500)), None);
}
