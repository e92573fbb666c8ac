//! `mqscope rr`: MQTT 5 request / response, following mosquitto_rr. It
//! subscribes to the response topic, publishes the request with a Response
//! Topic and Correlation Data, and waits for the reply that carries the
//! same correlation data; with `-v` it also says how long that took.

use crate::cli::{CONN, CliError, ConnArgs, EXIT_TIMEOUT, Packets, drain_trace, parse_properties};
use crate::model::packet::{Direction, PacketKind};
use crate::model::protocol::{ProtocolVersion, bytes_in_words};
use crate::mqtt::{Command, ConnStatus, Event, EventKind, PublishOutcome, Worker};
use crate::profile::{Qos, SubscriptionSpec};
use crate::sub_format::Format;
use bytes::Bytes;
use clap::Args;
use std::io::Write as _;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct RrArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic the request is published to (or the topic of an
    /// `mqtt://host/topic` URL given with -L).
    #[arg(
        short = 't',
        long = "topic",
        required_unless_present = "url",
        default_value = ""
    )]
    pub topic: String,
    /// Response topic: subscribed to, and sent as the request's Response
    /// Topic property.
    #[arg(short = 'e', long = "response-topic")]
    pub response_topic: String,
    /// The request payload.
    #[command(flatten)]
    pub payload: crate::cli::PayloadArgs,
    /// QoS of the request and of the response subscription.
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0")]
    pub qos: Qos,
    /// Give up (exit code 27) after this many seconds without a response.
    #[arg(short = 'W', long = "timeout")]
    pub timeout: Option<u64>,
    /// Print `topic payload`, and the round-trip time on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Output format of the response, as `sub -F` (mosquitto_sub's tokens).
    #[arg(short = 'F', long = "format")]
    pub format: Option<String>,
    /// No end of line after the response.
    #[arg(short = 'N')]
    pub no_eol: bool,
}

fn parse_qos(s: &str) -> Result<Qos, String> {
    s.parse::<u8>()
        .ok()
        .and_then(Qos::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not '{s}'"))
}

/// Runs `mqscope rr`; returns the process exit code.
pub fn run_rr(args: RrArgs) -> i32 {
    match rr(args) {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("mqscope rr: {msg}");
            1
        }
    }
}

/// Correlation data unique to this request: the process id and time.
fn fresh_correlation() -> Bytes {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Bytes::from(format!("mqscope-rr-{}-{nanos:x}", std::process::id()))
}

fn rr(mut args: RrArgs) -> Result<i32, CliError> {
    if args.topic.is_empty()
        && let Some(t) = args.conn.url_topic()?
    {
        args.topic = t;
    }
    crate::profile::validate_topic_name(&args.topic)
        .map_err(|why| CliError(format!("invalid request topic '{}': {why}", args.topic)))?;
    crate::profile::validate_topic_name(&args.response_topic).map_err(|why| {
        CliError(format!(
            "invalid response topic '{}': {why} (it is sent as the Response Topic property, which names one topic)",
            args.response_topic
        ))
    })?;
    let format = args
        .format
        .as_deref()
        .map(Format::parse)
        .transpose()
        .map_err(CliError)?;
    let payload = args.payload.read()?;
    let mut conn = args.conn.clone();
    // mosquitto_rr defaults to MQTT 5: the exchange lives in its properties.
    let protocol = *conn.protocol.get_or_insert(ProtocolVersion::V5);
    if protocol != ProtocolVersion::V5 {
        return Err(CliError(
            "request / response needs MQTT 5 (Response Topic and Correlation Data are MQTT 5 properties): use -V 5".into(),
        ));
    }
    let mut profile = conn.to_profile()?;
    let mut props = parse_properties(&conn.properties)?.publish;
    props.response_topic = Some(args.response_topic.clone());
    let correlation = props
        .correlation_data
        .get_or_insert_with(fresh_correlation)
        .clone();
    profile.subscriptions = vec![SubscriptionSpec::new(&args.response_topic, args.qos)];

    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut packets = Packets::new(&conn, false);
    let mut request = Some((payload, Box::new(props)));
    let mut sent_at: Option<(Instant, Option<u64>)> = None;
    let mut last_in_publish: Option<(u64, u64)> = None;
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if deadline.is_some() && wait.is_zero() {
            worker.send(Command::Disconnect { conn: CONN });
            drain_trace(&worker, &mut packets, &mut std::io::stdout());
            eprintln!(
                "mqscope rr: timed out after {} s without a response on '{}'",
                args.timeout.unwrap_or(0),
                args.response_topic
            );
            return Ok(EXIT_TIMEOUT);
        }
        let Some(Event { kind, .. }) = worker.recv_timeout(wait.min(Duration::from_millis(200)))
        else {
            continue;
        };
        match kind {
            EventKind::Subscribed {
                filter,
                granted: Some(_),
                ..
            } if filter == args.response_topic => {
                // Subscribed first, so the response cannot arrive unseen.
                if let Some((payload, props)) = request.take() {
                    worker.send(Command::Publish {
                        conn: CONN,
                        token: 1,
                        topic: args.topic.clone(),
                        payload,
                        qos: args.qos,
                        retain: false,
                        props: Some(props),
                    });
                    sent_at = Some((Instant::now(), None));
                }
            }
            EventKind::Subscribed {
                filter,
                granted: None,
                reason,
            } => {
                return Err(CliError(format!(
                    "the broker refused the subscription to the response topic '{filter}'{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )));
            }
            EventKind::Published {
                outcome: PublishOutcome::Failed(why),
                ..
            } => return Err(CliError(format!("the request was not delivered: {why}"))),
            EventKind::Packet(r) => {
                packets.print(&r, &mut std::io::stdout());
                match (r.dir, r.kind) {
                    (Direction::Out, PacketKind::Publish) => {
                        if let Some((_, t @ None)) = &mut sent_at {
                            *t = Some(r.t_us);
                        }
                    }
                    (Direction::In, PacketKind::Publish) => last_in_publish = Some((r.seq, r.t_us)),
                    _ => {}
                }
            }
            EventKind::Message(m) => {
                let ours = m.topic == args.response_topic
                    && m.props.as_ref().and_then(|p| p.correlation_data.as_ref())
                        == Some(&correlation);
                if !ours {
                    if args.verbose {
                        eprintln!(
                            "mqscope rr: ignored a message on '{}' with correlation data {}",
                            m.topic,
                            m.props
                                .as_ref()
                                .and_then(|p| p.correlation_data.as_deref())
                                .map_or("(none)".into(), bytes_in_words)
                        );
                    }
                    continue;
                }
                // Round trip on the wire: our PUBLISH out to theirs in.
                let rtt = match (sent_at, last_in_publish) {
                    (Some((_, Some(out_us))), Some((seq, in_us))) if m.packet_seq == Some(seq) => {
                        Duration::from_micros(in_us.saturating_sub(out_us))
                    }
                    (Some((at, _)), _) => at.elapsed(),
                    (None, _) => Duration::ZERO,
                };
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let written = if let Some(f) = &format {
                    f.write(&m, &mut out)
                } else if args.verbose {
                    out.write_all(m.topic.as_bytes())
                        .and_then(|_| out.write_all(b" "))
                        .and_then(|_| out.write_all(&m.payload))
                } else {
                    out.write_all(&m.payload)
                };
                let eol: &[u8] = if args.no_eol { b"" } else { b"\n" };
                written
                    .and_then(|_| out.write_all(eol))
                    .and_then(|_| out.flush())
                    .ok();
                if args.verbose {
                    eprintln!("round trip: {:.3} ms", rtt.as_secs_f64() * 1000.0);
                }
                worker.send(Command::Disconnect { conn: CONN });
                drain_trace(&worker, &mut packets, &mut std::io::stdout());
                return Ok(0);
            }
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                return Err(CliError(reason));
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                return Err(CliError(reason.unwrap_or_else(|| "disconnected".into())));
            }
            EventKind::Error(e) => return Err(CliError(e)),
            _ => {}
        }
    }
}
