//! The sandbox's users and ACLs in Mosquitto's own files: a password file
//! made by running `mosquitto_passwd`, an ACL file with user, topic and
//! pattern lines; checked with mosquitto_pub/sub (3.1.1 and 5) and raw
//! clients that read the reason codes byte for byte.

mod sandbox_util;

use mqscope::sandbox::{AuthOptions, DemoConfig, Sandbox, SandboxConfig};
use rumqttc::mqttbytes::QoS;
use rumqttc::{Packet, Subscribe, SubscribeReasonCode};
use sandbox_util::{Client, Raw, Raw5, WAIT, run, v5p, wait_log, wait_subscriptions};
use std::path::Path;
use std::time::Duration;

const ACL: &str = "\
# anonymous clients may only read the public topics
topic read public/#

user board001
topic readwrite vehicles/#
topic deny vehicles/secret/#
topic write commands/#
topic write status/#

user reader
topic read status/#
topic deny status/private/#

user watcher
topic read #

pattern readwrite clients/%c/#
";

fn passwords(dir: &Path) -> String {
    let file = dir.join("passwords");
    let file_s = file.display().to_string();
    let (ok, _, err) = run(
        "mosquitto_passwd",
        &["-c", "-b", &file_s, "board001", "s3cret"],
    );
    assert!(ok, "mosquitto_passwd failed: {err}");
    let (ok, _, err) = run("mosquitto_passwd", &["-b", &file_s, "watcher", "w4tch"]);
    assert!(ok, "mosquitto_passwd failed: {err}");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(text.contains("board001:$7$"), "not a $7$ file: {text}");
    file_s
}

fn start(dir: &Path, password: bool, acl: bool, allow_anonymous: bool) -> Sandbox {
    let acl_file = dir.join("acl");
    std::fs::write(&acl_file, ACL).expect("write acl");
    Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        auth: AuthOptions {
            password_file: password.then(|| passwords(dir).into()),
            acl_file: acl.then_some(acl_file),
            allow_anonymous,
        },
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"))
}

fn pub_args<'a>(port: &'a str, v: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-V", v, "-p", port, "-t", "vehicles/a", "-m", "x"];
    a.extend_from_slice(extra);
    a
}

#[test]
fn a_mosquitto_passwd_file_lets_its_users_in_and_refuses_others_with_the_right_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path(), true, false, false);
    let port = s.port().to_string();
    for v in ["mqttv311", "5"] {
        let (ok, _, err) = run(
            "mosquitto_pub",
            &pub_args(&port, v, &["-u", "board001", "-P", "s3cret"]),
        );
        assert!(ok, "{v}: the right password is refused: {err}");
    }
    // 3.1.1 return codes 4 and 5; MQTT 5 reason codes 0x86 and 0x87.
    let (ok, _, err) = run(
        "mosquitto_pub",
        &pub_args(&port, "mqttv311", &["-u", "board001", "-P", "nope"]),
    );
    assert!(!ok && err.contains("bad user name or password"), "{err}");
    let (ok, _, err) = run("mosquitto_pub", &pub_args(&port, "mqttv311", &[]));
    assert!(!ok && err.contains("not authorised"), "{err}");
    let (ok, _, err) = run(
        "mosquitto_pub",
        &pub_args(&port, "5", &["-u", "board001", "-P", "nope"]),
    );
    assert!(!ok && err.contains("Bad User Name or Password"), "{err}");
    let (ok, _, err) = run("mosquitto_pub", &pub_args(&port, "5", &[]));
    assert!(!ok && err.contains("Not authorized"), "{err}");
    let (ok, _, err) = run(
        "mosquitto_pub",
        &pub_args(&port, "5", &["-u", "nobody", "-P", "s3cret"]),
    );
    assert!(!ok && err.contains("Bad User Name or Password"), "{err}");
    let line = wait_log(&s, "wrong user name or password for user 'board001'");
    assert!(line.contains("127.0.0.1:"), "{line}");
    wait_log(&s, "gave no user name");
}

#[test]
fn allow_anonymous_lets_clients_without_a_user_name_in_but_still_checks_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path(), true, false, true);
    let port = s.port().to_string();
    let (ok, _, err) = run("mosquitto_pub", &pub_args(&port, "mqttv311", &[]));
    assert!(ok, "an anonymous client is refused: {err}");
    let (ok, _, _) = run(
        "mosquitto_pub",
        &pub_args(&port, "mqttv311", &["-u", "board001", "-P", "nope"]),
    );
    assert!(!ok, "a wrong password is let in");
}

#[test]
fn a_subscription_the_acl_denies_gets_suback_0x80_and_0x87_in_v5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path(), false, true, false);
    // 3.1.1, raw: the failure code 0x80 beside a granted filter.
    let mut raw = Raw::open(s.port());
    let mut c = rumqttc::Connect::new("b1");
    c.login = Some(rumqttc::Login::new("board001", ""));
    raw.send(Packet::Connect(c));
    assert!(matches!(raw.recv(WAIT), Some(Packet::ConnAck(_))));
    let mut sub = Subscribe::new("vehicles/#", QoS::AtLeastOnce);
    sub.add("commands/#".into(), QoS::AtMostOnce);
    sub.add("#".into(), QoS::AtMostOnce);
    sub.pkid = 7;
    raw.send(Packet::Subscribe(sub));
    match raw.recv(WAIT) {
        Some(Packet::SubAck(a)) => assert_eq!(
            a.return_codes,
            vec![
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Failure
            ]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // MQTT 5 through mosquitto_sub: 135 = 0x87 Not authorized.
    let p = s.port().to_string();
    let sub = Client::spawn(
        "mosquitto_sub",
        &[
            "-V",
            "5",
            "-p",
            &p,
            "-u",
            "board001",
            "-t",
            "commands/#",
            "-t",
            "vehicles/#",
            "-d",
            // (its -d lines reach the pipe when it exits)
            "-W",
            "1",
        ],
    );
    let line = sub.wait_for(WAIT, |l| l.starts_with("Subscribed"));
    assert_eq!(line.as_deref(), Some("Subscribed (mid: 1): 135, 0"));
    wait_log(&s, "SUBSCRIBE to 'commands/#' denied by the ACL");
    // Anonymous rules: read public/#, nothing else.
    let mut anon = Raw5::connect(s.port(), "anon");
    let a = anon.subscribe(v5p::Filter::new("public/+", q5(QoS::AtMostOnce)), None);
    assert_eq!(
        a.return_codes,
        vec![v5p::SubscribeReasonCode::Success(q5(QoS::AtMostOnce))]
    );
    let a = anon.subscribe(v5p::Filter::new("vehicles/#", q5(QoS::AtMostOnce)), None);
    assert_eq!(
        a.return_codes,
        vec![v5p::SubscribeReasonCode::NotAuthorized]
    );
}

fn q5(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
    sandbox_util::q5(q)
}

#[test]
fn a_publish_the_acl_denies_is_dropped_and_v5_hears_0x87() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path(), false, true, false);
    let p = s.port().to_string();
    // The watcher reads everything the ACL lets it read.
    let sub = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-u", "watcher", "-t", "#", "-v"],
    );
    wait_subscriptions(&s, 1);
    let publish = |v: &str, topic: &str, msg: &str| {
        run(
            "mosquitto_pub",
            &[
                "-V", v, "-p", &p, "-u", "board001", "-q", "1", "-t", topic, "-m", msg, "-d",
            ],
        )
    };
    // 3.1.1: acknowledged as Mosquitto does, but not delivered.
    let (ok, out, _) = publish("mqttv311", "public/news", "denied-311");
    assert!(ok && out.contains("received PUBACK"), "{out}");
    // MQTT 5: PUBACK 0x87.
    let (_, out, _) = publish("5", "vehicles/secret/key", "denied-5");
    assert!(out.contains("received PUBACK (Mid: 1, RC:135)"), "{out}");
    // QoS 2: PUBREC 0x87, and the flow ends there.
    let (_, out, err) = run(
        "mosquitto_pub",
        &[
            "-V",
            "5",
            "-p",
            &p,
            "-u",
            "board001",
            "-q",
            "2",
            "-t",
            "public/x",
            "-m",
            "denied-q2",
            "-d",
        ],
    );
    // (mosquitto_pub 2.0.11 prints no RC for PUBREC: it sends no PUBREL
    // and says why.)
    assert!(out.contains("received PUBREC (Mid: 1)"), "{out}");
    assert!(!out.contains("sending PUBREL"), "{out}");
    assert!(err.contains("Publish 1 failed: Not authorized"), "{err}");
    let (ok, _, err) = publish("mqttv311", "vehicles/v1/speed", "allowed");
    assert!(ok, "{err}");
    // The allowed message is the first (and only) one the watcher gets:
    // the two denied ones were published before it on the same path.
    assert_eq!(
        sub.next_line(WAIT).as_deref(),
        Some("vehicles/v1/speed allowed")
    );
    assert_eq!(sub.next_line(Duration::from_millis(300)), None);
    assert_eq!(s.stats().denied, 3);
    wait_log(&s, "PUBLISH to 'public/news' denied by the ACL, dropped");
}

#[test]
fn pattern_lines_give_each_client_its_own_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path(), false, true, false);
    let p = s.port().to_string();
    let watcher = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-u", "watcher", "-t", "clients/#", "-v"],
    );
    wait_subscriptions(&s, 1);
    for (id, topic) in [("dev7", "clients/dev8/x"), ("dev7", "clients/dev7/x")] {
        let (ok, _, err) = run(
            "mosquitto_pub",
            &["-p", &p, "-i", id, "-q", "1", "-t", topic, "-m", id],
        );
        assert!(ok, "{err}");
    }
    assert_eq!(
        watcher.next_line(WAIT).as_deref(),
        Some("clients/dev7/x dev7")
    );
}

#[test]
fn retained_messages_the_acl_hides_are_not_sent_to_a_new_subscriber() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path(), false, true, false);
    let p = s.port().to_string();
    for topic in ["status/private/a", "status/public/b"] {
        let (ok, _, err) = run(
            "mosquitto_pub",
            &[
                "-p", &p, "-u", "board001", "-r", "-q", "1", "-t", topic, "-m", "r",
            ],
        );
        assert!(ok, "{err}");
    }
    let reader = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-u", "reader", "-t", "status/#", "-v"],
    );
    assert_eq!(reader.next_line(WAIT).as_deref(), Some("status/public/b r"));
    assert_eq!(reader.next_line(Duration::from_millis(500)), None);
}

#[test]
fn an_unreadable_password_file_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("pw");
    std::fs::write(&f, "board001:plaintext\n").expect("write");
    let err = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        auth: AuthOptions {
            password_file: Some(f.clone()),
            ..AuthOptions::default()
        },
        ..SandboxConfig::default()
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains(&format!("{}:1:", f.display())) && err.contains("mosquitto_passwd -U"),
        "{err}"
    );
}

#[test]
fn the_sandbox_s_own_devices_are_not_locked_out_by_its_password_file_or_acl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl_file = dir.path().join("acl");
    std::fs::write(&acl_file, ACL).expect("write acl");
    let s = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig {
            surf_rate_hz: 20.0,
            ..DemoConfig::default()
        },
        auth: AuthOptions {
            password_file: Some(passwords(dir.path()).into()),
            acl_file: Some(acl_file),
            allow_anonymous: false,
        },
        ..SandboxConfig::default()
    })
    .unwrap_or_else(|e| panic!("the sandbox did not start: {e}"));
    let p = s.port().to_string();
    let watcher = Client::spawn(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-u",
            "watcher",
            "-P",
            "w4tch",
            "-t",
            "surfboards/#",
            "-v",
        ],
    );
    let line = watcher.wait_for(WAIT, |l| l.starts_with("surfboards/surfboard01/"));
    assert!(line.is_some(), "the surfboards' telemetry did not arrive");
    // Someone else using the devices' user name gets nowhere.
    let (ok, _, _) = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-u",
            mqscope::sandbox::broker::DEVICE_USER,
            "-P",
            "guess",
            "-t",
            "x",
            "-m",
            "y",
        ],
    );
    assert!(!ok, "a guessed device password got in");
    assert_eq!(s.stats().denied, 0, "no device publish was denied");
}
