//! Headless subcommands (`sub`, `pub`) that follow mosquitto_sub/pub habits.
//! They run the same worker as the GUI, so they are also how the pipeline is
//! tested and measured without a window.

use crate::model::packet::PacketRecord;
use crate::model::protocol::{Properties, ProtocolVersion};
use crate::model::store::{HistoryLimits, Store};
use crate::mqtt::{Command, ConnStatus, Event, EventKind, PublishOutcome, Worker};
use crate::profile::{Profile, ProfileStore, Qos, SubscriptionSpec, TlsVersion, TransportKind};
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
    /// ALPN protocol(s), comma separated (mosquitto's --tls-alpn).
    #[arg(long, visible_alias = "tls-alpn")]
    pub alpn: Option<String>,
    /// A directory of CA certificates (PEM files) to verify the broker
    /// with; implies TLS.
    #[arg(long)]
    pub capath: Option<PathBuf>,
    /// Trust the system's root certificates too (beside --cafile or
    /// --capath); implies TLS.
    #[arg(long = "tls-use-os-certs")]
    pub tls_use_os_certs: bool,
    /// The TLS version, as mosquitto's --tls-version: tlsv1.2 (1.2 or
    /// newer) or tlsv1.3 (1.3 only).
    #[arg(long = "tls-version", value_parser = parse_tls_version)]
    pub tls_version: Option<TlsVersion>,
    /// Connect over websockets: ws://, or wss:// with the TLS flags.
    #[arg(long)]
    pub ws: bool,
    /// The websocket path (default /mqtt).
    #[arg(long = "ws-path", value_name = "PATH")]
    pub ws_path: Option<String>,
    /// An extra HTTP header for the websocket upgrade, `Name: value`
    /// (repeatable).
    #[arg(long = "ws-header", value_name = "NAME: VALUE")]
    pub ws_headers: Vec<String>,
    /// The broker as a URL: mqtt(s)://[user[:password]@]host[:port]/topic
    /// as mosquitto's -L, or ws(s)://[user[:password]@]host[:port]/path
    /// (the path is the websocket path; give the topic with -t).
    #[arg(short = 'L', long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// Reach the broker through an HTTP CONNECT proxy:
    /// http://[user[:password]@]host[:port]. (SOCKS, which mosquitto's
    /// --proxy speaks, is not supported by the MQTT library.)
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Print every control packet as mosquitto_sub/pub -d do, on stdout.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
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

fn parse_tls_version(s: &str) -> Result<TlsVersion, String> {
    match s {
        "tlsv1.2" => Ok(TlsVersion::V12),
        "tlsv1.3" => Ok(TlsVersion::V13),
        "tlsv1.1" | "tlsv1" => Err(format!(
            "{s} is not supported: it is insecure and the TLS library speaks only tlsv1.2 and tlsv1.3"
        )),
        other => Err(format!(
            "unknown TLS version '{other}': use tlsv1.2 or tlsv1.3"
        )),
    }
}

/// What `-L URL` says.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    pub transport: TransportKind,
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, Option<String>)>,
    /// mqtt(s)://: the topic; ws(s)://: the websocket path.
    pub path: String,
}

/// Reads `-L`: `mqtt(s)://[user[:password]@]host[:port]/topic` or the same
/// with `ws(s)://` and a websocket path.
pub fn parse_url(url: &str) -> Result<BrokerUrl, CliError> {
    let bad = |why: &str| CliError(format!("-L {url}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected mqtt://, mqtts://, ws:// or wss://"))?;
    let (transport, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" => (TransportKind::Tcp, 1883),
        "mqtts" => (TransportKind::Tls, 8883),
        "ws" => (TransportKind::Ws, 80),
        "wss" => (TransportKind::Wss, 443),
        _ => {
            return Err(bad(
                "unsupported scheme: use mqtt://, mqtts://, ws:// or wss://",
            ));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((cred, hp)) => {
            let (user, pass) = match cred.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(p.to_string())),
                None => (cred.to_string(), None),
            };
            (Some((user, pass)), hp)
        }
        None => (None, authority),
    };
    let (host, port) = crate::profile::split_host_port(hostport).map_err(|e| bad(&e))?;
    let path = match transport {
        TransportKind::Tcp | TransportKind::Tls => {
            let topic = path.strip_prefix('/').unwrap_or(path);
            if topic.is_empty() {
                return Err(bad("no topic: mqtt://host[:port]/topic"));
            }
            topic.to_string()
        }
        _ if path.is_empty() => "/mqtt".to_string(),
        _ => path.to_string(),
    };
    Ok(BrokerUrl {
        transport,
        host,
        port: port.unwrap_or(default_port),
        credentials,
        path,
    })
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
    #[arg(short = 't', long = "topic", required_unless_present_any = ["url", "unsubscribe"])]
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
    /// Do not print stale retained messages (those with the retain flag).
    #[arg(short = 'R')]
    pub no_retained: bool,
    /// Do not print messages whose topic matches this filter (repeatable).
    #[arg(short = 'T', long = "filter-out", value_name = "FILTER")]
    pub filter_out: Vec<String>,
    /// Unsubscribe from this filter after connecting (repeatable); with -c
    /// and -i it removes a persistent subscription. Alone (no -t), exits
    /// once the broker has acknowledged every UNSUBSCRIBE.
    #[arg(short = 'U', long = "unsubscribe", value_name = "FILTER")]
    pub unsubscribe: Vec<String>,
    /// Exit once every subscription has been acknowledged.
    #[arg(short = 'E')]
    pub exit_after_sub: bool,
    /// Only print retained messages; exit at the first message that is not.
    #[arg(long = "retained-only")]
    pub retained_only: bool,
    /// Clear every retained message received (publish an empty retained
    /// message, QoS 1, to its topic); -T keeps topics out of it.
    #[arg(long = "remove-retained")]
    pub remove_retained: bool,
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
    #[arg(short = 't', long = "topic", required_unless_present = "url")]
    pub topic: Option<String>,
    /// Read standard input and send one message per line (without its end
    /// of line; empty lines are sent as empty messages).
    #[arg(short = 'l', long = "stdin-line", conflicts_with_all = ["message", "file", "null", "stdin"])]
    pub lines: bool,
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
        let url = self.url.as_deref().map(parse_url).transpose()?;
        if let Some(u) = &url {
            p.host = u.host.clone();
            p.transport = u.transport;
            if matches!(u.transport, TransportKind::Ws | TransportKind::Wss) {
                p.ws.path = u.path.clone();
            }
            if let Some((user, pass)) = &u.credentials {
                p.username = user.clone();
                if let Some(pass) = pass {
                    p.password = pass.clone();
                }
            }
        }
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
        let tls = self.tls
            || self.cafile.is_some()
            || self.capath.is_some()
            || self.tls_use_os_certs
            || self.tls_version.is_some()
            || self.insecure
            || self.cert.is_some();
        let ws = self.ws || matches!(p.transport, TransportKind::Ws | TransportKind::Wss);
        let tls = tls || matches!(p.transport, TransportKind::Tls | TransportKind::Wss);
        if self.ws || tls || url.is_some() {
            p.transport = match (ws, tls) {
                (false, false) => TransportKind::Tcp,
                (false, true) => TransportKind::Tls,
                (true, false) => TransportKind::Ws,
                (true, true) => TransportKind::Wss,
            };
        }
        if let Some(path) = &self.ws_path {
            if !ws {
                return Err(CliError("--ws-path needs --ws (or a ws:// URL)".into()));
            }
            p.ws.path = path.clone();
        }
        if !self.ws_headers.is_empty() {
            if !ws {
                return Err(CliError("--ws-header needs --ws (or a ws:// URL)".into()));
            }
            for h in &self.ws_headers {
                let Some((name, value)) = h.split_once(':') else {
                    return Err(CliError(format!("--ws-header '{h}': expected NAME: VALUE")));
                };
                p.ws.headers
                    .push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        if self.capath.is_some() {
            p.tls.ca_path = self.capath.clone();
        }
        if self.tls_use_os_certs {
            p.tls.use_os_certs = true;
        }
        if let Some(v) = self.tls_version {
            p.tls.version = v;
        }
        if let Some(proxy) = &self.proxy {
            crate::profile::parse_proxy_url(proxy)
                .map_err(|e| CliError(format!("--proxy: {e}")))?;
            p.proxy = proxy.clone();
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
        match (self.port, &url) {
            (Some(port), _) => p.port = port,
            (None, Some(u)) => p.port = u.port,
            (None, None) if self.profile.is_none() => {
                p.port = match p.transport {
                    TransportKind::Tcp => 1883,
                    TransportKind::Tls => 8883,
                    TransportKind::Ws => 80,
                    TransportKind::Wss => 443,
                }
            }
            (None, None) => {}
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

impl ConnArgs {
    /// The topic of an `mqtt(s)://host/topic` URL given with -L.
    pub fn url_topic(&self) -> Result<Option<String>, CliError> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let u = parse_url(url)?;
        Ok(matches!(u.transport, TransportKind::Tcp | TransportKind::Tls).then_some(u.path))
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

/// Where packet records go: `--trace` (JSON lines on stderr) and `-d`
/// (mosquitto's debug lines on stdout, between the messages).
pub(crate) struct Packets {
    trace: bool,
    debug: Option<crate::cli_debug::DebugLog>,
}

impl Packets {
    pub(crate) fn new(conn: &ConnArgs, subscriber: bool) -> Packets {
        Packets {
            trace: conn.trace,
            debug: conn
                .debug
                .then(|| crate::cli_debug::DebugLog::new(subscriber)),
        }
    }

    pub(crate) fn debug(&self) -> bool {
        self.debug.is_some()
    }

    /// Prints the record; `out` is the stdout the messages go to.
    pub(crate) fn print(&mut self, record: &PacketRecord, out: &mut dyn Write) {
        if self.trace {
            trace(record);
        }
        if let Some(log) = &mut self.debug {
            for line in log.lines(record) {
                writeln!(out, "{line}").ok();
            }
            out.flush().ok();
        }
    }
}

/// After a DISCONNECT was asked for: prints every packet until the socket
/// is closed, so a trace holds the whole connection.
pub(crate) fn drain_trace(worker: &Worker, packets: &mut Packets, out: &mut dyn Write) {
    while let Some(ev) = worker.recv_timeout(Duration::from_secs(3)) {
        match ev.kind {
            EventKind::Packet(r) => packets.print(&r, out),
            EventKind::Status(ConnStatus::Disconnected { .. }) => break,
            _ => {}
        }
    }
    out.flush().ok();
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

fn sub(mut args: SubArgs) -> Result<i32, CliError> {
    if let Some(topic) = args.conn.url_topic()? {
        args.topics.insert(0, topic);
    }
    if args.topics.is_empty() && args.unsubscribe.is_empty() {
        return Err(CliError(
            "no topic: give -t FILTER (or a topic in the -L URL, or -U FILTER)".into(),
        ));
    }
    for (flag, t) in args
        .topics
        .iter()
        .map(|t| ("", t))
        .chain(args.filter_out.iter().map(|t| ("-T ", t)))
        .chain(args.unsubscribe.iter().map(|t| ("-U ", t)))
    {
        crate::profile::validate_topic_filter(t)
            .map_err(|why| CliError(format!("{flag}invalid topic filter '{t}': {why}")))?;
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
    let mut packets = Packets::new(&args.conn, true);
    let mut received = 0u64;
    let mut ever_connected = false;
    let mut refused = 0usize;
    let mut acked = 0usize;
    let mut unsubscribed = 0usize;
    let mut last_flush = Instant::now();
    let mut qos2 = OpenQos2::default();
    // -d: as mosquitto_sub, a QoS 1/2 message is printed once its PUBACK /
    // PUBCOMP has gone out.
    let mut held: Vec<crate::mqtt::Message> = Vec::new();
    // --remove-retained: empty retained publishes not yet acknowledged.
    let mut removals = 0u64;
    loop {
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            out.flush().ok();
            // As mosquitto_sub: a clean DISCONNECT, then the exit code.
            if ever_connected {
                worker.send(Command::Disconnect { conn: CONN });
                drain_trace(worker, &mut packets, &mut out);
            }
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
        let mut ready = Vec::new();
        let mut closed = None;
        match kind {
            EventKind::Message(m) => {
                if packets.debug() && m.qos != Qos::AtMostOnce {
                    held.push(m);
                } else {
                    ready.push(m);
                }
            }
            EventKind::Status(ConnStatus::Connected { .. }) => {
                if !ever_connected {
                    for filter in &args.unsubscribe {
                        worker.send(Command::Unsubscribe {
                            conn: CONN,
                            filter: filter.clone(),
                        });
                    }
                }
                ever_connected = true;
            }
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                if !ever_connected {
                    return Err(CliError(reason));
                }
                eprintln!("mqscope sub: connection lost: {reason}; reconnecting");
                // -d: a message whose acknowledgement never went out is
                // still shown, not lost with the connection.
                ready.append(&mut held);
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                ready.append(&mut held);
                closed = Some(reason.unwrap_or_else(|| "disconnected".into()));
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
                acked += 1;
            }
            EventKind::Subscribed { .. } => acked += 1,
            EventKind::Unsubscribed { filter, reason } => {
                if let Some(why) = reason {
                    eprintln!("mqscope sub: unsubscribing from '{filter}': {why}");
                }
                unsubscribed += 1;
            }
            EventKind::Packet(record) => {
                qos2.track(&record);
                packets.print(&record, &mut out);
                if packets.debug()
                    && record.dir == crate::model::packet::Direction::Out
                    && let Some(id) = record.pkid
                {
                    let done = match record.kind {
                        crate::model::packet::PacketKind::Puback => Some(Qos::AtLeastOnce),
                        crate::model::packet::PacketKind::Pubcomp => Some(Qos::ExactlyOnce),
                        _ => None,
                    };
                    if let Some(q) = done
                        && let Some(i) = held.iter().position(|m| m.pkid == id && m.qos == q)
                    {
                        ready.push(held.remove(i));
                    }
                }
            }
            EventKind::Published { outcome, .. } => {
                removals = removals.saturating_sub(1);
                if let PublishOutcome::Failed(why) = outcome {
                    eprintln!("mqscope sub: a retained message was not removed: {why}");
                }
            }
            EventKind::Error(e) => eprintln!("mqscope sub: {e}"),
            EventKind::Dropped { messages, packets } => eprintln!(
                "mqscope sub: {messages} messages and {packets} packet records dropped: output could not keep up"
            ),
            _ => {}
        }
        for m in ready {
            // --retained-only: the first live message ends the run.
            if args.retained_only && !m.retain {
                out.flush().ok();
                qos2.finish(worker, &mut removals, &mut packets, &mut out);
                worker.send(Command::Disconnect { conn: CONN });
                drain_trace(worker, &mut packets, &mut out);
                return Ok(0);
            }
            // -R and -T: not printed and not counted, as mosquitto_sub.
            if (args.no_retained && m.retain)
                || args
                    .filter_out
                    .iter()
                    .any(|f| crate::model::topic::matches(f, &m.topic))
            {
                continue;
            }
            if args.remove_retained && m.retain {
                removals += 1;
                worker.send(Command::Publish {
                    conn: CONN,
                    token: removals,
                    topic: m.topic.clone(),
                    payload: Vec::new(),
                    qos: Qos::AtLeastOnce,
                    retain: true,
                    props: None,
                });
            }
            if let Some(stats) = stats.as_deref_mut() {
                stats.add(&m);
            }
            let decoded = decoder.as_mut().map(|d| d.line(&m));
            let payload = decoded.as_deref().unwrap_or(&m.payload);
            let written = if let Some(f) = format {
                f.write(&m, &mut out)
            } else if args.verbose {
                // An empty payload reads "(null)", as mosquitto_sub -v prints it.
                let shown: &[u8] = if payload.is_empty() {
                    b"(null)"
                } else {
                    payload
                };
                out.write_all(m.topic.as_bytes())
                    .and_then(|_| out.write_all(b" "))
                    .and_then(|_| out.write_all(shown))
            } else {
                out.write_all(payload)
            };
            let eol: &[u8] = if args.no_eol { b"" } else { b"\n" };
            // stdout closed (e.g. piped into `head`): stop quietly.
            if written.and_then(|_| out.write_all(eol)).is_err() {
                return Ok(0);
            }
            received += 1;
            if packets.debug() || last_flush.elapsed() > Duration::from_millis(100) {
                out.flush().ok();
                last_flush = Instant::now();
            }
            if args.count.is_some_and(|c| received >= c) {
                out.flush().ok();
                // A QoS 2 delivery ends with our PUBCOMP: let it finish
                // so the broker does not keep the message half delivered.
                qos2.finish(worker, &mut removals, &mut packets, &mut out);
                worker.send(Command::Disconnect { conn: CONN });
                // The acknowledgements of the last message and the
                // DISCONNECT cross the wire after it: trace them too.
                drain_trace(worker, &mut packets, &mut out);
                return Ok(0);
            }
        }
        if let Some(reason) = closed {
            out.flush().ok();
            return Err(CliError(reason));
        }
        let subscribed = !args.topics.is_empty() && acked >= args.topics.len();
        let only_unsubscribing = args.topics.is_empty() && unsubscribed >= args.unsubscribe.len();
        if (args.exit_after_sub && subscribed) || only_unsubscribing {
            worker.send(Command::Disconnect { conn: CONN });
            drain_trace(worker, &mut packets, &mut out);
            return Ok(0);
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

    /// Waits (up to 3 s) until every open delivery has sent its PUBCOMP and
    /// the `publishes` still open are answered, printing the packets when
    /// tracing.
    fn finish(
        &mut self,
        worker: &Worker,
        publishes: &mut u64,
        packets: &mut Packets,
        out: &mut dyn Write,
    ) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.0.is_empty() || *publishes > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(ev) = worker.recv_timeout(left) else {
                return;
            };
            match ev.kind {
                EventKind::Packet(r) => {
                    self.track(&r);
                    packets.print(&r, out);
                }
                EventKind::Published { outcome, .. } => {
                    *publishes = publishes.saturating_sub(1);
                    if let PublishOutcome::Failed(why) = outcome {
                        eprintln!("mqscope sub: a retained message was not removed: {why}");
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
    let topic = match (&args.topic, args.conn.url_topic()?) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t,
        (None, None) => {
            return Err(CliError(
                "no topic: give -t TOPIC (or a topic in the -L URL)".into(),
            ));
        }
    };
    crate::profile::validate_topic_name(&topic)
        .map_err(|why| CliError(format!("invalid topic '{topic}': {why}")))?;
    // -l reads standard input line by line once connected; the others read
    // the payload before connecting.
    let mut payload = if args.lines {
        None
    } else {
        Some(args.payload.read()?)
    };
    let profile = args.conn.to_profile()?;
    let publish_props = parse_properties(&args.conn.properties)?.publish.boxed();
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut packets = Packets::new(&args.conn, false);
    let mut lines: Option<std::sync::mpsc::Receiver<Result<Vec<u8>, String>>> = None;
    let mut sent = 0u64;
    let mut settled = 0u64;
    let mut input_done = false;
    let mut failure = None;
    let send = |token: u64, payload: Vec<u8>| {
        worker.send(Command::Publish {
            conn: CONN,
            token,
            topic: topic.clone(),
            payload,
            qos: args.qos,
            retain: args.retain,
            props: publish_props.clone(),
        });
    };
    loop {
        // -l: publish the lines read so far.
        if let Some(rx) = &lines {
            loop {
                match rx.try_recv() {
                    Ok(Ok(line)) => {
                        sent += 1;
                        send(sent, line);
                    }
                    Ok(Err(e)) => {
                        failure.get_or_insert(CliError(e));
                        input_done = true;
                        break;
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        input_done = true;
                        break;
                    }
                }
            }
        }
        if input_done && settled >= sent {
            worker.send(Command::Disconnect { conn: CONN });
            drain_trace(&worker, &mut packets, &mut out);
            return failure.map_or(Ok(()), Err);
        }
        let wait = if lines.is_some() {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(60)
        };
        let Some(Event { kind, .. }) = worker.recv_timeout(wait) else {
            if lines.is_some() {
                continue;
            }
            return Err(CliError("no progress for 60 s".into()));
        };
        match kind {
            EventKind::Status(ConnStatus::Connected { .. }) => {
                if let Some(payload) = payload.take() {
                    sent = 1;
                    input_done = true;
                    send(1, payload);
                } else if args.lines && lines.is_none() {
                    lines = Some(read_lines());
                }
            }
            EventKind::Published { outcome, .. } => {
                settled += 1;
                if let PublishOutcome::Failed(why) = outcome {
                    if !args.lines {
                        // As mosquitto_pub: the refusal ends the session
                        // with a clean DISCONNECT.
                        input_done = true;
                        failure = Some(CliError(why));
                    } else {
                        eprintln!("mqscope pub: {why}");
                        failure.get_or_insert(CliError("a publish failed".into()));
                    }
                }
            }
            EventKind::Status(ConnStatus::Reconnecting { reason, .. }) => {
                return Err(CliError(reason));
            }
            EventKind::Status(ConnStatus::Disconnected { reason }) => {
                return Err(CliError(reason.unwrap_or_else(|| "disconnected".into())));
            }
            EventKind::Packet(record) => packets.print(&record, &mut out),
            EventKind::Error(e) => return Err(CliError(e)),
            _ => {}
        }
    }
}

/// `-l`: standard input, one message per line (without the end of line),
/// read on a thread so the connection is served while input trickles in.
fn read_lines() -> std::sync::mpsc::Receiver<Result<Vec<u8>, String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tx.send(Err(format!("cannot read standard input: {e}")))
                        .ok();
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_mqtt_gives_credentials_host_port_and_topic() {
        let u = parse_url("mqtt://alice:pw@broker.lan:1884/a/b").unwrap();
        assert_eq!(u.transport, TransportKind::Tcp);
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("broker.lan", 1884, "a/b")
        );
        assert_eq!(u.credentials, Some(("alice".into(), Some("pw".into()))));
        assert_eq!(parse_url("mqtts://h/t").unwrap().port, 8883);
        assert!(
            parse_url("mqtt://h").is_err(),
            "mosquitto's -L needs a topic"
        );
        assert!(parse_url("http://h/t").is_err());
    }

    #[test]
    fn url_ws_gives_the_websocket_path() {
        let u = parse_url("wss://h/gateway").unwrap();
        assert_eq!(u.transport, TransportKind::Wss);
        assert_eq!((u.port, u.path.as_str()), (443, "/gateway"));
        assert_eq!(parse_url("ws://h:9001").unwrap().path, "/mqtt");
    }
}
