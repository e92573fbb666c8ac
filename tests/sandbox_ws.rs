//! MQTT over websockets on the sandbox, with the client browsers use:
//! MQTT.js (installed by the test with npm into target/tmp, once). Also
//! MQTT.js as an MQTT 5 client that accepts topic aliases: the sandbox's
//! aliased deliveries arrive with the right topics.

mod sandbox_util;

use mqscope::sandbox::{DemoConfig, Sandbox, SandboxConfig, TlsOptions};
use rumqttc::mqttbytes::QoS;
use sandbox_util::{Client, WAIT, run, wait_log, wait_subscriptions, wait_until};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The MQTT.js package directory, installed on first use (npm and node
/// must be installed; `.ci/test` installs them).
fn mqttjs() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mqttjs");
    let package = dir.join("node_modules").join("mqtt");
    if !package.join("package.json").exists() {
        std::fs::create_dir_all(&dir).expect("cannot create the npm folder");
        let out = Command::new("npm")
            .args(["install", "--prefix"])
            .arg(&dir)
            .args(["mqtt@5", "--no-audit", "--no-fund", "--silent"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm (apt-get install nodejs npm): {e}"));
        assert!(
            out.status.success() && package.join("package.json").exists(),
            "npm install mqtt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    package
}

const SCRIPT: &str = r#"
const mqtt = require(MQTTJS_PATH);
const fs = require('fs');
const [url, version, aliasMax, count, certs, client] = process.argv.slice(2);
const opts = {
  protocolVersion: Number(version),
  clientId: 'mqttjs-' + version,
  reconnectPeriod: 0,
  connectTimeout: 5000,
};
if (certs) {
  opts.ca = fs.readFileSync(certs + '/ca.crt');
  if (client) {
    opts.cert = fs.readFileSync(certs + '/' + client + '.crt');
    opts.key = fs.readFileSync(certs + '/' + client + '.key');
  }
}
if (Number(aliasMax) > 0) opts.properties = { topicAliasMaximum: Number(aliasMax) };
const c = mqtt.connect(url, opts);
let n = 0;
c.on('connect', () => {
  c.subscribe('js/#', { qos: 1 }, (err, granted) => {
    if (err) { console.log('subscribe error ' + err.message); process.exit(2); }
    console.log('subscribed ' + granted.map((g) => g.qos).join(','));
    c.publish('js/from-mqttjs', 'hello from MQTT.js', { qos: 1 });
  });
});
c.on('message', (topic, payload, packet) => {
  const alias = packet.properties && packet.properties.topicAlias;
  console.log('message ' + topic + ' ' + payload.toString() + (alias ? ' alias=' + alias : ''));
  if (++n >= Number(count)) c.end(false, {}, () => process.exit(0));
});
c.on('error', (e) => { console.log('error ' + e.message); process.exit(3); });
"#;

fn node(url: &str, version: u8, alias_max: u16, count: usize) -> (Client, tempfile::TempDir) {
    node_tls(url, version, alias_max, count, &[])
}

/// `tls`: the certificate folder, and a client certificate's name.
fn node_tls(
    url: &str,
    version: u8,
    alias_max: u16,
    count: usize,
    tls: &[&str],
) -> (Client, tempfile::TempDir) {
    let package = mqttjs();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("client.js");
    let path = serde_json::to_string(&package.display().to_string()).expect("a JSON string");
    std::fs::write(&script, SCRIPT.replace("MQTTJS_PATH", &path)).expect("write the script");
    let script = script.display().to_string();
    let (version, alias_max, count) = (
        version.to_string(),
        alias_max.to_string(),
        count.to_string(),
    );
    let mut args = vec![script.as_str(), url, &version, &alias_max, &count];
    args.extend_from_slice(tls);
    let client = Client::spawn("node", &args);
    (client, dir)
}

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        ws_port: Some(0),
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"))
}

#[test]
fn mqttjs_over_websockets_exchanges_messages_with_tcp_clients() {
    let s = sandbox();
    let ws = s.ws_port().expect("a websocket port");
    let p = s.port().to_string();
    for version in [4u8, 5] {
        // The last round's clients are gone (their subscriptions are removed
        // as their connections close), so the count below is this round's.
        wait_until(
            Duration::from_secs(20),
            "the last round's subscriptions gone",
            || s.stats().subscriptions == 0,
        );
        let tcp = Client::spawn(
            "mosquitto_sub",
            &["-p", &p, "-t", "js/from-mqttjs", "-C", "1"],
        );
        wait_subscriptions(&s, 1);
        let url = format!("ws://127.0.0.1:{ws}/mqtt");
        let (js, _dir) = node(&url, version, 0, 2);
        assert_eq!(
            js.next_line(WAIT).as_deref(),
            Some("subscribed 1"),
            "MQTT.js v{version} did not subscribe"
        );
        // MQTT.js → a TCP client, and back.
        assert_eq!(tcp.next_line(WAIT).as_deref(), Some("hello from MQTT.js"));
        assert_eq!(
            js.next_line(WAIT).as_deref(),
            Some("message js/from-mqttjs hello from MQTT.js")
        );
        let (ok, _, err) = run(
            "mosquitto_pub",
            &[
                "-p",
                &p,
                "-q",
                "1",
                "-t",
                "js/from-tcp",
                "-m",
                "hello from tcp",
            ],
        );
        assert!(ok, "{err}");
        assert_eq!(
            js.next_line(WAIT).as_deref(),
            Some("message js/from-tcp hello from tcp")
        );
    }
}

#[test]
fn mqttjs_v5_gets_aliased_deliveries_with_the_right_topics() {
    let s = sandbox();
    let ws = s.ws_port().expect("a websocket port");
    let url = format!("ws://127.0.0.1:{ws}/");
    let (js, _dir) = node(&url, 5, 10, 5);
    assert_eq!(js.next_line(WAIT).as_deref(), Some("subscribed 1"));
    assert_eq!(
        js.next_line(WAIT).as_deref(),
        Some("message js/from-mqttjs hello from MQTT.js alias=1")
    );
    for (topic, payload) in [("js/a", "1"), ("js/a", "2"), ("js/b", "3"), ("js/a", "4")] {
        s.broker().publish(topic, payload, QoS::AtLeastOnce, false);
    }
    for want in [
        "message js/a 1 alias=2",
        "message js/a 2 alias=2",
        "message js/b 3 alias=3",
        "message js/a 4 alias=2",
    ] {
        assert_eq!(js.next_line(WAIT).as_deref(), Some(want));
    }
}

#[test]
fn a_plain_http_request_on_the_websocket_port_is_refused_and_logged() {
    let s = sandbox();
    let ws = s.ws_port().expect("a websocket port");
    let mut sock =
        std::net::TcpStream::connect(("127.0.0.1", ws)).expect("connect to the websocket port");
    sock.write_all(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    let line = wait_log(&s, "websocket handshake refused");
    assert!(line.contains("127.0.0.1:"), "{line}");
    // The broker still serves websocket clients.
    let (js, _dir) = node(&format!("ws://127.0.0.1:{ws}/mqtt"), 4, 0, 1);
    assert_eq!(js.next_line(WAIT).as_deref(), Some("subscribed 1"));
}

#[test]
fn mqttjs_over_wss_needs_a_certificate_from_the_sandbox_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let s = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        tls: Some(TlsOptions {
            port: Some(0),
            require_certificate: true,
            certs: Some(certs.clone()),
            wss_port: Some(0),
        }),
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"));
    let wss = s.wss_port().expect("a wss port");
    let url = format!("wss://localhost:{wss}/mqtt");
    let certs = certs.display().to_string();
    let (js, _dir) = node_tls(&url, 4, 0, 1, &[&certs, "board001"]);
    assert_eq!(js.next_line(WAIT).as_deref(), Some("subscribed 1"));
    assert_eq!(
        js.next_line(WAIT).as_deref(),
        Some("message js/from-mqttjs hello from MQTT.js")
    );
    // Without a client certificate: refused, and the log says who.
    let (js, _dir) = node_tls(&url, 4, 0, 1, &[&certs]);
    let line = js.next_line(WAIT).unwrap_or_default();
    assert!(line.starts_with("error"), "MQTT.js got in: {line}");
    let log = wait_log(&s, "(wss): TLS refused");
    assert!(log.contains("no client certificate"), "{log}");
}

#[test]
fn a_text_websocket_message_closes_only_that_client_with_a_log_line() {
    use tokio_tungstenite::tungstenite::{self, Message};
    let s = sandbox();
    let ws = s.ws_port().expect("a websocket port");
    let stream = std::net::TcpStream::connect(("127.0.0.1", ws)).expect("connect");
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://127.0.0.1:{ws}/mqtt"
    ))
    .expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("mqtt"),
    );
    let (mut socket, response) = tungstenite::client(request, stream).expect("handshake");
    assert_eq!(
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok()),
        Some("mqtt"),
        "the subprotocol is confirmed"
    );
    // A valid CONNECT first, in a binary message.
    let connect = sandbox_util::encode(&rumqttc::Packet::Connect(rumqttc::Connect::new("texter")));
    socket
        .send(Message::Binary(connect.into()))
        .expect("send CONNECT");
    match socket.read().expect("CONNACK") {
        Message::Binary(b) => assert_eq!(&b[..], &[0x20, 2, 0, 0]),
        other => panic!("expected a binary CONNACK, got {other:?}"),
    }
    socket
        .send(Message::Text("hello".into()))
        .expect("send text");
    let line = wait_log(&s, "client 'texter'");
    assert!(line.contains("text websocket message"), "{line}");
    // Others are not affected.
    let (js, _dir) = node(&format!("ws://127.0.0.1:{ws}/mqtt"), 4, 0, 1);
    assert_eq!(js.next_line(WAIT).as_deref(), Some("subscribed 1"));
}
