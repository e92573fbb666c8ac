//! The sandbox panel's TLS parts in the real window: the TLS listener and
//! the certificate folder are shown, "Connect with TLS" makes a ready
//! "Sandbox (TLS)" profile (sandbox CA + a client certificate) that
//! connects to a listener requiring client certificates, and a new client
//! certificate made in the panel is used by it.

mod common;

use common::gui::{has_label, set_text, step_until};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::App;
use mqscope::profile::{Profile, ProfileStore, TransportKind};
use mqscope::sandbox::{DemoConfig, SandboxConfig, TlsOptions};
use std::path::Path;
use std::time::Duration;

const TLS_PROFILE: &str = "Sandbox (TLS)";

fn app(config_dir: &Path, certs: &Path) -> Harness<'static, App> {
    common::gui::sandbox_app(
        config_dir,
        SandboxConfig {
            port: Some(0),
            demo: DemoConfig {
                surf_rate_hz: 10.0,
                ..DemoConfig::default()
            },
            tls: Some(TlsOptions {
                port: Some(0),
                require_certificate: true,
                certs: Some(certs.to_path_buf()),
                wss_port: None,
            }),
            ..SandboxConfig::default()
        },
        egui::vec2(1280.0, 900.0),
    )
}

fn tls_profile(harness: &Harness<'_, App>) -> Option<Profile> {
    harness
        .state()
        .profiles()
        .find(|p| p.name == TLS_PROFILE)
        .cloned()
}

#[test]
fn connect_with_tls_makes_a_ready_profile_that_connects_with_a_client_certificate() {
    let config = tempfile::tempdir().expect("temp dir");
    let scratch = tempfile::tempdir().expect("temp dir");
    let certs = scratch.path().join("certs");
    let mut harness = app(config.path(), &certs);
    step_until(
        &mut harness,
        "the plain Sandbox connection",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    assert!(
        common::gui::has_label_containing(&harness, "TLS: localhost:"),
        "the TLS listener is shown"
    );
    assert!(has_label(&harness, &certs.display().to_string()));

    common::gui::click_live(&mut harness, "Connect with TLS");
    let profile = tls_profile(&harness).expect("the Sandbox (TLS) profile was made");
    let tls_port = profile.port;
    assert!(
        has_label(
            &harness,
            &format!("TLS: localhost:{tls_port} (client certificate required)")
        ),
        "the profile's port is the TLS listener's"
    );
    assert_ne!(Some(tls_port), harness.state().sandbox_port());
    assert_eq!(
        (profile.transport, profile.host.as_str()),
        (TransportKind::Tls, "localhost")
    );
    assert_eq!(profile.tls.ca_file, Some(certs.join("ca.crt")));
    assert_eq!(profile.tls.client_cert, Some(certs.join("board001.crt")));
    assert_eq!(profile.tls.client_key, Some(certs.join("board001.key")));
    assert!(profile.tls.verify_server, "the server is verified");
    step_until(
        &mut harness,
        "the TLS connection (the listener requires a client certificate)",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
    step_until(
        &mut harness,
        "the devices' topics over TLS",
        Duration::from_secs(10),
        |h| has_label(h, "surfboards"),
    );
    let saved = ProfileStore::at(config.path())
        .load()
        .expect("saved profiles");
    assert!(
        saved
            .iter()
            .any(|p| p.name == TLS_PROFILE && p.port == tls_port)
    );

    // A certificate made in the panel goes into the profile.
    set_text(&mut harness, "New client certificate", "surfboard07");
    common::gui::click_live(&mut harness, "Create certificate");
    assert!(certs.join("surfboard07.crt").exists());
    assert!(certs.join("surfboard07.key").exists());
    common::gui::click_live(&mut harness, "Connect with TLS");
    let profile = tls_profile(&harness).expect("the profile");
    assert_eq!(profile.tls.client_cert, Some(certs.join("surfboard07.crt")));
    let names: Vec<String> = harness.state().profiles().map(|p| p.name.clone()).collect();
    assert_eq!(
        names.iter().filter(|n| *n == TLS_PROFILE).count(),
        1,
        "the profile is refreshed, not duplicated: {names:?}"
    );
    step_until(
        &mut harness,
        "the TLS connection with surfboard07's certificate",
        Duration::from_secs(10),
        common::gui::shown_connected,
    );
}

#[test]
fn a_bad_certificate_name_is_refused_in_the_panel() {
    let config = tempfile::tempdir().expect("temp dir");
    let scratch = tempfile::tempdir().expect("temp dir");
    let certs = scratch.path().join("certs");
    let mut harness = app(config.path(), &certs);
    step_until(
        &mut harness,
        "the sandbox panel",
        Duration::from_secs(10),
        |h| has_label(h, "Create certificate"),
    );
    set_text(&mut harness, "New client certificate", "../evil");
    common::gui::click_live(&mut harness, "Create certificate");
    assert!(
        harness
            .query_all_by_label_contains("is not a usable certificate name")
            .next()
            .is_some(),
        "the panel says why"
    );
    assert!(!scratch.path().join("evil.crt").exists());
}
