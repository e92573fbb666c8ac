//! The sandbox's TLS listener (MQTT over TLS, port 8883 by convention):
//! rustls with the sandbox CA's server certificate, client certificates
//! verified against the same CA (required with `--require-certificate`).

use super::broker::{Broker, Via};
use super::certs::{CertError, CertFolder};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self, CertificateError, RootCertStore, ServerConfig, crypto::aws_lc_rs,
    server::WebPkiClientVerifier,
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
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS clients until the task is dropped; a refused handshake is
/// logged with who and why.
pub async fn serve(broker: Broker, listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                stream.set_nodelay(true).ok();
                let broker = broker.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let timeout = broker.limits().connect_timeout;
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let (rd, wr) = tokio::io::split(tls);
                            broker.connection(rd, wr, peer, Via::Tls).await;
                        }
                        Ok(Err(e)) => {
                            broker.log(format!("{peer}: TLS refused: {}", refusal(&e)));
                        }
                        Err(_) => broker.log(format!(
                            "{peer}: no TLS handshake within {timeout:?}, closed"
                        )),
                    }
                });
            }
            Err(e) => {
                broker.log(format!("TLS accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
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
