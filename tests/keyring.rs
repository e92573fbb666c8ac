//! Saved passwords in the system keyring, against a real Secret Service
//! (GNOME Keyring on a private D-Bus session bus, read back with libsecret's
//! `secret-tool`): the real `mqscope` binary imports a profile with its
//! password and connects with it; the profile store, in a process of its
//! own per step as the app would be, keeps entries keyed by profile id
//! through renames and deletes, moves a password from the owner-only file
//! into the keyring, and falls back to the file (saying why) when the
//! keyring is locked, absent or silent.

mod common;
mod keyring_util;

use common::*;
use keyring_util::*;
use mqscope::profile::{Keyring, PasswordHome, Profile, ProfileStore};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// The real binary with `config` as its config directory and the Secret
/// Service's environment (or none: `env`).
fn mqscope_with(
    config: &Path,
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mqscope"));
    cmd.env("MQSCOPE_CONFIG_DIR", config)
        .envs(env.iter().cloned())
        .env_remove(mqscope::profile::NO_KEYRING_ENV)
        .stdin(Stdio::null());
    cmd
}

/// The profiles on disk (ids, names), read from profiles.ron alone.
fn on_disk(config: &Path) -> Vec<Profile> {
    ProfileStore::at(config).load().expect("profiles.ron loads")
}

fn id_of(config: &Path, name: &str) -> String {
    on_disk(config)
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no profile '{name}' on disk"))
        .id
}

fn file_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn an_imported_password_goes_to_the_keyring_not_the_file_and_the_profile_connects_with_it() {
    let broker = Broker::builder()
        .password("alice", "k3yr1ng-s3cret")
        .start();
    let service = SecretService::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    let settings = json!({
        "ConnectionManager_connections": {
            "7d4c8d3e-0000-4000-8000-000000000002": {
                "configVersion": 1, "type": "mqtt",
                "id": "7d4c8d3e-0000-4000-8000-000000000002",
                "name": "plant broker", "host": "127.0.0.1", "port": broker.port,
                "protocol": "mqtt", "encryption": false, "certValidation": true,
                "username": "alice", "password": "k3yr1ng-s3cret", "clientId": "keyring-import",
                "subscriptions": [{"topic": "plant/#", "qos": 1}]
            }
        }
    });
    let file = dir.path().join("settings.json");
    std::fs::write(&file, settings.to_string()).expect("write");

    let done = run_with_timeout(
        mqscope_with(&config, &service.env())
            .args(["import", "--with-passwords"])
            .arg(&file),
        LIMIT,
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(
        done.stdout
            .contains("password imported, saved in the system keyring (Secret Service)"),
        "{}",
        done.stdout
    );

    // In the keyring under the profile's id, and in no file.
    let id = id_of(&config, "plant broker");
    assert_eq!(service.lookup(&id).as_deref(), Some("k3yr1ng-s3cret"));
    for file in ["profiles.ron", "passwords.ron"] {
        assert!(
            !file_text(&config.join(file)).contains("k3yr1ng-s3cret"),
            "{file} holds the password"
        );
    }
    assert!(!config.join("passwords.ron").exists());

    // The profile connects with the password from the keyring...
    let publish = |env: &[(std::ffi::OsString, std::ffi::OsString)]| {
        run_with_timeout(
            mqscope_with(&config, env).args([
                "pub",
                "--profile",
                "plant broker",
                "-t",
                "plant/line",
                "-m",
                "on",
            ]),
            LIMIT,
        )
    };
    let done = publish(&service.env());
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    // ...and without the keyring (no bus) it has no password: refused.
    let nobus = no_bus_env(dir.path());
    let done = publish(&nobus);
    assert_ne!(
        done.code,
        Some(0),
        "connected without the keyring's password"
    );
    assert!(
        done.stderr.to_lowercase().contains("not authori"),
        "{}",
        done.stderr
    );
}

/// One step of the profile store, as one run of the app would do it.
fn store_step() {
    let step = std::env::var("STEP").expect("STEP");
    let mut store = ProfileStore::open_default().expect("store");
    assert!(
        matches!(store.keyring(), Keyring::Available(_)),
        "no keyring: {:?}",
        store.keyring()
    );
    let mut profiles = store.load().expect("load");
    let find = |profiles: &[Profile], name: &str| {
        profiles
            .iter()
            .position(|p| p.name == name)
            .unwrap_or_else(|| panic!("no profile {name}"))
    };
    match step.as_str() {
        "save" => {
            profiles.push(Profile {
                name: "plant".into(),
                username: "op".into(),
                password: "first-pw".into(),
                save_password: true,
                ..Profile::default()
            });
        }
        "rename" => {
            let i = find(&profiles, "plant");
            assert_eq!(profiles[i].password, "first-pw", "read from the keyring");
            profiles[i].name = "plant north".into();
            profiles[i].password = "second-pw".into();
        }
        "reuse-name" => {
            let i = find(&profiles, "plant north");
            assert_eq!(profiles[i].password, "second-pw");
            // A new profile under the old name, "save password" ticked but
            // nothing typed yet: it must not find the renamed one's password.
            profiles.push(Profile {
                name: "plant".into(),
                save_password: true,
                ..Profile::default()
            });
        }
        "check-reuse" => {
            let i = find(&profiles, "plant");
            assert_eq!(
                profiles[i].password, "",
                "a new profile found an old password"
            );
            let j = find(&profiles, "plant north");
            assert_eq!(profiles[j].password, "second-pw");
        }
        "delete" => {
            let i = find(&profiles, "plant north");
            profiles.remove(i);
        }
        "untick" => {
            let i = find(&profiles, "plant");
            profiles[i].password = "third-pw".into();
            store.save(&profiles).expect("save");
            profiles[i].save_password = false;
        }
        other => panic!("unknown step {other}"),
    }
    store.save(&profiles).expect("save");
    assert_eq!(store.take_keyring_notice(), None);
    for p in &profiles {
        if p.save_password && !p.password.is_empty() {
            assert_eq!(
                store.password_home(p).describe(true),
                "Password saved in the system keyring (Secret Service)"
            );
        }
    }
}

#[test]
fn keyring_entries_follow_renames_and_deletes_and_never_reach_another_profile() {
    if is_child("keyring_entries_follow_renames_and_deletes_and_never_reach_another_profile") {
        store_step();
        return;
    }
    let service = SecretService::start();
    let config = config_dir();
    let step = |name: &str| {
        let mut env = service.env();
        env.push(("MQSCOPE_CONFIG_DIR".into(), config.clone().into()));
        env.push(("STEP".into(), name.into()));
        run_child(
            "keyring_entries_follow_renames_and_deletes_and_never_reach_another_profile",
            &env,
            LIMIT,
        );
    };

    step("save");
    let id = id_of(&config, "plant");
    assert_eq!(service.lookup(&id).as_deref(), Some("first-pw"));
    assert!(!file_text(&config.join("profiles.ron")).contains("first-pw"));
    assert!(!config.join("passwords.ron").exists());

    // A rename keeps the entry (same id) and a new password replaces it.
    step("rename");
    assert_eq!(id_of(&config, "plant north"), id);
    assert_eq!(service.lookup(&id).as_deref(), Some("second-pw"));

    step("reuse-name");
    let new_id = id_of(&config, "plant");
    assert_ne!(new_id, id);
    assert_eq!(service.lookup(&new_id), None);
    step("check-reuse");

    // Deleting the profile removes its entry.
    step("delete");
    assert_eq!(service.lookup(&id), None);
    assert!(on_disk(&config).iter().all(|p| p.id != id));

    // Unticking "save password" removes the entry too.
    step("untick");
    assert_eq!(service.lookup(&new_id), None);
    let listed = service.search_all();
    assert!(!listed.contains("pw"), "entries left: {listed}");
    assert!(!config.join("passwords.ron").exists());
}

fn migrate_step() {
    let mut store = ProfileStore::open_default().expect("store");
    let profiles = store.load().expect("load");
    assert_eq!(store.password_problem().map(|e| e.to_string()), None);
    assert_eq!(profiles[0].password, "old-file-pw");
    assert_eq!(
        store.password_home(&profiles[0]),
        PasswordHome::Keyring {
            name: "Secret Service"
        }
    );
}

#[test]
fn a_password_saved_in_the_file_moves_to_the_keyring_once_there_is_one() {
    if is_child("a_password_saved_in_the_file_moves_to_the_keyring_once_there_is_one") {
        migrate_step();
        return;
    }
    let config = config_dir();
    // Saved by an mqscope without a keyring: in the owner-only file.
    let mut store = ProfileStore::at(&config);
    store
        .save(&[Profile {
            name: "legacy".into(),
            password: "old-file-pw".into(),
            save_password: true,
            ..Profile::default()
        }])
        .expect("save");
    assert!(file_text(&config.join("passwords.ron")).contains("old-file-pw"));
    let id = id_of(&config, "legacy");

    let service = SecretService::start();
    let mut env = service.env();
    env.push(("MQSCOPE_CONFIG_DIR".into(), config.clone().into()));
    run_child(
        "a_password_saved_in_the_file_moves_to_the_keyring_once_there_is_one",
        &env,
        LIMIT,
    );
    assert_eq!(service.lookup(&id).as_deref(), Some("old-file-pw"));
    assert!(
        !config.join("passwords.ron").exists(),
        "{}",
        file_text(&config.join("passwords.ron"))
    );
    assert_eq!(id_of(&config, "legacy"), id);
    // A second start finds it in the keyring.
    run_child(
        "a_password_saved_in_the_file_moves_to_the_keyring_once_there_is_one",
        &env,
        LIMIT,
    );
}

fn locked_step() {
    let mut store = ProfileStore::open_default().expect("store");
    assert!(matches!(store.keyring(), Keyring::Available(_)));
    let mut profiles = store.load().expect("load");
    profiles.push(Profile {
        name: "locked out".into(),
        password: "kept-pw".into(),
        save_password: true,
        ..Profile::default()
    });
    store
        .save(&profiles)
        .expect("the profiles are saved all the same");
    let notice = store
        .take_keyring_notice()
        .expect("the refusal is reported");
    assert!(
        notice.contains("The Secret Service refused the password of 'locked out'")
            && notice.contains("passwords.ron instead"),
        "{notice}"
    );
    let home = store.password_home(&profiles[0]).describe(true);
    assert!(
        home.starts_with("Password saved in an owner-only file: ")
            && home.contains("passwords.ron (the Secret Service refused it: "),
        "{home}"
    );
    println!("HOME-TEXT {home}");
}

#[test]
fn a_locked_keyring_that_refuses_a_write_leaves_the_password_in_the_file_and_says_so() {
    if is_child("a_locked_keyring_that_refuses_a_write_leaves_the_password_in_the_file_and_says_so")
    {
        locked_step();
        return;
    }
    let service = SecretService::start();
    service.lock();
    let config = config_dir();
    let mut env = service.env();
    env.push(("MQSCOPE_CONFIG_DIR".into(), config.clone().into()));
    let out = run_child(
        "a_locked_keyring_that_refuses_a_write_leaves_the_password_in_the_file_and_says_so",
        &env,
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("HOME-TEXT"), "{stdout}");
    // What the user reads (shown with --nocapture).
    for line in stdout
        .lines()
        .filter_map(|l| l.find("HOME-TEXT").map(|i| &l[i..]))
    {
        println!("{line}");
    }
    let passwords = config.join("passwords.ron");
    assert!(file_text(&passwords).contains("kept-pw"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&passwords)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!file_text(&config.join("profiles.ron")).contains("kept-pw"));
}

fn no_keyring_step() {
    let started = Instant::now();
    let keyring = Keyring::probe();
    let waited = started.elapsed();
    let Keyring::Unavailable(reason) = &keyring else {
        panic!("a keyring answered: {keyring:?}");
    };
    println!("REASON {reason}");
    println!("WAITED-MS {}", waited.as_millis());
    let mut store = ProfileStore::open_default().expect("store");
    let mut profiles = store.load().expect("load");
    profiles.push(Profile {
        name: "no keyring".into(),
        password: "file-pw".into(),
        save_password: true,
        ..Profile::default()
    });
    store.save(&profiles).expect("save");
    let home = store.password_home(&profiles[0]).describe(true);
    assert!(
        home.starts_with("Password saved in an owner-only file: ")
            && home.contains("passwords.ron (no system keyring available: "),
        "{home}"
    );
    println!("HOME-TEXT {home}");
}

#[test]
fn with_no_session_bus_passwords_go_to_the_file_and_the_reason_is_given() {
    if is_child("with_no_session_bus_passwords_go_to_the_file_and_the_reason_is_given") {
        no_keyring_step();
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir();
    let mut env = no_bus_env(dir.path());
    env.push(("MQSCOPE_CONFIG_DIR".into(), config.clone().into()));
    let out = run_child(
        "with_no_session_bus_passwords_go_to_the_file_and_the_reason_is_given",
        &env,
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("REASON "), "{stdout}");
    for line in stdout.lines().filter_map(|l| {
        ["REASON", "HOME-TEXT"]
            .iter()
            .find_map(|k| l.find(k))
            .map(|i| &l[i..])
    }) {
        println!("{line}");
    }
    assert!(file_text(&config.join("passwords.ron")).contains("file-pw"));
}

#[test]
fn a_bus_that_never_answers_is_given_up_after_the_probe_timeout() {
    if is_child("a_bus_that_never_answers_is_given_up_after_the_probe_timeout") {
        no_keyring_step();
        return;
    }
    // A socket that takes connections and never says a word.
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("silent-bus");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let config = config_dir();
    let env = vec![
        (
            "DBUS_SESSION_BUS_ADDRESS".into(),
            format!("unix:path={}", socket.display()).into(),
        ),
        ("XDG_RUNTIME_DIR".into(), dir.path().into()),
        ("MQSCOPE_CONFIG_DIR".into(), config.clone().into()),
    ];
    let out = run_child(
        "a_bus_that_never_answers_is_given_up_after_the_probe_timeout",
        &env,
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("REASON the Secret Service did not answer within 3 s"),
        "{stdout}"
    );
    assert!(file_text(&config.join("passwords.ron")).contains("file-pw"));
}
