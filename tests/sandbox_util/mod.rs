//! Shared by the sandbox's test binaries: starting a sandbox, mosquitto
//! clients read line by line, and a raw-socket MQTT 3.1.1 client that can
//! say things well-behaved clients never say.
#![allow(dead_code)]

use bytes::BytesMut;
use mqscope::sandbox::{CloudBroker, DemoConfig, Limits, Sandbox, SandboxConfig};
use rumqttc::mqttbytes::QoS;
use rumqttc::{ConnAck, Connect, LastWill, Packet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(8);

pub fn start(demo: DemoConfig) -> Sandbox {
    start_with(demo, Limits::default())
}

pub fn start_with(demo: DemoConfig, limits: Limits) -> Sandbox {
    match Sandbox::start_with(
        SandboxConfig {
            port: Some(0),
            demo,
            cloud: CloudBroker::Port(0),
            ..SandboxConfig::default()
        },
        limits,
    ) {
        Ok(s) => s,
        Err(e) => panic!("sandbox did not start: {e}"),
    }
}

/// A broker alone, with these limits.
pub fn broker(limits: Limits) -> Sandbox {
    start_with(DemoConfig::off(), limits)
}

pub fn port_arg(s: &Sandbox) -> String {
    s.port().to_string()
}

/// Polls `cond` every 10 ms until it holds; fails the test after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not after {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the broker holds at least `n` subscriptions, so a publish
/// that follows cannot overtake a subscriber that is still connecting.
pub fn wait_subscriptions(s: &Sandbox, n: u64) {
    // A generous bound: a subscriber may be a Node.js process that starts
    // slowly on a loaded CI machine.
    wait_until(Duration::from_secs(20), "subscriptions", || {
        s.stats().subscriptions >= n
    });
}

pub fn wait_clients(s: &Sandbox, n: u64) {
    wait_until(Duration::from_secs(20), "clients", || {
        s.stats().clients >= n
    });
}

/// All of the broker's log so far, one string.
pub fn log(s: &Sandbox) -> String {
    s.broker().log_since(0).0.join("\n")
}

/// Waits for a log line containing `needle`.
pub fn wait_log(s: &Sandbox, needle: &str) -> String {
    let mut found = String::new();
    wait_until(WAIT, &format!("log line with '{needle}'"), || {
        let all = log(s);
        match all.lines().find(|l| l.contains(needle)) {
            Some(l) => {
                found = l.to_string();
                true
            }
            None => false,
        }
    });
    found
}

/// A mosquitto client whose stdout is read line by line as it arrives.
pub struct Client {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Client {
    pub fn spawn(program: &str, args: &[&str]) -> Client {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} (install mosquitto-clients): {e}"));
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Client { child, lines }
    }

    /// The first line that satisfies `pred`, within `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next line, whatever it is.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.wait_for(timeout, |_| true)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Runs a mosquitto client to completion; (exit ok, stdout, stderr).
pub fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install mosquitto-clients): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Proves the broker still serves well-behaved clients: a mosquitto_sub
/// receives what a mosquitto_pub sends.
pub fn assert_still_serves(s: &Sandbox) {
    let p = port_arg(s);
    let before = s.stats().subscriptions;
    let sub = Client::spawn("mosquitto_sub", &["-p", &p, "-t", "still/alive", "-C", "1"]);
    wait_subscriptions(s, before + 1);
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-t", "still/alive", "-m", "yes"],
    );
    assert!(ok, "mosquitto_pub failed: {err}");
    assert_eq!(sub.next_line(WAIT).as_deref(), Some("yes"));
}

pub fn encode(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = p.write(&mut out, usize::MAX) {
        panic!("cannot encode {p:?}: {e}");
    }
    out.to_vec()
}

/// A raw TCP MQTT 3.1.1 client: it sends exactly the bytes it is told to.
pub struct Raw {
    pub s: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub fn open(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot connect to the sandbox: {e}"));
        s.set_nodelay(true).ok();
        Raw {
            s,
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection and completes CONNECT/CONNACK.
    pub fn connect(port: u16, id: &str, clean: bool) -> (Raw, ConnAck) {
        Self::connect_with(port, id, clean, 60, None)
    }

    pub fn connect_with(
        port: u16,
        id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<LastWill>,
    ) -> (Raw, ConnAck) {
        let mut raw = Raw::open(port);
        let mut c = Connect::new(id);
        c.clean_session = clean;
        c.keep_alive = keep_alive;
        c.last_will = will;
        raw.send(Packet::Connect(c));
        match raw.recv(WAIT) {
            Some(Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub fn send(&mut self, p: Packet) {
        self.send_bytes(&encode(&p));
    }

    pub fn send_bytes(&mut self, b: &[u8]) {
        if let Err(e) = self.s.write_all(b) {
            panic!("write to the sandbox failed: {e}");
        }
    }

    /// Tries to send; false if the broker has closed the connection.
    pub fn try_send_bytes(&mut self, b: &[u8]) -> bool {
        self.s.write_all(b).is_ok()
    }

    pub fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.send(Packet::Subscribe(rumqttc::Subscribe::new(filter, qos)));
        match self.recv(WAIT) {
            Some(Packet::SubAck(_)) => {}
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// The next packet within `timeout`; None on timeout or close.
    pub fn recv(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match Packet::read(&mut self.buf, usize::MAX) {
                Ok(p) => return Some(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("the sandbox sent a malformed packet: {e}"),
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Raw bytes as they arrive (at most `n`), within `timeout`.
    pub fn recv_bytes(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut out = self.buf.split().to_vec();
        while out.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => out.extend_from_slice(&chunk[..k]),
            }
        }
        out
    }

    /// True if the broker closes the connection within `timeout` (whatever
    /// it sent before is discarded).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

pub use rumqttc::v5::mqttbytes::v5 as v5p;

pub fn encode5(p: &v5p::Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = p.write(&mut out, None) {
        panic!("cannot encode {p:?}: {e}");
    }
    out.to_vec()
}

/// A raw TCP MQTT 5 client (rumqttc's v5 codec, nothing else).
pub struct Raw5 {
    pub s: TcpStream,
    buf: BytesMut,
}

pub fn q5(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Raw5 {
    pub fn open(port: u16) -> Raw5 {
        let s = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot connect to the sandbox: {e}"));
        s.set_nodelay(true).ok();
        Raw5 {
            s,
            buf: BytesMut::new(),
        }
    }

    /// Connects with these CONNECT properties (and will); returns the
    /// CONNACK.
    pub fn connect_with(
        port: u16,
        id: &str,
        clean_start: bool,
        props: Option<v5p::ConnectProperties>,
        will: Option<v5p::LastWill>,
    ) -> (Raw5, v5p::ConnAck) {
        let mut raw = Raw5::open(port);
        let connect = v5p::Connect {
            keep_alive: 60,
            client_id: id.to_string(),
            clean_start,
            properties: props,
        };
        raw.send(v5p::Packet::Connect(connect, will, None));
        match raw.recv(WAIT) {
            Some(v5p::Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub fn connect(port: u16, id: &str) -> Raw5 {
        let (raw, ack) = Self::connect_with(port, id, true, None, None);
        assert_eq!(ack.code, v5p::ConnectReturnCode::Success);
        raw
    }

    pub fn send(&mut self, p: v5p::Packet) {
        if let Err(e) = self.s.write_all(&encode5(&p)) {
            panic!("write to the sandbox failed: {e}");
        }
    }

    pub fn subscribe(&mut self, filter: v5p::Filter, id: Option<usize>) -> v5p::SubAck {
        let props = id.map(|id| v5p::SubscribeProperties {
            id: Some(id),
            user_properties: Vec::new(),
        });
        let mut sub = v5p::Subscribe::new(filter, props);
        sub.pkid = 1;
        self.send(v5p::Packet::Subscribe(sub));
        match self.recv(WAIT) {
            Some(v5p::Packet::SubAck(a)) => a,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        payload: &str,
        props: Option<v5p::PublishProperties>,
    ) {
        let mut p = v5p::Publish::new(topic, q5(qos), payload.to_string(), props);
        p.pkid = u16::from(qos != QoS::AtMostOnce);
        self.send(v5p::Packet::Publish(p));
    }

    /// The next packet within `timeout`; None on timeout or close.
    pub fn recv(&mut self, timeout: Duration) -> Option<v5p::Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            match v5p::Packet::read(&mut self.buf, None) {
                Ok(p) => return Some(p),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("the sandbox sent a malformed packet: {e}"),
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let mut chunk = [0u8; 64 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// The next PUBLISH within `timeout`, skipping other packets.
    pub fn next_publish(&mut self, timeout: Duration) -> Option<v5p::Publish> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left)? {
                v5p::Packet::Publish(p) => return Some(p),
                _ => continue,
            }
        }
    }

    /// The DISCONNECT reason the broker sent before closing, if any.
    pub fn disconnect_reason(&mut self, timeout: Duration) -> Option<v5p::DisconnectReasonCode> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left)? {
                v5p::Packet::Disconnect(d) => return Some(d.reason_code),
                _ => continue,
            }
        }
    }
}
