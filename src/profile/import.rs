//! Profiles from other MQTT tools: MQTT Explorer's `settings.json` and
//! MQTTX's JSON export of connections, recognised by content.
//!
//! Every option of the source is either carried into the profile or named
//! in the report as not imported, with the reason: nothing is dropped
//! silently. Certificates are written as files beside mqscope's profiles
//! (`certs/`, keys readable by the owner only); a password only when the
//! user asks for it.
//!
//! Formats, as the tools' sources define them:
//! * MQTT Explorer: `{"ConnectionManager_connections": {ID: ConnectionOptions}}`
//!   with `host`, `port`, `protocol` (`mqtt`|`ws`), `basePath`, `encryption`,
//!   `certValidation`, `selfSignedCertificate` / `clientCertificate` /
//!   `clientKey` as `{name, data}` (data: the file in base64), `username`,
//!   `password`, `clientId`, `subscriptions` (`[{topic, qos}]`, older
//!   versions `[topic]`) and `will` (`{topic, payload, qos, retain}`).
//! * MQTTX: one `ConnectionModel` or an array of them (collections nest
//!   theirs in `children`): `host`, `port`, `protocol`
//!   (`mqtt`|`mqtts`|`ws`|`wss`), `path`, `ssl`, `certType`, `ca`/`cert`/`key`
//!   (file paths), `rejectUnauthorized`, `username`, `password`, `clientId`,
//!   `clean`, `keepalive`, `mqttVersion` (`3.1.1`|`5.0`), `will`
//!   (`lastWillTopic`, `lastWillPayload`, `lastWillQos`, `lastWillRetain`,
//!   `properties`), `properties` (MQTT 5 connect properties) and
//!   `subscriptions` (`topic`, `qos`, `nl`, `rap`, `rh`, ...).

use super::{
    Profile, ProfileStore, ProtocolVersion, Qos, RetainHandling, SaveOutcome, SubscriptionSpec,
    TransportKind, unique_name,
};
use base64::Engine as _;
use clap::Args;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// MQTT Explorer's settings.json, or a JSON export of MQTTX connections.
    pub file: PathBuf,
    /// Also import saved passwords (kept in mqscope's passwords file,
    /// readable by you only).
    #[arg(long)]
    pub with_passwords: bool,
}

/// Which tool a file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    MqttExplorer,
    Mqttx,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::MqttExplorer => "MQTT Explorer",
            Source::Mqttx => "MQTTX",
        }
    }
}

/// A certificate or key to write beside the profiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFile {
    pub role: CertRole,
    pub pem: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    Ca,
    ClientCert,
    ClientKey,
}

impl CertRole {
    fn label(self) -> &'static str {
        match self {
            CertRole::Ca => "CA certificate",
            CertRole::ClientCert => "client certificate",
            CertRole::ClientKey => "client key",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            CertRole::Ca => "ca.pem",
            CertRole::ClientCert => "cert.pem",
            CertRole::ClientKey => "key.pem",
        }
    }
}

/// One connection of the source, turned into a profile.
#[derive(Clone, Debug)]
pub struct Converted {
    /// The connection's name in the source.
    pub source_name: String,
    pub profile: Profile,
    /// Certificates to write (the profile's TLS paths are set on import).
    pub certs: Vec<CertFile>,
    /// The source had a password (imported only when asked).
    pub had_password: bool,
    /// What could not be carried over, one sentence each.
    pub not_imported: Vec<String>,
}

/// What an import did.
#[derive(Debug)]
pub struct Report {
    pub source: Source,
    /// (profile as saved, the connection it came from)
    pub imported: Vec<Converted>,
    /// Where each profile's certificates went.
    pub cert_paths: Vec<Vec<(CertRole, PathBuf)>>,
    pub outcome: SaveOutcome,
    pub passwords: bool,
    /// Problems `Profile::validate` finds in each imported profile.
    pub checks: Vec<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON ({message})")]
    NotJson { path: PathBuf, message: String },
    #[error(
        "{path} is neither MQTT Explorer's settings.json (no \"ConnectionManager_connections\") nor an MQTTX export of connections (no object with \"host\" and \"mqttVersion\" or \"clientId\")"
    )]
    Unknown { path: PathBuf },
    #[error("{path} holds no connections")]
    Empty { path: PathBuf },
    #[error(transparent)]
    Store(#[from] super::StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Recognises the format and converts every connection. `base` resolves
/// relative certificate paths (MQTTX stores paths, not contents).
pub fn convert(value: &Value, base: &Path) -> Option<(Source, Vec<Converted>)> {
    if let Some(conns) = value
        .get("ConnectionManager_connections")
        .and_then(Value::as_object)
    {
        let list = conns
            .iter()
            .filter_map(|(id, c)| c.as_object().map(|c| mqtt_explorer(id, c)))
            .collect();
        return Some((Source::MqttExplorer, list));
    }
    let mut found = Vec::new();
    collect_mqttx(value, &mut found);
    if found.is_empty() {
        return None;
    }
    Some((
        Source::Mqttx,
        found.into_iter().map(|c| mqttx(c, base)).collect(),
    ))
}

fn is_mqttx_connection(c: &Map<String, Value>) -> bool {
    c.contains_key("host")
        && (c.contains_key("mqttVersion") || c.contains_key("clientId"))
        && !c.contains_key("ConnectionManager_connections")
}

/// MQTTX connections: one object, an array, collections with `children`.
fn collect_mqttx<'a>(value: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_mqttx(v, out)),
        Value::Object(o) if is_mqttx_connection(o) => out.push(o),
        Value::Object(o) => {
            if let Some(children) = o.get("children") {
                collect_mqttx(children, out);
            }
        }
        _ => {}
    }
}

/// Keys a source keeps for itself (ids, ordering, timestamps): not options.
const MQTT_EXPLORER_META: &[&str] = &["id", "configVersion", "type", "name"];
const MQTTX_META: &[&str] = &[
    "id",
    "name",
    "createAt",
    "updateAt",
    "orderId",
    "parentId",
    "collectionId",
    "isCollection",
    "unreadMessageCount",
    "client",
];

/// A JSON object whose fields are taken one by one; what is left at the end
/// is reported.
struct Fields<'a> {
    map: Map<String, Value>,
    what: &'a str,
}

impl<'a> Fields<'a> {
    fn new(map: &Map<String, Value>, what: &'a str, meta: &[&str]) -> Fields<'a> {
        let mut map = map.clone();
        for k in meta {
            map.remove(*k);
        }
        Fields { map, what }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.map.insert(key.into(), other);
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.take(key)? {
            Value::Bool(b) => Some(b),
            other => {
                self.map.insert(key.into(), other);
                None
            }
        }
    }

    fn number(&mut self, key: &str) -> Option<u64> {
        let v = self.take(key)?;
        let n = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if !s.trim().is_empty() => s.trim().parse().ok(),
            Value::String(_) => return None,
            _ => None,
        };
        if n.is_none() {
            self.map.insert(key.into(), v);
        }
        n
    }

    /// Options left over, as "what KEY = VALUE: reason" sentences; empty and
    /// default-looking values (null, false, "", [], {}) say nothing.
    fn leftovers(self, notes: &mut Vec<String>) {
        for (k, v) in self.map {
            let empty = match &v {
                Value::Null => true,
                Value::Bool(b) => !b,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                Value::Number(_) => false,
            };
            if !empty {
                notes.push(format!(
                    "{}{k} = {}: mqscope has no such option",
                    self.what,
                    short(&v)
                ));
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn qos_of(n: Option<u64>) -> Qos {
    n.and_then(|n| u8::try_from(n).ok())
        .and_then(Qos::from_u8)
        .unwrap_or_default()
}

/// A websocket path as the importers write it ("ws", "/mqtt"), with its
/// leading slash.
fn ws_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn port_of(n: Option<u64>, default: u16, notes: &mut Vec<String>) -> u16 {
    match n {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => {
            notes.push(format!(
                "port {p} is not a TCP port: {default} used instead"
            ));
            default
        }
        None => default,
    }
}

/// A certificate's bytes as PEM: PEM stays, a DER certificate is wrapped.
fn to_pem(role: CertRole, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Ok(bytes);
    }
    if role == CertRole::ClientKey {
        return Err("it is not PEM (a DER key's type cannot be told)".into());
    }
    // DER: an ASN.1 SEQUENCE.
    if bytes.first() != Some(&0x30) {
        return Err("it is neither PEM nor a DER certificate".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
    for line in b64.as_bytes().chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    Ok(pem)
}

fn subscriptions(
    value: Option<Value>,
    v5_options: bool,
    notes: &mut Vec<String>,
) -> Vec<SubscriptionSpec> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(topic) => out.push(SubscriptionSpec::new(topic, Qos::AtMostOnce)),
            Value::Object(o) => {
                let mut f = Fields::new(&o, "", &["id", "createAt", "color"]);
                let Some(topic) = f.string("topic") else {
                    notes.push(format!(
                        "a subscription without a topic: {}",
                        short(&Value::Object(o.clone()))
                    ));
                    continue;
                };
                let mut spec = SubscriptionSpec::new(topic.clone(), qos_of(f.number("qos")));
                if v5_options {
                    spec.no_local = f.boolean("nl").unwrap_or(false);
                    spec.retain_as_published = f.boolean("rap").unwrap_or(false);
                    spec.retain_handling = match f.number("rh") {
                        Some(1) => RetainHandling::OnNewSubscribe,
                        Some(2) => RetainHandling::Never,
                        _ => RetainHandling::OnSubscribe,
                    };
                    spec.subscription_identifier = f
                        .number("subscriptionIdentifier")
                        .and_then(|n| u32::try_from(n).ok());
                }
                if f.boolean("disabled") == Some(true) {
                    notes.push(format!(
                        "subscription '{topic}' was disabled there: mqscope subscribes to it (remove it if unwanted)"
                    ));
                }
                if let Some(alias) = f.string("alias").filter(|a| !a.is_empty()) {
                    notes.push(format!(
                        "subscription '{topic}': alias '{alias}': mqscope has no such option"
                    ));
                }
                // A retain flag on a subscription is MQTTX's display option.
                f.take("retain");
                let what = format!("subscription '{topic}': ");
                let Fields { map, .. } = f;
                Fields { map, what: &what }.leftovers(notes);
                out.push(spec);
            }
            other => notes.push(format!(
                "a subscription that is not understood: {}",
                short(&other)
            )),
        }
    }
    out
}

fn mqtt_explorer(id: &str, c: &Map<String, Value>) -> Converted {
    let source_name = c
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(id)
        .to_string();
    let mut notes = Vec::new();
    let mut f = Fields::new(c, "", MQTT_EXPLORER_META);
    let mut p = Profile {
        name: source_name.clone(),
        subscriptions: Vec::new(),
        ..Profile::default()
    };
    p.host = f.string("host").unwrap_or_default();
    let tls = f.boolean("encryption").unwrap_or(false);
    let ws = match f.string("protocol").as_deref() {
        None | Some("mqtt") => false,
        Some("ws") => true,
        Some(other) => {
            notes.push(format!("protocol '{other}' is not known: imported as mqtt"));
            false
        }
    };
    p.transport = match (ws, tls) {
        (false, false) => TransportKind::Tcp,
        (false, true) => TransportKind::Tls,
        (true, false) => TransportKind::Ws,
        (true, true) => TransportKind::Wss,
    };
    // MQTT Explorer writes the path without its leading slash ("ws").
    if let Some(path) = f.string("basePath").filter(|p| !p.is_empty())
        && ws
    {
        p.ws.path = ws_path(&path);
    }
    let default_port = if tls { 8883 } else { 1883 };
    p.port = port_of(f.number("port"), default_port, &mut notes);
    p.username = f.string("username").unwrap_or_default();
    let password = f.string("password").unwrap_or_default();
    if let Some(id) = f.string("clientId").filter(|s| !s.is_empty()) {
        p.client_id = id;
    }
    if let Some(v) = f.boolean("certValidation") {
        p.tls.verify_server = v;
    }
    if let Some(clean) = f.boolean("clean").or_else(|| f.boolean("cleanSession")) {
        p.clean_session = clean;
    }
    if let Some(k) = f.number("keepalive").and_then(|k| u16::try_from(k).ok()) {
        p.keep_alive_secs = k;
    }
    let mut certs = Vec::new();
    for (key, role) in [
        ("selfSignedCertificate", CertRole::Ca),
        ("clientCertificate", CertRole::ClientCert),
        ("clientKey", CertRole::ClientKey),
    ] {
        let Some(v) = f.take(key) else {
            continue;
        };
        let name = v.get("name").and_then(Value::as_str).unwrap_or(key);
        let data = v.get("data").and_then(Value::as_str).unwrap_or("");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("its data is not base64 ({e})"))
            .and_then(|bytes| to_pem(role, bytes));
        match decoded {
            Ok(pem) => certs.push(CertFile { role, pem }),
            Err(why) => notes.push(format!("{} '{name}' not imported: {why}", role.label())),
        }
    }
    p.subscriptions = subscriptions(f.take("subscriptions"), false, &mut notes);
    if let Some(Value::Object(w)) = f.take("will") {
        let mut wf = Fields::new(&w, "will ", &[]);
        let topic = wf.string("topic").unwrap_or_default();
        if !topic.is_empty() {
            p.will.enabled = true;
            p.will.topic = topic;
            p.will.payload = wf.string("payload").unwrap_or_default();
            p.will.qos = qos_of(wf.number("qos"));
            p.will.retain = wf.boolean("retain").unwrap_or(false);
        }
        wf.leftovers(&mut notes);
    }
    f.leftovers(&mut notes);
    Converted {
        source_name,
        profile: p,
        certs,
        had_password: !password.is_empty(),
        not_imported: notes,
    }
    .with_password(password)
}

impl Converted {
    fn with_password(mut self, password: String) -> Converted {
        self.profile.password = password;
        self
    }
}

fn user_properties(v: Option<Value>, what: &str, notes: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        None => {}
        Some(Value::Object(o)) => {
            for (k, v) in o {
                match v {
                    Value::String(s) => out.push((k, s)),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::String(s) => out.push((k.clone(), s)),
                                other => out.push((k.clone(), other.to_string())),
                            }
                        }
                    }
                    other => out.push((k, other.to_string())),
                }
            }
        }
        Some(other) => notes.push(format!(
            "{what}user properties not understood: {}",
            short(&other)
        )),
    }
    out
}

/// Correlation data as text: MQTTX keeps a string or a serialized Buffer.
fn text_of(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => {
            let data = o.get("data")?.as_array()?;
            let bytes: Vec<u8> = data
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

fn mqttx(c: &Map<String, Value>, base: &Path) -> Converted {
    let source_name = c
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or("MQTTX connection")
        .to_string();
    let mut notes = Vec::new();
    let mut f = Fields::new(c, "", MQTTX_META);
    let mut p = Profile {
        name: source_name.clone(),
        subscriptions: Vec::new(),
        ..Profile::default()
    };
    p.host = f.string("host").unwrap_or_default();
    let protocol = f.string("protocol").unwrap_or_else(|| "mqtt".into());
    let ssl = f.boolean("ssl").unwrap_or(false);
    let (ws, tls) = match protocol.as_str() {
        "mqtt" => (false, ssl),
        "mqtts" => (false, true),
        "ws" => (true, ssl),
        "wss" => (true, true),
        other => {
            notes.push(format!("protocol '{other}' is not known: imported as mqtt"));
            (false, ssl)
        }
    };
    p.transport = match (ws, tls) {
        (false, false) => TransportKind::Tcp,
        (false, true) => TransportKind::Tls,
        (true, false) => TransportKind::Ws,
        (true, true) => TransportKind::Wss,
    };
    if ws {
        if let Some(path) = f.string("path").filter(|p| !p.is_empty()) {
            p.ws.path = ws_path(&path);
        }
    } else {
        // The websocket path MQTTX keeps for every connection means nothing
        // over TCP.
        f.take("path");
    }
    p.port = port_of(f.number("port"), if tls { 8883 } else { 1883 }, &mut notes);
    p.client_id = f
        .string("clientId")
        .filter(|s| !s.is_empty())
        .unwrap_or(p.client_id);
    if f.boolean("clientIdWithTime") == Some(true) {
        notes.push(
            "client id with a time suffix: mqscope has no such option (the client id is used as is)"
                .into(),
        );
    }
    p.username = f.string("username").unwrap_or_default();
    let password = f.string("password").unwrap_or_default();
    if let Some(clean) = f.boolean("clean") {
        p.clean_session = clean;
    }
    if let Some(k) = f.number("keepalive") {
        match u16::try_from(k) {
            Ok(k) => p.keep_alive_secs = k,
            Err(_) => notes.push(format!("keep-alive {k} s is over 65535 s: 60 s used")),
        }
    }
    match f.string("mqttVersion").as_deref() {
        None | Some("3.1.1") => p.protocol = ProtocolVersion::V311,
        Some("5.0") | Some("5") => p.protocol = ProtocolVersion::V5,
        Some(other) => {
            notes.push(format!(
                "MQTT version {other} is not supported (mqscope speaks 3.1.1 and 5): imported as 3.1.1"
            ));
            p.protocol = ProtocolVersion::V311;
        }
    }
    let v5 = p.protocol == ProtocolVersion::V5;
    if let Some(t) = f.number("connectTimeout") {
        notes.push(format!("connect timeout {t} s: mqscope has no such option"));
    }
    if f.boolean("reconnect") == Some(true) {
        notes.push("automatic reconnect: mqscope always reconnects with its own back-off".into());
    }
    if let Some(t) = f.number("reconnectPeriod") {
        notes.push(format!(
            "reconnect period {t} ms: mqscope has no such option"
        ));
    }
    if let Some(Value::Array(m)) = f.take("messages")
        && !m.is_empty()
    {
        notes.push(format!(
            "{} stored messages: message history is not imported",
            m.len()
        ));
    }
    // Certificates: MQTTX keeps file paths.
    let cert_type = f.string("certType").unwrap_or_default();
    if let Some(reject) = f.boolean("rejectUnauthorized") {
        p.tls.verify_server = reject;
    }
    let mut certs = Vec::new();
    for (key, role) in [
        ("ca", CertRole::Ca),
        ("cert", CertRole::ClientCert),
        ("key", CertRole::ClientKey),
    ] {
        let Some(path) = f.string(key).filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        if !tls {
            notes.push(format!(
                "{} {path}: not used without TLS, not imported",
                role.label()
            ));
            continue;
        }
        let full = base.join(&path);
        match std::fs::read(&full)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|b| to_pem(role, b))
        {
            Ok(pem) => certs.push(CertFile { role, pem }),
            Err(why) => notes.push(format!("{} {path} not imported: {why}", role.label())),
        }
    }
    if tls && cert_type == "server" && certs.iter().all(|c| c.role != CertRole::Ca) {
        // "CA signed server certificate": the system's roots, mqscope's default.
    }
    p.subscriptions = subscriptions(f.take("subscriptions"), v5, &mut notes);
    if let Some(Value::Object(w)) = f.take("will") {
        let mut wf = Fields::new(&w, "will ", &["id"]);
        let topic = wf.string("lastWillTopic").unwrap_or_default();
        let payload = wf.string("lastWillPayload").unwrap_or_default();
        let qos = qos_of(wf.number("lastWillQos"));
        let retain = wf.boolean("lastWillRetain").unwrap_or(false);
        let props = wf.take("properties");
        if !topic.is_empty() {
            p.will.enabled = true;
            p.will.topic = topic;
            p.will.payload = payload;
            p.will.qos = qos;
            p.will.retain = retain;
            if let Some(Value::Object(props)) = props {
                let mut pf = Fields::new(&props, "will property ", &[]);
                p.will.delay_interval = pf
                    .number("willDelayInterval")
                    .and_then(|n| u32::try_from(n).ok());
                p.will.message_expiry = pf
                    .number("messageExpiryInterval")
                    .and_then(|n| u32::try_from(n).ok());
                p.will.content_type = pf.string("contentType").unwrap_or_default();
                p.will.response_topic = pf.string("responseTopic").unwrap_or_default();
                p.will.correlation_data = pf
                    .take("correlationData")
                    .and_then(text_of)
                    .unwrap_or_default();
                p.will.user_properties =
                    user_properties(pf.take("userProperties"), "will ", &mut notes);
                if pf.boolean("payloadFormatIndicator") == Some(true) {
                    notes.push(
                        "will payload format indicator (UTF-8): mqscope has no such option".into(),
                    );
                }
                pf.leftovers(&mut notes);
            }
        } else if !payload.is_empty() {
            notes.push("a will payload without a will topic: no will imported".into());
        }
        wf.leftovers(&mut notes);
    }
    if let Some(Value::Object(props)) = f.take("properties") {
        let mut pf = Fields::new(&props, "MQTT 5 property ", &[]);
        let u32_of = |n: Option<u64>| n.and_then(|n| u32::try_from(n).ok());
        let u16_of = |n: Option<u64>| n.and_then(|n| u16::try_from(n).ok());
        p.v5.session_expiry_interval = u32_of(pf.number("sessionExpiryInterval"));
        p.v5.receive_maximum = u16_of(pf.number("receiveMaximum"));
        if let Some(max) = pf.number("maximumPacketSize") {
            p.max_packet_size = max as usize;
        }
        if let Some(t) = u16_of(pf.number("topicAliasMaximum")) {
            p.v5.topic_alias_maximum = Some(t);
        }
        if let Some(r) = pf.boolean("requestResponseInformation") {
            p.v5.request_response_information = r;
        }
        if let Some(r) = pf.boolean("requestProblemInformation") {
            p.v5.request_problem_information = r;
        }
        p.v5.user_properties = user_properties(pf.take("userProperties"), "", &mut notes);
        if let Some(m) = pf.string("authenticationMethod").filter(|m| !m.is_empty()) {
            notes.push(format!(
                "authentication method '{m}': mqscope has no enhanced authentication"
            ));
        }
        if pf.take("authenticationData").is_some() {
            notes.push("authentication data: mqscope has no enhanced authentication".into());
        }
        pf.leftovers(&mut notes);
        if !v5 {
            notes
                .push("MQTT 5 properties are kept but unused: the connection is MQTT 3.1.1".into());
        }
    }
    f.leftovers(&mut notes);
    Converted {
        source_name,
        profile: p,
        certs,
        had_password: !password.is_empty(),
        not_imported: notes,
    }
    .with_password(password)
}

/// A file name from a profile name: letters, digits, `-`, `_`, `.`.
fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('.').to_string();
    if s.is_empty() { "profile".into() } else { s }
}

/// Writes `bytes` to a new file in `dir` named `stem-suffix` (or
/// `stem-2-suffix`, ...); owner-only when `private`.
fn write_new(
    dir: &Path,
    stem: &str,
    suffix: &str,
    bytes: &[u8],
    private: bool,
) -> Result<PathBuf, ImportError> {
    std::fs::create_dir_all(dir).map_err(|source| ImportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{stem}-{suffix}")
        } else {
            format!("{stem}-{n}-{suffix}")
        };
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(if private { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = private;
        match options.open(&path) {
            Ok(mut file) => {
                use std::io::Write as _;
                file.write_all(bytes)
                    .and_then(|_| file.sync_all())
                    .map_err(|source| ImportError::Write {
                        path: path.clone(),
                        source,
                    })?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(ImportError::Write { path, source }),
        }
    }
    Err(ImportError::Write {
        path: dir.join(format!("{stem}-{suffix}")),
        source: std::io::Error::other("too many files of that name"),
    })
}

/// Imports every connection of `path` into `store`.
pub fn import_file(
    path: &Path,
    store: &mut ProfileStore,
    with_passwords: bool,
) -> Result<Report, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| ImportError::NotJson {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some((source, mut converted)) = convert(&value, base) else {
        return Err(ImportError::Unknown {
            path: path.to_path_buf(),
        });
    };
    if converted.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut profiles = store.load()?;
    let certs_dir = store.dir().join("certs");
    let mut cert_paths = Vec::new();
    let mut checks = Vec::new();
    for c in &mut converted {
        let base_name = if c.profile.name.trim().is_empty() {
            format!("{} import", source.name())
        } else {
            c.profile.name.clone()
        };
        c.profile.name = unique_name(&profiles, &base_name);
        if with_passwords && c.had_password {
            c.profile.save_password = true;
        } else {
            c.profile.password.clear();
            c.profile.save_password = false;
        }
        let stem = file_stem(&c.profile.name);
        let mut written = Vec::new();
        for cert in &c.certs {
            let private = cert.role == CertRole::ClientKey;
            let file = write_new(&certs_dir, &stem, cert.role.suffix(), &cert.pem, private)?;
            match cert.role {
                CertRole::Ca => c.profile.tls.ca_file = Some(file.clone()),
                CertRole::ClientCert => c.profile.tls.client_cert = Some(file.clone()),
                CertRole::ClientKey => c.profile.tls.client_key = Some(file.clone()),
            }
            written.push((cert.role, file));
        }
        checks.push(
            c.profile
                .validate()
                .into_iter()
                .map(|e| e.message)
                .collect(),
        );
        cert_paths.push(written);
        profiles.push(c.profile.clone());
    }
    let outcome = store.save(&profiles)?;
    Ok(Report {
        source,
        imported: converted,
        cert_paths,
        outcome,
        passwords: with_passwords,
        checks,
    })
}

/// The report printed by `mqscope import`.
pub fn report_text(file: &Path, store: &ProfileStore, r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let where_to = match &r.outcome {
        SaveOutcome::Recovered(p) => format!(
            "{} (the usual file could not be read and was kept)",
            p.display()
        ),
        _ => store.profiles_path().display().to_string(),
    };
    let _ = writeln!(
        s,
        "imported {} {} from {} ({}) into {where_to}:",
        r.imported.len(),
        if r.imported.len() == 1 {
            "profile"
        } else {
            "profiles"
        },
        r.source.name(),
        file.display(),
    );
    for (i, c) in r.imported.iter().enumerate() {
        let p = &c.profile;
        let scheme = match p.transport {
            TransportKind::Tcp => "mqtt",
            TransportKind::Tls => "mqtts",
            TransportKind::Ws => "ws",
            TransportKind::Wss => "wss",
        };
        let path = match p.transport {
            TransportKind::Ws | TransportKind::Wss => p.ws.path.as_str(),
            _ => "",
        };
        let renamed = if p.name != c.source_name {
            format!(" (from \"{}\")", c.source_name)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  \"{}\"{renamed}: {scheme}://{}:{}{path}, {}, client id {}, {} subscription(s){}{}{}",
            p.name,
            p.host,
            p.port,
            p.protocol.label(),
            p.client_id,
            p.subscriptions.len(),
            if p.username.is_empty() {
                String::new()
            } else {
                format!(", user {}", p.username)
            },
            if p.will.enabled {
                format!(", will on '{}'", p.will.topic)
            } else {
                String::new()
            },
            if p.tls.verify_server
                || !matches!(p.transport, TransportKind::Tls | TransportKind::Wss)
            {
                ""
            } else {
                ", server certificate NOT verified"
            },
        );
        for (role, path) in r.cert_paths.get(i).into_iter().flatten() {
            let _ = writeln!(s, "    {} → {}", role.label(), path.display());
        }
        if c.had_password {
            if r.passwords {
                let _ = writeln!(
                    s,
                    "    password imported, saved in {}",
                    store.password_home(p).place()
                );
            } else {
                let _ = writeln!(
                    s,
                    "    password not imported (run again with --with-passwords to import it)"
                );
            }
        }
        for n in &c.not_imported {
            let _ = writeln!(s, "    not imported: {n}");
        }
        for e in r.checks.get(i).into_iter().flatten() {
            let _ = writeln!(s, "    check: {e}");
        }
    }
    s
}

/// Runs `mqscope import`; returns the exit code.
pub fn run_import(args: ImportArgs) -> i32 {
    let result = ProfileStore::open_default()
        .map_err(ImportError::from)
        .and_then(|mut store| {
            let report = import_file(&args.file, &mut store, args.with_passwords)?;
            if let Some(notice) = store.take_keyring_notice() {
                eprintln!("mqscope import: {notice}");
            }
            Ok(report_text(&args.file, &store, &report))
        });
    match result {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("mqscope import: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn der_certificates_become_pem_and_pem_stays() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
        assert_eq!(to_pem(CertRole::Ca, pem.clone()), Ok(pem));
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        let out = to_pem(CertRole::Ca, der).expect("wrapped");
        assert!(out.starts_with(b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n"));
        assert!(to_pem(CertRole::ClientKey, vec![0x30, 1, 2]).is_err());
    }

    #[test]
    fn unknown_options_are_named_not_dropped() {
        let v = json!([{
            "name": "x", "host": "h", "port": 1883, "clientId": "c", "mqttVersion": "3.1.1",
            "clean": true, "ssl": false, "fancyNewOption": 42, "emptyOne": ""
        }]);
        let (src, list) = convert(&v, Path::new(".")).expect("mqttx");
        assert_eq!(src, Source::Mqttx);
        let notes = &list[0].not_imported;
        assert!(
            notes.iter().any(|n| n.contains("fancyNewOption = 42")),
            "{notes:?}"
        );
        assert!(!notes.iter().any(|n| n.contains("emptyOne")), "{notes:?}");
    }

    #[test]
    fn an_old_mqtt_explorer_subscription_list_of_strings_is_read() {
        let v = json!({"ConnectionManager_connections": {"a": {
            "id": "a", "name": "old", "host": "broker", "port": 1883, "protocol": "mqtt",
            "encryption": false, "certValidation": true, "subscriptions": ["#", "$SYS/#"],
            "type": "mqtt"
        }}});
        let (src, list) = convert(&v, Path::new(".")).expect("mqtt explorer");
        assert_eq!(src, Source::MqttExplorer);
        let filters: Vec<_> = list[0]
            .profile
            .subscriptions
            .iter()
            .map(|s| s.filter.as_str())
            .collect();
        assert_eq!(filters, ["#", "$SYS/#"]);
        assert!(
            list[0].not_imported.is_empty(),
            "{:?}",
            list[0].not_imported
        );
    }
}
