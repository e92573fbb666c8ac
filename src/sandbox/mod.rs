//! The sandbox: an MQTT broker inside mqscope plus simulated devices, so a
//! new user sees MQTT traffic within seconds with nothing else installed.
//!
//! `Sandbox::start` runs the broker on 127.0.0.1 on its own thread and tokio
//! runtime (separate from the GUI worker's, so stopping one never stalls the
//! other). Standard clients (mosquitto_sub/pub, paho, MQTT.js) can join on
//! the port it reports.

pub mod auth;
pub mod broker;
pub mod certs;
pub mod cli;
mod codec;
pub mod devices;
pub mod sys;
pub mod tls;
mod trie;
pub mod ws;

pub use broker::{Broker, BrokerStats, Limits};
pub use cli::{SandboxArgs, run_sandbox};
pub use devices::{DemoConfig, demo_topics, example_commands};

use std::net::TcpListener as StdListener;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use tokio::sync::{oneshot, watch};

/// The port MQTT clients try first.
pub const DEFAULT_PORT: u16 = 1883;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxConfig {
    /// `None`: 1883 if free, else any free port. `Some(0)`: any free port.
    /// `Some(p)`: exactly `p`, or an error.
    pub port: Option<u16>,
    pub demo: DemoConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source} (is another broker running there? choose another port)"
    )]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot start the sandbox broker: {0}")]
    Runtime(std::io::Error),
}

/// A running sandbox broker (and its devices). Stops on `stop()` or drop.
pub struct Sandbox {
    port: u16,
    broker: Broker,
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
        let listener = bind(config.port)?;
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
        let listener = {
            let _entered = rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(SandboxError::Runtime)?
        };
        let broker = Broker::with_limits(limits);
        let started_at = SystemTime::now();
        let (demo_tx, demo_rx) = watch::channel(config.demo);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let b = broker.clone();
        let thread = std::thread::Builder::new()
            .name("mqscope-sandbox".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::spawn(b.clone().serve(listener));
                    tokio::spawn(devices::run(b.clone(), port, started_at, demo_rx));
                    shutdown_rx.await.ok();
                    // MQTT 5 clients are told (DISCONNECT 0x8B) before the
                    // sockets close.
                    b.shutdown();
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
                    while b.stats().clients > 0 && tokio::time::Instant::now() < deadline {
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
            broker,
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

fn bind(port: Option<u16>) -> Result<StdListener, SandboxError> {
    let at = |p: u16| {
        StdListener::bind(("127.0.0.1", p)).map_err(|source| SandboxError::Bind { port: p, source })
    };
    match port {
        Some(p) => at(p),
        None => at(DEFAULT_PORT).or_else(|_| at(0)),
    }
}
