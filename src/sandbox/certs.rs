//! The sandbox's own certificate authority and certificates, with the file
//! names the book uses: `ca.crt`, `server.crt` + `server.key`, and client
//! certificates `board001.crt` + `board001.key`, `device001.crt` +
//! `device001.key`. Made with rcgen on first use and kept in one folder
//! across runs; the CA key (`ca.key`) never leaves that folder.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Client certificates made on first use, as in the book.
pub const BOOK_CLIENTS: [&str; 2] = ["board001", "device001"];

const CA_NAME: &str = "mqscope sandbox CA";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable PEM private key: {why} (move it away to make a new CA)")]
    BadKey { path: PathBuf, why: String },
    #[error("cannot make a certificate: {0}")]
    Make(#[from] rcgen::Error),
    #[error(
        "'{0}' is not a usable certificate name: use letters, digits, '-' and '_' (up to 64), not 'ca' or 'server'"
    )]
    BadName(String),
    #[error(
        "no folder for the sandbox's certificates (no home directory?): choose one with --certs"
    )]
    NoDataDir,
}

/// Where the sandbox keeps its certificates when not told (`--certs`): a
/// folder in the user's data directory, kept across runs.
pub fn default_dir() -> Result<PathBuf, CertError> {
    directories::ProjectDirs::from("", "", "mqscope")
        .map(|d| d.data_dir().join("sandbox-certs"))
        .ok_or(CertError::NoDataDir)
}

/// The certificate folder's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFolder {
    pub dir: PathBuf,
}

impl CertFolder {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// `NAME.crt` and `NAME.key` of a client certificate.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// Names of the client certificates in the folder (with their keys),
    /// sorted.
    pub fn clients(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".crt")?.to_string();
                (name != "ca" && name != "server" && self.client(&name).1.exists()).then_some(name)
            })
            .collect();
        names.sort();
        names
    }

    /// Makes whatever is missing: the folder (owner-only), the CA, the
    /// server certificate for this machine's names, the book's clients.
    pub fn ensure(dir: &Path) -> Result<CertFolder, CertError> {
        let folder = CertFolder {
            dir: dir.to_path_buf(),
        };
        create_private_dir(dir)?;
        let ca = folder.ca()?;
        if !folder.server_cert().exists() || !folder.server_key().exists() {
            let key = KeyPair::generate()?;
            let cert = server_params()?.signed_by(&key, &ca)?;
            write_file(&folder.server_key(), &key.serialize_pem(), true)?;
            write_file(&folder.server_cert(), &cert.pem(), false)?;
        }
        for name in BOOK_CLIENTS {
            let (crt, key) = folder.client(name);
            if !crt.exists() || !key.exists() {
                folder.make_client(&ca, name)?;
            }
        }
        Ok(folder)
    }

    /// Makes (or remakes) the client certificate `NAME.crt` + `NAME.key`,
    /// signed by the sandbox CA.
    pub fn create_client(&self, name: &str) -> Result<(PathBuf, PathBuf), CertError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && name != "ca"
            && name != "server";
        if !valid {
            return Err(CertError::BadName(name.to_string()));
        }
        create_private_dir(&self.dir)?;
        let ca = self.ca()?;
        self.make_client(&ca, name)
    }

    fn make_client(
        &self,
        ca: &Issuer<'_, KeyPair>,
        name: &str,
    ) -> Result<(PathBuf, PathBuf), CertError> {
        let key = KeyPair::generate()?;
        let cert = client_params(name)?.signed_by(&key, ca)?;
        let (crt_path, key_path) = self.client(name);
        write_file(&key_path, &key.serialize_pem(), true)?;
        write_file(&crt_path, &cert.pem(), false)?;
        Ok((crt_path, key_path))
    }

    /// The sandbox CA as an rcgen issuer, to sign other certificates with
    /// (from `ca.key` when there is one, its `ca.crt` rewritten if missing;
    /// else a new CA).
    pub fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        self.ca()
    }

    fn ca(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        let key_path = self.ca_key();
        let mut stale_clients = Vec::new();
        let key = if key_path.exists() {
            let pem = std::fs::read_to_string(&key_path).map_err(|source| CertError::Read {
                path: key_path.clone(),
                source,
            })?;
            KeyPair::from_pem(&pem).map_err(|e| CertError::BadKey {
                path: key_path.clone(),
                why: e.to_string(),
            })?
        } else {
            let key = KeyPair::generate()?;
            write_file(&key_path, &key.serialize_pem(), true)?;
            // A new CA: certificates of an older one would not verify, so
            // they are made again under the same names.
            stale_clients = self.clients();
            for stale in [self.ca_cert(), self.server_cert()] {
                std::fs::remove_file(stale).ok();
            }
            key
        };
        let params = ca_params();
        if !self.ca_cert().exists() {
            let cert = params.self_signed(&key)?;
            write_file(&self.ca_cert(), &cert.pem(), false)?;
        }
        // The issuer name and key identifier come from the same parameters
        // and key as ca.crt, so what it signs chains to ca.crt.
        let issuer = Issuer::new(params, key);
        for name in stale_clients {
            self.make_client(&issuer, &name)?;
        }
        Ok(issuer)
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mqscope sandbox");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(CA_NAME);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // Fixed dates: the same key and parameters give the same issuer.
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 12, 31);
    p
}

fn validity(p: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(10 * 365);
}

/// This machine's host name, if it has one.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

fn server_params() -> Result<CertificateParams, CertError> {
    let mut names = vec!["localhost".to_string()];
    if let Some(h) = host_name()
        && h != "localhost"
    {
        names.push(h);
    }
    let mut p = CertificateParams::new(names)?;
    p.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    p.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    p.distinguished_name = dn("localhost");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut p);
    Ok(p)
}

fn client_params(name: &str) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = dn(name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut p);
    Ok(p)
}

fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(err)
}

/// Writes atomically (temp file, fsync, rename); keys owner-only.
fn write_file(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, if private { 0o600 } else { 0o644 });
    let mut f = o.open(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_gets_the_book_s_files_with_owner_only_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let certs = dir.path().join("certs");
        let f = CertFolder::ensure(&certs).unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "ca.crt",
            "ca.key",
            "server.crt",
            "server.key",
            "board001.crt",
            "board001.key",
            "device001.crt",
            "device001.key",
        ] {
            assert!(certs.join(name).exists(), "{name} missing");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in ["ca.key", "server.key", "board001.key"] {
                let mode = std::fs::metadata(certs.join(key))
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0);
                assert_eq!(mode, 0o600, "{key}");
            }
        }
        assert_eq!(f.clients(), vec!["board001", "device001"]);
        // A second run keeps what is there.
        let ca_before = std::fs::read(f.ca_cert()).unwrap_or_default();
        let board_before = std::fs::read(certs.join("board001.crt")).unwrap_or_default();
        CertFolder::ensure(&certs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(f.ca_cert()).unwrap_or_default(), ca_before);
        assert_eq!(
            std::fs::read(certs.join("board001.crt")).unwrap_or_default(),
            board_before
        );
    }

    #[test]
    fn a_lost_ca_key_remakes_the_ca_and_every_certificate_it_signed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let f = CertFolder::ensure(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        f.create_client("extra").unwrap_or_else(|e| panic!("{e}"));
        let before: Vec<Vec<u8>> = ["ca.crt", "server.crt", "board001.crt", "extra.crt"]
            .iter()
            .map(|n| std::fs::read(dir.path().join(n)).unwrap_or_default())
            .collect();
        std::fs::remove_file(dir.path().join("ca.key")).unwrap_or_else(|e| panic!("{e}"));
        CertFolder::ensure(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        for (i, n) in ["ca.crt", "server.crt", "board001.crt", "extra.crt"]
            .iter()
            .enumerate()
        {
            let now = std::fs::read(dir.path().join(n)).unwrap_or_default();
            assert!(!now.is_empty() && now != before[i], "{n} was not remade");
        }
    }

    #[test]
    fn client_names_that_would_clash_or_escape_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let f = CertFolder::ensure(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        for bad in ["", "ca", "server", "../x", "a b", "x.y"] {
            assert!(f.create_client(bad).is_err(), "{bad:?} accepted");
        }
        assert!(f.create_client("surfboard01").is_ok());
        assert!(f.clients().contains(&"surfboard01".to_string()));
    }
}
