//! The Explorer tab driven like a user would, against a real Mosquitto:
//! subscriptions, the live topic tree, clearing retained messages, the
//! publish panel, and a snapshot of a populated window.

mod common;

use common::gui::{click, has_label, has_label_containing, set_text, step_until};

use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::{App, Tab};
use mqscope::mqtt::{ConnStatus, Message};
use mqscope::profile::{Profile, ProfileStore, Qos, SubscriptionSpec, WillSettings};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The app with one saved profile (so it opens on the Explorer tab).
fn harness_with(config_dir: &Path, profile: Profile) -> Harness<'static, App> {
    ProfileStore::at(config_dir)
        .save(&[profile])
        .expect("the profile is saved");
    harness_with_saved(config_dir)
}

/// The app on the profiles already saved in `config_dir`.
fn harness_with_saved(config_dir: &Path) -> Harness<'static, App> {
    common::gui::app(config_dir)
}

const LIMIT: Duration = Duration::from_secs(10);

fn subscribed_to_all(broker: &common::Broker) -> Profile {
    Profile {
        client_id: "mqscope-gui-explore".into(),
        subscriptions: vec![SubscriptionSpec::new("#", Qos::AtMostOnce)],
        ..common::profile_for(broker)
    }
}

/// Connects the saved profile and waits for the broker to grant `#`.
fn connect_and_wait_subscribed(harness: &mut Harness<'_, App>) {
    assert_eq!(harness.state().tab(), Tab::Explorer);
    click(harness, "Connect");
    step_until(
        harness,
        "the SUBACK for '#'",
        Duration::from_secs(10),
        |h| has_label(h, "granted QoS 0"),
    );
}

#[test]
fn published_messages_appear_in_tree_with_counts() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(dir.path(), subscribed_to_all(&broker));
    connect_and_wait_subscribed(&mut harness);

    for i in 0..3 {
        let value = format!("{}", 20 + i);
        common::mosquitto_pub(&broker, &["-t", "home/kitchen/temp", "-m", &value]);
    }
    common::mosquitto_pub(&broker, &["-t", "home/hall/light", "-m", "on"]);

    step_until(
        &mut harness,
        "'home' with 4 messages in 2 topics",
        Duration::from_secs(10),
        |h| has_label(h, "home") && has_label(h, "(4 msgs, 2 topics)"),
    );
    assert!(
        has_label(&harness, "4 messages"),
        "the status bar counts them"
    );
    assert!(has_label(&harness, "2 topics"));
}

#[test]
fn malformed_filter_is_refused_with_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        client_id: "mqscope-gui-filter".into(),
        ..Profile::default()
    };
    let mut harness = harness_with(dir.path(), profile);

    set_text(&mut harness, "New subscription", "a/#/b");
    click(&mut harness, "Subscribe");
    assert!(
        has_label(&harness, "'#' must be the last level: a/#/b"),
        "the reason is shown under the field"
    );
    let filters: Vec<String> = harness
        .state()
        .profiles()
        .flat_map(|p| p.subscriptions.iter().map(|s| s.filter.clone()))
        .collect();
    assert_eq!(filters, ["#"], "nothing was added");

    set_text(&mut harness, "New subscription", "a+/b");
    click(&mut harness, "Subscribe");
    assert!(has_label(&harness, "'+' must fill a whole level: a+/b"));

    // A good filter is added and saved into the profile.
    set_text(&mut harness, "New subscription", "sensors/+/temp");
    click(&mut harness, "Subscribe");
    assert!(has_label(&harness, "sensors/+/temp"));
    let profile = harness.state().profiles().next().cloned().expect("profile");
    assert_eq!(profile.subscriptions.len(), 2);
}

#[test]
fn clearing_retained_subtree_removes_it_from_broker() {
    let broker = common::Broker::start();
    for topic in ["keep/a", "keep/b/c", "keep/d"] {
        common::mosquitto_pub(&broker, &["-t", topic, "-m", "kept", "-r", "-q", "1"]);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(dir.path(), subscribed_to_all(&broker));
    connect_and_wait_subscribed(&mut harness);
    step_until(
        &mut harness,
        "the three retained topics",
        Duration::from_secs(10),
        |h| has_label(h, "keep") && has_label(h, "(3 msgs, 3 topics)"),
    );

    click(&mut harness, "keep");
    assert_eq!(harness.state().selected_topic().as_deref(), Some("keep"));
    click(&mut harness, "Clear retained…");
    assert!(
        has_label(
            &harness,
            "Delete 3 retained messages under 'keep' from the broker?"
        ),
        "the confirmation says how many"
    );
    click(&mut harness, "Clear 3 retained");

    // The broker echoes the empty retained messages to our '#' subscription.
    step_until(
        &mut harness,
        "the retained markers to go",
        Duration::from_secs(10),
        |h| {
            h.state()
                .store()
                .is_some_and(|s| s.retained_topics(s.root()).is_empty())
        },
    );
    let out = common::mosquitto_sub(&broker, &["-t", "keep/#", "-v", "-W", "1"])
        .wait_with_output()
        .expect("mosquitto_sub runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "the broker holds no retained message under keep/ any more"
    );
}

#[test]
fn publish_panel_qos2_reaches_mosquitto_sub_and_is_acknowledged() {
    let broker = common::Broker::start();
    let sub = common::Lines::new(common::mosquitto_sub(
        &broker,
        &[
            "-t",
            "lab/out",
            "-q",
            "2",
            "-C",
            "1",
            "-i",
            "gui-explore-sub",
        ],
    ));
    broker.wait_subscribed("gui-explore-sub", "lab/out");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(dir.path(), subscribed_to_all(&broker));
    connect_and_wait_subscribed(&mut harness);

    set_text(&mut harness, "Topic", "lab/out");
    set_text(&mut harness, "Payload", "hello qos2");
    click(&mut harness, "QoS 2");
    click(&mut harness, "Publish");
    step_until(
        &mut harness,
        "the PUBCOMP ('acknowledged')",
        Duration::from_secs(10),
        |h| has_label(h, "acknowledged"),
    );
    assert_eq!(
        sub.next_line(Duration::from_secs(5)).as_deref(),
        Some("hello qos2")
    );
}

#[test]
fn selecting_topic_shows_json_pretty_then_hex() {
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        client_id: "mqscope-gui-inspect".into(),
        ..Profile::default()
    };
    let mut harness = harness_with(dir.path(), profile);
    let at = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    harness.state_mut().set_clock(Some(at));
    harness
        .state_mut()
        .inject_message(message("dev/reading", br#"{"t":21.5,"ok":true}"#, at));
    harness.run_ok();
    click(&mut harness, "dev");
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    harness.key_press(Key::ArrowDown);
    harness.run_ok();
    assert_eq!(
        harness.state().selected_topic().as_deref(),
        Some("dev/reading"),
        "Right expands, Down moves to the child"
    );
    assert!(
        has_label_containing(&harness, "\"t\": 21.5"),
        "the JSON payload is shown pretty-printed"
    );
    // The inspector's "Hex" (above the publish panel's payload format "Hex").
    let inspector_hex = harness
        .query_all_by_label("Hex")
        .min_by(|a, b| a.rect().min.y.total_cmp(&b.rect().min.y))
        .expect("a Hex view button");
    inspector_hex.click();
    harness.run_ok();
    assert!(
        has_label_containing(&harness, "7b 22 74 22"),
        "the hex view shows the bytes"
    );
}

fn message(topic: &str, payload: &[u8], received: SystemTime) -> Message {
    Message {
        topic: topic.into(),
        payload: bytes::Bytes::copy_from_slice(payload),
        qos: Qos::AtMostOnce,
        retain: false,
        dup: false,
        pkid: 0,
        received,
        ..Default::default()
    }
}

#[test]
fn explorer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        name: "office broker".into(),
        client_id: "mqscope-snapshot".into(),
        ..Profile::default()
    };
    let mut harness = harness_with(dir.path(), profile);
    let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let ago = |s: u64| now - Duration::from_secs(s);
    let app = harness.state_mut();
    app.set_clock(Some(now));
    let mut retained = message("home/hall/light", b"on", ago(3600));
    retained.retain = true;
    app.inject_message(retained);
    for (i, t) in [21.0, 21.5, 22.0].iter().enumerate() {
        let json = format!(r#"{{"temperature":{t},"humidity":48,"unit":"C"}}"#);
        app.inject_message(message(
            "home/kitchen/climate",
            json.as_bytes(),
            ago(30 - i as u64 * 10),
        ));
    }
    app.inject_message(message("home/kitchen/fridge/door", b"closed", ago(95)));
    app.inject_message(message("garden/soil/moisture", b"0.31", ago(7)));
    app.inject_message(message("garden/pump", &[0x01, 0x00, 0xff, 0x10], ago(400)));
    harness.run_ok();

    for level in ["home", "kitchen", "garden"] {
        click(&mut harness, level);
        harness.key_press(Key::ArrowRight);
        harness.run_ok();
    }
    click(&mut harness, "climate");
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("explorer");
}

#[test]
fn tree_filter_matches_topic_paths_and_payload_text_ignoring_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        client_id: "mqscope-gui-treefilter".into(),
        ..Profile::default()
    };
    let mut harness = harness_with(dir.path(), profile);
    let at = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    harness.state_mut().set_clock(Some(at));
    for (topic, payload) in [
        ("home/kitchen/temp", &b"21.5"[..]),
        ("home/hall/light", b"ON"),
        ("garden/pump", br#"{"state":"Running"}"#),
    ] {
        harness
            .state_mut()
            .inject_message(message(topic, payload, at));
    }
    harness.run_ok();
    assert!(has_label(&harness, "home") && has_label(&harness, "garden"));

    // A path match keeps the topic and its ancestors, and nothing else.
    set_text(&mut harness, "Filter topics and payloads", "KITCHEN");
    step_until(
        &mut harness,
        "the path filter",
        Duration::from_secs(5),
        |h| !has_label(h, "garden"),
    );
    assert!(has_label(&harness, "home") && has_label(&harness, "kitchen"));
    assert!(
        !has_label(&harness, "hall"),
        "a sibling that does not match is hidden"
    );

    // Payload text matches too, case-insensitively.
    set_text(&mut harness, "Filter topics and payloads", "running");
    step_until(
        &mut harness,
        "the payload filter",
        Duration::from_secs(5),
        |h| has_label(h, "garden") && !has_label(h, "home"),
    );
    assert!(has_label(&harness, "pump"));
}

/// Picks `name` in the connection bar's profile list, as a user would.
fn select_profile(harness: &mut Harness<'_, App>, name: &str) {
    click(harness, "Profile");
    let item = harness
        .query_all_by_label(name)
        .max_by(|a, b| a.rect().min.y.total_cmp(&b.rect().min.y))
        .expect("the profile is listed");
    item.click();
    harness.run_ok();
}

#[test]
fn drop_demo_fires_the_will_that_another_open_connection_receives() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let watcher = Profile {
        name: "watcher".into(),
        client_id: "gui-will-watcher".into(),
        subscriptions: vec![SubscriptionSpec::new("will/#", Qos::AtLeastOnce)],
        ..common::profile_for(&broker)
    };
    let device = Profile {
        name: "device".into(),
        client_id: "gui-will-device".into(),
        subscriptions: Vec::new(),
        will: WillSettings {
            enabled: true,
            topic: "will/device".into(),
            payload: "gone".into(),
            qos: Qos::AtLeastOnce,
            retain: false,
            ..WillSettings::default()
        },
        ..common::profile_for(&broker)
    };
    ProfileStore::at(dir.path())
        .save(&[watcher, device])
        .expect("profiles saved");
    let mut harness = harness_with_saved(dir.path());

    select_profile(&mut harness, "watcher");
    click(&mut harness, "Connect");
    step_until(&mut harness, "the watcher's SUBACK", LIMIT, |h| {
        has_label(h, "granted QoS 1")
    });
    select_profile(&mut harness, "device");
    click(&mut harness, "Connect");
    step_until(&mut harness, "the device connected", LIMIT, |h| {
        matches!(
            h.state().selected_status(),
            Some(ConnStatus::Connected { .. })
        )
    });

    click(&mut harness, "Timeline");
    click(&mut harness, "Drop connection (no DISCONNECT)");
    step_until(&mut harness, "the device dropped", LIMIT, |h| {
        matches!(
            h.state().selected_status(),
            Some(ConnStatus::Disconnected { reason: Some(r) }) if r.contains("without DISCONNECT")
        )
    });

    select_profile(&mut harness, "watcher");
    step_until(&mut harness, "the will on the watcher", LIMIT, |h| {
        h.state().store().is_some_and(|s| {
            s.find("will/device")
                .and_then(|n| s.last_payload(n))
                .is_some_and(|p| p == b"gone")
        })
    });
}

#[test]
fn jump_to_flow_shows_the_delivery_handshake_in_the_timeline() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        client_id: "mqscope-gui-jump".into(),
        subscriptions: vec![SubscriptionSpec::new("#", Qos::AtLeastOnce)],
        ..common::profile_for(&broker)
    };
    let mut harness = harness_with(dir.path(), profile);
    click(&mut harness, "Connect");
    step_until(&mut harness, "the SUBACK for '#'", LIMIT, |h| {
        has_label(h, "granted QoS 1")
    });
    common::mosquitto_pub(&broker, &["-t", "jump/x", "-m", "hop", "-q", "1"]);
    step_until(&mut harness, "the message in the tree", LIMIT, |h| {
        has_label(h, "jump")
    });
    click(&mut harness, "jump");
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    harness.key_press(Key::ArrowDown);
    harness.run_ok();
    assert_eq!(harness.state().selected_topic().as_deref(), Some("jump/x"));

    click(&mut harness, "Jump to flow");
    assert_eq!(harness.state().tab(), Tab::Timeline);
    step_until(&mut harness, "the flow's packets", LIMIT, |h| {
        has_label_containing(h, "PUBACK id=")
    });
    assert!(
        has_label_containing(&harness, "jump/x"),
        "the delivery PUBLISH"
    );
    assert!(
        !has_label_containing(&harness, "CONNACK") && !has_label_containing(&harness, "SUBACK"),
        "only the chosen flow is shown"
    );
}

#[test]
fn reconnect_demo_shows_session_present_and_the_queued_deliveries() {
    use mqscope::model::packet::{Direction, PacketKind};
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        client_id: "mqscope-gui-resume".into(),
        clean_session: false,
        subscriptions: vec![SubscriptionSpec::new("queued/#", Qos::AtLeastOnce)],
        ..common::profile_for(&broker)
    };
    let mut harness = harness_with(dir.path(), profile);
    click(&mut harness, "Connect");
    step_until(&mut harness, "the SUBACK", LIMIT, |h| {
        has_label(h, "granted QoS 1")
    });
    click(&mut harness, "Timeline");
    click(&mut harness, "Drop connection (no DISCONNECT)");
    step_until(&mut harness, "the drop", LIMIT, |h| {
        matches!(
            h.state().selected_status(),
            Some(ConnStatus::Disconnected { .. })
        )
    });
    for i in 1..=2 {
        common::mosquitto_pub(
            &broker,
            &["-t", "queued/x", "-q", "1", "-m", &format!("q{i}")],
        );
    }
    click(&mut harness, "Reconnect");
    let resumed = |h: &Harness<'_, App>| {
        let Some(log) = h.state().packet_log() else {
            return false;
        };
        let records: Vec<_> = log.entries().map(|e| &e.record).collect();
        let Some(connack) = records
            .iter()
            .rposition(|r| r.kind == PacketKind::Connack && r.detail.session_present == Some(true))
        else {
            return false;
        };
        records[connack..]
            .iter()
            .filter(|r| {
                r.kind == PacketKind::Publish
                    && r.dir == Direction::In
                    && r.detail.topic.as_deref() == Some("queued/x")
            })
            .count()
            == 2
    };
    step_until(
        &mut harness,
        "CONNACK with session present, then the two queued deliveries",
        LIMIT,
        resumed,
    );
    assert!(matches!(
        harness.state().selected_status(),
        Some(ConnStatus::Connected {
            session_present: true,
            ..
        })
    ));
}
