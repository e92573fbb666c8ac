//! Opening a pcap file larger than the window keeps in memory: a real
//! tcpdump capture of real Mosquitto traffic (mosquitto_pub -l, one client,
//! N messages of S bytes), read three ways, each in a child process so its
//! peak resident memory (VmHWM) is its own:
//!
//! * `whole`: the pcap decoded into memory (`Capture::open`, what the
//!   window did before streams were spooled) — the reference;
//! * `spool`: what the window does now: the loader spools each stream into
//!   a temporary capture, then feeds its events to a Store with the
//!   default history budget;
//! * `cli`: `mqscope read FILE.pcap` (the summary, streaming).
//!
//! Run: `cargo bench --bench pcap_open` (needs root, tcpdump, mosquitto).
//! `PCAP_MESSAGES=N` (default 20000) and `PCAP_PAYLOAD=S` (default 10000).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn child(mode: &str, path: &Path) {
    let t = Instant::now();
    match mode {
        "whole" => {
            let c = mqscope::capture::pcap::Capture::open(
                path,
                mqscope::capture::pcap::ReadOptions::default(),
            )
            .expect("reads");
            let messages: usize = c.streams.iter().map(|s| s.messages.len()).sum();
            println!(
                "whole: {messages} messages in memory in {:.2} s, peak RSS {:.1} MB",
                t.elapsed().as_secs_f64(),
                hwm_mb()
            );
        }
        "spool" => {
            let loader = mqscope::capture::loader::Loader::start(path.to_path_buf(), None);
            let mut store = mqscope::model::store::Store::new(Default::default());
            let mut messages = 0u64;
            loop {
                match loader.recv_timeout(Duration::from_secs(600)) {
                    Some(mqscope::capture::loader::LoadEvent::StreamBatch { events, .. }) => {
                        for e in events {
                            if let mqscope::mqtt::EventKind::Message(m) = e {
                                store.apply_message(&m);
                                messages += 1;
                            }
                        }
                    }
                    Some(mqscope::capture::loader::LoadEvent::Done { .. }) => break,
                    Some(mqscope::capture::loader::LoadEvent::Failed(e)) => panic!("{e}"),
                    Some(_) => {}
                    None => panic!("the loader stalled"),
                }
            }
            println!(
                "spool: {messages} messages through the loader into a Store (default budget) in {:.2} s, peak RSS {:.1} MB",
                t.elapsed().as_secs_f64(),
                hwm_mb()
            );
        }
        other => panic!("unknown mode {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let n: usize = std::env::var("PCAP_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let size: usize = std::env::var("PCAP_PAYLOAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("addr").port()
    };
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("config");
    let mut broker = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto runs");
    std::thread::sleep(Duration::from_millis(300));
    let file: PathBuf = dir.path().join("big.pcap");
    let mut tcpdump = Command::new("tcpdump")
        // A 128 MiB kernel buffer: loopback bursts faster than a disk
        // takes them, and a dropped segment ends a direction's decoding.
        .args(["-Z", "root", "-B", "131072", "-i", "lo", "-w"])
        .arg(&file)
        .arg(format!("tcp port {port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump runs (root, apt-get install tcpdump)");
    std::thread::sleep(Duration::from_secs(1));
    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "cam/frame", "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs");
    {
        let mut stdin = publisher.stdin.take().expect("stdin");
        let mut line = vec![b'x'; size];
        line.push(b'\n');
        for i in 0..n {
            let tag = format!("{i:08}");
            line[..8].copy_from_slice(tag.as_bytes());
            stdin.write_all(&line).expect("a line");
        }
    }
    assert!(publisher.wait().expect("ends").success());
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill(2) on our own child: SIGINT makes tcpdump flush and exit.
    unsafe {
        libc::kill(tcpdump.id() as i32, libc::SIGINT);
    }
    tcpdump.wait().ok();
    broker.kill().ok();
    broker.wait().ok();
    let mb = std::fs::metadata(&file).expect("pcap").len() as f64 / 1e6;
    println!("pcap: {n} messages of {size} B by tcpdump, {mb:.1} MB");

    let exe = std::env::current_exe().expect("this bench");
    for mode in ["whole", "spool"] {
        let (out, _) = run_peak(Command::new(&exe).args(["--child", mode]).arg(&file));
        print!("{out}");
    }
    let t = Instant::now();
    let (out, peak) = run_peak(
        Command::new(env!("CARGO_BIN_EXE_mqscope"))
            .arg("read")
            .arg(&file),
    );
    println!(
        "cli: mqscope read in {:.2} s, peak RSS {peak:.1} MB; it says:",
        t.elapsed().as_secs_f64(),
    );
    for line in out.lines() {
        println!("  | {line}");
    }
}

/// Runs `cmd` to its end; its standard output and its own peak RSS (MB).
/// The child is reaped by `wait4`, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn run_peak(cmd: &mut Command) -> (String, f64) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("runs");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    // SAFETY: wait4 on our own child, with a zeroed rusage to fill.
    let (status, peak) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let mut status = 0;
        libc::wait4(child.id() as i32, &mut status, 0, &mut usage);
        (status, usage.ru_maxrss as f64 / 1024.0)
    };
    let out = reader.join().unwrap_or_default();
    assert!(status == 0, "{cmd:?} failed ({status}): {out}");
    (out, peak)
}
