//! End-to-end benchmark: one real Mosquitto, the same loads, mosquitto_sub and
//! `mqscope sub --stats` (and MQTT.js when node is installed) side by side.
//! Prints a table of wall time, msg/s and peak RSS. Run with
//! `cargo bench --bench e2e` (add `-- quick` for a 10x smaller load, and
//! `-- retained` for the retained burst alone). The retained burst is also
//! received over MQTT 5 (`-V 5`), printed next to 3.1.1.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Broker;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    tool: &'static str,
    secs: f64,
    messages: u64,
    peak_rss_kb: i64,
    note: String,
}

/// Runs `cmd` to completion; wall time from spawn (or from `t0` when given) and peak RSS.
fn measure(mut cmd: Command, publish: Option<&dyn Fn()>) -> (f64, i64, String, i32) {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let Ok(mut child) = cmd.spawn() else {
        return (0.0, 0, "could not start".into(), -1);
    };
    let mut t0 = start;
    if let Some(publish) = publish {
        // Give the subscriber time to connect and subscribe, then time the stream.
        std::thread::sleep(Duration::from_millis(700));
        t0 = Instant::now();
        publish();
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals, pid is our child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = t0.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        e.read_to_string(&mut stderr).ok();
    }
    // The child was reaped by wait4; avoid a second wait.
    std::mem::forget(child);
    let code = if r == pid && libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (secs, usage.ru_maxrss, stderr, code)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime for the load generator")
}

/// Publishes `(topic, payload)` pairs at QoS 0 as fast as the broker takes them,
/// then a QoS 1 marker whose PUBACK proves the broker has processed them all.
fn publish_load(
    port: u16,
    n: usize,
    topic: impl Fn(usize) -> String,
    payload: &[u8],
    retain: bool,
) {
    let rt = runtime();
    rt.block_on(async {
        let mut opts = MqttOptions::new(format!("load-{}", std::process::id()), "127.0.0.1", port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts.set_request_channel_capacity(10_000);
        opts.set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
        let payload = payload.to_vec();
        let topics: Vec<String> = (0..n).map(&topic).collect();
        let producer = tokio::spawn(async move {
            for t in topics {
                if client
                    .publish(t, QoS::AtMostOnce, retain, payload.clone())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            client
                .publish("bench/marker", QoS::AtLeastOnce, false, "done")
                .await
                .ok();
            // Keep the client alive until the marker is acknowledged.
            tokio::time::sleep(Duration::from_secs(600)).await;
            drop(client);
        });
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => break,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("load generator: {e}");
                    break;
                }
            }
        }
        producer.abort();
    });
}

fn mqscope_sub(port: u16, filter: &str, count: usize) -> Command {
    mqscope_sub_v(port, filter, count, "311")
}

/// `mqscope sub --stats` speaking protocol `version` (as `-V`).
fn mqscope_sub_v(port: u16, filter: &str, count: usize, version: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqscope"));
    c.args([
        "sub",
        "-V",
        version,
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        filter,
        "-C",
        &count.to_string(),
        "--stats",
    ]);
    c
}

fn mosquitto_sub(port: u16, filter: &str, count: usize) -> Command {
    mosquitto_sub_v(port, filter, count, "311")
}

fn mosquitto_sub_v(port: u16, filter: &str, count: usize, version: &str) -> Command {
    let mut c = Command::new("mosquitto_sub");
    c.args([
        "-V",
        version,
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        filter,
        "-C",
        &count.to_string(),
    ]);
    c
}

/// MQTT.js, the engine inside MQTT Explorer and MQTTX, if node and npm are here.
fn mqttjs_sub(port: u16, filter: &str, count: usize) -> Option<Command> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-node");
    if !dir.join("node_modules/mqtt").exists() {
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "mqtt@5"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    let script = format!(
        "const mqtt=require('mqtt');let n=0;const c=mqtt.connect('mqtt://127.0.0.1:{port}');\
         c.on('connect',()=>c.subscribe('{filter}'));\
         c.on('message',()=>{{if(++n>={count}){{c.end(true);process.exit(0)}}}});"
    );
    let mut c = Command::new("node");
    c.arg("-e").arg(script).current_dir(dir);
    Some(c)
}

fn stat(stderr: &str, key: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
}

fn run_tool(tool: &'static str, cmd: Command, count: usize, publish: Option<&dyn Fn()>) -> Run {
    let (secs, rss, stderr, code) = measure(cmd, publish);
    let (messages, note) = if tool.starts_with("mqscope sub") {
        let m = stat(&stderr, "messages:")
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mem = stat(&stderr, "store memory:").unwrap_or_default();
        let ev = stat(&stderr, "evicted payloads:").unwrap_or_default();
        (m, format!("store {mem}, evicted {ev}"))
    } else {
        (if code == 0 { count as u64 } else { 0 }, String::new())
    };
    let note = if code != 0 {
        format!("exit {code}: {}", stderr.lines().last().unwrap_or(""))
    } else {
        note
    };
    Run {
        tool,
        secs,
        messages,
        peak_rss_kb: rss,
        note,
    }
}

fn print_table(title: &str, runs: &[Run]) {
    println!("\n{title}");
    println!(
        "  {:<20} {:>9} {:>12} {:>10} {:>14} {:>10}  note",
        "tool", "time s", "msg/s", "messages", "peak RSS MB", "vs mosq."
    );
    let base = runs.first().map(|r| r.secs).unwrap_or(1.0);
    for r in runs {
        println!(
            "  {:<20} {:>9.3} {:>12.0} {:>10} {:>14.1} {:>9.2}x  {}",
            r.tool,
            r.secs,
            r.messages as f64 / r.secs.max(1e-9),
            r.messages,
            r.peak_rss_kb as f64 / 1024.0,
            r.secs / base,
            r.note
        );
    }
}

fn main() {
    // cargo bench passes `--bench`; anything containing "quick" shrinks the loads.
    let quick = std::env::args().any(|a| a.contains("quick"));
    let scale = if quick { 10 } else { 1 };
    // Unbounded queues: a subscriber that falls behind gets everything late
    // rather than losing QoS 0 messages (mosquitto's default drops them past
    // 1000 queued), so every tool is measured on the same complete stream.
    let broker = Broker::builder()
        .config_line("max_queued_messages 0")
        .config_line("max_queued_bytes 0")
        .start();
    let port = broker.port;
    println!(
        "mqscope end-to-end benchmark · Mosquitto on 127.0.0.1:{port} · {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. Retained burst.
    let n = 200_000 / scale;
    let payload = vec![b'x'; 100];
    publish_load(
        port,
        n,
        |i| format!("ret/{}/{}", i % 1000, i),
        &payload,
        true,
    );
    let mut runs = vec![run_tool(
        "mosquitto_sub",
        mosquitto_sub(port, "ret/#", n),
        n,
        None,
    )];
    runs.push(run_tool(
        "mqscope sub",
        mqscope_sub(port, "ret/#", n),
        n,
        None,
    ));
    runs.push(run_tool(
        "mosquitto_sub -V 5",
        mosquitto_sub_v(port, "ret/#", n, "5"),
        n,
        None,
    ));
    runs.push(run_tool(
        "mqscope sub -V 5",
        mqscope_sub_v(port, "ret/#", n, "5"),
        n,
        None,
    ));
    if let Some(cmd) = mqttjs_sub(port, "ret/#", n) {
        runs.push(run_tool("MQTT.js", cmd, n, None));
    }
    print_table(
        &format!(
            "Retained burst: {n} retained topics x 100 B (time from process start to last message)"
        ),
        &runs,
    );
    let secs = |tool: &str| runs.iter().find(|r| r.tool == tool).map(|r| r.secs);
    if let (Some(v4), Some(v5)) = (secs("mqscope sub"), secs("mqscope sub -V 5")) {
        println!(
            "  MQTT 5 vs 3.1.1 (mqscope sub): {:+.1} % (target: within 10 %)",
            (v5 / v4 - 1.0) * 100.0
        );
    }
    if std::env::args().any(|a| a == "retained") {
        return;
    }

    // 2. Live stream.
    let n = 1_000_000 / scale;
    let payload = vec![b'y'; 64];
    let publish = || publish_load(port, n, |i| format!("live/{}", i % 10_000), &payload, false);
    let mut runs = vec![run_tool(
        "mosquitto_sub",
        mosquitto_sub(port, "live/#", n),
        n,
        Some(&publish),
    )];
    runs.push(run_tool(
        "mqscope sub",
        mqscope_sub(port, "live/#", n),
        n,
        Some(&publish),
    ));
    print_table(
        &format!(
            "Live stream: {n} QoS 0 messages over 10,000 topics x 64 B (time from first publish to last message)"
        ),
        &runs,
    );

    // 3. Many topics.
    let n = 1_000_000 / scale;
    let payload = vec![b'z'; 16];
    let publish = || {
        publish_load(
            port,
            n,
            |i| format!("many/{}/{}/{}", i % 100, (i / 100) % 100, i),
            &payload,
            false,
        )
    };
    let runs = vec![run_tool(
        "mqscope sub",
        mqscope_sub(port, "many/#", n),
        n,
        Some(&publish),
    )];
    print_table(
        &format!("Many topics: {n} distinct topics x 16 B into the Store (peak RSS is the target)"),
        &runs,
    );
}
