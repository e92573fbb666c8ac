//! The QoS lab's failure cases in the real window, driven by their labels:
//! choose the step and the side, run, read the verdicts. And the sandbox
//! panel's own cut, armed by hand and fired by a real mosquitto_pub.

mod common;

use common::gui::{click, has_label, has_label_containing, set_text, step_until, steps};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::App;
use mqscope::sandbox::{CloudBroker, DemoConfig, SandboxConfig};
use std::time::Duration;

fn quiet_sandbox_app(dir: &std::path::Path) -> Harness<'static, App> {
    let mut harness = common::gui::sandbox_app(
        dir,
        SandboxConfig {
            port: Some(0),
            demo: DemoConfig::off(),
            cloud: CloudBroker::Off,
            ..SandboxConfig::default()
        },
        egui::vec2(1280.0, 800.0),
    );
    step_until(
        &mut harness,
        "the connection to the sandbox",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    harness
}

#[test]
fn lab_cuts_after_puback_pubrec_on_the_sandbox_side_and_says_what_each_level_bought() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = quiet_sandbox_app(dir.path());
    click(&mut harness, "QoS lab");
    click(&mut harness, "after PUBACK/PUBREC");
    // The sandbox side is offered: this connection is the sandbox's.
    click(&mut harness, "sandbox side");
    harness.get_by_label("Run QoS lab").click();
    steps(&mut harness, 3);
    let q1 = "QoS 1 redelivered it with DUP: the subscriber got a duplicate (2 copies)";
    let q2 =
        "QoS 2 redelivered it with DUP after the reconnect: the subscriber got it exactly once";
    step_until(
        &mut harness,
        "the three verdicts",
        Duration::from_secs(30),
        |h| has_label_containing(h, "done: cut after PUBACK/PUBREC on the sandbox side"),
    );
    steps(&mut harness, 2);
    if let Ok(path) = std::env::var("QOS_FAILURE_RENDER") {
        harness.render().expect("render").save(path).expect("save");
    }
    assert!(has_label(&harness, "QoS 0 delivered it exactly once"));
    assert!(has_label(&harness, q1));
    assert!(has_label(&harness, q2));
    assert!(has_label(&harness, "duplicate (2 copies)"));
    // The sequence shows the cut and the resend with DUP.
    assert!(has_label_containing(
        &harness,
        "CUT: connection cut (the sandbox did not send PUBACK"
    ));
    assert!(has_label_containing(&harness, "qos=1 ") && has_label_containing(&harness, " DUP"));

    // The same packets in the connection's Timeline tab: the QoS 1 level's
    // first packet selected in the publisher's own log.
    click(&mut harness, "QoS 1 in the Timeline");
    steps(&mut harness, 2);
    assert_eq!(harness.state().tab(), mqscope::app::Tab::Timeline);
    assert!(has_label_containing(&harness, "QoS lab publisher ("));
    assert!(
        has_label(&harness, "PUBLISH"),
        "the level's PUBLISH is selected"
    );
    if let Ok(path) = std::env::var("QOS_FAILURE_TIMELINE_RENDER") {
        harness.render().expect("render").save(path).expect("save");
    }
    // The publisher's log: its reconnect after the cut, its resend with DUP,
    // and no subscription (it never subscribes).
    let rows = harness.state().timeline_rows();
    let count = |prefix: &str| rows.iter().filter(|r| r.starts_with(prefix)).count();
    assert!(
        count("CONNECT ") >= 3,
        "first connect + a reconnect per cut level: {rows:?}"
    );
    assert!(
        count("PUBLISH id=") >= 4,
        "QoS 1 and 2 sent twice each: {rows:?}"
    );
    assert_eq!(count("SUBSCRIBE"), 0, "{rows:?}");
    assert_eq!(
        count("PUBLISH id=1 qos=1 DUP"),
        1,
        "the QoS 1 resend: {rows:?}"
    );
    assert_eq!(
        count("PUBLISH id=2 qos=2 DUP"),
        1,
        "the QoS 2 resend: {rows:?}"
    );

    // The subscriber's own log: its subscription and the copies it got.
    harness
        .get_by_label_contains("QoS lab subscriber (")
        .click();
    steps(&mut harness, 2);
    let rows = harness.state().timeline_rows();
    assert!(rows.iter().any(|r| r.starts_with("SUBSCRIBE")), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with("SUBACK")), "{rows:?}");
    // 1 (QoS 0) + 2 (QoS 1 duplicate) + 1 (QoS 2) deliveries.
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("PUBLISH")).count(),
        4,
        "{rows:?}"
    );

    // And back to the connection's own packets.
    click(&mut harness, "this connection");
    steps(&mut harness, 2);
    let own = harness.state().timeline_rows();
    assert_eq!(
        own.len(),
        harness.state().packet_log().map_or(0, |l| l.len()),
        "the connection's own log"
    );
}

#[test]
fn lab_client_side_cut_after_publish_loses_qos0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = quiet_sandbox_app(dir.path());
    click(&mut harness, "QoS lab");
    click(&mut harness, "after PUBLISH leaves");
    click(&mut harness, "client side (relay)");
    harness.get_by_label("Run QoS lab").click();
    steps(&mut harness, 3);
    step_until(
        &mut harness,
        "the three verdicts",
        Duration::from_secs(30),
        |h| has_label_containing(h, "done: cut after PUBLISH leaves on the client side"),
    );
    steps(&mut harness, 2);
    assert!(has_label(
        &harness,
        "QoS 0 lost the message: the subscriber never got it"
    ));
    assert!(has_label(&harness, "lost"));
    assert!(has_label_containing(
        &harness,
        "CUT: connection cut (the relay: PUBLISH"
    ));
}

#[test]
fn sandbox_panel_arms_a_cut_that_a_real_client_runs_into() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = quiet_sandbox_app(dir.path());
    let port = harness.state().sandbox_port().expect("sandbox runs");
    assert!(has_label(
        &harness,
        "no cut armed · 0 connections cut so far"
    ));
    set_text(&mut harness, "Cut client", "gui-victim");
    click(&mut harness, "Arm cut");
    steps(&mut harness, 2);
    assert!(has_label(
        &harness,
        "armed: client 'gui-victim' is cut after PUBACK/PUBREC · 0 connections cut so far"
    ));
    let out = common::run_with_timeout(
        std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-i", "gui-victim", "-q", "1", "-t", "lab/victim", "-m", "x"]),
        Duration::from_secs(10),
    );
    assert_ne!(
        out.code,
        Some(0),
        "its PUBACK never came: {} {}",
        out.stdout,
        out.stderr
    );
    step_until(
        &mut harness,
        "the cut counted",
        Duration::from_secs(5),
        |h| has_label(h, "no cut armed · 1 connections cut so far"),
    );
}
