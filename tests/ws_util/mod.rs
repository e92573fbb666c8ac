//! A real MQTT-over-websockets endpoint for the tests (Debian's Mosquitto
//! 2.0.11 cannot open a websockets listener): `tests/ws_broker/broker.mjs`
//! runs Aedes (MQTT 3.1.1) behind Node's `ws` server, or a websocket gateway
//! in front of a test Mosquitto (for MQTT 5), or an HTTP CONNECT proxy.
//! Started on a free port, killed on drop. `.ci/test` installs its npm
//! packages; a test run without them installs them once (`npm ci`).

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::mpsc;
use std::time::Duration;

fn broker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws_broker")
}

static INSTALL: Once = Once::new();

/// `npm ci` in tests/ws_broker when its packages are missing.
fn ensure_installed() {
    INSTALL.call_once(|| {
        let dir = broker_dir();
        if dir.join("node_modules/aedes").exists() && dir.join("node_modules/ws").exists() {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run npm ({e}): install Node.js and npm (apt-get install -y nodejs npm), or run .ci/test")
            });
        assert!(status.success(), "npm ci in {} failed", dir.display());
    });
}

/// A running `broker.mjs`.
pub struct WsBroker {
    pub port: u16,
    child: Child,
}

impl WsBroker {
    /// Aedes (MQTT 3.1.1) over ws:// at `/mqtt`, with `extra` options of
    /// broker.mjs (`--path`, `--cert`/`--key` for wss://, `--require-header`,
    /// `--alpn`).
    pub fn aedes(extra: &[&str]) -> WsBroker {
        WsBroker::start(extra)
    }

    /// A websocket gateway to the TCP broker at 127.0.0.1:`port` (Mosquitto,
    /// which speaks MQTT 5).
    pub fn gateway(port: u16, extra: &[&str]) -> WsBroker {
        let to = format!("127.0.0.1:{port}");
        let mut args = vec!["--bridge", to.as_str()];
        args.extend_from_slice(extra);
        WsBroker::start(&args)
    }

    /// A plain TLS front (no websocket) to the TCP broker at
    /// 127.0.0.1:`port`, with `extra` options (`--cert`, `--key`,
    /// `--tls-min`, `--tls-max`).
    pub fn tls_gateway(port: u16, extra: &[&str]) -> WsBroker {
        let to = format!("127.0.0.1:{port}");
        let mut args = vec!["--mode", "tls", "--bridge", to.as_str()];
        args.extend_from_slice(extra);
        WsBroker::start(&args)
    }

    /// An HTTP CONNECT proxy (with `--require-header Proxy-Authorization:…`
    /// it wants credentials).
    pub fn http_proxy(extra: &[&str]) -> WsBroker {
        let mut args = vec!["--mode", "proxy"];
        args.extend_from_slice(extra);
        WsBroker::start(&args)
    }

    fn start(args: &[&str]) -> WsBroker {
        ensure_installed();
        let mut child = Command::new("node")
            .arg(broker_dir().join("broker.mjs"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node ({e}): install Node.js (apt-get install -y nodejs)")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => line
                .strip_prefix("listening ")
                .and_then(|p| p.trim().parse::<u16>().ok())
                .unwrap_or_else(|| panic!("broker.mjs said '{line}', not 'listening PORT'")),
            Err(_) => {
                child.kill().ok();
                panic!("broker.mjs {args:?} did not start within 15 s");
            }
        };
        WsBroker { port, child }
    }
}

impl Drop for WsBroker {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
