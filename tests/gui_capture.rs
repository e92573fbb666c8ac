//! Captures in the window: the record button writes what a real broker
//! sends to a file, and "+ Open… → Capture file…" reopens it offline as a
//! connection of its own with the same tree.

mod common;

use common::gui::{FakePicker, click, has_label_containing, step_until};

use mqscope::mqtt::ConnStatus;
use mqscope::profile::{Profile, ProfileStore, Qos, SubscriptionSpec};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_recording_reopens_offline_with_the_same_topics() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = dir.path().join("plant.mqcap");
    let picker = FakePicker::default();
    picker.answers.borrow_mut().push_back(capture.clone());
    picker.answers.borrow_mut().push_back(capture.clone());
    let profile = Profile {
        name: "plant".into(),
        client_id: "mqscope-gui-capture".into(),
        subscriptions: vec![SubscriptionSpec::new("#", Qos::AtLeastOnce)],
        ..common::profile_for(&broker)
    };
    ProfileStore::at(dir.path())
        .save(&[profile])
        .expect("the profile is saved");
    let mut harness = common::gui::app_with(dir.path(), picker.clone());

    click(&mut harness, "Connect");
    step_until(&mut harness, "connected", LIMIT, |h| {
        matches!(
            h.state().status_of("plant"),
            Some(ConnStatus::Connected { .. })
        )
    });
    broker.wait_subscribed("mqscope-gui-capture", "#");
    click(&mut harness, "⏺ Record…");
    assert!(capture.is_file(), "the capture file is created at once");
    for (topic, value) in [
        ("plant/boiler/temp", "71.5"),
        ("plant/boiler/temp", "72.0"),
        ("plant/pump", "on"),
    ] {
        common::mosquitto_pub(&broker, &["-t", topic, "-m", value, "-q", "1"]);
    }
    step_until(&mut harness, "three messages recorded", LIMIT, |h| {
        has_label_containing(h, "⏺ REC 3 messages")
    });
    click(&mut harness, "⏹ Stop recording");
    step_until(&mut harness, "the recording closed", LIMIT, |h| {
        has_label_containing(h, "Recorded 3 messages")
    });

    click(&mut harness, "+ Open…");
    click(&mut harness, "Capture file…");
    step_until(&mut harness, "the capture read", LIMIT, |h| {
        h.state()
            .store_of("capture plant.mqcap")
            .is_some_and(|s| s.total_messages() == 3)
    });
    let app = harness.state();
    assert_eq!(app.open_connections(), ["plant", "capture plant.mqcap"]);
    let live = app.store_of("plant").expect("the live store");
    let reopened = app
        .store_of("capture plant.mqcap")
        .expect("the capture's store");
    for topic in ["plant/boiler/temp", "plant/pump"] {
        let count = |s: &mqscope::model::store::Store| {
            s.find(topic)
                .and_then(|n| s.topic_info(n))
                .map(|i| (i.messages, i.last.payload.map(<[u8]>::to_vec)))
        };
        assert_eq!(count(live), count(reopened), "{topic}");
    }
    assert_eq!(
        *picker.asked.borrow(),
        [
            "Record this connection to a capture file",
            "Open a capture file (.mqcap, .pcap, .pcapng)"
        ]
    );
    // Replayed from the capture into the live connection, as fast as the
    // broker takes it: plant hears its three messages a second time.
    assert!(has_label_containing(&harness, "Replay this capture"));
    common::gui::set_text(&mut harness, "Speed", "max");
    click(&mut harness, "▶ Replay");
    step_until(&mut harness, "the replayed messages", LIMIT, |h| {
        h.state()
            .store_of("plant")
            .is_some_and(|s| s.total_messages() == 6)
    });
    step_until(&mut harness, "the replay's count", LIMIT, |h| {
        has_label_containing(h, "3 of 3 published, 0 failed")
    });
    // The capture is not a profile: nothing of it is saved.
    let saved = ProfileStore::at(dir.path()).load().expect("profiles load");
    assert!(saved.iter().all(|p| !p.name.starts_with("capture")));
}
