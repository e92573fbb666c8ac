//! The Learn tab: a lesson's steps turn green from what really happens on
//! the connection (here against a real Mosquitto), and a snapshot of the tab.

mod common;

use common::gui::{click, has_label, has_label_containing, set_text, step_until};

use egui_kittest::Harness;
use mqscope::app::{App, Tab};
use mqscope::profile::{Profile, ProfileStore};
use std::path::Path;
use std::time::Duration;

fn harness_with(dir: &Path, profile: Profile) -> Harness<'static, App> {
    ProfileStore::at(dir)
        .save(&[profile])
        .expect("the profile is saved");
    common::gui::app(dir)
}

#[test]
fn the_first_lesson_turns_green_from_the_real_connection() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = Profile {
        client_id: "mqscope-learn".into(),
        ..common::profile_for(&broker)
    };
    let mut harness = harness_with(dir.path(), profile);
    click(&mut harness, "Learn");
    assert_eq!(harness.state().tab(), Tab::Learn);
    assert!(has_label_containing(&harness, "Listen to the vehicle  0/2"));
    assert!(harness.state().lessons_done().is_empty());

    // The step's link leads where it happens; nothing is ticked by clicking.
    click(&mut harness, "Go to Explorer for step 1");
    assert_eq!(harness.state().tab(), Tab::Explorer);
    assert!(harness.state().lessons_done().is_empty());
    click(&mut harness, "Connect");
    step_until(&mut harness, "step 1 done", Duration::from_secs(10), |h| {
        h.state().lessons_done().contains("listen/0")
    });
    assert!(!harness.state().lessons_done().contains("listen/1"));

    set_text(
        &mut harness,
        "New subscription",
        "vehicles/vehiclepi01/executedcommands",
    );
    click(&mut harness, "Subscribe");
    step_until(&mut harness, "step 2 done", Duration::from_secs(10), |h| {
        h.state().lessons_done().contains("listen/1")
    });
    broker.wait_subscribed("mqscope-learn", "vehicles/vehiclepi01/executedcommands");
    click(&mut harness, "Learn");
    assert!(has_label_containing(&harness, "Listen to the vehicle  2/2"));
    assert!(has_label(&harness, "done"));
}

#[test]
fn learn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(
        dir.path(),
        Profile {
            name: "sandbox".into(),
            ..Profile::default()
        },
    );
    click(&mut harness, "Learn");
    click(&mut harness, "○ Command the vehicle at QoS 2  0/3");
    harness.remove_cursor();
    harness.run_ok();
    harness.snapshot("learn");
}
