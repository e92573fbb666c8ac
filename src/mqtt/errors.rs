//! Turning connection failures into words a person can act on, and deciding
//! which failures retrying cannot fix.

use rumqttc::tokio_rustls::rustls;
use rumqttc::{ConnectReturnCode, ConnectionError};
use rustls::{AlertDescription, CertificateError};

pub fn describe_return_code(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "accepted",
        ConnectReturnCode::RefusedProtocolVersion => {
            "refused by the broker: unacceptable protocol version"
        }
        ConnectReturnCode::BadClientId => "refused by the broker: identifier rejected",
        ConnectReturnCode::ServiceUnavailable => "refused by the broker: server unavailable",
        ConnectReturnCode::BadUserNamePassword => {
            "refused by the broker: bad user name or password"
        }
        ConnectReturnCode::NotAuthorized => "refused by the broker: not authorized",
    }
}

/// A failure explained, and whether trying again later could succeed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    /// Retrying cannot fix it (refused credentials, an untrusted certificate):
    /// the session stops instead of hammering the broker.
    pub fatal: bool,
}

pub fn describe_connection_error(
    err: &ConnectionError,
    host: &str,
    port: u16,
    with_credentials: bool,
) -> Failure {
    if let ConnectionError::ConnectionRefused(code) = err {
        let fatal = !matches!(code, ConnectReturnCode::ServiceUnavailable);
        let mut message = describe_return_code(*code).to_string();
        // Mosquitto 2 answers a wrong password with code 5, not 4.
        if *code == ConnectReturnCode::NotAuthorized {
            message.push_str(if with_credentials {
                " (check the user name and password)"
            } else {
                " (the broker may require a user name and password)"
            });
        }
        return Failure { message, fatal };
    }
    if let Some(tls) = find_rustls_error(err) {
        return describe_tls(tls, host);
    }
    let message = match err {
        ConnectionError::NetworkTimeout => format!(
            "no answer from {host}:{port} within {} s",
            super::options::CONNECT_TIMEOUT_SECS
        ),
        ConnectionError::FlushTimeout => "the broker stopped reading (write timed out)".into(),
        ConnectionError::Io(io) => describe_io(io, host, port),
        ConnectionError::Tls(rumqttc::TlsError::Io(io)) => describe_io(io, host, port),
        ConnectionError::Tls(rumqttc::TlsError::DNSName(_)) => {
            return Failure {
                message: format!("TLS: '{host}' is not a valid server name"),
                fatal: true,
            };
        }
        ConnectionError::Tls(other) => format!("TLS: {other}"),
        ConnectionError::MqttState(state) => match state {
            rumqttc::StateError::Io(io) => describe_io(io, host, port),
            rumqttc::StateError::AwaitPingResp => {
                "the broker did not answer PINGREQ (keep-alive timed out)".into()
            }
            rumqttc::StateError::Deserialization(e) => not_mqtt(e, host, port),
            other => format!("protocol error: {other}"),
        },
        ConnectionError::NotConnAck(p) => format!("the broker answered CONNECT with {p:?}"),
        ConnectionError::RequestsDone => "closed".into(),
        ConnectionError::ConnectionRefused(_) => unreachable_refused(),
        ConnectionError::Websocket(ws) => return describe_ws(ws, host, port),
        ConnectionError::WsConnect(e) => return describe_ws_request(e),
        ConnectionError::InvalidUrl(e) => return describe_ws_url(e),
        ConnectionError::ResponseValidation(e) => return describe_ws_validation(e),
        ConnectionError::Proxy(e) => describe_proxy(e),
    };
    Failure {
        message,
        fatal: false,
    }
}

/// A websocket upgrade that failed: the HTTP answer in words.
fn describe_ws(err: &tungstenite::Error, host: &str, port: u16) -> Failure {
    use tungstenite::Error as W;
    use tungstenite::error::ProtocolError as P;
    let fatal = |message: String| Failure {
        message,
        fatal: true,
    };
    match err {
        W::Http(response) => {
            let status = response.status();
            let code = status.as_u16();
            let words = status.canonical_reason().unwrap_or("");
            match code {
                404 => fatal(format!(
                    "websocket: {host}:{port} has no MQTT endpoint at this path (HTTP 404 {words}); \
                     check the websocket path (brokers often use /mqtt)"
                )),
                401 | 403 | 407 => fatal(format!(
                    "websocket: the server refused the upgrade (HTTP {code} {words}); \
                     it may want credentials in an extra header"
                )),
                500..=599 => Failure {
                    message: format!(
                        "websocket: the server failed the upgrade (HTTP {code} {words})"
                    ),
                    fatal: false,
                },
                _ => fatal(format!(
                    "websocket: the server refused the upgrade (HTTP {code} {words}); \
                     is this a websocket endpoint?"
                )),
            }
        }
        W::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Failure {
                message: format!(
                    "websocket: {host}:{port} closed the connection during the websocket handshake \
                     (is it a plain MQTT port rather than a websocket listener?)"
                ),
                fatal: false,
            }
        }
        W::Io(io) => Failure {
            message: describe_io(io, host, port),
            fatal: false,
        },
        W::Protocol(P::HandshakeIncomplete) => Failure {
            message: format!(
                "websocket: {host}:{port} closed the connection during the websocket handshake \
                 (is it a plain MQTT port rather than a websocket listener?)"
            ),
            fatal: false,
        },
        W::Protocol(p) => fatal(format!(
            "websocket: the handshake failed: {p} (is {host}:{port} a websocket listener?)"
        )),
        W::Url(e) => fatal(format!("websocket: invalid address: {e}")),
        W::Tls(e) => fatal(format!("TLS: {e}")),
        W::ConnectionClosed | W::AlreadyClosed => Failure {
            message: "the broker closed the websocket".into(),
            fatal: false,
        },
        W::Capacity(e) => Failure {
            message: format!("websocket: a frame was too large: {e}"),
            fatal: false,
        },
        other => Failure {
            message: format!("websocket: {other}"),
            fatal: false,
        },
    }
}

fn describe_ws_request(err: &http::Error) -> Failure {
    Failure {
        message: format!("websocket: the upgrade request cannot be built: {err}"),
        fatal: true,
    }
}

fn describe_ws_url(err: &dyn std::error::Error) -> Failure {
    Failure {
        message: format!("websocket: invalid address: {err}"),
        fatal: true,
    }
}

fn describe_ws_validation(err: &dyn std::error::Error) -> Failure {
    Failure {
        message: format!(
            "websocket: the server accepted the upgrade but not MQTT ({err}); \
             is this an MQTT websocket endpoint?"
        ),
        fatal: true,
    }
}

fn describe_proxy(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return format!("proxy: cannot reach the proxy: {io}");
        }
        cur = e.source();
    }
    let text = err.to_string();
    match text.split_once("The HTTP code is not equal 200: ") {
        Some((_, code)) => format!(
            "proxy: the proxy refused to connect to the broker (HTTP {})",
            code.trim_end_matches('.')
        ),
        None => format!("proxy: {text}"),
    }
}

/// Bytes that do not decode as MQTT: often an HTTP or websocket port.
fn not_mqtt(err: &dyn std::fmt::Display, host: &str, port: u16) -> String {
    format!(
        "the server sent bytes that are not valid MQTT ({err}); if {host}:{port} is a \
         websocket (HTTP) port, use the WebSocket transport (--ws)"
    )
}

fn unreachable_refused() -> String {
    // Handled above; kept total so a new variant cannot panic.
    "refused by the broker".into()
}

pub(super) fn describe_io(io: &std::io::Error, host: &str, port: u16) -> String {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => {
            format!("connection refused by {host}:{port}: is a broker listening there?")
        }
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
            "the broker closed the connection".into()
        }
        TimedOut => format!("no answer from {host}:{port} (timed out)"),
        HostUnreachable | NetworkUnreachable => format!("{host} is unreachable"),
        _ => {
            let text = io.to_string();
            if text.contains("failed to lookup address") || text.contains("Name or service") {
                format!("cannot resolve host name '{host}'")
            } else {
                format!("network error: {text}")
            }
        }
    }
}

/// rustls errors hide inside io::Errors inside rumqttc's errors.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

fn describe_tls(err: &rustls::Error, host: &str) -> Failure {
    let fatal = |message: String| Failure {
        message,
        fatal: true,
    };
    match err {
        rustls::Error::InvalidCertificate(cert) => fatal(match cert {
            CertificateError::UnknownIssuer => "TLS: the server's certificate is not signed by a trusted CA (unknown issuer); choose the broker's CA file, or turn off verification".into(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "TLS: the server's certificate is not valid for the name '{host}' (name mismatch)"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet (check the clock)".into()
            }
            CertificateError::Revoked => "TLS: the server's certificate is revoked".into(),
            CertificateError::BadSignature => {
                "TLS: the server's certificate has a bad signature".into()
            }
            other => format!("TLS: the server's certificate was rejected: {other:?}"),
        }),
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => fatal(
                "TLS: the broker requires a client certificate; set one in the profile".into(),
            ),
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::DecryptError
            | AlertDescription::AccessDenied => fatal(format!(
                "TLS: the broker rejected our client certificate ({alert:?})"
            )),
            AlertDescription::HandshakeFailure => fatal(
                "TLS: handshake failure (no common cipher or protocol, or a client certificate is required)".into(),
            ),
            AlertDescription::NoApplicationProtocol => {
                fatal("TLS: the broker accepts none of the ALPN protocols offered".into())
            }
            other => Failure {
                message: format!("TLS: the broker sent alert {other:?}"),
                fatal: false,
            },
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => fatal(
            "TLS: the server does not speak TLS on this port (is it a plain TCP listener?)".into(),
        ),
        other => Failure {
            message: format!("TLS: {other}"),
            fatal: false,
        },
    }
}

/// The same for an MQTT 5 connection: CONNACK reason codes and a server's
/// DISCONNECT in the specification's words.
pub fn describe_connection_error_v5(
    err: &rumqttc::v5::ConnectionError,
    host: &str,
    port: u16,
    with_credentials: bool,
) -> Failure {
    use crate::model::protocol::{ReasonContext, reason_text};
    use rumqttc::v5::{ConnectionError as E, StateError as S};
    if let E::ConnectionRefused(code) = err {
        let code = super::v5::connack_code(*code);
        let mut message = format!(
            "refused by the broker: {}",
            reason_text(code, ReasonContext::Connack)
        );
        if code == 0x87 || code == 0x86 {
            message.push_str(if with_credentials {
                " (check the user name and password)"
            } else {
                " (the broker may require a user name and password)"
            });
        }
        // Busy, unavailable, rate or quota limits may pass; the rest will not.
        let fatal = !matches!(code, 0x88 | 0x89 | 0x97 | 0x9F);
        return Failure { message, fatal };
    }
    if let Some(tls) = find_rustls_error(err) {
        return describe_tls(tls, host);
    }
    let message = match err {
        E::Timeout(_) => format!(
            "no answer from {host}:{port} within {} s",
            super::options::CONNECT_TIMEOUT_SECS
        ),
        E::Io(io) => describe_io(io, host, port),
        E::Tls(rumqttc::TlsError::Io(io)) => describe_io(io, host, port),
        E::Tls(rumqttc::TlsError::DNSName(_)) => {
            return Failure {
                message: format!("TLS: '{host}' is not a valid server name"),
                fatal: true,
            };
        }
        E::Tls(other) => format!("TLS: {other}"),
        E::MqttState(state) => match state {
            S::Io(io) => describe_io(io, host, port),
            S::AwaitPingResp => "the broker did not answer PINGREQ (keep-alive timed out)".into(),
            S::ServerDisconnect {
                reason_code,
                reason_string,
            } => {
                let mut m = format!(
                    "the broker disconnected: {}",
                    reason_text(*reason_code as u8, ReasonContext::Disconnect)
                );
                if let Some(r) = reason_string.as_deref().filter(|r| !r.is_empty()) {
                    m.push_str(&format!(" ({r})"));
                }
                m
            }
            S::OutgoingPacketTooLarge { pkt_size, max }
            | S::Deserialization(rumqttc::v5::mqttbytes::Error::OutgoingPacketTooLarge {
                pkt_size,
                max,
            }) => format!(
                "a packet of {pkt_size} bytes is larger than the broker's Maximum Packet Size of {max} bytes"
            ),
            S::IncomingPacketTooLarge { pkt_size, max } => format!(
                "the broker sent a packet of {pkt_size} bytes, larger than this profile's maximum packet size of {max} bytes"
            ),
            S::Deserialization(e) => not_mqtt(e, host, port),
            S::WrongPacket => {
                "the broker sent a packet this client cannot handle (an AUTH packet: enhanced authentication is not supported)".into()
            }
            other => format!("protocol error: {other}"),
        },
        E::NotConnAck(p) => format!("the broker answered CONNECT with {p:?}"),
        E::RequestsDone => "closed".into(),
        E::ConnectionRefused(_) => unreachable_refused(),
        E::Websocket(ws) => return describe_ws(ws, host, port),
        E::WsConnect(e) => return describe_ws_request(e),
        E::InvalidUrl(e) => return describe_ws_url(e),
        E::ResponseValidation(e) => return describe_ws_validation(e),
        E::Proxy(e) => describe_proxy(e),
    };
    Failure {
        message,
        fatal: false,
    }
}
