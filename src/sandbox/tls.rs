//! The sandbox's TLS listener (MQTT over TLS, port 8883 by convention):
//! rustls with the sandbox CA's server certificate, client certificates
//! verified against the same CA (required with `--require-certificate`).

use super::broker::{Broker, Via};
use super::certs::{CertError, CertFolder};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use std::cell::RefCell;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self, CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
    client::danger::HandshakeSignatureValid,
    crypto::aws_lc_rs,
    server::WebPkiClientVerifier,
    server::danger::{ClientCertVerified, ClientCertVerifier},
};

/// The port MQTT over TLS clients try first.
pub const DEFAULT_TLS_PORT: u16 = 8883;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error("{path}: {why}")]
    Pem { path: String, why: String },
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot set up client certificate checks: {0}")]
    Verifier(String),
}

/// The rustls acceptor for the sandbox's certificate folder.
pub fn acceptor(folder: &CertFolder, require_certificate: bool) -> Result<TlsAcceptor, TlsError> {
    let pem_err = |path: &std::path::Path, why: String| TlsError::Pem {
        path: path.display().to_string(),
        why,
    };
    let ca_path = folder.ca_cert();
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(&ca_path).map_err(|e| pem_err(&ca_path, e.to_string()))?
    {
        let cert = cert.map_err(|e| pem_err(&ca_path, e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| pem_err(&ca_path, e.to_string()))?;
    }
    let cert_path = folder.server_cert();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| pem_err(&cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&cert_path, e.to_string()))?;
    let key_path = folder.server_key();
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_err(&key_path, e.to_string()))?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = if require_certificate {
        verifier.build()
    } else {
        // A certificate is optional, but one that is presented must verify.
        verifier.allow_unauthenticated().build()
    }
    .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(Naming(verifier)))
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

tokio::task_local! {
    /// The common name of the client certificate presented in this task's
    /// handshake, for the log.
    static PRESENTED: RefCell<Option<String>>;
}

/// TLS-accepts `stream`, and says whose certificate it presented (its
/// common name), whether it was accepted or not.
pub(crate) async fn accept_named<S>(
    acceptor: &TlsAcceptor,
    stream: S,
) -> (
    std::io::Result<tokio_rustls::server::TlsStream<S>>,
    Option<String>,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    PRESENTED
        .scope(RefCell::new(None), async {
            let result = acceptor.accept(stream).await;
            let name = PRESENTED.with(|p| p.borrow_mut().take());
            (result, name)
        })
        .await
}

/// "certificate 'NAME': " for a log line, when a certificate was presented.
pub(crate) fn presented(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!("certificate '{n}': "))
        .unwrap_or_default()
}

/// rustls' verifier, noting the name on the presented certificate.
#[derive(Debug)]
struct Naming(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Naming {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        PRESENTED
            .try_with(|p| *p.borrow_mut() = common_name(end_entity))
            .ok();
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The subject's common name (OID 2.5.4.3) of a certificate, if it has one
/// that is text.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    // (webpki gives the Name's content without its SEQUENCE header.)
    let name = yasna::construct_der(|w| w.write_sequence(|w| w.next().write_der(cert.subject())));
    let cn_oid = yasna::models::ObjectIdentifier::from_slice(&[2, 5, 4, 3]);
    let attributes = yasna::parse_der(&name, |r| {
        r.collect_sequence_of(|r| {
            r.collect_set_of(|r| {
                r.read_sequence(|r| {
                    let oid = r.next().read_oid()?;
                    let value = r.next().read_der()?;
                    Ok((oid, value))
                })
            })
        })
    })
    .ok()?;
    let value = attributes
        .into_iter()
        .flatten()
        .find(|(oid, _)| *oid == cn_oid)?
        .1;
    yasna::parse_der(&value, |r| r.read_utf8string())
        .or_else(|_| yasna::parse_der(&value, |r| r.read_printable_string()))
        .ok()
}

/// Accepts TLS clients until the task is dropped; a refused handshake is
/// logged with who and why.
pub async fn serve(broker: Broker, listener: TcpListener, acceptor: TlsAcceptor) {
    super::accept_each(
        broker,
        listener,
        "TLS",
        move |broker, stream, peer, admission| {
            let acceptor = acceptor.clone();
            async move {
                let timeout = broker.limits().connect_timeout;
                let handshake = tokio::time::timeout(timeout, accept_named(&acceptor, stream));
                // None: closed to make room for a newer connection (logged).
                let Some(done) = admission.unless_evicted(handshake).await else {
                    return;
                };
                match done {
                    Ok((Ok(tls), name)) => {
                        let (rd, wr) = tokio::io::split(tls);
                        broker
                            .connection(rd, wr, peer, Via::Tls(name), admission)
                            .await;
                    }
                    Ok((Err(e), name)) => {
                        broker.log(format!(
                            "{peer}: TLS refused: {}{}",
                            presented(&name),
                            refusal(&e)
                        ));
                    }
                    Err(_) => broker.log(format!(
                        "{peer}: no TLS handshake within {timeout:?}, closed"
                    )),
                }
            }
        },
    )
    .await
}

/// Why a handshake failed, worded for the person reading the sandbox log.
pub(crate) fn refusal(e: &std::io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the client closed the connection during the handshake (does it trust the sandbox's ca.crt?)".into()
            }
            _ => format!("{e} (not a TLS client? plain MQTT goes to the other port)"),
        };
    };
    match tls {
        rustls::Error::NoCertificatesPresented => {
            "no client certificate (this listener requires one signed by the sandbox CA, --require-certificate)".into()
        }
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "client certificate not signed by the sandbox CA (ca.crt)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "client certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "client certificate not valid yet".into()
            }
            other => format!("client certificate refused: {other:?}"),
        },
        rustls::Error::InvalidMessage(_) => {
            "the client does not speak TLS (a plain MQTT client? it belongs on the plain port)"
                .into()
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the client ended the handshake ({alert:?}): it does not trust the sandbox's certificate — give it ca.crt"
        ),
        other => other.to_string(),
    }
}
