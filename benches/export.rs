//! Export of 1,000,000 messages from a pcap: time and peak memory of
//! `mqscope export` (CSV and JSON Lines), beside tshark printing the same
//! fields from a tenth of the messages (the tool people use for pcaps today).
//!
//! The pcap is written here: one TCP connection, a CONNECT and QoS 0
//! PUBLISHes (rumqttc's encoder), 20 to a segment, with etherparse's
//! Ethernet/IPv4/TCP headers and pcap-file's writer.
//!
//! Run: `cargo bench --bench export` (tshark optional: apt-get install tshark).

use bytes::BytesMut;
use etherparse::PacketBuilder;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PER_SEGMENT: usize = 20;

fn write_pcap(path: &Path, messages: usize) -> u64 {
    let file = std::fs::File::create(path).expect("create pcap");
    let mut w = pcap_file::pcap::PcapWriter::new(std::io::BufWriter::new(file)).expect("writer");
    let mut seq = 1000u32;
    let mut t = Duration::from_secs(1_800_000_000);
    let mut frame = Vec::with_capacity(4096);
    let mut write =
        |w: &mut pcap_file::pcap::PcapWriter<_>, payload: &[u8], t: Duration, seq: u32| {
            frame.clear();
            PacketBuilder::ethernet2([0; 6], [0; 6])
                .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
                .tcp(40000, 1883, seq, 65535)
                .write(&mut frame, payload)
                .expect("frame");
            let p = pcap_file::pcap::PcapPacket::new(t, frame.len() as u32, &frame);
            w.write_packet(&p).expect("write frame");
        };
    let mut buf = BytesMut::new();
    Packet::Connect(Connect::new("bench"))
        .write(&mut buf, 1 << 20)
        .expect("connect");
    write(&mut w, &buf, t, seq);
    seq = seq.wrapping_add(buf.len() as u32);
    let mut sent = 0;
    while sent < messages {
        buf.clear();
        for _ in 0..PER_SEGMENT.min(messages - sent) {
            let payload = format!(
                "{{\"temp\":{}.{},\"unit\":\"C\",\"ok\":true}}",
                sent % 40,
                sent % 10
            );
            Packet::Publish(Publish::new(
                format!("plant/line{}/sensor{}", sent % 10, sent % 100),
                rumqttc::QoS::AtMostOnce,
                payload,
            ))
            .write(&mut buf, 1 << 20)
            .expect("publish");
            sent += 1;
        }
        t += Duration::from_micros(50);
        write(&mut w, &buf, t, seq);
        seq = seq.wrapping_add(buf.len() as u32);
    }
    drop(w);
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs `cmd` with stdout to `out` (or nowhere); wall time and peak RSS in MB.
fn measure(cmd: &mut Command) -> Option<(Duration, f64)> {
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if pid <= 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return None;
    }
    Some((elapsed, usage.ru_maxrss as f64 / 1024.0))
}

/// Newlines in a file, read in pieces: the bench itself stays small, since
/// a child's peak RSS counts what it inherited before exec.
fn lines(path: &Path) -> usize {
    use std::io::Read as _;
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    while let Ok(got) = f.read(&mut buf) {
        if got == 0 {
            break;
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count();
    }
    n
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let mqscope = env!("CARGO_BIN_EXE_mqscope");
    let small = dir.join("100k.pcap");
    let big = dir.join("1m.pcap");
    let t = Instant::now();
    let small_mb = write_pcap(&small, 100_000) as f64 / 1e6;
    let big_mb = write_pcap(&big, 1_000_000) as f64 / 1e6;
    println!(
        "pcaps written in {:.1} s: 100k messages {small_mb:.0} MB, 1M messages {big_mb:.0} MB",
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<44} {:>9} {:>9} {:>12} {:>13}",
        "export", "messages", "time (s)", "msg/s", "peak RSS (MB)"
    );
    let row = |what: &str, n: usize, r: Option<(Duration, f64)>| match r {
        Some((d, rss)) => println!(
            "{what:<44} {n:>9} {:>9.2} {:>12.0} {rss:>13.1}",
            d.as_secs_f64(),
            n as f64 / d.as_secs_f64()
        ),
        None => println!("{what:<44} {n:>9}   (did not run)"),
    };
    for (name, pcap, n) in [("100k", &small, 100_000usize), ("1M", &big, 1_000_000)] {
        for format in ["csv", "jsonl"] {
            let out = dir.join(format!("{name}.{format}"));
            let r = measure(
                Command::new(mqscope)
                    .args([
                        "export",
                        &pcap.display().to_string(),
                        "--format",
                        format,
                        "-o",
                    ])
                    .arg(&out)
                    .stdout(Stdio::null()),
            );
            let rows = lines(&out) - usize::from(format == "csv");
            assert_eq!(rows, n, "{name} {format}: every message exported");
            row(
                &format!("mqscope export --format {format} ({name})"),
                rows,
                r,
            );
            std::fs::remove_file(&out).ok();
        }
    }
    // The reference: tshark printing time, topic and payload of each PUBLISH.
    let out = dir.join("tshark.csv");
    let file = std::fs::File::create(&out).expect("create");
    let r = measure(
        Command::new("tshark")
            .args([
                "-r",
                &small.display().to_string(),
                "-Y",
                "mqtt.msgtype == 3",
            ])
            .args(["-T", "fields", "-E", "separator=,", "-E", "quote=d"])
            .args([
                "-e",
                "frame.time_epoch",
                "-e",
                "mqtt.topic",
                "-e",
                "mqtt.msg",
            ])
            .stdout(file),
    );
    // One line per frame (20 messages each, values joined by commas).
    let frames = lines(&out);
    row(
        &format!("tshark -T fields time,topic,msg (100k, {frames} lines)"),
        100_000,
        r,
    );
    // EXPORT_BENCH_KEEP=1 keeps the pcaps (e.g. to profile by hand).
    if std::env::var_os("EXPORT_BENCH_KEEP").is_some() {
        println!("pcaps kept in {}", tmp.keep().display());
    }
}
