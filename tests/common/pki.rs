//! Test certificates made at run time with rcgen: a CA, a server certificate
//! for 127.0.0.1/localhost, client certificates with an RSA and an EC key,
//! and an unrelated CA for the "wrong CA" cases. Written as PEM files.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// What a Mosquitto TLS listener needs.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A throw-away public key infrastructure in its own tempdir.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    /// EC P-256, PKCS#8.
    pub server_key: PathBuf,
    pub client_rsa_cert: PathBuf,
    /// RSA 2048, PKCS#8 (`BEGIN PRIVATE KEY`).
    pub client_rsa_key: PathBuf,
    pub client_ec_cert: PathBuf,
    /// EC P-256, SEC1 (`BEGIN EC PRIVATE KEY`, curve parameters included),
    /// the form `openssl ecparam -genkey` writes.
    pub client_ec_key: PathBuf,
    /// The same EC key as `client_ec_key`, PKCS#8 (`BEGIN PRIVATE KEY`).
    pub client_ec_key_pkcs8: PathBuf,
    /// A CA that signed none of the above.
    pub other_ca_cert: PathBuf,
    /// A server certificate (127.0.0.1/localhost) signed by the other CA, with
    /// its key: a broker "whose CA the client does not know".
    pub other_server_cert: PathBuf,
    pub other_server_key: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn generate() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("mqscope-pki-")
            .tempdir()
            .expect("cannot create a tempdir for the PKI");
        let path = |name: &str| dir.path().join(name);

        let (ca_pem, ca) = make_ca("mqscope test CA");
        let (other_ca_pem, other_ca) = make_ca("unrelated test CA");

        let server_key = KeyPair::generate().expect("EC key generation");
        let server_cert = leaf("127.0.0.1", &server_key, &ca, true);
        let other_server_key = KeyPair::generate().expect("EC key generation");
        let other_server_cert = leaf("127.0.0.1", &other_server_key, &other_ca, true);

        let rsa_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key generation");
        let rsa_cert = leaf("mqscope test client (RSA)", &rsa_key, &ca, false);
        let ec_key = KeyPair::generate().expect("EC key generation");
        let ec_cert = leaf("mqscope test client (EC)", &ec_key, &ca, false);

        let pki = Pki {
            ca_cert: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_rsa_cert: path("client-rsa.pem"),
            client_rsa_key: path("client-rsa.key"),
            client_ec_cert: path("client-ec.pem"),
            client_ec_key: path("client-ec.key"),
            client_ec_key_pkcs8: path("client-ec.pkcs8.key"),
            other_ca_cert: path("other-ca.pem"),
            other_server_cert: path("other-server.pem"),
            other_server_key: path("other-server.key"),
            dir,
        };
        write(&pki.ca_cert, &ca_pem);
        write(&pki.other_ca_cert, &other_ca_pem);
        write(&pki.server_cert, &server_cert);
        write(&pki.server_key, &server_key.serialize_pem());
        write(&pki.other_server_cert, &other_server_cert);
        write(&pki.other_server_key, &other_server_key.serialize_pem());
        write(&pki.client_rsa_cert, &rsa_cert);
        write(&pki.client_rsa_key, &rsa_key.serialize_pem());
        write(&pki.client_ec_cert, &ec_cert);
        write(&pki.client_ec_key_pkcs8, &ec_key.serialize_pem());
        write(
            &pki.client_ec_key,
            &pem(
                "EC PRIVATE KEY",
                &pkcs8_p256_to_sec1(ec_key.serialized_der()),
            ),
        );
        pki
    }

    /// The broker side: CA, server certificate and key.
    pub fn server_tls(&self) -> TlsFiles {
        TlsFiles {
            ca_cert: self.ca_cert.clone(),
            server_cert: self.server_cert.clone(),
            server_key: self.server_key.clone(),
        }
    }

    /// A broker whose server certificate comes from the unrelated CA; it
    /// still trusts the main CA for client certificates.
    pub fn other_server_tls(&self) -> TlsFiles {
        TlsFiles {
            ca_cert: self.ca_cert.clone(),
            server_cert: self.other_server_cert.clone(),
            server_key: self.other_server_key.clone(),
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("EC key generation");
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A server certificate (SANs 127.0.0.1 and localhost) or a client one.
fn leaf(name: &str, key: &KeyPair, ca: &Issuer<'static, KeyPair>, server: bool) -> String {
    let sans = if server {
        vec!["127.0.0.1".to_string(), "localhost".to_string()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.signed_by(key, ca).expect("signed leaf").pem()
}

// --- SEC1 from PKCS#8: rcgen only writes PKCS#8, but many users' EC keys
// are SEC1 files with the curve named inside, so the tests need one too.

/// DER tag-length-value: returns (tag, content, rest).
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let bytes = (n & 0x7f) as usize;
            let len = der[2..2 + bytes]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + bytes)
        }
    };
    (tag, &der[header..header + len], &der[header + len..])
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// PrivateKeyInfo{version, algorithm, OCTET STRING{ECPrivateKey}} →
/// ECPrivateKey{version, key, [0] prime256v1, [1] public key}.
fn pkcs8_p256_to_sec1(pkcs8: &[u8]) -> Vec<u8> {
    const PRIME256V1: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_, info, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (_, ec_private_key, _) = tlv(rest);
    let (_, mut fields, _) = tlv(ec_private_key);
    let mut content = Vec::new();
    let mut has_params = false;
    while !fields.is_empty() {
        let (tag, value, rest) = tlv(fields);
        if tag == 0xa1 && !has_params {
            content.extend(encode(0xa0, PRIME256V1));
            has_params = true;
        }
        if tag == 0xa0 {
            has_params = true;
        }
        content.extend(encode(tag, value));
        fields = rest;
    }
    if !has_params {
        content.extend(encode(0xa0, PRIME256V1));
    }
    encode(0x30, &content)
}

fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
