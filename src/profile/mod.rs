//! Connection profiles: what a user fills in to reach a broker, their
//! validation, and the RON store in the user's config directory.

mod store;
mod validate;

pub use store::{CONFIG_DIR_ENV, ProfileStore, SaveOutcome, StoreError, name_errors, unique_name};
pub use validate::{Field, FieldError, validate_port, validate_topic_filter, validate_topic_name};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// MQTT quality of service, as the user picks it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
)]
pub enum Qos {
    #[default]
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Qos {
    pub const ALL: [Qos; 3] = [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce];

    pub fn as_u8(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
            Qos::ExactlyOnce => 2,
        }
    }

    pub fn from_u8(v: u8) -> Option<Qos> {
        match v {
            0 => Some(Qos::AtMostOnce),
            1 => Some(Qos::AtLeastOnce),
            2 => Some(Qos::ExactlyOnce),
            _ => None,
        }
    }
}

impl std::fmt::Display for Qos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QoS {}", self.as_u8())
    }
}

/// Protocol version. Only 3.1.1 is spoken today; the type is ready for 5.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtocolVersion {
    #[default]
    V311,
    V5,
}

/// How bytes reach the broker. Websockets come later.
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
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca_file: None,
            client_cert: None,
            client_key: None,
            verify_server: true,
            alpn: String::new(),
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
}

/// A topic filter the connection subscribes to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    pub filter: String,
    /// Defaulted so a hand-written `(filter: "a/#")` still loads.
    #[serde(default)]
    pub qos: Qos,
}

/// Largest packet the MQTT 3.1.1 encoding allows (remaining length 268,435,455 + header).
pub const MQTT_MAX_PACKET: usize = 268_435_460;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
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
    /// Largest packet accepted or sent, in bytes (rumqttc's default is 10 KiB,
    /// far too small for an explorer subscribed to `#`).
    pub max_packet_size: usize,
    pub subscriptions: Vec<SubscriptionSpec>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
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
            max_packet_size: MQTT_MAX_PACKET,
            subscriptions: vec![SubscriptionSpec {
                filter: "#".into(),
                qos: Qos::AtMostOnce,
            }],
        }
    }
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
