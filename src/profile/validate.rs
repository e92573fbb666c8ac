//! Checks a profile before it is saved or used, with one message per field
//! phrased for the person filling in the form.

use super::{MQTT_MAX_PACKET, Profile, TransportKind};
use crate::model::topic::{validate_topic_filter, validate_topic_name};
use rumqttc::tokio_rustls::rustls;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// The form field a validation message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Host,
    Port,
    ClientId,
    KeepAlive,
    WillTopic,
    WillPayload,
    CaFile,
    ClientCert,
    ClientKey,
    Alpn,
    MaxPacketSize,
    Subscriptions,
    /// The MQTT 5 connect options.
    V5Options,
    /// The MQTT 5 will properties.
    WillProperties,
    /// A directory of CA certificates.
    CaPath,
    /// The websocket path (`/mqtt`).
    WsPath,
    /// Extra HTTP headers of the websocket upgrade.
    WsHeaders,
    /// The HTTP proxy URL.
    Proxy,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// MQTT strings carry a two-byte length (MQTT 3.1.1 §1.5.3).
const MQTT_STRING_MAX: usize = 65_535;

/// Smallest packet limit we accept: below this even a CONNACK-heavy session
/// with short topics starts failing in ways that look like broker bugs.
const MIN_PACKET_SIZE: usize = 1024;

impl Profile {
    /// Every problem of this profile, in form order; empty when it can be used.
    ///
    /// Name uniqueness needs the other profiles: see [`super::name_errors`].
    /// With a TLS transport this reads the certificate and key files, so call
    /// it when the form changes or before connecting, not on every frame.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field: Field, message: String| errors.push(FieldError { field, message });

        if self.name.trim().is_empty() {
            push(Field::Name, "name must not be empty".into());
        }
        if let Err(e) = check_host(&self.host, self.transport) {
            push(Field::Host, e);
        }
        if self.port == 0 {
            push(Field::Port, PORT_RANGE.into());
        }
        if let Err(e) = check_client_id(&self.client_id, self.clean_session) {
            push(Field::ClientId, e);
        }
        // Keep-alive: every u16 is valid (0 turns the keep-alive off).
        if self.will.enabled {
            if let Err(e) = validate_topic_name(&self.will.topic) {
                push(Field::WillTopic, format!("will topic: {e}"));
            }
            if self.will.payload.len() > MQTT_STRING_MAX {
                push(
                    Field::WillPayload,
                    format!(
                        "the will payload is {} bytes; MQTT allows at most {MQTT_STRING_MAX}",
                        self.will.payload.len()
                    ),
                );
            }
        }
        if matches!(self.transport, TransportKind::Tls | TransportKind::Wss) {
            let tls = &self.tls;
            // Without verification the CA file is not used (see mqtt::options).
            if tls.verify_server
                && let Some(path) = &tls.ca_file
                && let Err(e) = check_certificate_file(path)
            {
                push(Field::CaFile, e);
            }
            match (&tls.client_cert, &tls.client_key) {
                (Some(cert), Some(key)) => {
                    if let Err(e) = check_certificate_file(cert) {
                        push(Field::ClientCert, e);
                    }
                    if let Err(e) = check_key_file(key) {
                        push(Field::ClientKey, e);
                    }
                }
                (Some(_), None) => push(
                    Field::ClientKey,
                    "a client certificate needs its private key: choose the key file".into(),
                ),
                (None, Some(_)) => push(
                    Field::ClientCert,
                    "a client key needs its certificate: choose the certificate file".into(),
                ),
                (None, None) => {}
            }
            if let Err(e) = check_alpn(&tls.alpn) {
                push(Field::Alpn, e);
            }
            if tls.verify_server
                && let Some(dir) = &tls.ca_path
                && let Err(e) = check_ca_dir(dir)
            {
                push(Field::CaPath, e);
            }
        }
        if !self.proxy.trim().is_empty()
            && let Err(e) = super::parse_proxy_url(&self.proxy)
        {
            push(Field::Proxy, e);
        }
        if matches!(self.transport, TransportKind::Ws | TransportKind::Wss) {
            if let Err(e) = check_ws_path(&self.ws.path) {
                push(Field::WsPath, e);
            }
            if let Some(e) = check_ws_headers(&self.ws.headers) {
                push(Field::WsHeaders, e);
            }
        }
        if !(MIN_PACKET_SIZE..=MQTT_MAX_PACKET).contains(&self.max_packet_size) {
            push(
                Field::MaxPacketSize,
                format!(
                    "max packet size must be between {MIN_PACKET_SIZE} bytes (1 KiB) and \
                     {MQTT_MAX_PACKET} bytes (the MQTT limit)"
                ),
            );
        }
        for (i, sub) in self.subscriptions.iter().enumerate() {
            if let Err(e) = validate_topic_filter(&sub.filter) {
                push(Field::Subscriptions, format!("subscription {}: {e}", i + 1));
            }
            if sub.subscription_identifier == Some(0)
                || sub
                    .subscription_identifier
                    .is_some_and(|i| i > MAX_SUBSCRIPTION_ID)
            {
                push(
                    Field::Subscriptions,
                    format!(
                        "subscription {}: a subscription identifier is between 1 and {MAX_SUBSCRIPTION_ID}",
                        i + 1
                    ),
                );
            }
        }
        if self.protocol == super::ProtocolVersion::V5 {
            let v5 = &self.v5;
            if v5.receive_maximum == Some(0) {
                push(
                    Field::V5Options,
                    "receive maximum must be at least 1 (0 is a protocol error in MQTT 5)".into(),
                );
            }
            if let Some(e) = check_user_properties(&v5.user_properties) {
                push(Field::V5Options, format!("connect user property: {e}"));
            }
            if self.will.enabled {
                if let Some(e) = check_user_properties(&self.will.user_properties) {
                    push(Field::WillProperties, format!("will user property: {e}"));
                }
                if !self.will.response_topic.is_empty()
                    && let Err(e) = validate_topic_name(&self.will.response_topic)
                {
                    push(Field::WillProperties, format!("will response topic: {e}"));
                }
            }
        }
        errors
    }
}

const PORT_RANGE: &str = "port must be a number from 1 to 65535";

/// The path of a websocket URL: `/` and then URL characters, no blanks.
pub fn check_ws_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "the websocket path starts with '/' (e.g. /mqtt), not '{path}'"
        ));
    }
    if let Some(c) = path.chars().find(|c| {
        c.is_whitespace() || c.is_control() || !c.is_ascii() || "\"<>\\^`{|}#".contains(*c)
    }) {
        return Err(format!(
            "the websocket path must not contain {c:?} (percent-encode it)"
        ));
    }
    Ok(())
}

/// Headers the websocket handshake writes itself; overriding them breaks it.
const HANDSHAKE_HEADERS: [&str; 7] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Extra websocket headers: an HTTP token as the name (RFC 9110 §5.1),
/// a value without line breaks, and none of the handshake's own headers.
pub fn check_ws_headers(headers: &[(String, String)]) -> Option<String> {
    const TOKEN_EXTRA: &str = "!#$%&'*+-.^_`|~";
    for (name, value) in headers {
        if name.is_empty() {
            return Some("every header needs a name".into());
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || TOKEN_EXTRA.contains(*c)))
        {
            return Some(format!("header name '{name}' must not contain {c:?}"));
        }
        if HANDSHAKE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Some(format!(
                "'{name}' is set by the websocket handshake itself and cannot be overridden"
            ));
        }
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Some(format!("the value of header '{name}' must be one line"));
        }
    }
    None
}

/// A CA directory: readable, holding at least one PEM certificate.
fn check_ca_dir(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the CA directory {}: {e}", dir.display()))?;
    let found = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .any(|e| {
            std::fs::read(e.path())
                .map(|b| CertificateDer::pem_slice_iter(&b).any(|c| c.is_ok()))
                .unwrap_or(false)
        });
    if found {
        Ok(())
    } else {
        Err(format!(
            "the CA directory {} holds no PEM certificate",
            dir.display()
        ))
    }
}

/// Parses the port as the user typed it.
/// Largest subscription identifier (a variable byte integer, MQTT 5 §3.8.2.1.2).
const MAX_SUBSCRIPTION_ID: u32 = 268_435_455;

/// User properties: keys must be named, and each pair fits an MQTT string.
pub fn check_user_properties(props: &[(String, String)]) -> Option<String> {
    for (k, v) in props {
        if k.trim().is_empty() {
            return Some("every user property needs a name".into());
        }
        if k.len() > MQTT_STRING_MAX || v.len() > MQTT_STRING_MAX {
            return Some(format!(
                "'{k}' is longer than MQTT allows ({MQTT_STRING_MAX} bytes)"
            ));
        }
    }
    None
}

pub fn validate_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PORT_RANGE.into());
    }
    match text.parse::<u32>() {
        Ok(n) if (1..=65_535).contains(&n) => u16::try_from(n).map_err(|_| PORT_RANGE.into()),
        Ok(_) => Err(PORT_RANGE.into()),
        Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => Err(PORT_RANGE.into()),
        Err(_) => Err(format!("{PORT_RANGE}; '{text}' is not a number")),
    }
}

fn check_host(host: &str, transport: TransportKind) -> Result<(), String> {
    // The worker trims the host, so surrounding blanks are harmless.
    let host = host.trim();
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if let Some((scheme, _)) = host.split_once("://") {
        return Err(format!(
            "enter the host name only, without '{scheme}://'; choose the transport below"
        ));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("host must not contain spaces: '{host}'"));
    }
    if host.contains('/') {
        return Err(match transport {
            TransportKind::Ws | TransportKind::Wss => format!(
                "host must not contain '/': '{host}'; put the websocket path in the Path field"
            ),
            _ => format!("host must not contain '/': '{host}'"),
        });
    }
    // "broker:1883" — a single colon cannot be an IPv6 address.
    if let Some((_, port)) = host.split_once(':')
        && !port.contains(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "put the port in the Port field, not in the host: '{host}'"
        ));
    }
    Ok(())
}

fn check_client_id(id: &str, clean_session: bool) -> Result<(), String> {
    if id.is_empty() && !clean_session {
        // MQTT 3.1.1 §3.1.3.1: a zero-byte client id needs CleanSession = 1.
        return Err("a client id is required when clean session is off".into());
    }
    if id.len() > MQTT_STRING_MAX {
        return Err(format!(
            "client id is {} bytes; MQTT allows at most {MQTT_STRING_MAX}",
            id.len()
        ));
    }
    if id.contains('\0') {
        return Err("client id must not contain a NUL character".into());
    }
    Ok(())
}

fn check_alpn(alpn: &str) -> Result<(), String> {
    // Empty entries are skipped by the worker, like "mqtt," → ["mqtt"].
    for proto in alpn.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if proto.chars().any(char::is_whitespace) {
            return Err(format!("separate ALPN protocols with commas: '{proto}'"));
        }
        if proto.len() > 255 {
            return Err("an ALPN protocol name is at most 255 bytes".into());
        }
    }
    Ok(())
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    if path.as_os_str().is_empty() {
        return Err("no file chosen: choose a file or clear the field".into());
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("file not found: {}", path.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The kinds of the PEM sections rustls recognises, in file order.
fn section_kinds(bytes: &[u8], path: &Path) -> Result<Vec<SectionKind>, String> {
    <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes)
        .map(|section| section.map(|(kind, _)| kind))
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))
}

fn is_private_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

fn is_encrypted_key(bytes: &[u8]) -> bool {
    const MARKER: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
    bytes.windows(MARKER.len()).any(|w| w == MARKER)
}

fn check_certificate_file(path: &Path) -> Result<(), String> {
    let bytes = read_pem_file(path)?;
    let kinds = section_kinds(&bytes, path)?;
    let mut certs = 0usize;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
        // A DER certificate is a SEQUENCE; anything else is not a certificate.
        if cert.first() != Some(&0x30) {
            return Err(format!(
                "{} holds a CERTIFICATE block that is not a certificate",
                path.display()
            ));
        }
        certs += 1;
    }
    if certs > 0 {
        return Ok(());
    }
    if kinds.iter().copied().any(is_private_key) || is_encrypted_key(&bytes) {
        return Err(format!(
            "{} holds a private key, not a certificate",
            path.display()
        ));
    }
    Err(format!(
        "{} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
        path.display()
    ))
}

fn check_key_file(path: &Path) -> Result<(), String> {
    let bytes = read_pem_file(path)?;
    let kinds = section_kinds(&bytes, path)?;
    if !kinds.iter().copied().any(is_private_key) {
        if is_encrypted_key(&bytes) {
            return Err("encrypted keys are not supported; decrypt it with openssl pkey".into());
        }
        if kinds.contains(&SectionKind::Certificate) {
            return Err(format!(
                "{} holds a certificate, not a private key",
                path.display()
            ));
        }
        return Err(format!(
            "{} contains no private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC)",
            path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    // Load it the way the TLS handshake will, so a damaged key shows here
    // rather than as a failed connection.
    rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map(|_| ())
        .map_err(|e| format!("{}: the private key cannot be used: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Qos, SubscriptionSpec, WillSettings};
    use std::path::PathBuf;

    fn fields(p: &Profile) -> Vec<Field> {
        p.validate().into_iter().map(|e| e.field).collect()
    }

    fn message_for(p: &Profile, field: Field) -> String {
        p.validate()
            .into_iter()
            .find(|e| e.field == field)
            .map(|e| e.message)
            .unwrap_or_default()
    }

    #[test]
    fn default_profile_is_valid() {
        assert_eq!(Profile::default().validate(), vec![]);
    }

    #[test]
    fn empty_name_points_at_name() {
        let p = Profile {
            name: "  ".into(),
            ..Profile::default()
        };
        assert_eq!(fields(&p), vec![Field::Name]);
    }

    #[test]
    fn host_rules_point_at_host() {
        for bad in [
            "",
            "   ",
            "mqtt://broker",
            "my broker",
            "broker/x",
            "broker:1883",
        ] {
            let p = Profile {
                host: bad.into(),
                ..Profile::default()
            };
            assert_eq!(fields(&p), vec![Field::Host], "host {bad:?}");
        }
        let p = Profile {
            host: "mqtt://broker.example".into(),
            ..Profile::default()
        };
        assert!(message_for(&p, Field::Host).contains("mqtt://"));
        for good in [
            "broker.example",
            " 10.0.0.1 ",
            "::1",
            "fe80::1%eth0",
            "localhost",
        ] {
            let p = Profile {
                host: good.into(),
                ..Profile::default()
            };
            assert_eq!(fields(&p), vec![], "host {good:?}");
        }
    }

    #[test]
    fn port_zero_points_at_port() {
        let p = Profile {
            port: 0,
            ..Profile::default()
        };
        assert_eq!(fields(&p), vec![Field::Port]);
    }

    #[test]
    fn port_text_is_checked() {
        assert_eq!(validate_port("1883"), Ok(1883));
        assert_eq!(validate_port(" 8883 "), Ok(8883));
        assert_eq!(validate_port("1"), Ok(1));
        assert_eq!(validate_port("65535"), Ok(65535));
        for bad in ["", "0", "65536", "99999999999", "-1", "18a3", "mqtt"] {
            let err = validate_port(bad).expect_err(bad);
            assert!(err.contains("from 1 to 65535"), "{bad:?}: {err}");
        }
        assert!(
            validate_port("abc")
                .unwrap_err()
                .contains("'abc' is not a number")
        );
    }

    #[test]
    fn client_id_required_without_clean_session() {
        let p = Profile {
            client_id: String::new(),
            clean_session: false,
            ..Profile::default()
        };
        assert_eq!(fields(&p), vec![Field::ClientId]);
        let p = Profile {
            client_id: String::new(),
            clean_session: true,
            ..Profile::default()
        };
        assert_eq!(fields(&p), vec![]);
    }

    #[test]
    fn client_id_longer_than_23_bytes_is_fine_but_not_over_65535() {
        let p = Profile {
            client_id: "x".repeat(100),
            ..Profile::default()
        };
        assert_eq!(fields(&p), vec![]);
        let p = Profile {
            client_id: "x".repeat(65_536),
            ..Profile::default()
        };
        assert_eq!(fields(&p), vec![Field::ClientId]);
    }

    #[test]
    fn keep_alive_accepts_every_value() {
        for k in [0, 1, 60, u16::MAX] {
            let p = Profile {
                keep_alive_secs: k,
                ..Profile::default()
            };
            assert_eq!(fields(&p), vec![]);
        }
    }

    fn with_will(topic: &str) -> Profile {
        Profile {
            will: WillSettings {
                enabled: true,
                topic: topic.into(),
                payload: "gone".into(),
                qos: Qos::AtLeastOnce,
                retain: true,
                ..WillSettings::default()
            },
            ..Profile::default()
        }
    }

    #[test]
    fn will_topic_rules_point_at_will_topic() {
        assert_eq!(fields(&with_will("devices/42/status")), vec![]);
        for bad in ["", "a/+/b", "a/#", "a\0b"] {
            assert_eq!(fields(&with_will(bad)), vec![Field::WillTopic], "{bad:?}");
        }
        // A disabled will is not checked: the user may be half-way through.
        let mut p = with_will("a/#");
        p.will.enabled = false;
        assert_eq!(fields(&p), vec![]);
    }

    #[test]
    fn will_payload_over_65535_bytes_points_at_will_payload() {
        let mut p = with_will("t");
        p.will.payload = "x".repeat(65_536);
        assert_eq!(fields(&p), vec![Field::WillPayload]);
    }

    #[test]
    fn max_packet_size_bounds() {
        for (size, ok) in [
            (1023, false),
            (1024, true),
            (MQTT_MAX_PACKET, true),
            (MQTT_MAX_PACKET + 1, false),
        ] {
            let p = Profile {
                max_packet_size: size,
                ..Profile::default()
            };
            let expected = if ok {
                vec![]
            } else {
                vec![Field::MaxPacketSize]
            };
            assert_eq!(fields(&p), expected, "size {size}");
        }
    }

    #[test]
    fn bad_subscription_is_reported_with_its_position() {
        let p = Profile {
            subscriptions: vec![
                SubscriptionSpec::new("a/#", Qos::AtMostOnce),
                SubscriptionSpec::new("a/#/b", Qos::AtMostOnce),
            ],
            ..Profile::default()
        };
        let errors = p.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, Field::Subscriptions);
        assert!(
            errors[0].message.contains("subscription 2"),
            "{}",
            errors[0].message
        );
        assert!(errors[0].message.contains("a/#/b"));
    }

    #[test]
    fn valid_topic_filters_pass() {
        for f in [
            "#",
            "a/#",
            "+/b",
            "a/+/c",
            "/",
            "$SYS/#",
            "+",
            "+/+",
            "a//b",
            "sport/tennis/player1",
        ] {
            assert_eq!(validate_topic_filter(f), Ok(()), "{f:?}");
        }
    }

    #[test]
    fn invalid_topic_filters_say_why() {
        assert_eq!(
            validate_topic_filter("a/#/b"),
            Err("'#' must be the last level: a/#/b".into())
        );
        assert_eq!(
            validate_topic_filter("a+/b"),
            Err("'+' must fill a whole level: a+/b".into())
        );
        assert_eq!(
            validate_topic_filter("a/b#"),
            Err("'#' must fill a whole level: a/b#".into())
        );
        assert!(validate_topic_filter("").unwrap_err().contains("empty"));
        assert!(validate_topic_filter("a/\0").unwrap_err().contains("NUL"));
        assert!(validate_topic_filter(&"a".repeat(65_536)).is_err());
    }

    #[test]
    fn topic_names_reject_wildcards_nul_and_empty() {
        for t in ["a", "a/b", "/", "$SYS/broker/uptime", "a b/ü"] {
            assert_eq!(validate_topic_name(t), Ok(()), "{t:?}");
        }
        for t in ["", "a/+", "#", "a/b#", "a\0"] {
            assert!(validate_topic_name(t).is_err(), "{t:?}");
        }
        assert!(
            validate_topic_name("a/#")
                .unwrap_err()
                .contains("wildcards")
        );
    }

    #[test]
    fn alpn_entries_must_be_comma_separated() {
        let mut p = Profile {
            transport: TransportKind::Tls,
            ..Profile::default()
        };
        p.tls.alpn = "mqtt, x-amzn-mqtt-ca,".into();
        assert_eq!(fields(&p), vec![]);
        p.tls.alpn = "mqtt x-amzn-mqtt-ca".into();
        assert_eq!(fields(&p), vec![Field::Alpn]);
    }

    struct Pems {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
        encrypted: PathBuf,
        damaged_key: PathBuf,
        missing: PathBuf,
    }

    fn pems() -> Pems {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["broker.test".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        let encrypted = dir.path().join("encrypted.pem");
        let damaged_key = dir.path().join("damaged.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::write(
            &encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n\
             -----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::write(
            &damaged_key,
            "-----BEGIN EC PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        Pems {
            missing: dir.path().join("nope.pem"),
            _dir: dir,
            cert,
            key: key_path,
            encrypted,
            damaged_key,
        }
    }

    fn tls_profile(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Profile {
        let mut p = Profile {
            transport: TransportKind::Tls,
            port: 8883,
            ..Profile::default()
        };
        p.tls.ca_file = ca.map(Path::to_path_buf);
        p.tls.client_cert = cert.map(Path::to_path_buf);
        p.tls.client_key = key.map(Path::to_path_buf);
        p
    }

    #[test]
    fn real_certificate_and_pkcs8_key_pass() {
        let f = pems();
        let p = tls_profile(Some(&f.cert), Some(&f.cert), Some(&f.key));
        assert_eq!(p.validate(), vec![]);
    }

    #[test]
    fn missing_tls_files_are_reported_on_their_fields() {
        let f = pems();
        let p = tls_profile(Some(&f.missing), Some(&f.missing), Some(&f.missing));
        assert_eq!(
            fields(&p),
            vec![Field::CaFile, Field::ClientCert, Field::ClientKey]
        );
        assert!(message_for(&p, Field::CaFile).contains("file not found"));
        assert!(message_for(&p, Field::CaFile).contains("nope.pem"));
    }

    #[test]
    fn tls_files_are_ignored_over_plain_tcp() {
        let f = pems();
        let mut p = tls_profile(Some(&f.missing), Some(&f.missing), None);
        p.transport = TransportKind::Tcp;
        assert_eq!(fields(&p), vec![]);
    }

    #[test]
    fn ca_file_is_not_checked_when_verification_is_off() {
        let f = pems();
        let mut p = tls_profile(Some(&f.missing), None, None);
        p.tls.verify_server = false;
        assert_eq!(fields(&p), vec![]);
    }

    #[test]
    fn key_given_as_certificate_and_certificate_as_key_are_reported() {
        let f = pems();
        let p = tls_profile(Some(&f.key), Some(&f.key), Some(&f.cert));
        assert_eq!(
            fields(&p),
            vec![Field::CaFile, Field::ClientCert, Field::ClientKey]
        );
        assert!(message_for(&p, Field::CaFile).contains("private key, not a certificate"));
        assert!(message_for(&p, Field::ClientKey).contains("certificate, not a private key"));
    }

    #[test]
    fn encrypted_key_gets_the_openssl_hint() {
        let f = pems();
        let p = tls_profile(None, Some(&f.cert), Some(&f.encrypted));
        assert_eq!(fields(&p), vec![Field::ClientKey]);
        assert_eq!(
            message_for(&p, Field::ClientKey),
            "encrypted keys are not supported; decrypt it with openssl pkey"
        );
    }

    #[test]
    fn damaged_key_is_reported() {
        let f = pems();
        let p = tls_profile(None, Some(&f.cert), Some(&f.damaged_key));
        assert_eq!(fields(&p), vec![Field::ClientKey]);
        assert!(message_for(&p, Field::ClientKey).contains("cannot be used"));
    }

    #[test]
    fn non_pem_file_is_reported() {
        let f = pems();
        let junk = f._dir.path().join("junk.txt");
        std::fs::write(&junk, "hello\n").unwrap();
        let p = tls_profile(Some(&junk), None, None);
        assert_eq!(fields(&p), vec![Field::CaFile]);
        assert!(message_for(&p, Field::CaFile).contains("no PEM certificate"));
    }

    #[test]
    fn cert_without_key_and_key_without_cert_point_at_the_missing_one() {
        let f = pems();
        assert_eq!(
            fields(&tls_profile(None, Some(&f.cert), None)),
            vec![Field::ClientKey]
        );
        assert_eq!(
            fields(&tls_profile(None, None, Some(&f.key))),
            vec![Field::ClientCert]
        );
    }

    #[test]
    fn empty_tls_path_asks_to_choose_a_file() {
        let p = tls_profile(Some(Path::new("")), None, None);
        assert_eq!(fields(&p), vec![Field::CaFile]);
        assert!(message_for(&p, Field::CaFile).contains("no file chosen"));
    }

    fn ws_profile(path: &str, headers: &[(&str, &str)]) -> Profile {
        Profile {
            transport: TransportKind::Ws,
            ws: crate::profile::WsSettings {
                path: path.into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            ..Profile::default()
        }
    }

    #[test]
    fn websocket_path_starts_with_a_slash_and_has_no_blanks() {
        assert!(fields(&ws_profile("/mqtt", &[])).is_empty());
        assert_eq!(fields(&ws_profile("mqtt", &[])), vec![Field::WsPath]);
        assert_eq!(fields(&ws_profile("/my path", &[])), vec![Field::WsPath]);
        // Only checked when the transport is a websocket.
        let mut tcp = ws_profile("mqtt", &[]);
        tcp.transport = TransportKind::Tcp;
        assert!(fields(&tcp).is_empty());
    }

    #[test]
    fn websocket_headers_need_a_token_name_and_a_one_line_value() {
        assert!(fields(&ws_profile("/mqtt", &[("Authorization", "Bearer x")])).is_empty());
        for bad in [("", "v"), ("Bad Name", "v"), ("X-A", "two\nlines")] {
            assert_eq!(
                fields(&ws_profile("/mqtt", &[bad])),
                vec![Field::WsHeaders],
                "{bad:?}"
            );
        }
        let p = ws_profile("/mqtt", &[("sec-websocket-protocol", "x")]);
        assert!(message_for(&p, Field::WsHeaders).contains("websocket handshake itself"));
    }

    #[test]
    fn websocket_host_with_a_path_points_at_the_path_field() {
        let mut p = ws_profile("/mqtt", &[]);
        p.host = "broker.example.com/mqtt".into();
        assert!(message_for(&p, Field::Host).contains("Path field"));
    }

    #[test]
    fn socks_proxy_is_refused_with_the_reason() {
        let p = Profile {
            proxy: "socks5h://127.0.0.1:1080".into(),
            ..Profile::default()
        };
        assert!(message_for(&p, Field::Proxy).contains("HTTP CONNECT"));
        let ok = Profile {
            proxy: "http://user:pw@proxy.lan:3128".into(),
            ..Profile::default()
        };
        assert!(fields(&ok).is_empty());
    }
}
