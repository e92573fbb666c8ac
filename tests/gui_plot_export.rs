//! Plots leave the window: every point as CSV and the plot as drawn as PNG,
//! written where the (test's) file dialog says.

mod common;

use common::gui::{FakePicker, click, has_label_containing, set_text, step_until};

use egui_kittest::Harness;
use mqscope::app::{App, Tab};
use mqscope::mqtt::Message;
use mqscope::profile::{Profile, ProfileStore, Qos};
use std::time::{Duration, UNIX_EPOCH};

fn harness(dir: &std::path::Path, picker: FakePicker) -> Harness<'static, App> {
    ProfileStore::at(dir)
        .save(&[Profile::default()])
        .expect("the profile is saved");
    common::gui::app_with(dir, picker)
}

#[test]
fn a_plot_exports_its_points_as_csv_and_its_picture_as_png() {
    let dir = tempfile::tempdir().expect("temp dir");
    let picker = FakePicker::default();
    let csv_path = dir.path().join("speeds.csv");
    let png_path = dir.path().join("speeds.png");
    picker.answers.borrow_mut().push_back(csv_path.clone());
    picker.answers.borrow_mut().push_back(png_path.clone());
    let mut harness = harness(dir.path(), picker.clone());

    click(&mut harness, "Plots");
    assert_eq!(harness.state().tab(), Tab::Plots);
    set_text(&mut harness, "Topic", "surfboards/+/speedmph");
    click(&mut harness, "Add series");
    let t0 = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    for (i, board) in ["surfboard01", "surfboard02"].iter().enumerate() {
        for s in 0..5u64 {
            harness.state_mut().inject_message(Message {
                topic: format!("surfboards/{board}/speedmph"),
                payload: format!("{}.5", 10 + s + i as u64).into(),
                qos: Qos::AtMostOnce,
                received: t0 + Duration::from_secs(s),
                ..Message::default()
            });
        }
    }
    harness.run_ok();

    click(&mut harness, "Export CSV…");
    let csv = std::fs::read_to_string(&csv_path).expect("the CSV was written");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time,seconds,series,topic,value");
    assert_eq!(lines.len(), 1 + 10, "{csv}");
    assert!(
        lines.contains(&"2025-06-15T15:06:44Z,4.000000,surfboards/+/speedmph,surfboards/surfboard02/speedmph,15.5"),
        "{csv}"
    );
    assert!(has_label_containing(&harness, "Saved"));

    click(&mut harness, "Export PNG…");
    step_until(&mut harness, "the PNG", Duration::from_secs(10), |_| {
        png_path.is_file()
    });
    step_until(&mut harness, "the notice", Duration::from_secs(5), |h| {
        has_label_containing(h, "Saved the plot (")
    });
    let png = std::fs::read(&png_path).expect("the PNG was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // The plot's own rectangle, not the whole window: narrower and lower.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width > 600 && width <= 1280, "{width}");
    assert!(height > 200 && height < 800, "{height}");
    assert_eq!(
        *picker.asked.borrow(),
        ["Export the plot's points as CSV", "Export the plot as PNG"]
    );
}
