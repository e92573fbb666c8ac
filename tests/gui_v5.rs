//! MQTT 5 in the window, driven by accessible labels against a real
//! Mosquitto: a publish the broker's ACL refuses reads "PUBACK 0x87 Not
//! authorized" in the publish panel (never "acknowledged"), its flow is
//! refused on the timeline, and a message's properties reach the inspector.

mod common;
#[path = "common/v5.rs"]
mod v5;

use common::gui::{click, has_label, has_label_containing, set_text, step_until};
use egui_kittest::Harness;
use mqscope::app::{App, Tab};
use mqscope::profile::{Profile, ProfileStore, ProtocolVersion, Qos, SubscriptionSpec};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

fn harness_with(config_dir: &Path, profile: Profile) -> Harness<'static, App> {
    ProfileStore::at(config_dir)
        .save(&[profile])
        .expect("the profile is saved");
    common::gui::app(config_dir)
}

fn v5_profile(broker: &common::Broker) -> Profile {
    Profile {
        client_id: "mqscope-gui-v5".into(),
        protocol: ProtocolVersion::V5,
        subscriptions: vec![SubscriptionSpec::new("open/#", Qos::AtMostOnce)],
        ..common::profile_for(broker)
    }
}

fn connect(harness: &mut Harness<'_, App>) {
    assert_eq!(harness.state().tab(), Tab::Explorer);
    click(harness, "Connect");
    step_until(harness, "the SUBACK for 'open/#'", LIMIT, |h| {
        has_label(h, "granted QoS 0")
    });
}

#[test]
fn a_publish_the_acl_refuses_reads_puback_0x87_in_the_window() {
    let (broker, _acl) = v5::acl_broker();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(dir.path(), v5_profile(&broker));
    connect(&mut harness);

    set_text(&mut harness, "Topic", "secret/door");
    set_text(&mut harness, "Payload", "open sesame");
    click(&mut harness, "QoS 1");
    click(&mut harness, "Publish");
    step_until(&mut harness, "the refusing PUBACK", LIMIT, |h| {
        has_label_containing(h, "failed: PUBACK 0x87 Not authorized")
    });
    assert!(!has_label(&harness, "acknowledged"));

    let log = harness.state().packet_log().expect("a packet log");
    assert!(
        log.flows().any(|f| f.is_refused()),
        "the refused PUBLISH flow is marked refused on the timeline"
    );
}

#[test]
fn message_properties_reach_the_inspector() {
    let (broker, _acl) = v5::acl_broker();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(dir.path(), v5_profile(&broker));
    connect(&mut harness);

    common::mosquitto_pub(
        &broker,
        &[
            "-V",
            "mqttv5",
            "-t",
            "open/speed",
            "-m",
            "{\"kmh\":42}",
            "-q",
            "1",
            "-D",
            "publish",
            "content-type",
            "application/json",
            "-D",
            "publish",
            "user-property",
            "unit",
            "km/h",
            "-D",
            "publish",
            "correlation-data",
            "req-7",
        ],
    );
    step_until(&mut harness, "the message in the tree", LIMIT, |h| {
        has_label(h, "open")
    });
    click(&mut harness, "open");
    harness.key_press(egui::Key::ArrowRight);
    step_until(&mut harness, "the topic's row", LIMIT, |h| {
        has_label(h, "speed")
    });
    click(&mut harness, "speed");
    step_until(&mut harness, "the property table", LIMIT, |h| {
        has_label(h, "MQTT 5 properties")
    });
    assert!(has_label(&harness, "application/json"));
    assert!(has_label(&harness, "unit = km/h"));
    assert!(has_label(&harness, "\"req-7\""));
}
