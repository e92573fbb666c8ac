//! MQTT 5 helpers shared by `tests/v5.rs` and `tests/cli_v5.rs`: brokers
//! with an `acl_file` or the dynamic-security plugin (the only way Mosquitto
//! 2.0.11 refuses a subscription), and v5 profiles.
//!
//! Declared from each test binary with `#[path = "common/v5.rs"] mod v5;`
//! next to `mod common;`.

#![allow(dead_code)]

use super::common::{Broker, profile_for};
use mqscope::model::protocol::ProtocolVersion;
use mqscope::profile::Profile;
use std::path::PathBuf;

const DYNSEC: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// A v5 profile for `broker` with a fixed client id.
pub fn v5_profile(broker: &Broker, client_id: &str) -> Profile {
    let mut p = profile_for(broker);
    p.protocol = ProtocolVersion::V5;
    p.client_id = client_id.into();
    p
}

/// A 3.1.1 profile for `broker` with a fixed client id.
pub fn v311_profile(broker: &Broker, client_id: &str) -> Profile {
    let mut p = profile_for(broker);
    p.protocol = ProtocolVersion::V311;
    p.client_id = client_id.into();
    p
}

/// A file in a directory that lives as long as the returned guard.
pub fn scratch_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("mqscope-v5-")
        .tempdir()
        .expect("cannot create a tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("cannot write a scratch file");
    (dir, path)
}

/// A broker whose `acl_file` lets anonymous clients read and write `open/#`
/// only: a publish anywhere else is refused (MQTT 5: PUBACK/PUBREC 0x87).
pub fn acl_broker() -> (Broker, tempfile::TempDir) {
    let (dir, acl) = scratch_file("acl", "topic readwrite open/#\n");
    let broker = Broker::builder()
        .config_line(&format!("acl_file {}", acl.display()))
        .start();
    (broker, dir)
}

/// A broker with the dynamic-security plugin: anonymous clients may
/// subscribe to and publish on `open/#` only. Mosquitto 2.0.11 checks
/// subscriptions only through a plugin (its `acl_file` grants every
/// SUBSCRIBE), so this is how a real SUBACK 0x87 is obtained.
pub fn dynsec_broker() -> (Broker, tempfile::TempDir) {
    assert!(
        std::path::Path::new(DYNSEC).exists(),
        "{DYNSEC} is missing: it ships with Debian's mosquitto package"
    );
    let config = r#"{
 "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true,
                      "subscribe": false, "unsubscribe": true},
 "clients": [],
 "groups": [{"groupname": "anonymous", "roles": [{"rolename": "open"}]}],
 "roles": [{"rolename": "open", "acls": [
   {"acltype": "subscribePattern", "topic": "open/#", "allow": true},
   {"acltype": "publishClientSend", "topic": "open/#", "allow": true}]}],
 "anonymousGroup": "anonymous"
}"#;
    let (dir, json) = scratch_file("dynamic-security.json", config);
    let broker = Broker::builder()
        .config_line(&format!("plugin {DYNSEC}"))
        .config_line(&format!("plugin_opt_config_file {}", json.display()))
        .start();
    (broker, dir)
}

/// The pid of the process listening on `port` (the test's Mosquitto), read
/// from `ss`, so a test can pause it with SIGSTOP.
pub fn listener_pid(port: u16) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-ltnpH", &format!("sport = :{port}")])
        .output()
        .expect("cannot run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no process listens on port {port}: {text}"))
}

/// Sends `signal` (e.g. "STOP", "CONT") to `pid` and checks it was delivered.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}
