//! The sandbox: an MQTT broker inside mqscope plus simulated devices, so a
//! new user sees MQTT traffic within seconds with nothing else installed.
//!
//! `Sandbox::start` runs the broker on 127.0.0.1 on its own thread and tokio
//! runtime (separate from the GUI worker's, so stopping one never stalls the
//! other). Standard clients (mosquitto_sub/pub, paho, MQTT.js) can join on
//! the port it reports; optionally also over TLS (with the sandbox's own
//! CA, [`certs`]) and websockets, with Mosquitto-format users and ACLs
//! ([`auth`]).

mod admit;
pub mod auth;
pub mod book;
pub mod broker;
pub mod certs;
pub mod cli;
mod codec;
pub mod devices;
pub mod sys;
pub mod tls;
mod trie;
pub mod ws;

pub use broker::{Broker, BrokerStats, Fault, Limits, Security};
pub use certs::CertFolder;
pub use cli::{SandboxArgs, run_sandbox};
pub use devices::{DemoConfig, demo_topics, example_commands};

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use tokio::sync::{oneshot, watch};

/// The port MQTT clients try first.
pub const DEFAULT_PORT: u16 = 1883;
/// The cloud broker's port when free.
pub const DEFAULT_CLOUD_PORT: u16 = 1884;

/// The sandbox's second broker, playing the book's cloud MQTT provider
/// (PubNub in chapter 6): the surfboard monitor publishes its summaries
/// there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CloudBroker {
    /// 1884 if free, else any free port.
    #[default]
    Auto,
    /// Exactly this port, or an error; 0: any free port.
    Port(u16),
    /// No cloud broker.
    Off,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxConfig {
    /// `None`: 1883 if free, else any free port. `Some(0)`: any free port.
    /// `Some(p)`: exactly `p`, or an error.
    pub port: Option<u16>,
    pub demo: DemoConfig,
    pub cloud: CloudBroker,
    /// A TLS listener beside the plain one.
    pub tls: Option<TlsOptions>,
    /// A websocket listener (MQTT over ws://): `Some(0)` any free port.
    pub ws_port: Option<u16>,
    /// Password and ACL files (Mosquitto's formats).
    pub auth: AuthOptions,
}

/// The TLS listener's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsOptions {
    /// `None`: 8883 if free, else any free port. `Some(0)`: any free port.
    pub port: Option<u16>,
    /// Refuse clients without a certificate signed by the sandbox CA.
    pub require_certificate: bool,
    /// Where the certificates live; `None`: [`certs::default_dir`].
    pub certs: Option<PathBuf>,
    /// Also MQTT over websockets inside TLS (wss://) on this port (`0`:
    /// any free port), with the same certificates and client rule.
    pub wss_port: Option<u16>,
}

/// Mosquitto's `password_file`, `acl_file` and `allow_anonymous`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthOptions {
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    /// With a password file: let clients without a user name in.
    pub allow_anonymous: bool,
}

impl SandboxConfig {
    /// What the window starts: the plain listener and a TLS one with the
    /// certificates in the user's data folder.
    pub fn gui_default() -> SandboxConfig {
        SandboxConfig {
            tls: Some(TlsOptions::default()),
            ..SandboxConfig::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source} (is another broker running there? choose another port)"
    )]
    Bind { port: u16, source: std::io::Error },
    #[error(
        "cannot listen for the sandbox's cloud broker on 127.0.0.1:{port}: {source} (choose another cloud port, or none)"
    )]
    CloudBind { port: u16, source: std::io::Error },
    #[error("cannot start the sandbox broker: {0}")]
    Runtime(std::io::Error),
    #[error("sandbox TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("sandbox users: {0}")]
    Auth(#[from] auth::AuthFileError),
}

/// A running sandbox broker (and its devices). Stops on `stop()` or drop.
pub struct Sandbox {
    port: u16,
    tls_port: Option<u16>,
    ws_port: Option<u16>,
    wss_port: Option<u16>,
    /// The certificate folder, when TLS is on.
    certs: Option<CertFolder>,
    require_certificate: bool,
    broker: Broker,
    /// The cloud broker and its port, when it runs.
    cloud: Option<(u16, Broker)>,
    demo: watch::Sender<DemoConfig>,
    started_at: SystemTime,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sandbox {
    pub fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        Self::start_with(config, Limits::default())
    }

    /// Starts with other bounds than Mosquitto-like defaults (tests, the
    /// CLI's `--max-connections` and friends).
    pub fn start_with(config: SandboxConfig, limits: Limits) -> Result<Sandbox, SandboxError> {
        let security = config.auth.load()?;
        let tls = match &config.tls {
            Some(t) => {
                let dir = match &t.certs {
                    Some(d) => d.clone(),
                    None => certs::default_dir().map_err(tls::TlsError::from)?,
                };
                let folder = CertFolder::ensure(&dir).map_err(tls::TlsError::from)?;
                let acceptor = tls::acceptor(&folder, t.require_certificate)?;
                let listener = bind(t.port, tls::DEFAULT_TLS_PORT)?;
                let wss = t.wss_port.map(|p| bind(Some(p), 0)).transpose()?;
                Some((folder, acceptor, listener, wss))
            }
            None => None,
        };
        let ws = config.ws_port.map(|p| bind(Some(p), 0)).transpose()?;
        let listener = bind(config.port, DEFAULT_PORT)?;
        let port = listener.local_addr().map_err(SandboxError::Runtime)?.port();
        listener
            .set_nonblocking(true)
            .map_err(SandboxError::Runtime)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mqscope-sandbox")
            .enable_all()
            .build()
            .map_err(SandboxError::Runtime)?;
        let local_port = |l: &StdListener| l.local_addr().map(|a| a.port()).ok();
        let tls_port = tls.as_ref().and_then(|(_, _, l, _)| local_port(l));
        let wss_port = tls
            .as_ref()
            .and_then(|(_, _, _, w)| w.as_ref())
            .and_then(local_port);
        let ws_port = ws.as_ref().and_then(local_port);
        let to_tokio = |l: StdListener| {
            let _entered = rt.enter();
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        };
        let listener = to_tokio(listener).map_err(SandboxError::Runtime)?;
        let (certs, tls) = match tls {
            Some((folder, acceptor, l, wss)) => (
                Some(folder),
                Some((
                    acceptor,
                    to_tokio(l).map_err(SandboxError::Runtime)?,
                    wss.map(to_tokio)
                        .transpose()
                        .map_err(SandboxError::Runtime)?,
                )),
            ),
            None => (None, None),
        };
        let ws = ws
            .map(to_tokio)
            .transpose()
            .map_err(SandboxError::Runtime)?;
        let cloud_listener = match config.cloud {
            CloudBroker::Off => None,
            CloudBroker::Auto => Some(
                at_port(DEFAULT_CLOUD_PORT)
                    .or_else(|_| at_port(0))
                    .map_err(|e| cloud_error(DEFAULT_CLOUD_PORT, e))?,
            ),
            CloudBroker::Port(p) => Some(at_port(p).map_err(|e| cloud_error(p, e))?),
        };
        let cloud_listener = match cloud_listener {
            Some(l) => {
                let cloud_port = l.local_addr().map_err(SandboxError::Runtime)?.port();
                Some((cloud_port, to_tokio(l).map_err(SandboxError::Runtime)?))
            }
            None => None,
        };
        let cloud = cloud_listener
            .as_ref()
            .map(|(p, _)| (*p, Broker::with_limits(limits.clone())));
        let broker = Broker::with_security(limits, security);
        // The devices log in with the broker's own secret: a password file
        // or an ACL never locks the sandbox out of its own demo.
        broker.register_device_login(port);
        let started_at = SystemTime::now();
        let (demo_tx, demo_rx) = watch::channel(config.demo);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let b = broker.clone();
        let cloud_served = cloud_listener.zip(cloud.as_ref().map(|(_, b)| b.clone()));
        let cloud_port = cloud.as_ref().map(|(p, _)| *p);
        let thread = std::thread::Builder::new()
            .name("mqscope-sandbox".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::spawn(b.clone().serve(listener));
                    if let Some((acceptor, l, wss)) = tls {
                        if let Some(w) = wss {
                            tokio::spawn(ws::serve_tls(b.clone(), w, acceptor.clone()));
                        }
                        tokio::spawn(tls::serve(b.clone(), l, acceptor));
                    }
                    if let Some(l) = ws {
                        tokio::spawn(ws::serve(b.clone(), l));
                    }
                    let cloud_broker = match cloud_served {
                        Some(((_, listener), cb)) => {
                            tokio::spawn(cb.clone().serve(listener));
                            Some(cb)
                        }
                        None => None,
                    };
                    tokio::spawn(devices::run(
                        b.clone(),
                        port,
                        cloud_port,
                        started_at,
                        demo_rx,
                    ));
                    shutdown_rx.await.ok();
                    // MQTT 5 clients are told (DISCONNECT 0x8B) before the
                    // sockets close.
                    b.shutdown();
                    if let Some(cb) = &cloud_broker {
                        cb.shutdown();
                    }
                    let clients = || {
                        b.stats().clients + cloud_broker.as_ref().map_or(0, |c| c.stats().clients)
                    };
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
                    while clients() > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                });
                // Dropping the tasks closes every socket: clients see the
                // broker go away, as when Mosquitto stops.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(SandboxError::Runtime)?;
        Ok(Sandbox {
            port,
            tls_port,
            ws_port,
            wss_port,
            require_certificate: config.tls.as_ref().is_some_and(|t| t.require_certificate),
            certs,
            broker,
            cloud,
            demo: demo_tx,
            started_at,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The port on 127.0.0.1 that clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cloud broker's port on 127.0.0.1, when it runs.
    pub fn cloud_port(&self) -> Option<u16> {
        self.cloud.as_ref().map(|(p, _)| *p)
    }

    /// The cloud broker itself, when it runs.
    pub fn cloud_broker(&self) -> Option<&Broker> {
        self.cloud.as_ref().map(|(_, b)| b)
    }

    /// The TLS listener's port on 127.0.0.1, if there is one.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The websocket listener's port on 127.0.0.1, if there is one.
    pub fn ws_port(&self) -> Option<u16> {
        self.ws_port
    }

    /// The websocket-over-TLS listener's port, if there is one.
    pub fn wss_port(&self) -> Option<u16> {
        self.wss_port
    }

    /// The certificate folder (CA, server and client certificates), when
    /// the TLS listener is on.
    pub fn certs(&self) -> Option<&CertFolder> {
        self.certs.as_ref()
    }

    /// Whether TLS clients must present a certificate.
    pub fn requires_certificate(&self) -> bool {
        self.require_certificate
    }

    /// The command lines (the book's style) that work against this sandbox
    /// as it runs: plain, and over TLS with the CA and board001's
    /// certificate.
    pub fn example_command_lines(&self) -> Vec<String> {
        let port = self.port;
        let topic = "vehicles/vehiclepi01/executedcommands";
        let mut lines = vec![
            format!("mosquitto_sub -V mqttv311 -h 127.0.0.1 -p {port} -t '#' -v"),
            format!("mosquitto_pub -V mqttv311 -h 127.0.0.1 -p {port} -t {topic} -m 'hello'"),
        ];
        if let (Some(tls), Some(c)) = (self.tls_port, &self.certs) {
            let ca = c.ca_cert();
            let (crt, key) = c.client("board001");
            let creds = format!(
                "--cafile {} --cert {} --key {}",
                shell_quote(&ca.display().to_string()),
                shell_quote(&crt.display().to_string()),
                shell_quote(&key.display().to_string())
            );
            lines.push(format!(
                "mosquitto_sub -V mqttv311 -h localhost -p {tls} {creds} -t {topic} -d"
            ));
            lines.push(format!(
                "mosquitto_pub -V mqttv311 -h localhost -p {tls} {creds} -t {topic} -m 'hello over TLS' -d"
            ));
        }
        if let Some(ws) = self.ws_port {
            lines.push(format!("MQTT.js: mqtt.connect('ws://127.0.0.1:{ws}/mqtt')"));
        }
        if let Some(wss) = self.wss_port {
            lines.push(format!(
                "MQTT.js: mqtt.connect('wss://localhost:{wss}/mqtt', {{ ca, cert, key }})"
            ));
        }
        lines
    }

    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    pub fn stats(&self) -> BrokerStats {
        self.broker.stats()
    }

    /// The broker itself, e.g. to publish as the sandbox.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The simulated devices as they are configured now.
    pub fn demo(&self) -> DemoConfig {
        self.demo.borrow().clone()
    }

    /// Switches devices on or off and changes rates while running.
    pub fn set_demo(&self, demo: DemoConfig) {
        self.demo.send_replace(demo);
    }

    /// Stops the broker and the devices; returns when the port is free.
    pub fn stop(&mut self) {
        self.broker.forget_device_login(self.port);
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

fn at_port(p: u16) -> std::io::Result<StdListener> {
    StdListener::bind(("127.0.0.1", p))
}

fn cloud_error(port: u16, source: std::io::Error) -> SandboxError {
    SandboxError::CloudBind { port, source }
}

/// `None`: `default` if free, else any free port.
fn bind(port: Option<u16>, default: u16) -> Result<StdListener, SandboxError> {
    let at = |p: u16| {
        StdListener::bind(("127.0.0.1", p)).map_err(|source| SandboxError::Bind { port: p, source })
    };
    match port {
        Some(p) => at(p),
        None => at(default).or_else(|_| at(0)),
    }
}

/// A path as a shell word (quoted only when it needs it).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl AuthOptions {
    fn load(&self) -> Result<Security, auth::AuthFileError> {
        Ok(Security {
            passwords: self
                .password_file
                .as_deref()
                .map(auth::PasswordFile::load)
                .transpose()?,
            acl: self
                .acl_file
                .as_deref()
                .map(auth::AclFile::load)
                .transpose()?,
            allow_anonymous: self.allow_anonymous,
        })
    }
}

/// Accepts clients on `listener` until the task is dropped, each served by
/// its own task (`serve(broker, stream, peer)`); a failed accept is logged
/// as `"{what} accept failed"` and retried after a short pause.
pub(crate) async fn accept_each<F, Fut>(
    broker: Broker,
    listener: tokio::net::TcpListener,
    what: &'static str,
    serve: F,
) where
    F: Fn(Broker, tokio::net::TcpStream, std::net::SocketAddr, admit::Admission) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Counted from here, handshake included (`max_connections`).
                let Some(admission) = broker.admit(peer, what) else {
                    continue;
                };
                stream.set_nodelay(true).ok();
                tokio::spawn(serve(broker.clone(), stream, peer, admission));
            }
            Err(e) => {
                broker.log(format!("{what} accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
