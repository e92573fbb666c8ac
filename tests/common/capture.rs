//! Packet captures made by real tools (tcpdump, dumpcap) around a test's
//! MQTT traffic on loopback, and the live `--trace` lines to compare them
//! with. Needs root (CI runs as root) and the Debian packages `tcpdump` and
//! `tshark` (which brings dumpcap).

#![allow(dead_code)]

use mqscope::capture::pcap::{Capture, ReadOptions};
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MISSING: &str =
    "capturing needs tcpdump and dumpcap: apt-get install -y tcpdump tshark (and root)";

/// Which tool writes the file.
#[derive(Clone, Copy, Debug)]
pub enum Tool {
    /// `tcpdump -i lo -w FILE.pcap` (Ethernet link type).
    TcpdumpLo,
    /// `tcpdump -i any -w FILE.pcap` (Linux cooked capture v2).
    TcpdumpAny,
    /// `dumpcap -i lo -w FILE.pcapng`.
    Dumpcap,
}

/// A capture process writing `path`; stopped (SIGINT) on `stop` or drop.
pub struct Sniffer {
    child: Child,
    pub path: PathBuf,
    pub tool: Tool,
}

impl Sniffer {
    /// Starts `tool` on traffic to or from `port` and waits until it captures.
    pub fn start(tool: Tool, port: u16, path: &Path) -> Sniffer {
        let filter = format!("tcp port {port}");
        let mut cmd = match tool {
            Tool::TcpdumpLo | Tool::TcpdumpAny => {
                let mut c = Command::new("tcpdump");
                let iface = if matches!(tool, Tool::TcpdumpLo) {
                    "lo"
                } else {
                    "any"
                };
                // -U: each packet written as it comes; -Z root: keep the
                // rights to write into the test's directory.
                c.args(["-Z", "root", "-U", "-i", iface, "-w"])
                    .arg(path)
                    .arg(&filter);
                c
            }
            Tool::Dumpcap => {
                let mut c = Command::new("dumpcap");
                c.args(["-q", "-i", "lo", "-f", &filter, "-w"]).arg(path);
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {tool:?} ({e}): {MISSING}"));
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") || line.contains("Capturing on") => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    child.kill().ok();
                    panic!("{tool:?} did not start capturing: {seen:?} ({MISSING})");
                }
            }
        }
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in rx {});
        Sniffer {
            child,
            path: path.to_path_buf(),
            tool,
        }
    }

    /// Stops the tool (SIGINT, as Ctrl-C: it writes what it holds) and waits.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `path` until `done` holds (tcpdump -U writes each packet as it
/// comes; the last ones may still be on their way), for at most 15 s.
pub fn wait_for_capture(path: &Path, done: impl Fn(&Capture) -> bool) -> Capture {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let read = Capture::open(path, ReadOptions::default());
        match read {
            Ok(c) if done(&c) => return c,
            // Not there yet, or the last packet half written.
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(c) => panic!(
                "{} never held what was expected; it has {} streams: {:?}",
                path.display(),
                c.streams.len(),
                c.streams
                    .iter()
                    .map(|s| (s.info.client, s.info.closed, s.records.len()))
                    .collect::<Vec<_>>()
            ),
            Err(e) => panic!("{} cannot be read: {e}", path.display()),
        }
    }
}

/// JSON lines of a `--trace` (other lines skipped).
pub fn trace_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad trace line {l}: {e}")))
        .collect()
}

/// A trace line without what differs between a live run and a file: the
/// time and the endpoints.
pub fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("t_us");
        o.remove("client");
        o.remove("broker");
    }
    v
}

/// Asserts that the packets one client traced live are the packets the file
/// holds for its stream, in the same order per direction (the order between
/// the two directions may differ: the worker and the wire see them at
/// slightly different moments).
pub fn assert_same_packets(what: &str, live: &[Value], from_file: &[Value]) {
    for dir in ["out", "in"] {
        let a: Vec<Value> = live
            .iter()
            .filter(|r| r["dir"] == dir)
            .map(comparable)
            .collect();
        let b: Vec<Value> = from_file
            .iter()
            .filter(|r| r["dir"] == dir)
            .map(comparable)
            .collect();
        assert!(!a.is_empty(), "{what}: no live packets in direction {dir}");
        if a != b {
            let at = a.iter().zip(&b).position(|(x, y)| x != y);
            panic!(
                "{what}, direction {dir}: {} packets live, {} in the file; first difference at {at:?}:\n live: {}\n file: {}",
                a.len(),
                b.len(),
                at.and_then(|i| a.get(i))
                    .map(Value::to_string)
                    .unwrap_or_default(),
                at.and_then(|i| b.get(i))
                    .map(Value::to_string)
                    .unwrap_or_default(),
            );
        }
    }
}

/// The lines of `read --trace` that belong to the stream whose CONNECT
/// carried `client_id`.
pub fn stream_of<'a>(lines: &'a [Value], client_id: &str) -> Vec<&'a Value> {
    let Some(client) = lines
        .iter()
        .find(|l| l["kind"] == "CONNECT" && l["client_id"] == client_id)
        .map(|l| l["client"].clone())
    else {
        panic!("no stream with client id {client_id} in the file");
    };
    lines.iter().filter(|l| l["client"] == client).collect()
}
