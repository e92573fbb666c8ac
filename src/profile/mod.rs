//! Connection profiles: what a user fills in to reach a broker, their
//! validation, and the RON store in the user's config directory.

pub mod import;
mod store;
mod validate;

pub use crate::model::protocol::{ProtocolVersion, Qos};
pub use crate::model::topic::{validate_topic_filter, validate_topic_name};
pub use store::{CONFIG_DIR_ENV, ProfileStore, SaveOutcome, StoreError, name_errors, unique_name};
pub use validate::{Field, FieldError, check_user_properties, validate_port};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
            subscriptions: vec![SubscriptionSpec::new("#", Qos::AtMostOnce)],
            v5: V5Settings::default(),
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
