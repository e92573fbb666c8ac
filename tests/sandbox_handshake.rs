//! TLS and websocket handshakes count against `max_connections` from the
//! moment the socket is accepted, and are bounded in time like CONNECT: a
//! flood of raw TCP connects to the TLS and websocket listeners that never
//! finish their handshake cannot open more sockets than the bound, cannot
//! starve clients that finish theirs, and is logged.

mod sandbox_util;

use mqscope::sandbox::{DemoConfig, Limits, Sandbox, SandboxConfig, TlsOptions};
use rumqttc::Packet;
use sandbox_util::{Client, Raw, WAIT, log, wait_log, wait_subscriptions, wait_until};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message};

/// The first bytes of a TLS ClientHello record (announcing 512 bytes that
/// never come).
const TLS_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00];
/// The start of a websocket upgrade request, never finished.
const WS_START: &[u8] = b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n";

struct Listeners {
    sandbox: Sandbox,
    certs: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Listeners {
    fn start(limits: Limits) -> Listeners {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let sandbox = Sandbox::start_with(
            SandboxConfig {
                port: Some(0),
                demo: DemoConfig::off(),
                tls: Some(TlsOptions {
                    port: Some(0),
                    require_certificate: false,
                    certs: Some(certs.clone()),
                    wss_port: None,
                }),
                ws_port: Some(0),
                ..SandboxConfig::default()
            },
            limits,
        )
        .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"));
        Listeners {
            sandbox,
            certs,
            _dir: dir,
        }
    }

    fn tls(&self) -> u16 {
        self.sandbox.tls_port().expect("a TLS port")
    }

    fn ws(&self) -> u16 {
        self.sandbox.ws_port().expect("a websocket port")
    }

    /// A connection that starts a TLS (even `i`) or websocket (odd `i`)
    /// handshake and never finishes it.
    fn stall(&self, i: usize) -> Raw {
        if i.is_multiple_of(2) {
            let mut r = Raw::open(self.tls());
            r.send_bytes(TLS_START);
            r
        } else {
            let mut r = Raw::open(self.ws());
            r.send_bytes(WS_START);
            r
        }
    }

    /// mosquitto_sub over TLS with the sandbox CA, staying connected.
    fn tls_subscriber(&self) -> Client {
        let port = self.tls().to_string();
        let ca = self.certs.join("ca.crt").display().to_string();
        let args = [
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "-t",
            "hs/#",
            "-v",
        ];
        Client::spawn("mosquitto_sub", &args)
    }

    /// A websocket client that completes the handshake and CONNECT.
    fn ws_client(&self, id: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
        let ws = self.ws();
        let stream = std::net::TcpStream::connect(("127.0.0.1", ws)).expect("connect");
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{ws}/mqtt"
        ))
        .expect("a request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tungstenite::http::HeaderValue::from_static("mqtt"),
        );
        let (mut socket, _) = tungstenite::client(request, stream).expect("websocket handshake");
        let connect = sandbox_util::encode(&Packet::Connect(rumqttc::Connect::new(id)));
        socket
            .send(Message::Binary(connect.into()))
            .expect("send CONNECT");
        match socket.read().expect("CONNACK") {
            Message::Binary(b) => assert_eq!(&b[..], &[0x20, 2, 0, 0], "CONNACK accepted"),
            other => panic!("expected a binary CONNACK, got {other:?}"),
        }
        socket
    }
}

#[test]
fn a_flood_of_unfinished_handshakes_stays_within_the_bound_and_good_clients_get_in() {
    let l = Listeners::start(Limits {
        max_connections: 4,
        ..Limits::default()
    });
    let stats = || l.sandbox.stats();
    // Four connections start a TLS or websocket handshake and stop.
    // (One at a time: the two listeners accept in parallel, and which is
    // oldest matters below.)
    let mut stalled: Vec<Raw> = (0..4)
        .map(|i| {
            let r = l.stall(i);
            wait_until(WAIT, "socket counted", || {
                stats().connections == i as u64 + 1
            });
            r
        })
        .collect();
    // More, right away: the unfinished ones are still young, so the new
    // ones are refused (closed at once), not let past the bound.
    for i in 0..6 {
        let mut extra = l.stall(i);
        assert!(extra.closed_within(WAIT), "extra connection {i} refused");
        assert!(stats().connections <= 4, "{:?}", stats());
    }
    assert_eq!(stats().refused, 6);
    let line = wait_log(
        &l.sandbox,
        "refused, already 4 connections (max_connections)",
    );
    assert_eq!(
        log(&l.sandbox).matches("refused, already 4").count(),
        1,
        "a flood is logged once a second, not line by line: {line}"
    );
    // Once they have had their chance (half a second), good clients get in:
    // each takes the slot of the oldest unfinished handshake.
    std::thread::sleep(Duration::from_millis(600));
    let tls = l.tls_subscriber();
    wait_subscriptions(&l.sandbox, 1);
    let mut ws = l.ws_client("ws-good");
    assert!(stats().connections <= 4, "{:?}", stats());
    assert_eq!(stats().evicted, 2, "{}", log(&l.sandbox));
    assert!(stalled[0].closed_within(WAIT), "oldest (TLS) closed");
    assert!(stalled[1].closed_within(WAIT), "next oldest (ws) closed");
    assert!(!stalled[2].closed_within(Duration::from_millis(200)));
    assert!(!stalled[3].closed_within(Duration::from_millis(200)));
    let line = wait_log(&l.sandbox, "to make room for a new connection");
    assert!(line.contains("unfinished after"), "{line}");
    // Both are served: the websocket client publishes, the TLS one gets it.
    let publish = rumqttc::Publish::new("hs/ws", rumqttc::QoS::AtMostOnce, "through");
    ws.send(Message::Binary(
        sandbox_util::encode(&Packet::Publish(publish)).into(),
    ))
    .expect("PUBLISH");
    assert_eq!(tls.next_line(WAIT).as_deref(), Some("hs/ws through"));
    drop(stalled);
}

#[test]
fn connected_clients_are_never_closed_to_make_room() {
    let l = Listeners::start(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let port = l.sandbox.port();
    let mut good: Vec<Raw> = (0..2)
        .map(|i| Raw::connect(port, &format!("kept-{i}"), true).0)
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..4 {
        let mut extra = l.stall(i);
        assert!(extra.closed_within(WAIT), "handshake {i} refused");
    }
    assert_eq!(l.sandbox.stats().evicted, 0);
    for g in &mut good {
        g.send(Packet::PingReq);
        assert_eq!(g.recv(WAIT), Some(Packet::PingResp));
    }
}

#[test]
fn unfinished_handshakes_are_closed_after_the_connect_timeout() {
    let l = Listeners::start(Limits {
        connect_timeout: Duration::from_millis(400),
        ..Limits::default()
    });
    let mut tls = l.stall(0);
    let mut ws = l.stall(1);
    assert!(tls.closed_within(WAIT));
    assert!(ws.closed_within(WAIT));
    wait_log(&l.sandbox, "no TLS handshake within 400ms, closed");
    wait_log(&l.sandbox, "no websocket handshake within 400ms, closed");
    wait_until(WAIT, "both sockets released", || {
        l.sandbox.stats().connections == 0
    });
}
