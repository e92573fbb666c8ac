//! The window driven like a user would: by the labels on screen, against a
//! real Mosquitto, with a fake file picker and a fresh config directory each.

mod common;

use common::gui::{FakePicker, click, has_label, has_label_containing, set_text, step_until};

use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::App;
use mqscope::mqtt::ConnStatus;
use mqscope::profile::{ProfileStore, TransportKind};
use std::path::Path;
use std::time::Duration;

fn harness(config_dir: &Path, picker: FakePicker) -> Harness<'static, App> {
    common::gui::app_with(config_dir, picker)
}

/// Adds a profile and points it at 127.0.0.1:`port`.
fn add_profile(harness: &mut Harness<'_, App>, port: &str) {
    click(harness, "Add");
    set_text(harness, "Host", "127.0.0.1");
    set_text(harness, "Port", port);
}

#[test]
fn fill_profile_and_connect_shows_connected() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(dir.path(), FakePicker::default());

    add_profile(&mut harness, &broker.port.to_string());
    click(&mut harness, "Connect");
    step_until(
        &mut harness,
        "'Connected since' in the connection bar",
        Duration::from_secs(10),
        |h| has_label_containing(h, "Connected since"),
    );
    assert!(
        has_label(&harness, "Disconnect"),
        "a connected profile offers Disconnect"
    );

    // What was typed is saved: a restart finds the profile again.
    let saved = ProfileStore::at(dir.path())
        .load()
        .expect("profiles.ron loads");
    assert!(
        saved
            .iter()
            .any(|p| p.host == "127.0.0.1" && p.port == broker.port),
        "the connected profile is in the store: {saved:?}"
    );

    click(&mut harness, "Disconnect");
    step_until(
        &mut harness,
        "the Connect button after disconnecting",
        Duration::from_secs(10),
        |h| has_label(h, "Connect"),
    );
}

#[test]
fn wrong_port_shows_clear_error_in_connection_bar() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(dir.path(), FakePicker::default());

    // A port out of range: the field says why, and Connect is refused.
    add_profile(&mut harness, "99999");
    assert!(
        has_label(&harness, "port must be a number from 1 to 65535"),
        "the inline port error is shown under the field"
    );
    click(&mut harness, "Connect");
    assert!(
        has_label(
            &harness,
            "Cannot connect: port must be a number from 1 to 65535"
        ),
        "the bar says why Connect did nothing"
    );
    assert!(has_label(&harness, "Not connected"));
    assert_eq!(harness.state().selected_status(), None);

    // A closed port: the bar names the refusal and keeps retrying.
    let closed = common::free_port();
    set_text(&mut harness, "Port", &closed.to_string());
    assert!(
        !has_label_containing(&harness, "Cannot connect"),
        "editing clears the refused-connect message"
    );
    click(&mut harness, "Connect");
    step_until(
        &mut harness,
        "a connection refused reason",
        Duration::from_secs(10),
        |h| {
            h.query_all_by_label_contains("connection refused")
                .any(|n| {
                    // A Label's text is its accesskit value.
                    n.value()
                        .is_some_and(|l| l.starts_with("Reconnecting (attempt"))
                })
        },
    );
    assert!(matches!(
        harness.state().selected_status(),
        Some(ConnStatus::Reconnecting { .. })
    ));
    assert!(
        has_label(&harness, "Disconnect"),
        "a retrying connection can be stopped"
    );
}

#[test]
fn verify_off_is_flagged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(dir.path(), FakePicker::default());
    let warning = "⚠ server certificate not verified";

    click(&mut harness, "TLS");
    assert!(
        !has_label(&harness, warning),
        "verification is on by default, nothing to flag"
    );
    click(&mut harness, "Verify server certificate");
    assert!(
        has_label(&harness, warning),
        "the bar flags a profile that skips verification"
    );
    assert!(
        has_label_containing(
            &harness,
            "anyone on the network path can pose as the broker"
        ),
        "the form explains the risk next to the checkbox"
    );
    let profile = harness
        .state()
        .profiles()
        .last()
        .cloned()
        .expect("a profile");
    assert_eq!(profile.transport, TransportKind::Tls);
    assert!(!profile.tls.verify_server);
}

#[test]
fn browse_fills_ca_file_from_picker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let picker = FakePicker::default();
    let ca = dir.path().join("certs").join("ca.pem");
    picker.answers.borrow_mut().push_back(ca.clone());
    let mut harness = harness(dir.path(), picker.clone());

    click(&mut harness, "TLS");
    assert_eq!(
        harness.get_by_label("CA file").value().unwrap_or_default(),
        "",
        "no CA file: the system roots are used"
    );
    click(&mut harness, "Browse for CA file");
    assert_eq!(picker.asked.borrow().len(), 1, "the picker was asked once");
    assert_eq!(
        harness.get_by_label("CA file").value().as_deref(),
        Some(ca.display().to_string().as_str())
    );
    assert_eq!(
        harness
            .state()
            .profiles()
            .last()
            .and_then(|p| p.tls.ca_file.clone()),
        Some(ca)
    );
}

#[test]
fn main_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(dir.path(), FakePicker::default());

    add_profile(&mut harness, "1883");
    set_text(&mut harness, "Name", "office broker");
    set_text(&mut harness, "Host", "broker.office.lan");
    // A fixed client id: the generated one is random.
    set_text(&mut harness, "Client ID", "mqscope-snapshot");
    set_text(&mut harness, "Username", "alice");
    // Leave the field: no blinking cursor in the picture.
    harness.key_press(Key::Escape);
    // No hover highlight from the last click.
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("main_window");
}

#[test]
fn delete_asks_before_removing_the_profile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(dir.path(), FakePicker::default());
    click(&mut harness, "Add");
    assert_eq!(harness.state().profiles().count(), 2);

    click(&mut harness, "Delete");
    assert!(has_label_containing(
        &harness,
        "Delete the profile 'new profile'?"
    ));
    click(&mut harness, "Cancel");
    assert_eq!(harness.state().profiles().count(), 2, "Cancel keeps it");

    click(&mut harness, "Delete");
    click(&mut harness, "Yes, delete");
    let names: Vec<String> = harness.state().profiles().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["localhost"]);
    let saved = ProfileStore::at(dir.path())
        .load()
        .expect("profiles.ron loads");
    assert!(
        saved.iter().all(|p| p.name != "new profile"),
        "the deletion is saved: {saved:?}"
    );
}

#[test]
fn a_failed_save_keeps_the_edit_unsaved_and_says_so_until_it_succeeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness(dir.path(), FakePicker::default());
    click(&mut harness, "Add");
    let profiles = ProfileStore::at(dir.path()).profiles_path();
    assert!(profiles.is_file(), "adding a profile saves at once");
    // The disk refuses the next write: a non-empty directory where
    // profiles.ron is replaced.
    std::fs::remove_file(&profiles).expect("remove profiles.ron");
    std::fs::create_dir(&profiles).expect("a directory in the way");
    std::fs::write(profiles.join("keep"), "x").expect("its content");

    set_text(&mut harness, "Host", "broker.plant.lan");
    step_until(
        &mut harness,
        "the failed save",
        Duration::from_secs(5),
        |h| h.state().unsaved_because().is_some(),
    );
    assert!(has_label_containing(&harness, "Unsaved changes:"));
    assert!(has_label_containing(
        &harness,
        "Could not save the profiles"
    ));

    // The disk recovers: the retry saves the edit, and the window says so.
    std::fs::remove_dir_all(&profiles).expect("clear the way");
    step_until(
        &mut harness,
        "the retried save",
        Duration::from_secs(10),
        |h| h.state().unsaved_because().is_none(),
    );
    assert!(has_label(&harness, "Changes are saved automatically."));
    let saved = ProfileStore::at(dir.path())
        .load()
        .expect("profiles.ron loads");
    assert!(
        saved.iter().any(|p| p.host == "broker.plant.lan"),
        "the edit reached the disk: {saved:?}"
    );
}

#[test]
fn import_reads_an_mqttx_export_and_says_what_it_could_not_carry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let export = dir.path().join("mqttx-data.json");
    std::fs::write(
        &export,
        r#"[{"id": "a1", "clientId": "mqttx_line5", "name": "Line 5", "clean": true,
             "protocol": "mqtt", "host": "broker.plant.lan", "port": 1884, "keepalive": 30,
             "connectTimeout": 10, "username": "", "password": "", "path": "/mqtt",
             "ssl": false, "mqttVersion": "5.0", "isCollection": false,
             "subscriptions": [{"id": "s1", "topic": "line5/#", "qos": 1}]}]"#,
    )
    .expect("write the export");
    let picker = FakePicker::default();
    picker.answers.borrow_mut().push_back(export);
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let mut harness = harness(&config, picker);
    click(&mut harness, "Import…");
    let imported = harness
        .state()
        .profiles()
        .find(|p| p.name == "Line 5")
        .cloned()
        .expect("the MQTTX connection became a profile");
    assert_eq!(
        (imported.host.as_str(), imported.port),
        ("broker.plant.lan", 1884)
    );
    assert_eq!(imported.protocol, mqscope::profile::ProtocolVersion::V5);
    assert_eq!(imported.subscriptions[0].filter, "line5/#");
    assert!(has_label_containing(
        &harness,
        "imported 1 profile from MQTTX"
    ));
    assert!(has_label_containing(&harness, "connect timeout 10 s"));
    let saved = ProfileStore::at(&config).load().expect("profiles load");
    assert!(saved.iter().any(|p| p.name == "Line 5"), "saved: {saved:?}");
}
