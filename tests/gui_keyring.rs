//! The profile editor with a real Secret Service (GNOME Keyring on a
//! private D-Bus bus) and without one: the user types a password, ticks
//! "Save password", and the form says where it went — the keyring, or the
//! owner-only file and why — and that is where it is.
//!
//! Each test runs the window in a child process that gets the bus (or no
//! bus) through its environment from the start: see `keyring_util`.

mod common;
mod keyring_util;

use common::gui::{click, has_label_containing, set_text, step_until};
use egui_kittest::Harness;
use keyring_util::*;
use mqscope::app::App;
use mqscope::profile::{Keyring, ProfileStore};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// The window on `config`, its store taking the system keyring the probe
/// finds in this process's environment (as `App::new` does).
fn app_probing_the_keyring(config: &Path) -> Harness<'static, App> {
    let dir = config.to_path_buf();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            App::with_parts(
                cc.egui_ctx.clone(),
                ProfileStore::at(dir.clone()).with_keyring(Keyring::probe()),
                Box::new(common::gui::NoPicker),
            )
        });
    harness.run_ok();
    harness
}

fn config_from_env() -> PathBuf {
    PathBuf::from(std::env::var_os("MQSCOPE_CONFIG_DIR").expect("config dir"))
}

/// Types a password into the selected profile and ticks "Save password";
/// steps the window until `saved` (the debounced save has put it where it
/// belongs).
fn save_a_password(harness: &mut Harness<'_, App>, password: &str, saved: impl Fn() -> bool) {
    set_text(harness, "Password", password);
    click(harness, "Save password");
    step_until(
        harness,
        "the password saved",
        Duration::from_secs(15),
        |_| saved(),
    );
}

/// The password the keyring holds for the profile saved with one.
fn in_keyring(config: &Path) -> Option<String> {
    let Keyring::Available(keyring) = Keyring::probe() else {
        return None;
    };
    let profiles = ProfileStore::at(config).load().ok()?;
    let profile = profiles.iter().find(|p| p.save_password)?;
    keyring.get(&profile.id).ok().flatten()
}

fn keyring_window() {
    let config = config_from_env();
    let mut harness = app_probing_the_keyring(&config);
    assert!(!has_label_containing(&harness, "system keyring"));
    click(&mut harness, "Save password");
    assert!(has_label_containing(
        &harness,
        "A saved password goes to the system keyring (Secret Service)"
    ));
    click(&mut harness, "Save password");
    save_a_password(&mut harness, "gui-k3yring-pw", || {
        in_keyring(&config).as_deref() == Some("gui-k3yring-pw")
    });
    harness.run_ok();
    assert!(
        has_label_containing(
            &harness,
            "Password saved in the system keyring (Secret Service)"
        ),
        "the editor does not say the keyring holds it"
    );
    assert!(!has_label_containing(&harness, "owner-only file"));
}

#[test]
fn the_editor_saves_the_password_in_the_keyring_and_says_so() {
    if is_child("the_editor_saves_the_password_in_the_keyring_and_says_so") {
        keyring_window();
        return;
    }
    let service = SecretService::start();
    let config = config_dir();
    let mut env = service.env();
    env.push(("MQSCOPE_CONFIG_DIR".into(), config.clone().into()));
    run_child(
        "the_editor_saves_the_password_in_the_keyring_and_says_so",
        &env,
        LIMIT,
    );
    let profiles = ProfileStore::at(&config).load().expect("profiles");
    let saved = profiles
        .iter()
        .find(|p| p.save_password)
        .expect("a profile with its password saved");
    assert_eq!(service.lookup(&saved.id).as_deref(), Some("gui-k3yring-pw"));
    assert!(!config.join("passwords.ron").exists());
    let text = std::fs::read_to_string(config.join("profiles.ron")).expect("profiles.ron");
    assert!(!text.contains("gui-k3yring-pw"));
}

fn file_window() {
    let config = config_from_env();
    let mut harness = app_probing_the_keyring(&config);
    let path = config.join("passwords.ron");
    save_a_password(&mut harness, "gui-file-pw", || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("gui-file-pw"))
    });
    harness.run_ok();
    let says = format!(
        "Password saved in an owner-only file: {} (no system keyring available: ",
        path.display()
    );
    assert!(
        has_label_containing(&harness, &says),
        "the editor does not say: {says}"
    );
}

#[test]
fn without_a_keyring_the_editor_names_the_file_and_why() {
    if is_child("without_a_keyring_the_editor_names_the_file_and_why") {
        file_window();
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir();
    let mut env = no_bus_env(dir.path());
    env.push(("MQSCOPE_CONFIG_DIR".into(), config.clone().into()));
    run_child(
        "without_a_keyring_the_editor_names_the_file_and_why",
        &env,
        LIMIT,
    );
    let passwords = std::fs::read_to_string(config.join("passwords.ron")).expect("passwords");
    assert!(passwords.contains("gui-file-pw"));
}
