//! The sandbox's TLS listener with its own CA and the book's certificate
//! names, against real clients: mosquitto_sub/pub (OpenSSL) and mqscope's
//! own worker (rustls). Refusals are checked on both sides: the client's
//! words and the sandbox's log line.

mod common;
mod sandbox_util;

use mqscope::mqtt::{Command, ConnStatus, Worker};
use mqscope::profile::{Profile, TlsSettings, TransportKind};
use mqscope::sandbox::{DemoConfig, Sandbox, SandboxConfig, TlsOptions};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use sandbox_util::{Client, WAIT, run, wait_log, wait_subscriptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Tls {
    sandbox: Sandbox,
    certs: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tls {
    fn start(require_certificate: bool) -> Tls {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        let sandbox = Sandbox::start(SandboxConfig {
            port: Some(0),
            demo: DemoConfig::off(),
            tls: Some(TlsOptions {
                port: Some(0),
                require_certificate,
                certs: Some(certs.clone()),
                wss_port: None,
            }),
            ..SandboxConfig::default()
        })
        .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"));
        Tls {
            sandbox,
            certs,
            _dir: dir,
        }
    }

    fn port(&self) -> String {
        self.sandbox.tls_port().expect("a TLS port").to_string()
    }

    fn file(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    /// mosquitto_pub -d over TLS with the sandbox CA and these extra args;
    /// (exit ok, everything it printed: OpenSSL's words go to stdout).
    fn publish(&self, extra: &[&str]) -> (bool, String) {
        let port = self.port();
        let ca = self.file("ca.crt");
        let mut args = vec!["-h", "localhost", "-p", &port, "--cafile", &ca];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-t", "tls/test", "-m", "hello", "-d"]);
        let (ok, out, err) = run("mosquitto_pub", &args);
        (ok, format!("{out}{err}"))
    }
}

/// A client certificate signed by `issuer`, valid between the two dates,
/// written as NAME.crt / NAME.key in `dir`.
fn client_cert(
    dir: &Path,
    name: &str,
    issuer: &rcgen::Issuer<'_, KeyPair>,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = not_before;
    p.not_after = not_after;
    let cert = p.signed_by(&key, issuer).expect("signed");
    let crt = dir.join(format!("{name}.crt"));
    let keyf = dir.join(format!("{name}.key"));
    std::fs::write(&crt, cert.pem()).expect("write crt");
    std::fs::write(&keyf, key.serialize_pem()).expect("write key");
    (crt.display().to_string(), keyf.display().to_string())
}

#[test]
fn the_book_s_certificate_files_are_made_and_board001_talks_over_tls() {
    let t = Tls::start(true);
    for f in [
        "ca.crt",
        "server.crt",
        "server.key",
        "board001.crt",
        "board001.key",
        "device001.crt",
        "device001.key",
    ] {
        assert!(t.certs.join(f).exists(), "{f} was not made");
    }
    let port = t.port();
    let (ca, crt, key) = (
        t.file("ca.crt"),
        t.file("board001.crt"),
        t.file("board001.key"),
    );
    let sub = Client::spawn(
        "mosquitto_sub",
        &[
            "-V",
            "mqttv311",
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "--cert",
            &crt,
            "--key",
            &key,
            "-t",
            "tls/#",
            "-v",
            "-C",
            "1",
        ],
    );
    wait_subscriptions(&t.sandbox, 1);
    let (ok, err) = t.publish(&[
        "--cert",
        &t.file("device001.crt"),
        "--key",
        &t.file("device001.key"),
    ]);
    assert!(
        ok,
        "mosquitto_pub with device001's certificate failed: {err}"
    );
    assert_eq!(sub.next_line(WAIT).as_deref(), Some("tls/test hello"));
    // 127.0.0.1 is in the server certificate too, not only localhost.
    let (ok, _, err) = run(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            &ca,
            "--cert",
            &crt,
            "--key",
            &key,
            "-t",
            "x",
            "-m",
            "y",
        ],
    );
    assert!(
        ok,
        "127.0.0.1 is not accepted by the server certificate: {err}"
    );
}

#[test]
fn the_printed_tls_command_lines_work_as_printed() {
    let t = Tls::start(true);
    let lines = t.sandbox.example_command_lines();
    let sub_line = lines
        .iter()
        .find(|l| l.starts_with("mosquitto_sub") && l.contains("--cafile"))
        .expect("a TLS mosquitto_sub line");
    let pub_line = lines
        .iter()
        .find(|l| l.starts_with("mosquitto_pub") && l.contains("--cafile"))
        .expect("a TLS mosquitto_pub line");
    assert!(sub_line.contains("board001.crt") && sub_line.contains("ca.crt"));
    let sub = Client::spawn("sh", &["-c", &format!("{sub_line} -C 1")]);
    wait_subscriptions(&t.sandbox, 1);
    let (ok, _, err) = run("sh", &["-c", pub_line]);
    assert!(ok, "the printed mosquitto_pub line failed: {err}");
    let got = sub.wait_for(WAIT, |l| l.contains("hello over TLS"));
    assert!(got.is_some(), "the printed mosquitto_sub line got nothing");
}

#[test]
fn without_a_client_certificate_the_client_hears_why_and_the_log_says_who() {
    let t = Tls::start(true);
    let (ok, err) = t.publish(&[]);
    assert!(!ok, "a client without certificate was let in");
    assert!(
        err.contains("certificate required"),
        "mosquitto_pub does not say a certificate is required: {err}"
    );
    let line = wait_log(&t.sandbox, "TLS refused");
    assert!(
        line.contains("127.0.0.1:") && line.contains("no client certificate"),
        "{line}"
    );
}

#[test]
fn a_client_certificate_is_optional_unless_required() {
    let t = Tls::start(false);
    let (ok, err) = t.publish(&[]);
    assert!(
        ok,
        "without --require-certificate a CA-only client is let in: {err}"
    );
}

#[test]
fn a_client_that_does_not_trust_the_sandbox_ca_is_refused() {
    let t = Tls::start(false);
    let other = common::Pki::generate();
    let port = t.port();
    let wrong_ca = other.ca_cert.display().to_string();
    let (ok, out, err) = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &wrong_ca,
            "-t",
            "x",
            "-m",
            "y",
            "-d",
        ],
    );
    let err = format!("{out}{err}");
    assert!(!ok, "a client with another CA connected");
    assert!(err.contains("certificate verify failed"), "{err}");
    let line = wait_log(&t.sandbox, "TLS refused");
    assert!(line.contains("does not trust"), "{line}");
}

#[test]
fn expired_and_foreign_client_certificates_are_refused() {
    let t = Tls::start(false);
    let scratch = tempfile::tempdir().expect("tempdir");
    let folder = t.sandbox.certs().expect("the certificate folder").clone();
    let issuer = folder.issuer().expect("the sandbox CA");
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let (crt, key) = client_cert(
        scratch.path(),
        "expired",
        &issuer,
        now - day * 30,
        now - day,
    );
    let (ok, err) = t.publish(&["--cert", &crt, "--key", &key]);
    assert!(!ok, "an expired client certificate was accepted");
    assert!(err.contains("expired"), "the client is not told: {err}");
    // The log names the certificate (its common name) and why.
    wait_log(
        &t.sandbox,
        "TLS refused: certificate 'expired': client certificate expired",
    );

    // A valid certificate from a CA the sandbox does not know.
    let foreign = common::Pki::generate();
    let (ok, err) = t.publish(&[
        "--cert",
        &foreign.client_ec_cert.display().to_string(),
        "--key",
        &foreign.client_ec_key_pkcs8.display().to_string(),
    ]);
    assert!(!ok, "a foreign client certificate was accepted");
    assert!(err.contains("unknown ca"), "the client is not told: {err}");
    wait_log(
        &t.sandbox,
        "certificate 'mqscope test client (EC)': client certificate not signed by the sandbox CA",
    );

    // The same CA's fresh certificate still works.
    let (crt, key) = client_cert(scratch.path(), "fresh", &issuer, now - day, now + day);
    let (ok, err) = t.publish(&["--cert", &crt, "--key", &key]);
    assert!(
        ok,
        "a valid certificate from the sandbox CA was refused: {err}"
    );
}

#[test]
fn more_client_certificates_can_be_made_and_used() {
    let t = Tls::start(true);
    let folder = t.sandbox.certs().expect("the certificate folder").clone();
    let (crt, key) = folder
        .create_client("surfboard07")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(folder.clients().contains(&"surfboard07".to_string()));
    let (ok, err) = t.publish(&[
        "--cert",
        &crt.display().to_string(),
        "--key",
        &key.display().to_string(),
    ]);
    assert!(ok, "a certificate made later is refused: {err}");
}

fn tls_profile(t: &Tls, client: Option<&str>) -> Profile {
    Profile {
        name: "sandbox tls".into(),
        host: "localhost".into(),
        port: t.sandbox.tls_port().expect("a TLS port"),
        transport: TransportKind::Tls,
        subscriptions: Vec::new(),
        tls: TlsSettings {
            ca_file: Some(t.certs.join("ca.crt")),
            client_cert: client.map(|c| t.certs.join(format!("{c}.crt"))),
            client_key: client.map(|c| t.certs.join(format!("{c}.key"))),
            ..TlsSettings::default()
        },
        ..Profile::default()
    }
}

#[test]
fn mqscope_s_own_client_connects_with_board001_and_is_told_when_it_has_none() {
    let t = Tls::start(true);
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: 1,
        profile: Box::new(tls_profile(&t, Some("board001"))),
    });
    common::wait_connected(&worker, 1);

    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: 2,
        profile: Box::new(tls_profile(&t, None)),
    });
    let status = common::wait_status(&worker, 2, Duration::from_secs(10), |s| {
        matches!(
            s,
            ConnStatus::Disconnected { reason: Some(_) } | ConnStatus::Reconnecting { .. }
        )
    });
    let text = format!("{status:?}");
    assert!(
        text.contains("requires a client certificate"),
        "mqscope's client does not say why: {text}"
    );
    wait_log(&t.sandbox, "no client certificate");

    // A profile that trusts another CA: mqscope says so.
    let other = common::Pki::generate();
    let mut wrong = tls_profile(&t, Some("board001"));
    wrong.tls.ca_file = Some(other.ca_cert.clone());
    let worker = Worker::spawn(None);
    worker.send(Command::Connect {
        conn: 3,
        profile: Box::new(wrong),
    });
    let status = common::wait_status(&worker, 3, Duration::from_secs(10), |s| {
        matches!(
            s,
            ConnStatus::Disconnected { reason: Some(_) } | ConnStatus::Reconnecting { .. }
        )
    });
    let text = format!("{status:?}");
    assert!(text.contains("not signed by a trusted CA"), "{text}");
}

#[test]
fn mqscope_sandbox_prints_tls_command_lines_that_work_and_logs_who_was_refused() {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let mut child = common::mqscope()
        .args(["sandbox", "-p", "0", "--no-demo", "--tls-port", "0"])
        .args([
            "--require-certificate",
            "--client-cert",
            "surf01",
            "--certs",
        ])
        .arg(&certs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mqscope sandbox");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while let Some(Ok(line)) = out.next() {
        let done = line.contains("press Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(text.contains("(client certificate required)"), "{text}");
    assert!(
        text.contains(&format!("certificates in {}", certs.display())),
        "{text}"
    );
    assert!(certs.join("surf01.crt").exists() && certs.join("surf01.key").exists());
    let find = |prefix: &str| {
        lines
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with(prefix) && l.contains("--cafile"))
            .unwrap_or_else(|| panic!("no TLS {prefix} line in:\n{text}"))
            .to_string()
    };
    let (sub_line, pub_line) = (find("mosquitto_sub"), find("mosquitto_pub"));
    let sub = Client::spawn("sh", &["-c", &format!("{sub_line} -C 1 -W 10")]);
    // Publish until the subscriber (connecting meanwhile) has one.
    let mut got = None;
    for _ in 0..25 {
        let (ok, _, err) = run("sh", &["-c", &pub_line]);
        assert!(ok, "the printed mosquitto_pub line failed: {err}");
        got = sub.wait_for(Duration::from_millis(200), |l| l.contains("hello over TLS"));
        if got.is_some() {
            break;
        }
    }
    assert!(got.is_some(), "the printed mosquitto_sub line got nothing");
    // A client without a certificate: refused, and the log says who.
    let port = pub_line
        .split_whitespace()
        .skip_while(|w| *w != "-p")
        .nth(1)
        .expect("a port in the line")
        .to_string();
    let ca = certs.join("ca.crt").display().to_string();
    let (ok, _, _) = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "-t",
            "x",
            "-m",
            "y",
        ],
    );
    assert!(!ok, "a client without a certificate got in");
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    let log = err_reader.join().unwrap_or_default();
    assert!(status.success(), "exit status {status:?}; stderr:\n{log}");
    assert!(
        log.lines().any(|l| l.starts_with("sandbox: 127.0.0.1:")
            && l.contains("TLS refused: no client certificate")),
        "{log}"
    );
}

#[test]
fn a_plain_mqtt_client_on_the_tls_port_is_told_off_in_the_log() {
    let t = Tls::start(false);
    let port = t.port();
    let (ok, _, _) = run(
        "mosquitto_pub",
        &["-h", "127.0.0.1", "-p", &port, "-t", "x", "-m", "y"],
    );
    assert!(!ok, "a plain client got through the TLS port");
    let line = wait_log(&t.sandbox, "TLS refused");
    assert!(line.contains("does not speak TLS"), "{line}");
    // The listener still serves TLS clients.
    let (ok, err) = t.publish(&[]);
    assert!(ok, "{err}");
}

#[test]
fn the_log_names_a_tls_client_by_its_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic read public/#\n").expect("write acl");
    let sandbox = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        tls: Some(TlsOptions {
            port: Some(0),
            require_certificate: true,
            certs: Some(certs.clone()),
            wss_port: None,
        }),
        auth: mqscope::sandbox::AuthOptions {
            acl_file: Some(acl),
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"));
    let port = sandbox.tls_port().expect("a TLS port").to_string();
    let file = |n: &str| certs.join(n).display().to_string();
    let (_, _, _) = run(
        "mosquitto_sub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &file("ca.crt"),
            "--cert",
            &file("device001.crt"),
            "--key",
            &file("device001.key"),
            "-i",
            "dev",
            "-t",
            "private/#",
            "-W",
            "1",
        ],
    );
    let line = wait_log(&sandbox, "SUBSCRIBE to 'private/#' denied");
    assert!(
        line.starts_with("client 'dev' (127.0.0.1:")
            && line.contains(", TLS, certificate 'device001'):"),
        "{line}"
    );
}
