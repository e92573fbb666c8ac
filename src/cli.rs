//! Headless subcommands (`sub`, `pub`) that follow mosquitto_sub/pub habits.
//! They run the same worker as the GUI, so they are also how the pipeline is
//! tested and measured without a window.

use crate::model::packet::PacketRecord;
use crate::model::protocol::{Properties, ProtocolVersion};
use crate::model::store::{HistoryLimits, Store};
use crate::mqtt::{Command, ConnStatus, Event, EventKind, PublishOutcome, Worker};
use crate::profile::{Profile, ProfileStore, Qos, SubscriptionSpec, TransportKind};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Exit code when `-W` runs out before `-C` messages arrived (as mosquitto_sub).
pub const EXIT_TIMEOUT: i32 = 27;

#[derive(Parser, Debug)]
#[command(
    name = "mqscope",
    version,
    about = "A native MQTT explorer that makes the protocol visible.\n\nWithout a subcommand, opens the window."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Subscribe and print messages (like mosquitto_sub).
    #[command(disable_help_flag = true)]
    Sub(SubArgs),
    /// Publish one message and wait for its handshake (like mosquitto_pub).
    #[command(disable_help_flag = true)]
    Pub(PubArgs),
    /// Send a request and wait for its response (like mosquitto_rr; MQTT 5).
    #[command(disable_help_flag = true)]
    Rr(crate::rr::RrArgs),
    /// Run the built-in sandbox broker with simulated devices until Ctrl-C.
    Sandbox(crate::sandbox::SandboxArgs),
    /// Decode MQTT from a pcap/pcapng file or an mqscope capture: a summary, or --trace.
    Read(crate::capture::cli::ReadArgs),
    /// Export the messages of a pcap/pcapng file or an mqscope capture to CSV or JSON Lines.
    Export(crate::capture::cli::ExportArgs),
    /// Import connection profiles from MQTT Explorer or MQTTX.
    Import(crate::profile::import::ImportArgs),
    /// Subscribe and record everything to a capture file until -C, -W or Ctrl-C.
    #[command(disable_help_flag = true)]
    Record(crate::capture::live_cli::RecordArgs),
    /// Publish a capture's messages into a broker (--speed 1|N|max, --map FROM=TO).
    #[command(disable_help_flag = true)]
    Replay(crate::capture::live_cli::ReplayArgs),
}

/// Connection flags shared by `sub` and `pub`; mosquitto's letters.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Start from a saved profile; other flags override its fields.
    #[arg(long)]
    pub profile: Option<String>,
    /// Broker host.
    #[arg(short = 'h', long)]
    pub host: Option<String>,
    /// Broker port (default 1883, or 8883 with TLS).
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// Client id (default: a generated mqscope-xxxxxx).
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    #[arg(short = 'P', long = "pw")]
    pub password: Option<String>,
    /// Keep-alive in seconds.
    #[arg(short = 'k', long = "keepalive")]
    pub keepalive: Option<u16>,
    /// Clean session off: the broker keeps subscriptions and queues messages.
    #[arg(short = 'c', long = "no-clean")]
    pub no_clean: bool,
    /// Use TLS with the system's root certificates.
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) to verify the broker with; implies TLS.
    #[arg(long)]
    pub cafile: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Do not verify the broker's certificate (TLS); implies TLS.
    #[arg(long)]
    pub insecure: bool,
    /// ALPN protocol(s), comma separated.
    #[arg(long)]
    pub alpn: Option<String>,
    #[arg(long = "will-topic")]
    pub will_topic: Option<String>,
    #[arg(long = "will-payload")]
    pub will_payload: Option<String>,
    #[arg(long = "will-qos", value_parser = parse_qos)]
    pub will_qos: Option<Qos>,
    #[arg(long = "will-retain")]
    pub will_retain: bool,
    /// Print every control packet as a JSON line on stderr.
    #[arg(long)]
    pub trace: bool,
    /// Protocol version: mqttv5 (5) or mqttv311 (311), as mosquitto's -V.
    #[arg(short = 'V', long = "protocol-version", value_parser = parse_protocol)]
    pub protocol: Option<ProtocolVersion>,
    /// MQTT 5 property: -D COMMAND IDENTIFIER VALUE (repeatable), as
    /// mosquitto's -D, e.g. `-D publish user-property unit C` (a user
    /// property takes KEY VALUE) or `-D connect session-expiry-interval 60`.
    #[arg(short = 'D', long = "property", num_args = 3..=4, value_names = ["COMMAND", "IDENTIFIER", "VALUE"], action = clap::ArgAction::Append)]
    pub properties: Vec<String>,
}

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        "mqttv311" | "311" => Ok(ProtocolVersion::V311),
        "mqttv31" | "31" => Err(
            "MQTT 3.1 is not supported (brokers and mqscope speak 3.1.1 and 5): use -V 311 or -V 5"
                .into(),
        ),
        other => Err(format!(
            "unknown protocol version '{other}': use mqttv5, 5, mqttv311 or 311"
        )),
    }
}

/// The `-D` properties, grouped by the packet they go in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CliProperties {
    pub connect: Properties,
    pub publish: Properties,
    pub will: Properties,
    pub subscribe: Properties,
}

impl CliProperties {
    fn is_empty(&self) -> bool {
        self.connect.is_empty()
            && self.publish.is_empty()
            && self.will.is_empty()
            && self.subscribe.is_empty()
    }
}

/// Reads `-D` triples (and the fourth word of a user property) the way
/// mosquitto_pub/sub do.
pub fn parse_properties(words: &[String]) -> Result<CliProperties, CliError> {
    let mut out = CliProperties::default();
    let mut i = 0;
    while i < words.len() {
        let (Some(command), Some(name), Some(value)) =
            (words.get(i), words.get(i + 1), words.get(i + 2))
        else {
            return Err(CliError("-D needs COMMAND IDENTIFIER VALUE".into()));
        };
        i += 3;
        let target = match command.as_str() {
            "connect" => &mut out.connect,
            "publish" => &mut out.publish,
            "will" => &mut out.will,
            "subscribe" => &mut out.subscribe,
            other => {
                return Err(CliError(format!(
                    "-D: '{other}' is not a command that takes properties here (connect, publish, will, subscribe)"
                )));
            }
        };
        let num = |v: &str| -> Result<u32, CliError> {
            v.parse::<u32>()
                .map_err(|_| CliError(format!("-D {command} {name}: '{v}' is not a number")))
        };
        let small = |v: &str| -> Result<u16, CliError> {
            v.parse::<u16>().map_err(|_| {
                CliError(format!(
                    "-D {command} {name}: '{v}' is not a number from 0 to 65535"
                ))
            })
        };
        match name.as_str() {
            "user-property" => {
                let Some(v2) = words.get(i) else {
                    return Err(CliError(
                        "-D ... user-property needs a KEY and a VALUE".into(),
                    ));
                };
                i += 1;
                target.user_property.push((value.clone(), v2.clone()));
            }
            "content-type" => target.content_type = Some(value.clone()),
            "response-topic" => target.response_topic = Some(value.clone()),
            "correlation-data" => {
                target.correlation_data = Some(bytes::Bytes::from(value.clone().into_bytes()))
            }
            "payload-format-indicator" => {
                target.payload_format_indicator = Some(small(value)?.min(255) as u8)
            }
            "message-expiry-interval" => target.message_expiry_interval = Some(num(value)?),
            "session-expiry-interval" => target.session_expiry_interval = Some(num(value)?),
            "receive-maximum" => target.receive_maximum = Some(small(value)?),
            "maximum-packet-size" => target.maximum_packet_size = Some(num(value)?),
            "topic-alias-maximum" => target.topic_alias_maximum = Some(small(value)?),
            "request-response-information" => {
                target.request_response_information = Some(small(value)?.min(1) as u8)
            }
            "request-problem-information" => {
                target.request_problem_information = Some(small(value)?.min(1) as u8)
            }
            "will-delay-interval" => target.will_delay_interval = Some(num(value)?),
            "subscription-identifier" => target.subscription_identifier.push(num(value)? as usize),
            other => {
                return Err(CliError(format!(
                    "-D: unknown or unsupported property '{other}'"
                )));
            }
        }
    }
    Ok(out)
}

#[derive(Args, Debug, Clone)]
pub struct SubArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic filter (repeatable).
    #[arg(short = 't', long = "topic", required = true)]
    pub topics: Vec<String>,
    /// QoS of the subscriptions.
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0")]
    pub qos: Qos,
    /// Exit after this many messages.
    #[arg(short = 'C', long = "count")]
    pub count: Option<u64>,
    /// Exit (code 27) after this many seconds without finishing.
    #[arg(short = 'W', long = "timeout")]
    pub timeout: Option<u64>,
    /// Print `topic payload` instead of the payload alone.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Output format, as mosquitto_sub's -F: %t topic, %p payload, %q QoS,
    /// %r retain, %l length, %m message id, %x/%X payload in hex, %I ISO
    /// time, %U Unix time; MQTT 5: %A topic alias, %C content type, %D
    /// correlation data, %E message expiry, %F payload format, %P user
    /// properties (key:value), %R response topic, %S subscription
    /// identifier; %% a %; @X strftime's %X; \n \t \0 ... escapes.
    #[arg(short = 'F', long = "format")]
    pub format: Option<String>,
    /// No end of line after each message.
    #[arg(short = 'N')]
    pub no_eol: bool,
    /// Keep messages in the same Store the window uses and print its figures
    /// on stderr at exit: messages, topics, bytes, time, msg/s, evictions,
    /// memory.
    #[arg(long)]
    pub stats: bool,
    /// Print each payload as one JSON line, decoded: auto (Sparkplug B on
    /// spBv1.0/ topics, MessagePack/CBOR by MQTT 5 content type, else the
    /// payload as JSON), sparkplug, msgpack, cbor or
    /// protobuf:FILE.proto:package.Message.
    #[arg(long, value_name = "DECODER")]
    pub decode: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PubArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    #[command(flatten)]
    pub payload: PayloadArgs,
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0")]
    pub qos: Qos,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,
}

fn parse_qos(s: &str) -> Result<Qos, String> {
    s.parse::<u8>()
        .ok()
        .and_then(Qos::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not '{s}'"))
}

/// An error for the person at the terminal: one line, then exit code 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl ConnArgs {
    /// The profile these flags describe (starting from `--profile` if given).
    pub fn to_profile(&self) -> Result<Profile, CliError> {
        let mut p = match &self.profile {
            Some(name) => load_profile(name)?,
            None => Profile {
                name: "command line".into(),
                subscriptions: Vec::new(),
                ..Profile::default()
            },
        };
        p.subscriptions.clear();
        if let Some(h) = &self.host {
            p.host = h.clone();
        }
        if let Some(id) = &self.id {
            p.client_id = id.clone();
        }
        if let Some(u) = &self.username {
            p.username = u.clone();
        }
        if let Some(pw) = &self.password {
            p.password = pw.clone();
        }
        if let Some(k) = self.keepalive {
            p.keep_alive_secs = k;
        }
        if self.no_clean {
            p.clean_session = false;
        }
        let tls = self.tls || self.cafile.is_some() || self.insecure || self.cert.is_some();
        if tls {
            p.transport = TransportKind::Tls;
        }
        if self.cafile.is_some() {
            p.tls.ca_file = self.cafile.clone();
        }
        if self.cert.is_some() {
            p.tls.client_cert = self.cert.clone();
        }
        if self.key.is_some() {
            p.tls.client_key = self.key.clone();
        }
        if self.insecure {
            p.tls.verify_server = false;
        }
        if let Some(a) = &self.alpn {
            p.tls.alpn = a.clone();
        }
        match self.port {
            Some(port) => p.port = port,
            None if self.profile.is_none() => {
                p.port = if p.transport == TransportKind::Tls {
                    8883
                } else {
                    1883
                }
            }
            None => {}
        }
        if let Some(t) = &self.will_topic {
            p.will.enabled = true;
            p.will.topic = t.clone();
            p.will.payload = self.will_payload.clone().unwrap_or_default();
            p.will.qos = self.will_qos.unwrap_or_default();
            p.will.retain = self.will_retain;
        }
        if let Some(v) = self.protocol {
            p.protocol = v;
        }
        let props = parse_properties(&self.properties)?;
        if !props.is_empty() && p.protocol != ProtocolVersion::V5 {
            return Err(CliError("-D properties need MQTT 5: add -V mqttv5".into()));
        }
        let c = &props.connect;
        if c.session_expiry_interval.is_some() {
            p.v5.session_expiry_interval = c.session_expiry_interval;
        }
        if c.receive_maximum.is_some() {
            p.v5.receive_maximum = c.receive_maximum;
        }
        if let Some(m) = c.maximum_packet_size {
            p.max_packet_size = m as usize;
        }
        if c.topic_alias_maximum.is_some() {
            p.v5.topic_alias_maximum = c.topic_alias_maximum;
        }
        if let Some(r) = c.request_response_information {
            p.v5.request_response_information = r != 0;
        }
        if let Some(r) = c.request_problem_information {
            p.v5.request_problem_information = r != 0;
        }
        p.v5.user_properties.extend(c.user_property.iter().cloned());
        let w = &props.will;
        if w.will_delay_interval.is_some() {
            p.will.delay_interval = w.will_delay_interval;
        }
        if w.message_expiry_interval.is_some() {
            p.will.message_expiry = w.message_expiry_interval;
        }
        if let Some(ct) = &w.content_type {
            p.will.content_type = ct.clone();
        }
        if let Some(rt) = &w.response_topic {
            p.will.response_topic = rt.clone();
        }
        if let Some(cd) = &w.correlation_data {
            p.will.correlation_data = String::from_utf8_lossy(cd).into_owned();
        }
        p.will
            .user_properties
            .extend(w.user_property.iter().cloned());
        if let Some(e) = p.validate().into_iter().next() {
            return Err(CliError(e.message));
        }
        Ok(p)
    }
}

fn load_profile(name: &str) -> Result<Profile, CliError> {
    let mut store = ProfileStore::open_default().map_err(|e| CliError(e.to_string()))?;
    let profiles = store.load().map_err(|e| CliError(e.to_string()))?;
    profiles
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            CliError(format!(
                "no profile named '{name}' in {}",
                store.dir().display()
            ))
        })
}

pub(crate) const CONN: u64 = 1;

pub(crate) fn trace(record: &PacketRecord) {
    if let Ok(line) = serde_json::to_string(record) {
        eprintln!("{line}");
    }
}

/// After a DISCONNECT was asked for: prints every packet until the socket
/// is closed, so a trace holds the whole connection.
pub(crate) fn drain_trace(worker: &Worker, print: bool) {
    while let Some(ev) = worker.recv_timeout(Duration::from_secs(3)) {
        match ev.kind {
            EventKind::Packet(r) if print => trace(&r),
            EventKind::Status(ConnStatus::Disconnected { .. }) => break,
            _ => {}
        }
    }
}

/// Runs `mqscope sub`; returns the process exit code.
pub fn run_sub(args: SubArgs) -> i32 {
    match sub(args) {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("mqscope sub: {msg}");
            1
        }
    }
}

fn sub(args: SubArgs) -> Result<i32, CliError> {
    for t in &args.topics {
        crate::profile::validate_topic_filter(t)
            .map_err(|why| CliError(format!("invalid topic filter '{t}': {why}")))?;
    }
    let format = args
        .format
        .as_deref()
        .map(crate::sub_format::Format::parse)
        .transpose()
        .map_err(CliError)?;
    // A wrong decoder or .proto is reported before connecting.
    let decoder = match &args.decode {
        Some(spec) => Some(PayloadDecoder::new(spec)?),
        None => None,
    };
    let mut profile = args.conn.to_profile()?;
    let props = parse_properties(&args.conn.properties)?.subscribe;
    profile.subscriptions = args
        .topics
        .iter()
        .map(|t| SubscriptionSpec {
            filter: t.clone(),
            qos: args.qos,
            subscription_identifier: props.subscription_identifier.first().map(|&i| i as u32),
            user_properties: props.user_property.clone(),
            ..SubscriptionSpec::default()
        })
        .collect();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    let mut stats = args.stats.then(Stats::new);
    let result = sub_loop(&args, format.as_ref(), &worker, stats.as_mut(), decoder);
    if let Some(stats) = stats {
        stats.print();
    }
    result
}

/// `--stats`: the GUI's Store, fed the same way, and what it holds at exit.
struct Stats {
    store: Store,
    start: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            store: Store::new(HistoryLimits::default()),
            start: Instant::now(),
            first: None,
            last: None,
        }
    }

    fn add(&mut self, m: &crate::mqtt::Message) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.store.apply_message(m);
    }

    fn print(&self) {
        let s = &self.store;
        let elapsed = self.start.elapsed().as_secs_f64();
        let streaming = match (self.first, self.last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let n = s.total_messages();
        let mem = s.memory_estimate();
        let topics = s.topic_count();
        eprintln!("messages: {n}");
        eprintln!("topics: {topics}");
        eprintln!("bytes: {}", s.total_bytes());
        eprintln!("elapsed: {elapsed:.3} s (first to last message: {streaming:.3} s)");
        eprintln!(
            "rate: {:.0} msg/s",
            if streaming > 0.0 {
                n as f64 / streaming
            } else {
                0.0
            }
        );
        eprintln!("evicted payloads: {}", s.evicted_payloads());
        eprintln!("truncated payloads: {}", s.truncated_payloads());
        eprintln!(
            "store memory: {:.1} MB ({} B/topic)",
            mem as f64 / 1e6,
            mem.checked_div(topics).unwrap_or(0)
        );
        if let Some(kb) = peak_rss_kb() {
            eprintln!("peak RSS: {:.1} MB", kb as f64 / 1024.0);
        }
    }
}

/// VmHWM from /proc (Linux); None elsewhere.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `--decode`: the decoder and the Sparkplug aliases learnt so far.
struct PayloadDecoder {
    choice: crate::model::decode::DecodeChoice,
    aliases: crate::model::decode::SparkplugAliases,
}

impl PayloadDecoder {
    fn new(spec: &str) -> Result<PayloadDecoder, CliError> {
        Ok(PayloadDecoder {
            choice: crate::model::decode::DecodeChoice::parse(spec)
                .map_err(|e| CliError(format!("--decode: {e}")))?,
            aliases: Default::default(),
        })
    }

    /// One JSON line for the message. A payload the decoder refuses is
    /// printed as `{"error": ..., "payload": ...}` (and said on stderr).
    fn line(&mut self, m: &crate::mqtt::Message) -> Vec<u8> {
        use crate::model::decode;
        let content_type = m.props.as_ref().and_then(|p| p.content_type.as_deref());
        let value = decode::decode(
            &self.choice,
            &m.topic,
            content_type,
            &m.payload,
            &mut self.aliases,
        )
        .unwrap_or_else(|e| {
            eprintln!("mqscope sub: {}: {e}", m.topic);
            serde_json::json!({"error": e.0, "payload": decode::as_json(&m.payload)})
        });
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

fn sub_loop(
    args: &SubArgs,
    format: Option<&crate::sub_format::Format>,
    worker: &Worker,
    mut stats: Option<&mut Stats>,
    mut decoder: Option<PayloadDecoder>,
) -> Result<i32, CliError> {
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(s));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut received = 0u64;
    let mut ever_connected = false;
    let mut refused = 0usize;
    let mut last_flush = Instant::now();
    let mut qos2 = OpenQos2::default();
    loop {
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            out.flush().ok();
            eprintln!(
                "mqscope sub: timed out after {} s",
                args.timeout.unwrap_or(0)
            );
            return Ok(EXIT_TIMEOUT);
        }
        let Some(Event { kind, .. }) = worker.recv_timeout(Duration::from_millis(50)) else {
            out.flush().ok();
            continue;
        };
        match kind {
            EventKind::Message(m) => {
                if let Some(stats) = stats.as_deref_mut() {
                    stats.add(&m);
                }
                let decoded = decoder.as_mut().map(|d| d.line(&m));
                let payload = decoded.as_deref().unwrap_or(&m.payload);
                let written = if let Some(f) = format {
                    f.write(&m, &mut out)
                } else if args.verbose {
                    out.write_all(m.topic.as_bytes())
                        .and_then(|_| out.write_all(b" "))
                        .and_then(|_| out.write_all(payload))
                } else {
                    out.write_all(payload)
                };
                let eol: &[u8] = if args.no_eol { b"" } else { b"\n" };
                // stdout closed (e.g. piped into `head`): stop quietly.
                if written.and_then(|_| out.write_all(eol)).is_err() {
                    return Ok(0);
                }
                received += 1;
                if last_flush.elapsed() > Duration::from_millis(100) {
                    out.flush().ok();
                    last_flush = Instant::now();
                }
                if args.count.is_some_and(|c| received >= c) {
                    out.flush().ok();
                    // A QoS 2 delivery ends with our PUBCOMP: let it finish
                    // so the broker does not keep the message half delivered.
                    qos2.finish(worker, args.conn.trace);
                    worker.send(Command::Disconnect { conn: CONN });
                    // The acknowledgements of the last message and the
                    // DISCONNECT cross the wire after it: trace them too.
                    drain_trace(worker, args.conn.trace);
                    return Ok(0);
                }
            }
            EventKind::Status(ConnStatus::Connected { .. }) => ever_connected = true,
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                if !ever_connected {
                    return Err(CliError(reason));
                }
                eprintln!("mqscope sub: connection lost: {reason}; reconnecting");
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                return Err(CliError(reason.unwrap_or_else(|| "disconnected".into())));
            }
            EventKind::Subscribed {
                filter,
                granted: None,
                reason,
            } => {
                match reason {
                    Some(why) => eprintln!(
                        "mqscope sub: the broker refused the subscription to '{filter}': {why}"
                    ),
                    None => {
                        eprintln!("mqscope sub: the broker refused the subscription to '{filter}'")
                    }
                }
                refused += 1;
                if refused == args.topics.len() {
                    return Err(CliError("all subscription requests were denied".into()));
                }
            }
            EventKind::Packet(record) => {
                qos2.track(&record);
                if args.conn.trace {
                    trace(&record);
                }
            }
            EventKind::Error(e) => eprintln!("mqscope sub: {e}"),
            EventKind::Dropped { messages, packets } => eprintln!(
                "mqscope sub: {messages} messages and {packets} packet records dropped: output could not keep up"
            ),
            _ => {}
        }
    }
}

/// Incoming QoS 2 deliveries whose PUBCOMP has not gone out yet.
#[derive(Default)]
struct OpenQos2(std::collections::HashSet<u16>);

impl OpenQos2 {
    fn track(&mut self, r: &PacketRecord) {
        use crate::model::packet::{Direction, PacketKind};
        match (r.dir, r.kind, r.pkid) {
            (Direction::In, PacketKind::Publish, Some(id)) if r.qos == Some(2) => {
                self.0.insert(id);
            }
            (Direction::Out, PacketKind::Pubcomp, Some(id)) => {
                self.0.remove(&id);
            }
            _ => {}
        }
    }

    /// Waits (up to 3 s) until every open delivery has sent its PUBCOMP,
    /// printing the packets when tracing.
    fn finish(&mut self, worker: &Worker, print: bool) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.0.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(ev) = worker.recv_timeout(left) else {
                return;
            };
            match ev.kind {
                EventKind::Packet(r) => {
                    self.track(&r);
                    if print {
                        trace(&r);
                    }
                }
                EventKind::Status(
                    ConnStatus::Reconnecting { .. } | ConnStatus::Disconnected { .. },
                ) => {
                    return;
                }
                _ => {}
            }
        }
    }
}

/// Where a published payload comes from: `-m`, `-f`, `-s` or `-n`, as
/// mosquitto_pub and mosquitto_rr take it.
#[derive(Args, Debug, Clone, Default)]
pub struct PayloadArgs {
    /// Message payload.
    #[arg(short = 'm', long = "message", conflicts_with_all = ["file", "null", "stdin"])]
    pub message: Option<String>,
    /// Send the contents of a file as the payload.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Send an empty payload (with pub -r: deletes a retained message).
    #[arg(short = 'n', long = "null-message")]
    pub null: bool,
    /// Read the payload from standard input.
    #[arg(short = 's', long = "stdin-file")]
    pub stdin: bool,
}

impl PayloadArgs {
    /// The payload, as mosquitto_pub reads it.
    pub(crate) fn read(&self) -> Result<Vec<u8>, CliError> {
        if let Some(m) = &self.message {
            Ok(m.as_bytes().to_vec())
        } else if let Some(f) = &self.file {
            std::fs::read(f).map_err(|e| CliError(format!("cannot read {}: {e}", f.display())))
        } else if self.stdin {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|e| CliError(format!("cannot read standard input: {e}")))?;
            Ok(buf)
        } else if self.null {
            Ok(Vec::new())
        } else {
            Err(CliError(
                "nothing to publish: give -m MESSAGE, -f FILE, -s (stdin) or -n (empty)".into(),
            ))
        }
    }
}

/// Runs `mqscope pub`; returns the process exit code.
pub fn run_pub(args: PubArgs) -> i32 {
    match publish(args) {
        Ok(()) => 0,
        Err(CliError(msg)) => {
            eprintln!("mqscope pub: {msg}");
            1
        }
    }
}

fn publish(args: PubArgs) -> Result<(), CliError> {
    crate::profile::validate_topic_name(&args.topic)
        .map_err(|why| CliError(format!("invalid topic '{}': {why}", args.topic)))?;
    let payload = args.payload.read()?;
    let profile = args.conn.to_profile()?;
    let publish_props = parse_properties(&args.conn.properties)?.publish.boxed();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    let mut payload = Some(payload);
    loop {
        let Some(Event { kind, .. }) = worker.recv_timeout(Duration::from_secs(60)) else {
            return Err(CliError("no progress for 60 s".into()));
        };
        match kind {
            EventKind::Status(ConnStatus::Connected { .. }) => {
                if let Some(payload) = payload.take() {
                    worker.send(Command::Publish {
                        conn: CONN,
                        token: 1,
                        topic: args.topic.clone(),
                        payload,
                        qos: args.qos,
                        retain: args.retain,
                        props: publish_props.clone(),
                    });
                }
            }
            EventKind::Published { outcome, .. } => match outcome {
                PublishOutcome::Sent
                | PublishOutcome::Acknowledged
                | PublishOutcome::AcknowledgedWith(_) => {
                    worker.send(Command::Disconnect { conn: CONN });
                    drain_trace(&worker, args.conn.trace);
                    return Ok(());
                }
                PublishOutcome::Failed(why) => return Err(CliError(why)),
            },
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                return Err(CliError(reason));
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                return Err(CliError(reason.unwrap_or_else(|| "disconnected".into())));
            }
            EventKind::Packet(record) if args.conn.trace => trace(&record),
            EventKind::Error(e) => return Err(CliError(e)),
            _ => {}
        }
    }
}
