//! MQTT over websockets (ws:// and wss://) against real websocket endpoints:
//! Aedes, an MQTT 3.1.1 broker, behind Node's `ws` server, and a websocket
//! gateway in front of a real Mosquitto for MQTT 5 — through `mqscope sub` /
//! `mqscope pub`, the worker the window uses, and the window itself.

mod common;
mod ws_util;

use common::gui::{click, has_label_containing, set_text, step_until};
use common::*;
use mqscope::model::packet::{Direction, PacketKind};
use mqscope::mqtt::{Command as WorkerCommand, ConnStatus, EventKind, PublishOutcome, Worker};
use mqscope::profile::{
    Profile, ProfileStore, ProtocolVersion, Qos, SubscriptionSpec, TransportKind,
};
use std::process::Stdio;
use std::time::Duration;
use ws_util::WsBroker;

const LIMIT: Duration = Duration::from_secs(10);

fn ws_args(port: u16) -> Vec<String> {
    vec![
        "--ws".into(),
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

/// `mqscope sub ARGS` running, its stdout lines on a channel.
fn sub(args: &[String]) -> Lines {
    let mut cmd = mqscope();
    cmd.arg("sub")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Lines::new(cmd.spawn().expect("cannot start mqscope sub"))
}

/// Reads `sub`'s stdout until a line equal to `want` (the -d lines come
/// first); panics with what it saw otherwise.
fn expect_line(sub: &Lines, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(line) = sub.next_line(LIMIT) {
        let done = line == want;
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!("'{want}' never came; stdout was:\n{}", seen.join("\n"));
}

fn run_pub(args: &[String]) -> Finished {
    let mut cmd = mqscope();
    cmd.arg("pub").args(args);
    run_with_timeout(&mut cmd, LIMIT)
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// Starts a subscriber with -d, waits for its SUBACK, publishes with `pub_args`
/// and returns the subscriber's lines up to the message `payload`.
fn round_trip(sub_args: Vec<String>, pub_args: Vec<String>, payload: &str) -> Vec<String> {
    let mut args = sub_args;
    args.extend(strings(&["-d", "-C", "1"]));
    let mut s = sub(&args);
    let mut seen = expect_line_prefix(&s, "Subscribed (mid: 1)");
    let done = run_pub(&pub_args);
    assert_eq!(done.code, Some(0), "mqscope pub failed: {}", done.stderr);
    seen.extend(expect_line(&s, payload));
    let (code, err) = s.finish(LIMIT);
    assert_eq!(code, Some(0), "mqscope sub failed: {err}");
    seen
}

fn expect_line_prefix(sub: &Lines, prefix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(line) = sub.next_line(LIMIT) {
        let done = line.starts_with(prefix);
        seen.push(line);
        if done {
            return seen;
        }
    }
    panic!(
        "no line starting '{prefix}'; stdout was:\n{}",
        seen.join("\n")
    );
}

#[test]
fn sub_and_pub_over_ws_with_aedes_mqtt311() {
    let broker = WsBroker::aedes(&[]);
    let mut sub_args = ws_args(broker.port);
    sub_args.extend(strings(&["-t", "ws/+/temp", "-q", "1", "-v"]));
    let mut pub_args = ws_args(broker.port);
    pub_args.extend(strings(&["-t", "ws/kitchen/temp", "-m", "21.5", "-q", "1"]));
    let lines = round_trip(sub_args, pub_args, "ws/kitchen/temp 21.5");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("received PUBLISH (d0, q1, r0, m")
                && l.ends_with(", 'ws/kitchen/temp', ... (4 bytes))")),
        "the QoS 1 PUBLISH came over the websocket: {lines:?}"
    );
}

#[test]
fn url_with_ws_scheme_sets_transport_and_path() {
    let broker = WsBroker::aedes(&["--path", "/broker/ws"]);
    let url = format!("ws://127.0.0.1:{}/broker/ws", broker.port);
    let sub_args = strings(&["-L", &url, "-t", "url/t"]);
    let pub_args = strings(&["-L", &url, "-t", "url/t", "-m", "by url"]);
    round_trip(sub_args, pub_args, "by url");
}

#[test]
fn mqtt5_over_ws_through_a_gateway_to_mosquitto_carries_properties() {
    let mosquitto = Broker::start();
    let gateway = WsBroker::gateway(mosquitto.port, &[]);
    let mut sub_args = ws_args(gateway.port);
    sub_args.extend(strings(&[
        "-V", "mqttv5", "-t", "v5/ws", "-q", "2", "-F", "%t %p %P",
    ]));
    let mut pub_args = ws_args(gateway.port);
    pub_args.extend(strings(&[
        "-V",
        "5",
        "-t",
        "v5/ws",
        "-m",
        "hello",
        "-q",
        "2",
        "-D",
        "publish",
        "user-property",
        "unit",
        "C",
    ]));
    let lines = round_trip(sub_args, pub_args, "v5/ws hello unit:C");
    assert!(
        lines.iter().any(|l| l.ends_with("sending PUBCOMP (m1)")),
        "the QoS 2 handshake ran over the websocket: {lines:?}"
    );
}

#[test]
fn wss_verifies_the_generated_certificate() {
    let pki = Pki::generate();
    let cert = pki.server_cert.display().to_string();
    let key = pki.server_key.display().to_string();
    let broker = WsBroker::aedes(&["--cert", &cert, "--key", &key]);
    let ca = pki.ca_cert.display().to_string();
    let mut sub_args = ws_args(broker.port);
    sub_args.extend(strings(&["--cafile", &ca, "-t", "secure/t"]));
    let mut pub_args = ws_args(broker.port);
    pub_args.extend(strings(&[
        "--cafile", &ca, "-t", "secure/t", "-m", "over wss",
    ]));
    round_trip(sub_args, pub_args, "over wss");

    // The wrong CA: refused, and said so.
    let mut args = ws_args(broker.port);
    let other = pki.other_ca_cert.display().to_string();
    args.extend(strings(&["--cafile", &other, "-t", "secure/t", "-m", "x"]));
    let done = run_pub(&args);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("not signed by a trusted CA"),
        "stderr: {}",
        done.stderr
    );
    // Plain ws:// to a wss:// endpoint: the handshake cannot complete.
    let done = run_pub(&{
        let mut a = ws_args(broker.port);
        a.extend(strings(&["-t", "secure/t", "-m", "x"]));
        a
    });
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("websocket"),
        "a ws:// client on a TLS port is told about the websocket handshake: {}",
        done.stderr
    );
}

#[test]
fn wss_alpn_must_be_one_the_broker_accepts() {
    let pki = Pki::generate();
    let cert = pki.server_cert.display().to_string();
    let key = pki.server_key.display().to_string();
    let broker = WsBroker::aedes(&["--cert", &cert, "--key", &key, "--alpn", "mqtt"]);
    let ca = pki.ca_cert.display().to_string();
    let mut args = ws_args(broker.port);
    args.extend(strings(&["--cafile", &ca, "-t", "a", "-m", "x"]));
    let mut good = args.clone();
    good.extend(strings(&["--tls-alpn", "mqtt"]));
    let done = run_pub(&good);
    assert_eq!(done.code, Some(0), "ALPN mqtt is accepted: {}", done.stderr);
    let mut bad = args;
    bad.extend(strings(&["--tls-alpn", "x-other"]));
    let done = run_pub(&bad);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("ALPN"),
        "an ALPN the broker refuses is named: {}",
        done.stderr
    );
}

#[test]
fn wrong_path_is_reported_as_http_404() {
    let broker = WsBroker::aedes(&[]);
    let mut args = ws_args(broker.port);
    args.extend(strings(&["--ws-path", "/wrong", "-t", "a", "-m", "x"]));
    let done = run_pub(&args);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("HTTP 404") && done.stderr.contains("websocket path"),
        "stderr: {}",
        done.stderr
    );
}

#[test]
fn extra_header_reaches_the_websocket_upgrade() {
    let broker = WsBroker::aedes(&["--require-header", "Authorization:Bearer t0ken"]);
    let mut args = ws_args(broker.port);
    args.extend(strings(&["-t", "a", "-m", "x"]));
    let done = run_pub(&args);
    assert_eq!(
        done.code,
        Some(1),
        "without the header the upgrade is refused"
    );
    assert!(done.stderr.contains("HTTP 401"), "stderr: {}", done.stderr);
    args.extend(strings(&["--ws-header", "Authorization: Bearer t0ken"]));
    let done = run_pub(&args);
    assert_eq!(done.code, Some(0), "with it: {}", done.stderr);

    // A header the handshake owns is refused before connecting.
    args.extend(strings(&["--ws-header", "Sec-WebSocket-Key: x"]));
    let done = run_pub(&args);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("set by the websocket handshake"),
        "{}",
        done.stderr
    );
}

#[test]
fn ws_to_a_plain_mqtt_port_says_what_is_wrong() {
    let mosquitto = Broker::start();
    let mut args = ws_args(mosquitto.port);
    args.extend(strings(&["-t", "a", "-m", "x"]));
    let done = run_pub(&args);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("websocket handshake"),
        "stderr: {}",
        done.stderr
    );
}

fn ws_profile(port: u16, protocol: ProtocolVersion) -> Profile {
    Profile {
        host: "127.0.0.1".into(),
        port,
        protocol,
        transport: TransportKind::Ws,
        subscriptions: vec![SubscriptionSpec::new("worker/#", Qos::AtLeastOnce)],
        ..Profile::default()
    }
}

/// The window's path: a Connect through the worker, a subscription, a QoS 1
/// publish, and the packet records of the exchange.
fn worker_round_trip(profile: Profile) {
    let worker = Worker::spawn(None);
    worker.send(WorkerCommand::Connect {
        conn: 1,
        profile: Box::new(profile),
    });
    wait_connected(&worker, 1);
    wait_for(&worker, LIMIT, |e| match &e.kind {
        EventKind::Subscribed {
            granted: Some(_), ..
        } => Some(()),
        _ => None,
    });
    worker.send(WorkerCommand::Publish {
        conn: 1,
        token: 7,
        topic: "worker/echo".into(),
        payload: b"over websocket".to_vec(),
        qos: Qos::AtLeastOnce,
        retain: false,
        props: None,
    });
    let mut got_message = false;
    let mut acked = false;
    let mut puback_in = false;
    wait_for(&worker, LIMIT, |e| {
        match &e.kind {
            EventKind::Message(m) if m.topic == "worker/echo" => {
                assert_eq!(m.payload.as_ref(), b"over websocket");
                got_message = true;
            }
            EventKind::Published { token: 7, outcome } => {
                assert_eq!(outcome, &PublishOutcome::Acknowledged);
                acked = true;
            }
            EventKind::Packet(r) if r.dir == Direction::In && r.kind == PacketKind::Puback => {
                puback_in = true;
            }
            _ => {}
        }
        (got_message && acked && puback_in).then_some(())
    });
    worker.send(WorkerCommand::Disconnect { conn: 1 });
    wait_status(&worker, 1, LIMIT, |s| {
        matches!(s, ConnStatus::Disconnected { .. })
    });
}

#[test]
fn worker_connects_over_ws_with_mqtt311_and_mqtt5() {
    let aedes = WsBroker::aedes(&[]);
    worker_round_trip(ws_profile(aedes.port, ProtocolVersion::V311));
    let mosquitto = Broker::start();
    let gateway = WsBroker::gateway(mosquitto.port, &[]);
    worker_round_trip(ws_profile(gateway.port, ProtocolVersion::V5));
}

#[test]
fn worker_connects_over_wss_with_the_profile_tls_settings() {
    let pki = Pki::generate();
    let cert = pki.server_cert.display().to_string();
    let key = pki.server_key.display().to_string();
    let mosquitto = Broker::start();
    let gateway = WsBroker::gateway(mosquitto.port, &["--cert", &cert, "--key", &key]);
    let mut profile = ws_profile(gateway.port, ProtocolVersion::V5);
    profile.transport = TransportKind::Wss;
    profile.tls.ca_file = Some(pki.ca_cert.clone());
    worker_round_trip(profile);
}

#[test]
fn window_profile_with_websocket_transport_connects() {
    // The broker wants the path /ws and a header: both come from the form.
    let broker = WsBroker::aedes(&["--path", "/ws", "--require-header", "X-Site:plant 7"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = common::gui::app(dir.path());
    click(&mut harness, "Add");
    set_text(&mut harness, "Name", "websocket broker");
    set_text(&mut harness, "Host", "127.0.0.1");
    // A fixed port for the picture; the broker's own one after it.
    set_text(&mut harness, "Port", "8080");
    click(&mut harness, "WebSocket");
    set_text(&mut harness, "Path", "/ws");
    click(&mut harness, "Add header");
    set_text(&mut harness, "Header name 1", "X-Site");
    set_text(&mut harness, "Header value 1", "plant 7");
    set_text(&mut harness, "Client ID", "mqscope-snapshot");
    harness.key_press(egui::Key::Escape);
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("profile_websocket");
    set_text(&mut harness, "Port", &broker.port.to_string());
    click(&mut harness, "Connect");
    step_until(
        &mut harness,
        "'Connected since' in the connection bar",
        Duration::from_secs(10),
        |h| has_label_containing(h, "Connected since"),
    );
    let saved = ProfileStore::at(dir.path()).load().expect("profiles load");
    let p = saved
        .iter()
        .find(|p| p.port == broker.port)
        .expect("the profile is saved");
    assert_eq!(p.transport, TransportKind::Ws);
    assert_eq!(p.ws.path, "/ws");
    assert_eq!(
        p.ws.headers,
        [("X-Site".to_string(), "plant 7".to_string())]
    );
}

#[test]
fn plain_mqtt_to_a_websocket_port_suggests_the_websocket_transport() {
    let broker = WsBroker::aedes(&[]);
    for version in ["311", "5"] {
        let done = run_pub(&strings(&[
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-V",
            version,
            "-t",
            "a",
            "-m",
            "x",
        ]));
        assert_eq!(done.code, Some(1));
        assert!(
            done.stderr.contains("not valid MQTT") && done.stderr.contains("--ws"),
            "-V {version}: {}",
            done.stderr
        );
    }
}
