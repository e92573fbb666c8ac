//! `mqscope import`: sample MQTT Explorer settings.json and MQTTX exports,
//! written to the formats of those tools' sources, imported and then used
//! with `--profile` against real Mosquitto brokers (TLS with a client
//! certificate and a password; MQTT 5 with properties).

#![recursion_limit = "256"]

mod common;

use base64::Engine as _;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// `mqscope` with its config directory at `config`.
fn mqscope_in(config: &Path) -> Command {
    let mut cmd = mqscope();
    cmd.env("MQSCOPE_CONFIG_DIR", config);
    cmd
}

fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).expect("read"))
}

#[test]
fn mqtt_explorer_settings_import_then_the_tls_profile_publishes() {
    let pki = Pki::generate();
    let broker = Broker::builder()
        .tls(pki.server_tls())
        .require_certificate(true)
        .password("alice", "s3cret")
        .start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    let settings = json!({
        "ConnectionManager_connections": {
            "7d4c8d3e-0000-4000-8000-000000000001": {
                "configVersion": 1, "type": "mqtt",
                "id": "7d4c8d3e-0000-4000-8000-000000000001",
                "name": "plant broker", "host": "127.0.0.1", "port": broker.port,
                "protocol": "mqtt", "encryption": true, "certValidation": true,
                "selfSignedCertificate": {"name": "ca.pem", "data": b64(&pki.ca_cert)},
                "clientCertificate": {"name": "client.crt", "data": b64(&pki.client_ec_cert)},
                "clientKey": {"name": "client.key", "data": b64(&pki.client_ec_key)},
                "username": "alice", "password": "s3cret", "clientId": "explorer-import",
                "subscriptions": [{"topic": "plant/#", "qos": 1}, {"topic": "$SYS/#", "qos": 0}],
                "will": {"topic": "plant/status", "payload": "gone", "qos": 1, "retain": true}
            },
            "test.mosquitto.org": {
                "configVersion": 1, "type": "mqtt", "id": "test.mosquitto.org",
                "name": "test.mosquitto.org", "host": "test.mosquitto.org", "port": 8080,
                "protocol": "ws", "basePath": "ws", "encryption": false, "certValidation": true,
                "clientId": "mqtt-explorer-1234abcd",
                "subscriptions": [{"topic": "#", "qos": 0}]
            }
        },
        "Settings": {"autoExpandLimit": 0, "topicOrder": "none"}
    });
    let file = dir.path().join("settings.json");
    std::fs::write(&file, settings.to_string()).expect("write");

    let done = run_with_timeout(
        mqscope_in(&config)
            .args(["import", "--with-passwords"])
            .arg(&file),
        LIMIT,
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let report = done.stdout;
    assert!(
        report.contains("imported 2 profiles from MQTT Explorer"),
        "{report}"
    );
    assert!(
        report.contains("\"plant broker\": mqtts://127.0.0.1"),
        "{report}"
    );
    assert!(report.contains("will on 'plant/status'"), "{report}");
    assert!(report.contains("password imported"), "{report}");
    // The websocket profile keeps its path (MQTT Explorer writes "ws").
    assert!(
        report.contains("ws://") && report.contains("/ws,"),
        "{report}"
    );
    assert!(report.contains("CA certificate → "), "{report}");

    // The key file is the owner's only.
    let key = std::fs::read_dir(config.join("certs"))
        .expect("certs dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("key.pem"))
        .expect("key file");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = key.metadata().expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "client key permissions");
    let profiles = std::fs::read_to_string(config.join("profiles.ron")).expect("profiles");
    assert!(!profiles.contains("s3cret"), "no password in profiles.ron");

    // The imported profile reaches the TLS broker with certificate and password.
    let mut sub = Lines::new(mosquitto_sub(
        &broker,
        &[
            "-i",
            "import-watcher",
            "-t",
            "plant/x",
            "-C",
            "1",
            "--cert",
            &pki.client_rsa_cert.display().to_string(),
            "--key",
            &pki.client_rsa_key.display().to_string(),
        ],
    ));
    broker.wait_subscribed("import-watcher", "plant/x");
    let done = run_with_timeout(
        mqscope_in(&config).args([
            "pub",
            "--profile",
            "plant broker",
            "-t",
            "plant/x",
            "-m",
            "via import",
        ]),
        LIMIT,
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some("via import"));
    let (code, _) = sub.finish(LIMIT);
    assert_eq!(code, Some(0));

    // Importing again: the names clash and get a number.
    let done = run_with_timeout(mqscope_in(&config).arg("import").arg(&file), LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(
        done.stdout
            .contains("\"plant broker (2)\" (from \"plant broker\")"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout
            .contains("password not imported (run again with --with-passwords"),
        "{}",
        done.stdout
    );
}

#[test]
fn mqttx_export_import_names_what_it_cannot_carry_and_the_v5_profile_subscribes() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    let export = json!([
        {
            "id": "0c5f5c9e-7a2c-4a3e-9f3b-2f4f4d1a0b11",
            "clientId": "mqttx_import_v5", "name": "Line 5", "clean": true,
            "protocol": "mqtt", "host": "127.0.0.1", "port": broker.port, "keepalive": 30,
            "connectTimeout": 10, "reconnect": true, "reconnectPeriod": 4000,
            "username": "", "password": "", "path": "/mqtt", "certType": "",
            "ssl": false, "mqttVersion": "5.0", "unreadMessageCount": 0,
            "ca": "", "cert": "", "key": "", "rejectUnauthorized": true,
            "clientIdWithTime": false, "isCollection": false, "orderId": 1,
            "createAt": "2024-05-01 10:00:00", "updateAt": "2024-05-01 10:00:00",
            "properties": {
                "sessionExpiryInterval": 120, "receiveMaximum": 50,
                "topicAliasMaximum": 8, "requestProblemInformation": true,
                "userProperties": {"site": "north"},
                "authenticationMethod": "SCRAM-SHA-1"
            },
            "will": {
                "lastWillTopic": "line5/status", "lastWillPayload": "offline",
                "lastWillQos": 1, "lastWillRetain": true,
                "properties": {"willDelayInterval": 5, "contentType": "text/plain",
                               "payloadFormatIndicator": true}
            },
            "subscriptions": [
                {"id": "s1", "topic": "line5/#", "qos": 1, "nl": true, "rap": true, "rh": 2,
                 "alias": "all of line 5", "color": "#34C388", "createAt": "2024-05-01 10:00:00"}
            ],
            "messages": [
                {"id": "m1", "createAt": "2024-05-01 10:00:01", "out": false, "payload": "1",
                 "qos": 0, "retain": false, "topic": "line5/a"}
            ]
        },
        {
            "id": "c2", "name": "Lab", "isCollection": true,
            "children": [{
                "id": "c3", "clientId": "lab_1", "name": "Lab TLS", "clean": false,
                "protocol": "mqtts", "host": "lab.example", "port": 8883, "keepalive": 60,
                "username": "bob", "password": "pw", "path": "/mqtt", "certType": "self",
                "ssl": true, "mqttVersion": "3.1.1", "ca": "missing-ca.pem", "cert": "", "key": "",
                "rejectUnauthorized": false, "subscriptions": [], "messages": []
            }]
        }
    ]);
    let file = dir.path().join("data.json");
    std::fs::write(&file, serde_json::to_string_pretty(&export).expect("json")).expect("write");
    let done = run_with_timeout(mqscope_in(&config).arg("import").arg(&file), LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let report = done.stdout;
    for says in [
        "imported 2 profiles from MQTTX",
        "\"Line 5\": mqtt://127.0.0.1",
        "MQTT 5",
        "connect timeout 10 s: mqscope has no such option",
        "reconnect period 4000 ms",
        "authentication method 'SCRAM-SHA-1'",
        "will payload format indicator",
        "alias 'all of line 5'",
        "1 stored messages: message history is not imported",
        "\"Lab TLS\": mqtts://lab.example:8883",
        "CA certificate missing-ca.pem not imported: cannot read it",
        "server certificate NOT verified",
        "password not imported",
    ] {
        assert!(report.contains(says), "report lacks {says:?}:\n{report}");
    }
    let profiles = std::fs::read_to_string(config.join("profiles.ron")).expect("profiles");
    for has in [
        "session_expiry_interval: Some(120)",
        "receive_maximum: Some(50)",
        "no_local: true",
        "retain_handling: Never",
        "delay_interval: Some(5)",
        "(\"site\", \"north\")",
        "keep_alive_secs: 30",
    ] {
        assert!(
            profiles.contains(has),
            "profiles.ron lacks {has}:\n{profiles}"
        );
    }

    // The MQTT 5 profile subscribes with its own filter and receives.
    let mut sub = Lines::new(
        mqscope_in(&config)
            .args([
                "sub",
                "--profile",
                "Line 5",
                "-t",
                "line5/#",
                "-C",
                "1",
                "-v",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sub starts"),
    );
    broker.wait_subscribed("mqttx_import_v5", "line5/#");
    mosquitto_pub(&broker, &["-t", "line5/a", "-m", "42", "-V", "mqttv5"]);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some("line5/a 42"));
    let (code, err) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_file_of_neither_format_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    for (name, text, says) in [
        (
            "other.json",
            "{\"hello\": 1}",
            "neither MQTT Explorer's settings.json",
        ),
        (
            "broken.json",
            "{\"ConnectionManager_connections\": ",
            "is not JSON",
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        let done = run_with_timeout(mqscope_in(&config).arg("import").arg(&file), LIMIT);
        assert_eq!(done.code, Some(1), "{name}");
        assert_eq!(done.stderr.lines().count(), 1, "{}", done.stderr);
        assert!(done.stderr.contains(says), "{}", done.stderr);
    }
    assert!(!config.join("profiles.ron").exists(), "nothing written");
}
