//! `mqscope record` (subscribe and write a capture until `-C`, `-W` or
//! Ctrl-C) and `mqscope replay` (publish a capture into a broker), with
//! the connection flags of `sub` and `pub`.

use super::file::CaptureFile;
use super::record::{RecordingStatus, human_bytes};
use super::replay::{Replay, ReplayOptions, Speed, TopicMap};
use crate::cli::{CliError, ConnArgs};
use crate::model::protocol::{ProtocolVersion, Qos};
use crate::mqtt::{Command, ConnStatus, Event, EventKind, Worker};
use crate::profile::SubscriptionSpec;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CONN: u64 = 1;

fn parse_qos(s: &str) -> Result<Qos, String> {
    s.parse::<u8>()
        .ok()
        .and_then(Qos::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not '{s}'"))
}

fn parse_flag(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(format!("'{s}' is not on or off (1/0, true/false)")),
    }
}

#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic filter to subscribe to and record (repeatable).
    #[arg(short = 't', long = "topic", required = true)]
    pub topics: Vec<String>,
    /// QoS of the subscriptions.
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0")]
    pub qos: Qos,
    /// The capture file to write (replaced if it exists).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Stop after this many messages.
    #[arg(short = 'C', long = "count")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(short = 'W', long = "timeout")]
    pub timeout: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// A capture written by `mqscope record` or the window's record button.
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// 1 for the recorded pace, N for N times faster (0.5 slower), max for
    /// as fast as the broker takes it.
    #[arg(long, default_value = "1")]
    pub speed: Speed,
    /// Publish topics matching FROM on TO instead, e.g. plant/#=test/plant/#
    /// (repeatable; the first that matches applies).
    #[arg(long = "map", value_name = "FROM=TO")]
    pub maps: Vec<TopicMap>,
    /// Only messages on topics matching this filter (repeatable).
    #[arg(short = 't', long = "topic")]
    pub topics: Vec<String>,
    /// Only messages recorded at least this many seconds after the start.
    #[arg(long = "from", value_name = "SECS")]
    pub from: Option<f64>,
    /// Only messages recorded less than this many seconds after the start.
    #[arg(long = "to", value_name = "SECS")]
    pub to: Option<f64>,
    /// Publish every message with this QoS instead of the recorded one.
    #[arg(short = 'q', long = "qos", value_parser = parse_qos)]
    pub qos: Option<Qos>,
    /// Retain flag for every message (on/off) instead of the recorded one.
    #[arg(long = "retain", value_parser = parse_flag)]
    pub retain: Option<bool>,
    /// Do not send the recorded MQTT 5 properties.
    #[arg(long = "no-properties")]
    pub no_properties: bool,
}

/// Set by SIGINT (Ctrl-C) while `record` or `replay` runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From now on Ctrl-C sets [`INTERRUPTED`] instead of killing the process,
/// so the capture is closed properly.
fn catch_ctrl_c() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs `mqscope record`; returns the exit code.
pub fn run_record(args: RecordArgs) -> i32 {
    match record(args) {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("mqscope record: {msg}");
            1
        }
    }
}

fn record(args: RecordArgs) -> Result<i32, CliError> {
    for t in &args.topics {
        crate::profile::validate_topic_filter(t)
            .map_err(|why| CliError(format!("invalid topic filter '{t}': {why}")))?;
    }
    let mut profile = args.conn.to_profile()?;
    profile.subscriptions = args
        .topics
        .iter()
        .map(|t| SubscriptionSpec::new(t, args.qos))
        .collect();
    // The file is created before connecting: a wrong path costs no connection.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.output)
        .map_err(|e| CliError(format!("cannot write {}: {e}", args.output.display())))?;
    catch_ctrl_c();
    let worker = Worker::spawn(None);
    let status = RecordingStatus::new();
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    worker.send(Command::Record {
        conn: CONN,
        path: args.output.clone(),
        status: status.clone(),
    });
    let started = Instant::now();
    let deadline = args.timeout.map(|s| started + Duration::from_secs(s));
    let mut ever_connected = false;
    let mut failure = None;
    let mut why_stopped = "stopped";
    loop {
        if interrupted() {
            why_stopped = "interrupted";
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            why_stopped = "time is up (-W)";
            break;
        }
        if args.count.is_some_and(|c| status.messages() >= c) {
            why_stopped = "count reached (-C)";
            break;
        }
        if status.is_finished() {
            // Never started (the file could not be created).
            break;
        }
        let Some(Event { kind, .. }) = worker.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        match kind {
            EventKind::Status(ConnStatus::Connected { .. }) => ever_connected = true,
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                if !ever_connected {
                    failure = Some(reason);
                    break;
                }
                eprintln!("mqscope record: connection lost: {reason}; reconnecting");
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                failure = Some(reason.unwrap_or_else(|| "disconnected".into()));
                break;
            }
            EventKind::Subscribed {
                filter,
                granted: None,
                reason,
            } => eprintln!(
                "mqscope record: the broker refused the subscription to '{filter}'{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            EventKind::Packet(r) if args.conn.trace => crate::cli::trace(&r),
            EventKind::Error(e) => eprintln!("mqscope record: {e}"),
            _ => {}
        }
    }
    // The count may be reached in the middle of a QoS 2 handshake: let the
    // acknowledgements and the DISCONNECT reach the capture too.
    worker.send(Command::Disconnect { conn: CONN });
    let mut packets = crate::cli::Packets::new(&args.conn, true);
    crate::cli::drain_trace(&worker, &mut packets, &mut std::io::stdout());
    worker.send(Command::StopRecording { conn: CONN });
    let wait = Instant::now();
    while !status.is_finished() && wait.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(worker);
    if let Some(e) = status.error() {
        return Err(CliError(e));
    }
    if !status.is_finished() {
        return Err(CliError(format!(
            "the recording to {} could not be closed in time",
            args.output.display()
        )));
    }
    eprintln!(
        "mqscope record: {} ({why_stopped}): {} messages and {} packets in {:.1} s, {} written to {}",
        if failure.is_some() {
            "connection failed"
        } else {
            "done"
        },
        status.messages(),
        status.packets(),
        started.elapsed().as_secs_f64(),
        human_bytes(status.bytes()),
        args.output.display()
    );
    match failure {
        Some(why) => Err(CliError(why)),
        None => Ok(0),
    }
}

/// Runs `mqscope replay`; returns the exit code.
pub fn run_replay(args: ReplayArgs) -> i32 {
    match replay(args) {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("mqscope replay: {msg}");
            1
        }
    }
}

fn replay(args: ReplayArgs) -> Result<i32, CliError> {
    for t in &args.topics {
        crate::profile::validate_topic_filter(t)
            .map_err(|why| CliError(format!("invalid topic filter '{t}': {why}")))?;
    }
    if let (Some(f), Some(t)) = (args.from, args.to)
        && t <= f
    {
        return Err(CliError(format!("--to {t} is not after --from {f}")));
    }
    let capture = CaptureFile::open(&args.file).map_err(|e| CliError(e.to_string()))?;
    if let Some(n) = capture.notice() {
        eprintln!("mqscope replay: {}: {n}", args.file.display());
    }
    let profile = args.conn.to_profile()?;
    let v5 = profile.protocol == ProtocolVersion::V5;
    if !v5 && !args.no_properties && capture.header().protocol_version() == ProtocolVersion::V5 {
        eprintln!(
            "mqscope replay: the capture is MQTT 5 and this connection 3.1.1: message properties are not sent (use -V 5 to keep them)"
        );
    }
    let options = ReplayOptions {
        speed: args.speed,
        from_secs: args.from,
        to_secs: args.to,
        topics: args.topics.clone(),
        maps: args.maps.clone(),
        qos: args.qos,
        retain: args.retain,
        properties: v5 && !args.no_properties,
        ..ReplayOptions::default()
    };
    let total = Replay::select(&capture, &options).len();
    if total == 0 {
        return Err(CliError(format!(
            "nothing to replay: the capture holds {} messages and none is selected",
            capture.message_count()
        )));
    }
    let broker = format!("{}:{}", profile.host, profile.port);
    catch_ctrl_c();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    // Connect first: publishes before CONNACK would fail at once.
    loop {
        if interrupted() {
            return Ok(130);
        }
        let Some(ev) = worker.recv_timeout(Duration::from_secs(60)) else {
            return Err(CliError("no answer from the broker for 60 s".into()));
        };
        match ev.kind {
            EventKind::Status(ConnStatus::Connected { .. }) => break,
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                return Err(CliError(reason));
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                return Err(CliError(reason.unwrap_or_else(|| "disconnected".into())));
            }
            EventKind::Packet(r) if args.conn.trace => crate::cli::trace(&r),
            _ => {}
        }
    }
    let sender = worker.sender();
    let started = Instant::now();
    let replay = Replay::start(
        Arc::new(capture),
        CONN,
        options,
        Box::new(move |cmd| sender.send(cmd)),
    );
    let mut last_report = Instant::now();
    let mut last_change = (Instant::now(), 0u64);
    let mut lost = None;
    loop {
        if interrupted() && !replay.progress().stopped {
            eprintln!("mqscope replay: interrupted: stopping");
            replay.stop();
        }
        let p = replay.progress();
        if p.finished {
            break;
        }
        let moved = p.sent + p.done + p.failed;
        if moved != last_change.1 {
            last_change = (Instant::now(), moved);
        } else if !p.paused && last_change.0.elapsed() > Duration::from_secs(60) {
            eprintln!("mqscope replay: no progress for 60 s: stopping");
            replay.stop();
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "mqscope replay: {}/{} sent, {} published, {} failed",
                p.sent, p.total, p.done, p.failed
            );
            last_report = Instant::now();
        }
        let Some(ev) = worker.recv_timeout(Duration::from_millis(20)) else {
            continue;
        };
        match ev.kind {
            EventKind::Published { token, outcome } => {
                replay.on_published(token, &outcome);
            }
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                eprintln!("mqscope replay: connection lost: {reason}; reconnecting");
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                lost = Some(reason.unwrap_or_else(|| "disconnected".into()));
                replay.stop();
                break;
            }
            EventKind::Packet(r) if args.conn.trace => crate::cli::trace(&r),
            EventKind::Error(e) => eprintln!("mqscope replay: {e}"),
            _ => {}
        }
    }
    let p = replay.progress();
    let secs = started.elapsed().as_secs_f64();
    drop(replay);
    worker.send(Command::Disconnect { conn: CONN });
    let mut packets = crate::cli::Packets::new(&args.conn, false);
    crate::cli::drain_trace(&worker, &mut packets, &mut std::io::stdout());
    eprintln!(
        "mqscope replay: {} of {} messages published to {broker} in {secs:.2} s ({:.0} msg/s), {} failed{}",
        p.done,
        p.total,
        p.done as f64 / secs.max(1e-6),
        p.failed,
        if p.stopped { ", stopped early" } else { "" }
    );
    for f in &p.failures {
        eprintln!("mqscope replay: failed: {f}");
    }
    if let Some(e) = p.error {
        return Err(CliError(e));
    }
    if let Some(why) = lost {
        return Err(CliError(why));
    }
    let unpublished = p.total - p.done;
    Ok(if unpublished > 0 { 1 } else { 0 })
}
