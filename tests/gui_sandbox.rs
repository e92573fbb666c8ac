//! "Works out of the box": on a fresh config the window starts its own
//! sandbox broker and connects to it, the vehicle obeys commands from the
//! publish panel's examples, the sandbox stops and starts from its panel,
//! and live plots draw the surfboards' speeds.

mod common;

use common::gui::{NoPicker, has_label, step_until, steps};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::{App, SANDBOX_PROFILE, Tab};
use mqscope::mqtt::Message;
use mqscope::profile::{ProfileStore, Qos};
use mqscope::sandbox::{CloudBroker, DemoConfig, SandboxConfig};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Busy devices on a free port, so a test sees traffic within a second.
fn fast_demo() -> SandboxConfig {
    SandboxConfig {
        port: Some(0),
        demo: DemoConfig {
            surf_rate_hz: 10.0,
            ..DemoConfig::default()
        },
        cloud: CloudBroker::Port(0),
        ..SandboxConfig::default()
    }
}

/// The app as a new user starts it: an empty config directory.
fn fresh_app(config_dir: &Path) -> Harness<'static, App> {
    common::gui::sandbox_app(config_dir, fast_demo(), egui::vec2(1280.0, 800.0))
}

fn last_json(harness: &Harness<'_, App>, topic: &str) -> Option<serde_json::Value> {
    let store = harness.state().store()?;
    let payload = store.last_payload(store.find(topic)?)?;
    serde_json::from_slice(payload).ok()
}

#[test]
fn fresh_config_starts_connected_to_the_sandbox_and_topics_arrive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = fresh_app(dir.path());
    assert_eq!(harness.state().tab(), Tab::Explorer);
    let names: Vec<String> = harness.state().profiles().map(|p| p.name.clone()).collect();
    assert_eq!(
        names[0], SANDBOX_PROFILE,
        "the first profile is the sandbox"
    );
    let port = harness.state().sandbox_port().expect("the sandbox runs");
    let profile = harness.state().profiles().next().cloned().expect("profile");
    assert_eq!(
        (profile.host.as_str(), profile.port),
        ("127.0.0.1", port),
        "the Sandbox profile points at the broker's actual port"
    );

    step_until(
        &mut harness,
        "the connection",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    step_until(
        &mut harness,
        "the surfboards and vehicles topics in the tree",
        Duration::from_secs(10),
        |h| has_label(h, "surfboards") && has_label(h, "vehicles"),
    );
    assert!(
        has_label(
            &harness,
            &format!("Sandbox broker: running on 127.0.0.1:{port}")
        ),
        "the port is shown for other clients"
    );
    assert!(has_label(
        &harness,
        &format!("mosquitto_sub -h 127.0.0.1 -p {port} -t '#' -v")
    ));
}

#[test]
fn vehicle_command_from_the_publish_panel_changes_its_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = fresh_app(dir.path());
    step_until(
        &mut harness,
        "the vehicle's retained state",
        Duration::from_secs(10),
        |h| last_json(h, "vehicles/vehiclepi01/state").is_some(),
    );
    let before = last_json(&harness, "vehicles/vehiclepi01/state").expect("state");
    assert_eq!(
        before["engine_on"], false,
        "the engine starts off: {before}"
    );

    common::gui::click_live(&mut harness, "Examples");
    common::gui::click_live(&mut harness, "vehiclepi01: TURN_ON_ENGINE");
    common::gui::click_live(&mut harness, "Publish");
    step_until(
        &mut harness,
        "the vehicle to report its engine on",
        Duration::from_secs(10),
        |h| last_json(h, "vehicles/vehiclepi01/state").is_some_and(|v| v["engine_on"] == true),
    );
    step_until(
        &mut harness,
        "the book's answer on executedcommands",
        Duration::from_secs(10),
        |h| {
            last_json(h, "vehicles/vehiclepi01/executedcommands")
                == Some(serde_json::json!({"SUCCESSFULLY_PROCESSED_COMMAND": "TURN_ON_ENGINE"}))
        },
    );
}

#[test]
fn stop_and_start_the_sandbox_from_the_panel() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = fresh_app(dir.path());
    step_until(
        &mut harness,
        "the connection",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );

    common::gui::click_live(&mut harness, "Stop");
    assert!(harness.state().sandbox_port().is_none());
    assert!(has_label(&harness, "Sandbox broker: stopped"));
    step_until(
        &mut harness,
        "the connection to end",
        Duration::from_secs(10),
        |h| !common::gui::shown_connected(h),
    );

    common::gui::click_live(&mut harness, "Start");
    assert!(harness.state().sandbox_port().is_some());
    step_until(
        &mut harness,
        "the connection again",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    step_until(
        &mut harness,
        "topics from the restarted devices",
        Duration::from_secs(10),
        |h| has_label(h, "surfboards"),
    );
}

#[test]
fn plot_of_live_surfboard_speed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = fresh_app(dir.path());
    common::gui::click_live(&mut harness, "Plots");
    type_into(&mut harness, "Topic", "surfboards/+/speedmph");
    common::gui::click_live(&mut harness, "Add series");
    step_until(
        &mut harness,
        "values of the four boards",
        Duration::from_secs(10),
        |h| {
            let Some(plots) = h.state().plots() else {
                return false;
            };
            plots.series_count() == 4 && plots.series().iter().all(|s| s.len() >= 3)
        },
    );
}

fn type_into(harness: &mut Harness<'_, App>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    steps(harness, 2);
    harness.get_by_label(label).type_text(text);
    steps(harness, 2);
}

fn telemetry(board: u32, speed: f64, received: SystemTime) -> Message {
    Message {
        topic: format!("surfing/board/{board}/telemetry"),
        payload: bytes::Bytes::from(format!(
            r#"{{"speed_kmh":{speed:.1},"heart_rate_bpm":120,"status":"riding"}}"#
        )),
        qos: Qos::AtMostOnce,
        retain: false,
        dup: false,
        pkid: 0,
        received,
        ..Default::default()
    }
}

/// The plot tab with four boards' speeds, fed deterministic values (no
/// live devices, frozen clock).
#[test]
fn plot_of_surfboard_speed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = common::gui::app(dir.path());
    let start = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    harness.state_mut().set_clock(Some(start));
    harness.get_by_label("Plots").click();
    harness.run();
    harness.get_by_label("Topic").focus();
    harness.run();
    harness
        .get_by_label("Topic")
        .type_text("surfing/board/+/telemetry");
    harness.run();
    harness.get_by_label("Field").focus();
    harness.run();
    harness.get_by_label("Field").type_text("speed_kmh");
    harness.run();
    harness.get_by_label("Add series").click();
    harness.run();

    for i in 0..30u32 {
        let t = start + Duration::from_millis(u64::from(i) * 1000);
        for board in 1..=4u32 {
            let phase = f64::from(i) / 4.0 + f64::from(board);
            let speed = 12.0 + 6.0 * f64::from(board) + 8.0 * phase.sin();
            harness
                .state_mut()
                .inject_message(telemetry(board, speed, t));
        }
    }
    harness.run();
    assert_eq!(harness.state().plots().map(|p| p.series_count()), Some(4));
    assert!(
        has_label(&harness, "4 series · 120 points"),
        "the plot says what it holds"
    );
    harness.remove_cursor();
    harness.run();
    harness.snapshot("plot");
}

#[test]
fn sandbox_that_cannot_start_says_why_in_the_connection_bar() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("address").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = dir.path().to_path_buf();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            App::with_sandbox(
                cc.egui_ctx.clone(),
                ProfileStore::at(store_dir),
                Box::new(NoPicker),
                SandboxConfig {
                    port: Some(port),
                    demo: DemoConfig::off(),
                    cloud: CloudBroker::Off,
                    ..SandboxConfig::default()
                },
            )
        });
    harness.run();
    assert!(harness.state().sandbox_port().is_none());
    let why = format!("The sandbox broker could not start: cannot listen on 127.0.0.1:{port}");
    assert!(
        harness.query_all_by_label_contains(&why).count() >= 2,
        "the bar and the sandbox panel say why"
    );
    assert_eq!(
        harness.state().tab(),
        Tab::Explorer,
        "the window still works"
    );
    common::gui::click_live(&mut harness, "Connection log");
    assert!(
        harness.query_all_by_label_contains(&why).count() >= 3,
        "and the log"
    );
}

#[test]
fn sandbox_window_starts_the_broker_and_explore_connects_to_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = common::gui::app(dir.path());
    assert!(
        harness.state().sandbox_port().is_none(),
        "not started by itself"
    );
    common::gui::click_live(&mut harness, "Sandbox");
    common::gui::click_live(&mut harness, "Start");
    let port = harness
        .state()
        .sandbox_port()
        .expect("started from the window");
    assert!(has_label(
        &harness,
        &format!("Sandbox broker: running on 127.0.0.1:{port}")
    ));
    common::gui::click_live(&mut harness, "Explore it");
    assert_eq!(
        harness
            .state()
            .profiles()
            .map(|p| p.name.clone())
            .last()
            .as_deref(),
        Some(SANDBOX_PROFILE),
        "a Sandbox profile was added"
    );
    step_until(
        &mut harness,
        "the connection to the sandbox",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    let saved = ProfileStore::at(dir.path()).load().expect("saved profiles");
    assert!(
        saved
            .iter()
            .any(|p| p.name == SANDBOX_PROFILE && p.port == port),
        "the Sandbox profile is saved with the broker's port"
    );
}
