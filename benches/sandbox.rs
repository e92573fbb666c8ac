//! The sandbox against Mosquitto on this machine, in one run, figures side
//! by side (`cargo bench --bench sandbox`): fan-in (1M QoS 0 messages from
//! one raw publisher to one subscriber), fan-out (one publisher, 100
//! subscribers, 10,000 messages each), many clients at once (1,000
//! connected publishers × 1,000 messages to one subscriber; one publisher to
//! 1,000 subscribers of a topic each), and the memory of 1,000 idle
//! connections. The clients are the same raw sockets for both brokers; a
//! broker that loses messages shows it in the "delivered" column; times run
//! from the first byte published to the last message received.
//! Mosquitto runs with `max_queued_messages 0` (unlimited queue), as it must
//! to deliver a burst whole. `SANDBOX_BENCH_N` changes the fan-in count.

use bytes::BytesMut;
use mqscope::sandbox::{CloudBroker, DemoConfig, Limits, Sandbox, SandboxConfig};
use rumqttc::{Connect, Packet, Publish, QoS, Subscribe};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn encode(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    p.write(&mut out, usize::MAX).ok();
    out.to_vec()
}

/// A connected raw client (CONNACK read).
fn client(port: u16, id: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_nodelay(true).ok();
    s.write_all(&encode(&Packet::Connect(Connect::new(id))))
        .ok()?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).ok()?;
    (ack[0] == 0x20 && ack[3] == 0).then_some(s)
}

/// Subscribes and waits for the SUBACK.
fn subscriber(port: u16, id: &str, filter: &str) -> Option<TcpStream> {
    let mut s = client(port, id)?;
    // Packet id 1: Mosquitto closes a SUBSCRIBE with id 0 (`new` leaves 0).
    let mut sub = Subscribe::new(filter, QoS::AtMostOnce);
    sub.pkid = 1;
    s.write_all(&encode(&Packet::Subscribe(sub))).ok()?;
    let mut ack = [0u8; 5];
    s.read_exact(&mut ack).ok()?;
    Some(s)
}

/// Counts PUBLISH frames until `n` arrived or nothing came for 5 s;
/// returns the count and when the last one arrived.
fn count_publishes(mut s: TcpStream, n: u64) -> (u64, Instant) {
    let mut last = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0usize;
    let mut got = 0;
    while got < n {
        let Ok(k) = s.read(&mut buf[have..]) else {
            break;
        };
        if k == 0 {
            break;
        }
        have += k;
        let mut at = 0;
        loop {
            // Fixed header: type byte, then a 1–4 byte remaining length.
            let mut len = 0usize;
            let mut i = at + 1;
            let mut shift = 0;
            let complete = loop {
                let Some(&b) = buf.get(i).filter(|_| i < have) else {
                    break false;
                };
                len |= usize::from(b & 0x7F) << shift;
                i += 1;
                if b & 0x80 == 0 {
                    break true;
                }
                shift += 7;
            };
            if !complete || i + len > have {
                break;
            }
            if buf[at] >> 4 == 3 {
                got += 1;
                last = Instant::now();
            }
            at = i + len;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    (got, last)
}

fn burst(topic: &str, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(encode(&Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            format!("{i:08}"),
        ))));
    }
    out
}

struct Figures {
    fan_in: (Duration, u64),
    fan_out: (Duration, u64),
    many_in: (Duration, u64),
    many_out: (Duration, u64),
    idle_kib: Option<u64>,
}

/// Clients in the many-client cases.
const MANY: usize = 1000;
/// Messages each of the 1,000 publishers sends (many-in).
const MANY_EACH: u64 = 1000;
/// Messages each of the 1,000 subscribers receives (many-out).
const MANY_OUT_EACH: u64 = 100;

/// Connects `n` raw clients from a few threads at once.
fn clients(
    port: u16,
    prefix: &str,
    n: usize,
    filter: Option<&dyn Fn(usize) -> String>,
) -> Vec<TcpStream> {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let s = match filter {
            Some(f) => subscriber(port, &id, &f(i)),
            None => client(port, &id),
        };
        match s {
            Some(s) => all.push(s),
            None => panic!("client {id} could not connect on port {port}"),
        }
    }
    all
}

/// 1,000 connected clients all publishing at once (4 writer threads, each
/// writing 100 messages to each of its clients in turn), one subscriber.
fn many_in(port: u16) -> (Duration, u64) {
    let total = MANY as u64 * MANY_EACH;
    let Some(sub) = subscriber(port, "many-in-sub", "many/#") else {
        panic!("no subscriber on port {port}");
    };
    let counter = std::thread::spawn(move || count_publishes(sub, total));
    let pubs = clients(port, "many-in-pub", MANY, None);
    // Each publisher its own topic: per-publisher order stays checkable.
    let chunks: Vec<Vec<(TcpStream, Vec<u8>)>> = {
        let mut chunks: Vec<Vec<(TcpStream, Vec<u8>)>> = (0..4).map(|_| Vec::new()).collect();
        for (i, s) in pubs.into_iter().enumerate() {
            chunks[i % 4].push((s, burst(&format!("many/{i}"), MANY_EACH)));
        }
        chunks
    };
    let t = Instant::now();
    let writers: Vec<_> = chunks
        .into_iter()
        .map(|mut mine| {
            std::thread::spawn(move || {
                let step = 100;
                let mut at = 0;
                loop {
                    let mut any = false;
                    for (s, data) in &mut mine {
                        // Frames are all the same size within one burst.
                        let frame = data.len() / MANY_EACH as usize;
                        let from = at * frame;
                        if from >= data.len() {
                            continue;
                        }
                        let to = (from + step * frame).min(data.len());
                        s.write_all(&data[from..to]).ok();
                        any = true;
                    }
                    if !any {
                        break;
                    }
                    at += step;
                }
                mine
            })
        })
        .collect();
    let kept: Vec<_> = writers.into_iter().filter_map(|w| w.join().ok()).collect();
    let (got, last) = counter.join().unwrap_or((0, t));
    drop(kept);
    (last.duration_since(t), got)
}

/// One publisher, 1,000 subscribers of a topic each; the publisher writes
/// to every topic in turn.
fn many_out(port: u16) -> (Duration, u64) {
    let subs = clients(port, "many-out-sub", MANY, Some(&|i| format!("own/{i}")));
    let counters: Vec<_> = subs
        .into_iter()
        .map(|s| {
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || count_publishes(s, MANY_OUT_EACH))
        })
        .collect();
    let mut data = Vec::new();
    for round in 0..MANY_OUT_EACH {
        for i in 0..MANY {
            data.extend(encode(&Packet::Publish(Publish::new(
                format!("own/{i}"),
                QoS::AtMostOnce,
                format!("{round:08}"),
            ))));
        }
    }
    let Some(mut publisher) = client(port, "many-out-pub") else {
        panic!("no publisher");
    };
    let t = Instant::now();
    publisher.write_all(&data).ok();
    let results: Vec<(u64, Instant)> = counters
        .into_iter()
        .map(|c| c.ok().and_then(|c| c.join().ok()).unwrap_or((0, t)))
        .collect();
    let got: u64 = results.iter().map(|r| r.0).sum();
    let last = results.iter().map(|r| r.1).max().unwrap_or(t);
    (last.duration_since(t), got)
}

fn run(port: u16, rss: &dyn Fn() -> Option<u64>, n: u64) -> Figures {
    // 1,000 idle connections, first: after the bursts, freed memory is
    // reused and the growth reads as nothing.
    let before = rss();
    let idle: Vec<_> = (0..1000)
        .filter_map(|i| client(port, &format!("idle-{i}")))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss();
    let idle_kib = before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b))
        .filter(|_| idle.len() == 1000);
    drop(idle);
    std::thread::sleep(Duration::from_millis(500));

    // Fan-in: one raw publisher as fast as it can write, one subscriber.
    let data = burst("live/x", n);
    let Some(sub) = subscriber(port, "fan-in-sub", "live/#") else {
        panic!("no subscriber on port {port}");
    };
    let counter = std::thread::spawn(move || count_publishes(sub, n));
    let Some(mut publisher) = client(port, "fan-in-pub") else {
        panic!("no publisher");
    };
    let t = Instant::now();
    publisher.write_all(&data).ok();
    let (got, last) = counter.join().unwrap_or((0, t));
    let fan_in = (last.duration_since(t), got);
    drop(publisher);

    // Fan-out: 1 → 100.
    const SUBS: u64 = 100;
    const EACH: u64 = 10_000;
    let subs: Vec<_> = (0..SUBS)
        .filter_map(|i| subscriber(port, &format!("fan-out-{i}"), "news/#"))
        .collect();
    let counters: Vec<_> = subs
        .into_iter()
        .map(|s| std::thread::spawn(move || count_publishes(s, EACH)))
        .collect();
    let data = burst("news/x", EACH);
    let Some(mut publisher) = client(port, "fan-out-pub") else {
        panic!("no publisher");
    };
    let t = Instant::now();
    publisher.write_all(&data).ok();
    let results: Vec<(u64, Instant)> = counters
        .into_iter()
        .map(|c| c.join().unwrap_or((0, t)))
        .collect();
    let got: u64 = results.iter().map(|r| r.0).sum();
    let last = results.iter().map(|r| r.1).max().unwrap_or(t);
    let fan_out = (last.duration_since(t), got);
    drop(publisher);

    let many_in = many_in(port);
    std::thread::sleep(Duration::from_millis(500));
    let many_out = many_out(port);

    Figures {
        fan_in,
        fan_out,
        many_in,
        many_out,
        idle_kib,
    }
}

fn vm_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Mosquitto {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn mosquitto() -> Option<Mosquitto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"),
    )
    .ok()?;
    let child = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Mosquitto {
        child,
        _dir: dir,
        port,
    })
}

fn rate(d: Duration, n: u64) -> String {
    format!(
        "{:>7.2} s {:>9.0}/s",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64().max(1e-9)
    )
}

/// How one row reads its figure.
type Column<'a> = &'a dyn Fn(&Figures) -> String;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: u64 = std::env::var("SANDBOX_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let sandbox = match Sandbox::start_with(
        SandboxConfig {
            port: Some(0),
            demo: DemoConfig::off(),
            cloud: CloudBroker::Off,
            ..SandboxConfig::default()
        },
        Limits::default(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox did not start: {e}");
            return;
        }
    };
    let ours = run(sandbox.port(), &|| vm_rss_kib("self"), n);
    let dropped = sandbox.stats().dropped;
    drop(sandbox);
    let theirs = mosquitto().map(|m| {
        let pid = m.child.id().to_string();
        let f = run(m.port, &|| vm_rss_kib(&pid), n);
        drop(m);
        f
    });
    let col = |f: Option<&Figures>, pick: &dyn Fn(&Figures) -> String| {
        f.map_or_else(|| "(mosquitto not installed)".to_string(), pick)
    };
    println!();
    println!("{:<44} {:<32} {:<32}", "", "sandbox", "mosquitto");
    let many_in_total = MANY as u64 * MANY_EACH;
    let many_out_total = MANY as u64 * MANY_OUT_EACH;
    let rows: [(String, Column<'_>); 9] = [
        (format!("fan-in {n} QoS 0 → 1 subscriber"), &|f| {
            rate(f.fan_in.0, f.fan_in.1)
        }),
        ("  delivered".into(), &|f| format!("{} of {n}", f.fan_in.1)),
        ("fan-out 1 → 100 subscribers × 10,000".into(), &|f| {
            rate(f.fan_out.0, f.fan_out.1)
        }),
        ("  delivered".into(), &|f| {
            format!("{} of 1000000", f.fan_out.1)
        }),
        ("fan-in 1,000 publishers × 1,000 → 1".into(), &|f| {
            rate(f.many_in.0, f.many_in.1)
        }),
        ("  delivered".into(), &|f| {
            format!("{} of {many_in_total}", f.many_in.1)
        }),
        ("1 → 1,000 subscribers (own topic) × 100".into(), &|f| {
            rate(f.many_out.0, f.many_out.1)
        }),
        ("  delivered".into(), &|f| {
            format!("{} of {many_out_total}", f.many_out.1)
        }),
        ("1,000 idle connections, RSS growth".into(), &|f| {
            f.idle_kib
                .map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        }),
    ];
    for (name, pick) in rows {
        println!(
            "{:<44} {:<32} {:<32}",
            name,
            pick(&ours),
            col(theirs.as_ref(), pick)
        );
    }
    println!("sandbox messages dropped: {dropped}");
    println!(
        "(the sandbox's RSS growth includes the 1,000 client sockets' user-space side, in the same process)"
    );
}
