//! Connection profiles: what a user fills in to reach a broker, their
//! validation, and the RON store in the user's config directory.

pub mod import;
pub mod keyring;
mod store;
mod validate;

pub use crate::model::protocol::{ProtocolVersion, Qos};
pub use crate::model::topic::{validate_topic_filter, validate_topic_name};
pub use keyring::{KEYRING_SERVICE, Keyring, NO_KEYRING_ENV, PasswordHome, SystemKeyring};
pub use store::{CONFIG_DIR_ENV, ProfileStore, SaveOutcome, StoreError, name_errors, unique_name};
pub use validate::{
    Field, FieldError, check_user_properties, check_ws_headers, check_ws_path, validate_port,
};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How bytes reach the broker: MQTT over TCP, TLS, or a websocket (`ws://`,
/// `wss://` — the latter with the profile's TLS settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransportKind {
    #[default]
    Tcp,
    Tls,
    Ws,
    Wss,
}

/// TLS settings of a profile. The server is verified unless the user turns
/// `verify_server` off, which the UI flags visibly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// CA certificate file (PEM). `None`: the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC; not encrypted).
    pub client_key: Option<PathBuf>,
    pub verify_server: bool,
    /// ALPN protocols, comma separated (e.g. "mqtt"); empty for none.
    pub alpn: String,
    /// A directory of CA certificates (PEM files), as mosquitto's `--capath`.
    pub ca_path: Option<PathBuf>,
    /// Trust the system's root certificates as well as `ca_file`/`ca_path`
    /// (they are used anyway when neither is set).
    pub use_os_certs: bool,
    /// The TLS version to speak, as mosquitto's `--tls-version`.
    pub version: TlsVersion,
}

/// Which TLS versions a connection may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 or 1.3, whichever the broker prefers.
    #[default]
    Any,
    /// TLS 1.2 or newer, as mosquitto's `--tls-version tlsv1.2` (the
    /// library speaks nothing older, so this is the same as `Any`).
    V12,
    /// TLS 1.3 only, as mosquitto's `--tls-version tlsv1.3`.
    V13,
}

/// Websocket settings of a profile, used with the `Ws` and `Wss` transports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WsSettings {
    /// The HTTP path of the broker's MQTT endpoint; most brokers use `/mqtt`.
    pub path: String,
    /// Extra HTTP headers sent with the upgrade request (e.g. an
    /// `Authorization` header a gateway asks for).
    pub headers: Vec<(String, String)>,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            path: "/mqtt".into(),
            headers: Vec::new(),
        }
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_file: None,
            client_cert: None,
            client_key: None,
            verify_server: true,
            alpn: String::new(),
            ca_path: None,
            use_os_certs: false,
            version: TlsVersion::Any,
        }
    }
}

/// The last will the broker publishes if the connection dies without DISCONNECT.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WillSettings {
    pub enabled: bool,
    pub topic: String,
    pub payload: String,
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 will properties (ignored for 3.1.1).
    pub delay_interval: Option<u32>,
    pub message_expiry: Option<u32>,
    pub content_type: String,
    pub response_topic: String,
    /// Correlation data as text (sent as its UTF-8 bytes).
    pub correlation_data: String,
    pub user_properties: Vec<(String, String)>,
}

/// MQTT 5 retain handling of a subscription (MQTT 5 §3.8.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    OnSubscribe,
    /// 1: only if the subscription did not exist already.
    OnNewSubscribe,
    /// 2: never.
    Never,
}

impl RetainHandling {
    pub fn as_u8(self) -> u8 {
        match self {
            RetainHandling::OnSubscribe => 0,
            RetainHandling::OnNewSubscribe => 1,
            RetainHandling::Never => 2,
        }
    }
}

/// A topic filter the connection subscribes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    pub filter: String,
    /// Defaulted so a hand-written `(filter: "a/#")` still loads.
    #[serde(default)]
    pub qos: Qos,
    /// MQTT 5: do not receive our own publishes.
    #[serde(default)]
    pub no_local: bool,
    /// MQTT 5: keep the retain flag as published.
    #[serde(default)]
    pub retain_as_published: bool,
    #[serde(default)]
    pub retain_handling: RetainHandling,
    /// MQTT 5: a number the broker echoes in every matching PUBLISH.
    #[serde(default)]
    pub subscription_identifier: Option<u32>,
    #[serde(default)]
    pub user_properties: Vec<(String, String)>,
}

impl SubscriptionSpec {
    /// A plain subscription: no MQTT 5 options.
    pub fn new(filter: impl Into<String>, qos: Qos) -> SubscriptionSpec {
        SubscriptionSpec {
            filter: filter.into(),
            qos,
            ..SubscriptionSpec::default()
        }
    }
}

/// MQTT 5 options of a connection (ignored for 3.1.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct V5Settings {
    /// Seconds the broker keeps the session after the connection closes;
    /// `None` sends no property (0: the session ends with the connection).
    pub session_expiry_interval: Option<u32>,
    /// QoS 1/2 publishes the broker may have in flight to us.
    pub receive_maximum: Option<u16>,
    /// Topic aliases the broker may use towards us (0 / None: none).
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: bool,
    /// Ask the broker for reason strings and user properties on failures.
    pub request_problem_information: bool,
    pub user_properties: Vec<(String, String)>,
}

impl Default for V5Settings {
    fn default() -> Self {
        V5Settings {
            session_expiry_interval: None,
            receive_maximum: None,
            topic_alias_maximum: Some(16),
            request_response_information: false,
            request_problem_information: true,
            user_properties: Vec::new(),
        }
    }
}

/// Largest packet the MQTT 3.1.1 encoding allows (remaining length 268,435,455 + header).
pub const MQTT_MAX_PACKET: usize = 268_435_460;

/// `Debug` (logs, panics, `{:?}` of a Connect command) never shows the
/// password: see the impl below.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Stable identity of a saved profile: its password in the system
    /// keyring is found by this id, so a rename keeps it and a profile
    /// created later under an old name never finds an old password. Every
    /// new profile gets a fresh one ([`generate_profile_id`]); a copy must
    /// too. Empty in shared (exported) files.
    pub id: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub protocol: ProtocolVersion,
    pub transport: TransportKind,
    pub client_id: String,
    pub username: String,
    /// Never serialized into the profile file: see `ProfileStore` for where a
    /// saved password lives.
    #[serde(skip)]
    pub password: String,
    pub save_password: bool,
    pub keep_alive_secs: u16,
    pub clean_session: bool,
    pub will: WillSettings,
    pub tls: TlsSettings,
    /// Path and headers of a websocket transport.
    pub ws: WsSettings,
    /// An HTTP CONNECT proxy, `http://[user[:password]@]host[:port]`
    /// (or `https://`); empty for a direct connection.
    pub proxy: String,
    /// Largest packet accepted or sent, in bytes (rumqttc's default is 10 KiB,
    /// far too small for an explorer subscribed to `#`).
    pub max_packet_size: usize,
    pub subscriptions: Vec<SubscriptionSpec>,
    /// MQTT 5 connect options, used when `protocol` is `V5`.
    pub v5: V5Settings,
}

impl std::fmt::Debug for Profile {
    /// Written through serde, which skips the password (and every field
    /// added later is shown without touching this impl); whether there is a
    /// password is said, never what it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields = ron::to_string(self).map_err(|_| std::fmt::Error)?;
        let password = if self.password.is_empty() {
            "none"
        } else {
            "<hidden>"
        };
        write!(f, "Profile{fields} password: {password}")
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            id: generate_profile_id(),
            name: "localhost".into(),
            host: "127.0.0.1".into(),
            port: 1883,
            protocol: ProtocolVersion::V311,
            transport: TransportKind::Tcp,
            client_id: generate_client_id(),
            username: String::new(),
            password: String::new(),
            save_password: false,
            keep_alive_secs: 60,
            clean_session: true,
            will: WillSettings::default(),
            tls: TlsSettings::default(),
            ws: WsSettings::default(),
            proxy: String::new(),
            max_packet_size: MQTT_MAX_PACKET,
            subscriptions: vec![SubscriptionSpec::new("#", Qos::AtMostOnce)],
            v5: V5Settings::default(),
        }
    }
}

/// A proxy URL taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyUrl {
    /// `https://`: the proxy itself is reached over TLS.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

/// Reads `http://[user[:password]@]host[:port]` (port 8080 by default, 443
/// for `https://`). SOCKS proxies, mosquitto's `--proxy socks5h://…`, are
/// refused with the reason: the MQTT library speaks HTTP CONNECT only.
pub fn parse_proxy_url(url: &str) -> Result<ProxyUrl, String> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "proxy '{url}' must be a URL: http://[user[:password]@]host[:port]"
        ));
    };
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (false, 8080),
        "https" => (true, 443),
        s if s.starts_with("socks") => {
            return Err(format!(
                "SOCKS proxies ({s}://) are not supported: the MQTT library mqscope uses \
                 (rumqttc) speaks only HTTP CONNECT proxies; use http://host:port"
            ));
        }
        other => return Err(format!("unknown proxy scheme '{other}://': use http://")),
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, hostport) = match rest.rsplit_once('@') {
        Some((cred, hp)) => {
            let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
            (Some((user.to_string(), pass.to_string())), hp)
        }
        None => (None, rest),
    };
    let (host, port) = split_host_port(hostport).map_err(|e| format!("proxy '{url}': {e}"))?;
    Ok(ProxyUrl {
        tls,
        host,
        port: port.unwrap_or(default_port),
        credentials,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
pub fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err(format!("'{s}' has no closing ']'"));
        };
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (s, None),
        }
    };
    if host.is_empty() {
        return Err("no host name".into());
    }
    let port = match port {
        Some(p) => Some(validate_port(p)?),
        None => None,
    };
    Ok((host.to_string(), port))
}

/// A new profile id: 16 random hex digits.
pub fn generate_profile_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `mqscope-` and six random lowercase letters/digits.
pub fn generate_client_id() -> String {
    use rand::Rng as _;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..6)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    format!("mqscope-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_url_with_credentials_and_default_port() {
        assert_eq!(
            parse_proxy_url("http://alice:s3cret@proxy.lan").unwrap(),
            ProxyUrl {
                tls: false,
                host: "proxy.lan".into(),
                port: 8080,
                credentials: Some(("alice".into(), "s3cret".into())),
            }
        );
        let p = parse_proxy_url("https://[::1]:3128/").unwrap();
        assert!(p.tls);
        assert_eq!((p.host.as_str(), p.port), ("::1", 3128));
        assert!(parse_proxy_url("proxy.lan:3128").is_err());
        assert!(parse_proxy_url("http://proxy.lan:99999").is_err());
    }

    #[test]
    fn profile_file_without_websocket_fields_loads_with_the_mqtt_path() {
        let p: Profile = ron::from_str("(name: \"old\", transport: Ws)").unwrap();
        assert_eq!(p.ws.path, "/mqtt");
        assert!(p.ws.headers.is_empty());
        assert_eq!(p.tls.version, TlsVersion::Any);
        assert!(p.proxy.is_empty());
    }
}
