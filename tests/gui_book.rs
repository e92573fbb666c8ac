//! The book's surfing competition in the window: one click in Plots draws
//! every board's speed, altitude and status, from the sandbox's readings
//! and from the cloud broker's JSON summaries (reached with the sandbox
//! panel's "Explore the cloud").

mod common;

use common::gui::{has_label, has_label_containing, step_until};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::{App, SANDBOX_CLOUD_PROFILE};
use mqscope::mqtt::Message;
use mqscope::profile::Qos;
use mqscope::sandbox::{CloudBroker, DemoConfig, SandboxConfig};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Three boards reading fast, the vehicle off, on free ports.
fn app(config_dir: &Path) -> Harness<'static, App> {
    common::gui::sandbox_app(
        config_dir,
        SandboxConfig {
            port: Some(0),
            demo: DemoConfig {
                surfboards: 3,
                surf_rate_hz: 10.0,
                vehicle: false,
                ..DemoConfig::default()
            },
            cloud: CloudBroker::Port(0),
            ..SandboxConfig::default()
        },
        egui::vec2(1280.0, 800.0),
    )
}

/// The plotted series' topics (with field), sorted.
fn series(harness: &Harness<'_, App>) -> Vec<(String, usize)> {
    let Some(plots) = harness.state().plots() else {
        return Vec::new();
    };
    let mut out: Vec<(String, usize)> = plots
        .series()
        .iter()
        .map(|s| {
            let spec = &plots.specs()[s.spec];
            let name = match &spec.field {
                Some(f) => format!("{} · {f}", s.topic),
                None => s.topic.clone(),
            };
            (name, s.len())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn surfing_competition_plots_every_boards_readings_from_the_sandbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = app(dir.path());
    step_until(
        &mut harness,
        "the connection",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    step_until(
        &mut harness,
        "the boards' topics",
        Duration::from_secs(10),
        |h| has_label(h, "surfboards"),
    );
    common::gui::click_live(&mut harness, "Plots");
    common::gui::click_live(&mut harness, "Surfing competition");
    let specs: Vec<String> = harness
        .state()
        .plots()
        .map(|p| p.specs().iter().map(|s| s.label()).collect())
        .unwrap_or_default();
    assert_eq!(
        specs,
        [
            "surfboards/+/speedmph",
            "surfboards/+/altitudefeet",
            "surfboards/+/status"
        ],
        "the sandbox carries readings: their series only"
    );
    step_until(
        &mut harness,
        "nine series with values",
        Duration::from_secs(10),
        |h| {
            let s = series(h);
            s.len() == 9 && s.iter().all(|(_, n)| *n >= 3)
        },
    );
    let names: Vec<String> = series(&harness).into_iter().map(|(n, _)| n).collect();
    for board in ["surfboard01", "surfboard02", "surfboard03"] {
        for reading in ["speedmph", "altitudefeet", "status"] {
            let topic = format!("surfboards/{board}/{reading}");
            assert!(names.contains(&topic), "{topic} in {names:?}");
        }
    }
    assert!(has_label_containing(&harness, "9 series · "));
}

#[test]
fn surfing_competition_plots_the_cloud_summaries_after_explore_the_cloud() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = app(dir.path());
    step_until(
        &mut harness,
        "the sandbox connection",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    let cloud = harness
        .state()
        .sandbox_cloud_port()
        .expect("the cloud runs");
    // The sandbox panel heads the Explorer while the Sandbox profile is
    // selected.
    assert!(has_label(
        &harness,
        &format!("Cloud broker: 127.0.0.1:{cloud}")
    ));
    common::gui::click_live(&mut harness, "Explore the cloud");
    let profile = harness
        .state()
        .profiles()
        .find(|p| p.name == SANDBOX_CLOUD_PROFILE)
        .cloned()
        .expect("a Sandbox cloud profile was added");
    assert_eq!((profile.host.as_str(), profile.port), ("127.0.0.1", cloud));
    step_until(
        &mut harness,
        "the connection to the cloud",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    step_until(
        &mut harness,
        "a board's summary, a topic of the cloud only",
        Duration::from_secs(10),
        |h| {
            h.state()
                .store()
                .is_some_and(|s| s.find("surfboard01").is_some())
        },
    );
    common::gui::click_live(&mut harness, "Plots");
    common::gui::click_live(&mut harness, "Surfing competition");
    step_until(
        &mut harness,
        "speed, altitude and status of three boards",
        Duration::from_secs(10),
        |h| {
            let s = series(h);
            s.len() == 9 && s.iter().all(|(_, n)| *n >= 2)
        },
    );
    let names: Vec<String> = series(&harness).into_iter().map(|(n, _)| n).collect();
    for board in ["surfboard01", "surfboard02", "surfboard03"] {
        for field in ["Speed MPH", "Altitude Feet", "Status"] {
            let name = format!("{board} · {field}");
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }
    let plots = harness.state().plots().expect("plots");
    for s in plots.series() {
        if plots.specs()[s.spec].field.as_deref() == Some("Status") {
            let v = s.last().map_or(-1.0, |p| p[1]);
            assert!((0.0..=4.0).contains(&v), "a status level: {v}");
        }
    }
}

fn reading(board: &str, reading: &str, value: String, received: SystemTime) -> Message {
    Message {
        topic: format!("surfboards/{board}/{reading}"),
        payload: bytes::Bytes::from(value),
        qos: Qos::AtMostOnce,
        received,
        ..Default::default()
    }
}

/// The view as a picture: three boards replaying rides like the book's
/// recording (no live devices, frozen clock).
#[test]
fn surfing_competition_view_snapshot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = common::gui::app(dir.path());
    let start = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    harness.state_mut().set_clock(Some(start));
    harness.get_by_label("Plots").click();
    harness.run();
    // Before any traffic the view covers the sandbox and the cloud.
    harness.get_by_label("Surfing competition").click();
    harness.run();
    assert_eq!(harness.state().plots().map(|p| p.specs().len()), Some(6));
    // The book's recording: (status, speed, altitude) per second.
    let ride: [(u8, f64, f64); 21] = [
        (0, 1.0, 2.0),
        (0, 1.1, 2.0),
        (1, 2.0, 3.0),
        (1, 3.0, 3.0),
        (1, 3.0, 3.0),
        (1, 3.0, 3.0),
        (1, 4.0, 4.0),
        (1, 5.0, 5.0),
        (2, 8.0, 5.0),
        (2, 10.0, 4.0),
        (2, 12.0, 4.0),
        (2, 15.0, 3.0),
        (2, 15.0, 3.0),
        (2, 15.0, 3.0),
        (2, 15.0, 3.0),
        (2, 15.0, 3.0),
        (2, 12.0, 3.0),
        (3, 3.0, 3.0),
        (3, 2.0, 3.0),
        (3, 1.0, 3.0),
        (3, 0.0, 3.0),
    ];
    for (i, (status, speed, altitude)) in ride.iter().enumerate() {
        let t = start + Duration::from_secs(i as u64);
        for (b, board) in ["surfboard01", "surfboard02", "surfboard03"]
            .iter()
            .enumerate()
        {
            let f = 1.0 + 0.2 * b as f64;
            for (r, v) in [
                ("speedmph", format!("{:?}", speed * f)),
                ("altitudefeet", format!("{:?}", altitude * f)),
                ("status", status.to_string()),
            ] {
                harness.state_mut().inject_message(reading(board, r, v, t));
            }
        }
    }
    harness.run();
    assert_eq!(harness.state().plots().map(|p| p.series_count()), Some(9));
    assert!(has_label_containing(&harness, "9 series · 189 points"));
    harness.remove_cursor();
    harness.run();
    harness.snapshot("surfing_competition");
}
