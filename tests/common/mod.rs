//! Shared harness of the integration tests: a real Mosquitto per test, test
//! certificates made on the fly, and helpers to drive the worker, the
//! mosquitto clients and our own binary.
//!
//! Every test binary includes this with `mod common;`; not every binary uses
//! every helper, hence the `dead_code` allowances.

#![allow(dead_code)]

pub mod gui;
pub mod pki;

#[allow(unused_imports)]
pub use pki::{Pki, TlsFiles};

use mqscope::mqtt::{ConnStatus, ConnectionId, Event, EventKind, Worker};
use mqscope::profile::{Profile, TlsSettings, TransportKind};
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MISSING: &str = "mosquitto is not installed: apt-get install -y mosquitto mosquitto-clients";
/// How long a broker may take to accept connections after (re)start.
const START_LIMIT: Duration = Duration::from_secs(10);

/// Settings of one test broker; see [`Broker::builder`].
#[derive(Clone, Debug, Default)]
pub struct BrokerBuilder {
    port: Option<u16>,
    password: Option<(String, String)>,
    tls: Option<TlsFiles>,
    require_certificate: bool,
    queue_qos0: bool,
    extra: Vec<String>,
}

impl BrokerBuilder {
    /// Only this user/password may connect (anonymous access is refused).
    pub fn password(mut self, user: &str, pass: &str) -> Self {
        self.password = Some((user.into(), pass.into()));
        self
    }

    /// The listener speaks TLS with these files instead of plain TCP.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Clients must present a certificate signed by the TLS CA.
    pub fn require_certificate(mut self, on: bool) -> Self {
        self.require_certificate = on;
        self
    }

    /// Queue QoS 0 messages for offline persistent sessions too.
    pub fn queue_qos0(mut self, on: bool) -> Self {
        self.queue_qos0 = on;
        self
    }

    /// One more line of mosquitto.conf (e.g. `max_queued_messages 0`).
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// A fixed port instead of a free one picked at random.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn start(self) -> Broker {
        if !Path::new(MOSQUITTO).exists() {
            panic!("{MISSING}");
        }
        let dir = tempfile::Builder::new()
            .prefix("mqscope-broker-")
            .tempdir()
            .expect("cannot create a tempdir for the broker");
        let password_file = self.password.as_ref().map(|(user, pass)| {
            let file = dir.path().join("passwords");
            let out = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg("-c")
                .arg(&file)
                .arg(user)
                .arg(pass)
                .output()
                .unwrap_or_else(|e| panic!("cannot run mosquitto_passwd ({e}): {MISSING}"));
            assert!(
                out.status.success(),
                "mosquitto_passwd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            file
        });
        let mut broker = Broker {
            port: 0,
            config: dir.path().join("mosquitto.conf"),
            log_path: dir.path().join("mosquitto.log"),
            child: None,
            settings: self.clone(),
            password_file,
            _dir: dir,
        };
        // A free port found by binding :0 can be taken by a parallel test
        // before mosquitto binds it: pick another one a few times.
        let mut last_failure = String::new();
        for _ in 0..5 {
            broker.port = self.port.unwrap_or_else(free_port);
            broker.write_config();
            match broker.launch() {
                Ok(()) => return broker,
                Err(failure) if self.port.is_none() => last_failure = failure,
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("{last_failure}");
    }
}

/// A Mosquitto process on 127.0.0.1, killed on drop.
pub struct Broker {
    pub port: u16,
    config: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    settings: BrokerBuilder,
    password_file: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// An anonymous plain-TCP broker on a free port.
    pub fn start() -> Broker {
        Broker::builder().start()
    }

    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// Everything mosquitto wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The TLS files the listener uses, if it speaks TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.settings.tls.as_ref()
    }

    /// The user/password the broker accepts, if it has a password file.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.settings
            .password
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Kills mosquitto (no clean shutdown: clients see the socket close).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Stops and starts mosquitto again on the same port with the same config.
    pub fn restart(&mut self) {
        self.stop();
        // Mosquitto sets SO_REUSEADDR, but give the kernel a few tries anyway.
        let deadline = Instant::now() + START_LIMIT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(failure) if Instant::now() > deadline => panic!("{failure}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits until the broker's log contains `needle`; false on time-out.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the client `client_id` has subscribed to `filter` (the
    /// config logs subscriptions), so a publish after this reaches it.
    pub fn wait_subscribed(&self, client_id: &str, filter: &str) {
        let found = {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let log = self.log();
                let hit = log.lines().any(|line| {
                    // "<time>: <client id> <qos> <filter>"
                    let mut words = line.split_whitespace().skip(1);
                    words.next() == Some(client_id)
                        && words.next().is_some_and(|q| q.parse::<u8>().is_ok())
                        && words.next() == Some(filter)
                        && words.next().is_none()
                });
                if hit {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        assert!(
            found,
            "client {client_id} never subscribed to {filter}; broker log:\n{}",
            self.log()
        );
    }

    fn write_config(&self) {
        let s = &self.settings;
        let mut conf = String::new();
        // As root, mosquitto drops to user `mosquitto`, who cannot read our
        // tempdir; `user root` keeps it as is (ignored when not root).
        conf.push_str("user root\n");
        conf.push_str("persistence false\n");
        conf.push_str("log_dest stderr\n");
        for kind in ["error", "warning", "notice", "information", "subscribe"] {
            conf.push_str(&format!("log_type {kind}\n"));
        }
        for line in &s.extra {
            conf.push_str(line);
            conf.push('\n');
        }
        conf.push_str(&format!("listener {} 127.0.0.1\n", self.port));
        match &self.password_file {
            Some(file) => {
                conf.push_str("allow_anonymous false\n");
                conf.push_str(&format!("password_file {}\n", file.display()));
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        if let Some(tls) = &s.tls {
            conf.push_str(&format!("cafile {}\n", tls.ca_cert.display()));
            conf.push_str(&format!("certfile {}\n", tls.server_cert.display()));
            conf.push_str(&format!("keyfile {}\n", tls.server_key.display()));
            if s.require_certificate {
                conf.push_str("require_certificate true\n");
            }
        }
        if s.queue_qos0 {
            conf.push_str("queue_qos0_messages true\n");
        }
        std::fs::write(&self.config, conf).expect("cannot write mosquitto.conf");
    }

    /// Starts mosquitto and waits until the port accepts connections.
    fn launch(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("cannot open the broker log");
        let log2 = log.try_clone().expect("cannot clone the log handle");
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {MOSQUITTO} ({e}): {MISSING}"));
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "mosquitto exited ({status}) on port {}; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                return Err(format!(
                    "mosquitto did not accept connections on port {} within {START_LIMIT:?}; log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

/// A profile that reaches `broker`: its port, its credentials, and for a TLS
/// broker the TLS transport with its CA. No subscriptions, fresh client id.
pub fn profile_for(broker: &Broker) -> Profile {
    let mut profile = Profile {
        name: format!("test broker {}", broker.port),
        host: "127.0.0.1".into(),
        port: broker.port,
        subscriptions: Vec::new(),
        ..Profile::default()
    };
    if let Some((user, pass)) = broker.credentials() {
        profile.username = user.into();
        profile.password = pass.into();
    }
    if let Some(tls) = broker.tls() {
        profile.transport = TransportKind::Tls;
        profile.tls = TlsSettings {
            ca_file: Some(tls.ca_cert.clone()),
            ..TlsSettings::default()
        };
    }
    profile
}

/// `-h 127.0.0.1 -p PORT` plus `--cafile` for a TLS broker.
fn client_args(broker: &Broker) -> Vec<String> {
    let mut args = vec![
        "-h".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        broker.port.to_string(),
    ];
    if let Some(tls) = broker.tls() {
        args.push("--cafile".into());
        args.push(tls.ca_cert.display().to_string());
    }
    if let Some((user, pass)) = broker.credentials() {
        args.extend(["-u".into(), user.into(), "-P".into(), pass.into()]);
    }
    args
}

/// Starts `mosquitto_sub` against `broker` (host, port, CA and credentials
/// filled in) with `args`; stdout and stderr are piped.
pub fn mosquitto_sub(broker: &Broker, args: &[&str]) -> Child {
    Command::new("mosquitto_sub")
        .args(client_args(broker))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_sub ({e}): {MISSING}"))
}

/// Runs `mosquitto_pub` against `broker` to completion and asserts success.
pub fn mosquitto_pub(broker: &Broker, args: &[&str]) -> Output {
    let out = Command::new("mosquitto_pub")
        .args(client_args(broker))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_pub ({e}): {MISSING}"));
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running subscriber process (ours or mosquitto_sub) whose stdout lines
/// arrive on a channel, so a test can wait for them with a time limit.
pub struct Lines {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::process::ChildStderr>,
}

impl Lines {
    /// Takes over `child`'s piped stdout (and stderr, read on `finish`).
    pub fn new(mut child: Child) -> Lines {
        let stdout = child.stdout.take().expect("stdout must be piped");
        let stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            child,
            lines: rx,
            stderr,
        }
    }

    /// The next stdout line, or None after `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits for the process to exit (killing it after `timeout`) and returns
    /// its exit code (None when killed) and its stderr.
    pub fn finish(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.child.kill().ok();
                    self.child.wait().ok();
                    break None;
                }
            }
        };
        let mut err = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            stderr.read_to_string(&mut err).ok();
        }
        (status.and_then(|s| s.code()), err)
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Our own binary, with a fresh config directory so tests never touch the
/// user's profiles.
pub fn mqscope() -> Command {
    let config = tempfile::Builder::new()
        .prefix("mqscope-config-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("cannot create a config dir")
        // The Command outlives this function; target/tmp is scratch space.
        .keep();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqscope"));
    cmd.env("MQSCOPE_CONFIG_DIR", config);
    // Saved passwords stay in the test's own directory, never in the
    // keyring of the machine running the tests (tests/keyring.rs brings its
    // own Secret Service).
    cmd.env(mqscope::profile::NO_KEYRING_ENV, "1");
    cmd.stdin(Stdio::null());
    cmd
}

/// `-h 127.0.0.1 -p PORT` (and `--cafile`, `-u`, `-P` when the broker needs
/// them), for `mqscope sub` / `mqscope pub` as for the mosquitto clients.
pub fn mqscope_connection_args(broker: &Broker) -> Vec<String> {
    client_args(broker)
}

/// How a finished process ended.
#[derive(Debug)]
pub struct Finished {
    /// None when it was killed at the time limit (or by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Finished {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_string(&mut text).ok();
            }
            text
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                child.kill().ok();
                child.wait().ok();
                break None;
            }
        }
    };
    Finished {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Receives worker events until `pred` returns `Some`; panics after `timeout`
/// listing the events seen.
pub fn wait_for<T>(
    worker: &Worker,
    timeout: Duration,
    mut pred: impl FnMut(&Event) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "condition not met within {timeout:?}; {} events seen:\n{}",
                seen.len(),
                format_events(&seen)
            );
        }
        if let Some(event) = worker.recv_timeout(left) {
            if let Some(found) = pred(&event) {
                return found;
            }
            seen.push(event);
        }
    }
}

/// Waits for a status of `conn` that `pred` accepts; returns it.
pub fn wait_status(
    worker: &Worker,
    conn: ConnectionId,
    timeout: Duration,
    mut pred: impl FnMut(&ConnStatus) -> bool,
) -> ConnStatus {
    wait_for(worker, timeout, |e| match &e.kind {
        EventKind::Status(s) if e.conn == conn && pred(s) => Some(s.clone()),
        _ => None,
    })
}

/// Waits until `conn` is connected; returns its `session_present` flag.
pub fn wait_connected(worker: &Worker, conn: ConnectionId) -> bool {
    match wait_status(worker, conn, Duration::from_secs(10), |s| {
        matches!(s, ConnStatus::Connected { .. })
    }) {
        ConnStatus::Connected {
            session_present, ..
        } => session_present,
        _ => unreachable!("wait_status returned a status the predicate refused"),
    }
}

/// Every event that arrives during `duration`.
pub fn collect_for(worker: &Worker, duration: Duration) -> Vec<Event> {
    let deadline = Instant::now() + duration;
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return events;
        }
        if let Some(event) = worker.recv_timeout(left) {
            events.push(event);
        }
    }
}

/// Debug lines of the events, packet records left out when there are many.
pub fn format_events(events: &[Event]) -> String {
    const MAX: usize = 200;
    let shown: Vec<&Event> = if events.len() > MAX {
        events
            .iter()
            .filter(|e| !matches!(e.kind, EventKind::Packet(_)))
            .collect()
    } else {
        events.iter().collect()
    };
    let skip = shown.len().saturating_sub(MAX);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("  ... {skip} earlier events\n"));
    }
    for e in &shown[skip..] {
        out.push_str(&format!("  {e:?}\n"));
    }
    out
}

/// Reads a whole file into a string (for assertions on generated files).
pub fn read(path: &Path) -> String {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    s
}
