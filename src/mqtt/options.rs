//! Profile → rumqttc `MqttOptions`, TLS included. Everything that can be
//! checked before touching the network is checked here, with messages that
//! name the file or field at fault.

use crate::profile::{Profile, Qos, TlsVersion, TransportKind};
use rumqttc::tokio_rustls::rustls;
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} {path} contains no PEM certificate")]
    NoCertificate { what: &'static str, path: String },
    #[error("client key {path}: {reason}")]
    BadKey { path: String, reason: String },
    #[error("client certificate given without a key (or a key without a certificate)")]
    HalfClientAuth,
    #[error("no usable root certificates on this system; choose a CA file")]
    NoSystemRoots,
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Unsupported(String),
}

pub fn to_qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

pub fn from_qos(q: QoS) -> Qos {
    match q {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
        QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

pub fn to_qos_v5(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS as Q;
    match q {
        Qos::AtMostOnce => Q::AtMostOnce,
        Qos::AtLeastOnce => Q::AtLeastOnce,
        Qos::ExactlyOnce => Q::ExactlyOnce,
    }
}

pub fn from_qos_v5(q: rumqttc::v5::mqttbytes::QoS) -> Qos {
    use rumqttc::v5::mqttbytes::QoS as Q;
    match q {
        Q::AtMostOnce => Qos::AtMostOnce,
        Q::AtLeastOnce => Qos::AtLeastOnce,
        Q::ExactlyOnce => Qos::ExactlyOnce,
    }
}

/// The transport of a profile, shared by both protocol versions: TCP, TLS,
/// or a websocket (`wss` with the same TLS settings as TLS).
fn transport(profile: &Profile) -> Result<Option<Transport>, OptionsError> {
    match profile.transport {
        TransportKind::Tcp => Ok(None),
        TransportKind::Tls => Ok(Some(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(profile)?),
        )))),
        TransportKind::Ws => Ok(Some(Transport::Ws)),
        TransportKind::Wss => Ok(Some(Transport::wss_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(profile)?),
        )))),
    }
}

/// The address rumqttc connects to: the host for TCP/TLS, the whole URL
/// (`ws://host:port/path`) for websockets, where its port argument is ignored.
pub fn broker_address(profile: &Profile) -> String {
    let host = profile.host.trim();
    match profile.transport {
        TransportKind::Tcp | TransportKind::Tls => host.to_string(),
        TransportKind::Ws | TransportKind::Wss => {
            let scheme = if profile.transport == TransportKind::Ws {
                "ws"
            } else {
                "wss"
            };
            // An IPv6 literal goes in brackets inside a URL.
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            let path = profile.ws.path.trim();
            let path = if path.is_empty() { "/" } else { path };
            format!("{scheme}://{host}:{}{path}", profile.port)
        }
    }
}

/// The profile's extra websocket headers, checked, ready to add to the
/// upgrade request.
fn ws_headers(profile: &Profile) -> Result<Vec<(String, String)>, OptionsError> {
    if !matches!(profile.transport, TransportKind::Ws | TransportKind::Wss) {
        return Ok(Vec::new());
    }
    if let Err(e) = crate::profile::check_ws_path(&profile.ws.path) {
        return Err(OptionsError::Unsupported(e));
    }
    if let Some(e) = crate::profile::check_ws_headers(&profile.ws.headers) {
        return Err(OptionsError::Unsupported(e));
    }
    Ok(profile.ws.headers.clone())
}

/// Adds the extra headers to the websocket upgrade request.
async fn add_headers(
    mut request: http::Request<()>,
    headers: Arc<Vec<(String, String)>>,
) -> http::Request<()> {
    for (name, value) in headers.iter() {
        // Checked by `ws_headers`; a header that still fails to parse is
        // left out rather than sent mangled.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    request
}

/// Profile → rumqttc's MQTT 5 options, with the v5 connect and will
/// properties.
pub fn build_options_v5(profile: &Profile) -> Result<rumqttc::v5::MqttOptions, OptionsError> {
    use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties};
    if profile.client_id.is_empty() && !profile.clean_session {
        return Err(OptionsError::Unsupported(
            "a client id is required when clean start is off".into(),
        ));
    }
    let mut opts = rumqttc::v5::MqttOptions::new(
        profile.client_id.clone(),
        broker_address(profile),
        profile.port,
    );
    // rumqttc's v5 default is 10 KiB in; `None` does not lift it.
    opts.set_max_packet_size(Some(
        u32::try_from(profile.max_packet_size).unwrap_or(u32::MAX),
    ));
    opts.set_keep_alive(Duration::from_secs(u64::from(profile.keep_alive_secs)));
    opts.set_clean_start(profile.clean_session);
    opts.set_request_channel_capacity(65_536);
    opts.set_outgoing_inflight_upper_limit(1024);
    opts.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    let v5 = &profile.v5;
    opts.set_session_expiry_interval(v5.session_expiry_interval);
    opts.set_receive_maximum(v5.receive_maximum);
    opts.set_topic_alias_max(v5.topic_alias_maximum.filter(|&m| m > 0));
    opts.set_request_response_info(v5.request_response_information.then_some(1));
    // Default is 1 (reason strings allowed); only say so when turned off.
    opts.set_request_problem_info((!v5.request_problem_information).then_some(0));
    if !v5.user_properties.is_empty() {
        opts.set_user_properties(v5.user_properties.clone());
    }
    if !profile.username.is_empty() || !profile.password.is_empty() {
        opts.set_credentials(profile.username.clone(), profile.password.clone());
    }
    if profile.will.enabled {
        let w = &profile.will;
        let props = LastWillProperties {
            delay_interval: w.delay_interval,
            payload_format_indicator: None,
            message_expiry_interval: w.message_expiry,
            content_type: (!w.content_type.is_empty()).then(|| w.content_type.clone()),
            response_topic: (!w.response_topic.is_empty()).then(|| w.response_topic.clone()),
            correlation_data: (!w.correlation_data.is_empty())
                .then(|| bytes::Bytes::from(w.correlation_data.clone().into_bytes())),
            user_properties: w.user_properties.clone(),
        };
        let has_props = props.delay_interval.is_some()
            || props.message_expiry_interval.is_some()
            || props.content_type.is_some()
            || props.response_topic.is_some()
            || props.correlation_data.is_some()
            || !props.user_properties.is_empty();
        opts.set_last_will(LastWill::new(
            w.topic.clone(),
            w.payload.clone().into_bytes(),
            to_qos_v5(w.qos),
            w.retain,
            has_props.then_some(props),
        ));
    }
    if let Some(t) = transport(profile)? {
        opts.set_transport(t);
    }
    let headers = ws_headers(profile)?;
    if !headers.is_empty() {
        let headers = Arc::new(headers);
        opts.set_request_modifier(move |r| add_headers(r, headers.clone()));
    }
    if let Some(proxy) = proxy(profile)? {
        opts.set_proxy(proxy);
    }
    Ok(opts)
}

/// Seconds rumqttc waits for TCP + TLS + CONNACK before giving up an attempt.
pub const CONNECT_TIMEOUT_SECS: u64 = 5;

pub fn build_options(profile: &Profile) -> Result<MqttOptions, OptionsError> {
    if profile.client_id.is_empty() && !profile.clean_session {
        // MQTT 3.1.1 §3.1.3.1; rumqttc would panic on it.
        return Err(OptionsError::Unsupported(
            "a client id is required when clean session is off".into(),
        ));
    }
    let mut opts = MqttOptions::new(
        profile.client_id.clone(),
        broker_address(profile),
        profile.port,
    );
    opts.set_max_packet_size(profile.max_packet_size, profile.max_packet_size);
    // rumqttc refuses keep-alives below 1 s except 0 (= off).
    opts.set_keep_alive(Duration::from_secs(u64::from(profile.keep_alive_secs)));
    opts.set_clean_session(profile.clean_session);
    opts.set_request_channel_capacity(65_536);
    opts.set_inflight(1024);
    if !profile.username.is_empty() || !profile.password.is_empty() {
        opts.set_credentials(profile.username.clone(), profile.password.clone());
    }
    if profile.will.enabled {
        opts.set_last_will(LastWill::new(
            profile.will.topic.clone(),
            profile.will.payload.clone().into_bytes(),
            to_qos(profile.will.qos),
            profile.will.retain,
        ));
    }
    if let Some(t) = transport(profile)? {
        opts.set_transport(t);
    }
    let headers = ws_headers(profile)?;
    if !headers.is_empty() {
        let headers = Arc::new(headers);
        opts.set_request_modifier(move |r| add_headers(r, headers.clone()));
    }
    if let Some(proxy) = proxy(profile)? {
        opts.set_proxy(proxy);
    }
    Ok(opts)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, OptionsError> {
    std::fs::read(path).map_err(|source| OptionsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, OptionsError> {
    let pem = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(OptionsError::NoCertificate {
            what,
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// Every PEM certificate in the files of a directory, as OpenSSL's CA path
/// (hashed names or not; files that hold no certificate are skipped).
fn ca_directory(dir: &Path) -> Result<Vec<CertificateDer<'static>>, OptionsError> {
    let entries = std::fs::read_dir(dir).map_err(|source| OptionsError::Read {
        what: "CA directory",
        path: dir.display().to_string(),
        source,
    })?;
    let mut certs = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Ok(pem) = std::fs::read(&path) {
            certs.extend(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
        }
    }
    Ok(certs)
}

/// `proxy` of a profile → rumqttc's HTTP CONNECT proxy. rumqttc speaks
/// only HTTP(S) proxies; a SOCKS URL is refused with a clear message.
fn proxy(profile: &Profile) -> Result<Option<rumqttc::Proxy>, OptionsError> {
    let url = profile.proxy.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let parsed = crate::profile::parse_proxy_url(url).map_err(OptionsError::Unsupported)?;
    let ty = if parsed.tls {
        rumqttc::ProxyType::Https(TlsConfiguration::Rustls(Arc::new(system_tls()?)))
    } else {
        rumqttc::ProxyType::Http
    };
    let auth = match parsed.credentials {
        Some((username, password)) => rumqttc::ProxyAuth::Basic { username, password },
        None => rumqttc::ProxyAuth::None,
    };
    Ok(Some(rumqttc::Proxy {
        ty,
        auth,
        addr: parsed.host,
        port: parsed.port,
    }))
}

/// A TLS client verifying against the system's roots (for an https proxy).
fn system_tls() -> Result<ClientConfig, OptionsError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(OptionsError::NoSystemRoots);
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, OptionsError> {
    let pem = read("client key", path)?;
    let bad = |reason: &str| OptionsError::BadKey {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    if String::from_utf8_lossy(&pem).contains("ENCRYPTED PRIVATE KEY") {
        return Err(bad(
            "encrypted keys are not supported; decrypt it with `openssl pkey -in KEY -out PLAIN`",
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| bad("no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) found"))
}

fn tls_config(profile: &Profile) -> Result<ClientConfig, OptionsError> {
    let tls = &profile.tls;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.version {
        TlsVersion::Any | TlsVersion::V12 => rustls::DEFAULT_VERSIONS,
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let builder =
        ClientConfig::builder_with_provider(provider()).with_protocol_versions(versions)?;
    let builder = if !tls.verify_server {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &tls.ca_file {
            let (added, _) = roots.add_parsable_certificates(certificates("CA file", path)?);
            if added == 0 {
                return Err(OptionsError::NoCertificate {
                    what: "CA file",
                    path: path.display().to_string(),
                });
            }
        }
        if let Some(dir) = &tls.ca_path {
            let (added, _) = roots.add_parsable_certificates(ca_directory(dir)?);
            if added == 0 {
                return Err(OptionsError::NoCertificate {
                    what: "CA directory",
                    path: dir.display().to_string(),
                });
            }
        }
        let own_roots = tls.ca_file.is_some() || tls.ca_path.is_some();
        if tls.use_os_certs || !own_roots {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 && !own_roots {
                return Err(OptionsError::NoSystemRoots);
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let certs = certificates("client certificate", cert)?;
            let key = private_key(key)?;
            builder.with_client_auth_cert(certs, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(OptionsError::HalfClientAuth),
    };
    config.alpn_protocols = tls
        .alpn
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.as_bytes().to_vec())
        .collect();
    Ok(config)
}

/// "Verify server certificate" off: any certificate is accepted, but the
/// handshake signatures are still checked so the session keys are sound.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
