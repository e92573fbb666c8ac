//! The sandbox's devices speak the book's protocols (*Hands-On MQTT
//! Programming with Python*), checked with real clients: mosquitto_pub/sub,
//! a raw socket that dies with a will set, and a paho-mqtt script like the
//! book's remote control.

mod sandbox_util;

#[path = "common/capture.rs"]
mod capture;

use mqscope::sandbox::book::surf::{STATUS_NAMES, valid_transition};
use mqscope::sandbox::book::vehicle::{COMMANDS, command_message};
use mqscope::sandbox::{CloudBroker, DemoConfig, Sandbox, SandboxConfig};
use rumqttc::{LastWill, QoS};
use sandbox_util::{Client, Raw, WAIT, port_arg, run, start, wait_subscriptions};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const COMMANDS_TOPIC: &str = "vehicles/vehiclepi01/commands";
const EXECUTED: &str = "vehicles/vehiclepi01/executedcommands";
const ERRORS: &str = "vehicles/vehiclepi01/errors";
const STATE: &str = "vehicles/vehiclepi01/state";

/// The vehicle alone.
fn vehicle_only() -> Sandbox {
    start(DemoConfig {
        surfboards: 0,
        cloud_monitor: false,
        ..DemoConfig::default()
    })
}

/// Waits until the vehicle has subscribed to its commands (its retained
/// state is published right after).
fn wait_vehicle(s: &Sandbox) {
    wait_subscriptions(s, 1);
}

fn publish_command(s: &Sandbox, payload: &str) {
    let p = port_arg(s);
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &p, "-t", COMMANDS_TOPIC, "-q", "2", "-m", payload],
    );
    assert!(ok, "mosquitto_pub failed: {err}");
}

/// The example argument each command of the book takes.
fn book_arg(cmd: &str) -> Option<(&'static str, f64)> {
    match cmd {
        "ROTATE_RIGHT" | "ROTATE_LEFT" => Some(("DEGREES", 15.0)),
        "SET_MAX_SPEED" => Some(("MPH", 30.0)),
        "SET_MIN_SPEED" => Some(("MPH", 8.0)),
        _ => None,
    }
}

/// The retained state as a late subscriber gets it: (retain flag, JSON).
fn retained_state(s: &Sandbox) -> (String, serde_json::Value) {
    let p = port_arg(s);
    let (ok, out, err) = run(
        "mosquitto_sub",
        &["-p", &p, "-t", STATE, "-F", "%r %p", "-C", "1", "-W", "5"],
    );
    assert!(ok, "no retained state: {err}");
    let (flag, json) = out.trim().split_once(' ').unwrap_or(("", ""));
    let v = serde_json::from_str(json).unwrap_or_else(|e| panic!("state not JSON ({e}): {out}"));
    (flag.to_string(), v)
}

#[test]
fn every_book_command_is_answered_on_executedcommands_with_the_exact_json() {
    let s = vehicle_only();
    wait_vehicle(&s);
    let p = port_arg(&s);
    let answers = Client::spawn("mosquitto_sub", &["-p", &p, "-t", EXECUTED, "-q", "2"]);
    wait_subscriptions(&s, 2);
    for cmd in COMMANDS {
        publish_command(&s, &command_message(cmd, book_arg(cmd)));
        let expected = format!("{{\"SUCCESSFULLY_PROCESSED_COMMAND\": \"{cmd}\"}}");
        let got = answers.next_line(WAIT);
        assert_eq!(got.as_deref(), Some(expected.as_str()), "answer to {cmd}");
    }
}

#[test]
fn invalid_json_and_unsupported_commands_get_no_answer_but_an_explanation() {
    let s = vehicle_only();
    wait_vehicle(&s);
    let p = port_arg(&s);
    let watcher = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-t", EXECUTED, "-t", ERRORS, "-v", "-q", "1"],
    );
    wait_subscriptions(&s, 3);
    publish_command(&s, "TURN_ON_ENGINE please");
    publish_command(&s, r#"{"CMD": "FLY"}"#);
    publish_command(&s, r#"{"cmd": "LOCK_DOORS"}"#);
    // A valid command after them: its answer must be the only one.
    publish_command(&s, r#"{"CMD": "LOCK_DOORS"}"#);
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    while lines.len() < 4 && Instant::now() < deadline {
        if let Some(l) = watcher.next_line(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    // Anything late would show here.
    while let Some(l) = watcher.next_line(Duration::from_millis(500)) {
        lines.push(l);
    }
    let executed: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{EXECUTED} ")))
        .collect();
    assert_eq!(
        executed,
        [&format!(
            "{EXECUTED} {{\"SUCCESSFULLY_PROCESSED_COMMAND\": \"LOCK_DOORS\"}}"
        )],
        "{lines:#?}"
    );
    let errors: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("{ERRORS} ")))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("not JSON ({e}): {j}")))
        .collect();
    assert_eq!(errors.len(), 3, "{lines:#?}");
    let said = |i: usize| errors[i]["error"].as_str().unwrap_or_default().to_string();
    assert!(said(0).contains("not JSON"), "{}", said(0));
    assert_eq!(errors[0]["payload"], "TURN_ON_ENGINE please");
    assert!(
        said(1).contains("unsupported command \"FLY\""),
        "{}",
        said(1)
    );
    assert!(said(2).contains("no \"CMD\" key"), "{}", said(2));
}

#[test]
fn state_is_retained_and_follows_the_commands() {
    let s = vehicle_only();
    wait_vehicle(&s);
    let (flag, initial) = retained_state(&s);
    assert_eq!(flag, "1", "the state is retained");
    assert_eq!(initial["engine_on"], false);
    assert_eq!(
        initial["max_speed_mph"], 10.0,
        "the book's Vehicle starts at 10 MPH"
    );

    let p = port_arg(&s);
    let answers = Client::spawn("mosquitto_sub", &["-p", &p, "-t", EXECUTED]);
    wait_subscriptions(&s, 2);
    let sequence = [
        command_message("SET_MAX_SPEED", Some(("MPH", 30.0))),
        command_message("SET_MIN_SPEED", Some(("MPH", 8.0))),
        command_message("TURN_ON_ENGINE", None),
        command_message("LOCK_DOORS", None),
        command_message("TURN_ON_HEADLIGHTS", None),
        command_message("ROTATE_LEFT", Some(("DEGREES", 15.0))),
        command_message("ACCELERATE", None),
        command_message("ACCELERATE", None),
    ];
    for cmd in &sequence {
        publish_command(&s, cmd);
        assert!(answers.next_line(WAIT).is_some(), "no answer to {cmd}");
    }
    // The state is published after the answer: wait until it caught up.
    let deadline = Instant::now() + WAIT;
    let state = loop {
        let (flag, state) = retained_state(&s);
        assert_eq!(flag, "1");
        if state["commands_executed"] == sequence.len() || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state["commands_executed"], sequence.len(), "{state}");
    assert_eq!(state["engine_on"], true, "{state}");
    assert_eq!(state["doors_locked"], true, "{state}");
    assert_eq!(state["headlights_on"], true, "{state}");
    assert_eq!(state["parking_lights_on"], false, "{state}");
    assert_eq!(state["heading_degrees"], 345.0, "{state}");
    assert_eq!(state["min_speed_mph"], 8.0, "{state}");
    assert_eq!(state["max_speed_mph"], 30.0, "{state}");
    assert_eq!(state["speed_mph"], 13.0, "8 then 13 MPH: {state}");
    assert_eq!(state["parked"], false, "{state}");
    assert_eq!(state["last_command"], "ACCELERATE", "{state}");
}

#[test]
fn a_remote_control_that_dies_leaves_park_in_safe_place_and_the_vehicle_parks() {
    let s = vehicle_only();
    wait_vehicle(&s);
    let p = port_arg(&s);
    let answers = Client::spawn("mosquitto_sub", &["-p", &p, "-t", EXECUTED]);
    wait_subscriptions(&s, 2);
    publish_command(&s, &command_message("TURN_ON_ENGINE", None));
    publish_command(&s, &command_message("ACCELERATE", None));
    for _ in 0..2 {
        assert!(answers.next_line(WAIT).is_some());
    }

    // The book's remote control: will {"CMD": "PARK_IN_SAFE_PLACE"},
    // QoS 2, retained, on the commands topic. Its socket dies.
    let will = command_message("PARK_IN_SAFE_PLACE", None);
    let (remote, ack) = Raw::connect_with(
        s.port(),
        "remote-control",
        true,
        60,
        Some(LastWill::new(
            COMMANDS_TOPIC,
            will.clone(),
            QoS::ExactlyOnce,
            true,
        )),
    );
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    remote.s.shutdown(std::net::Shutdown::Both).ok();
    drop(remote);

    assert_eq!(
        answers.next_line(WAIT).as_deref(),
        Some(r#"{"SUCCESSFULLY_PROCESSED_COMMAND": "PARK_IN_SAFE_PLACE"}"#)
    );
    let deadline = Instant::now() + WAIT;
    let state = loop {
        let (_, state) = retained_state(&s);
        if state["parked_in_safe_place"] == true || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state["parked_in_safe_place"], true, "{state}");
    assert_eq!(state["speed_mph"], 0.0, "{state}");
    // The will stays retained on the commands topic, as in the book.
    let (ok, out, err) = run(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-t",
            COMMANDS_TOPIC,
            "-q",
            "2",
            "-F",
            "%r %q %p",
            "-C",
            "1",
            "-W",
            "5",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("1 2 {will}"));
}

/// The paho-mqtt 1.x remote control (tests/book/remote_control.py), the
/// client library the book teaches.
#[test]
fn a_paho_remote_control_like_the_books_drives_the_vehicle_and_its_will_parks_it() {
    let s = vehicle_only();
    wait_vehicle(&s);
    let p = port_arg(&s);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/book/remote_control.py");
    let out = std::process::Command::new("python3")
        .args([script, &p, "--die"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (install python3-paho-mqtt): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the paho remote control failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<String> = [
        "SET_MAX_SPEED",
        "SET_MIN_SPEED",
        "LOCK_DOORS",
        "TURN_ON_ENGINE",
        "ROTATE_RIGHT",
        "ACCELERATE",
        "ROTATE_RIGHT",
        "ACCELERATE",
        "ROTATE_LEFT",
        "ACCELERATE",
        "TURN_OFF_ENGINE",
    ]
    .iter()
    .map(|c| format!("{{\"SUCCESSFULLY_PROCESSED_COMMAND\": \"{c}\"}}"))
    .collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected);
    // The script ended without DISCONNECT: its will parks the vehicle.
    let deadline = Instant::now() + WAIT;
    let state = loop {
        let (_, state) = retained_state(&s);
        if state["parked_in_safe_place"] == true || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state["parked_in_safe_place"], true, "{state}");
    assert_eq!(state["heading_degrees"], 25.0, "{state}");
    assert_eq!(state["doors_locked"], true, "{state}");
    assert_eq!(state["last_command"], "PARK_IN_SAFE_PLACE", "{state}");
}

/// (topic, payload, seconds) lines of `mosquitto_sub -F '%U %t %p'`.
fn timed_readings(sub: &Client, for_how_long: Duration) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + for_how_long;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(line) = sub.next_line(left) else {
            break;
        };
        let mut parts = line.splitn(3, ' ');
        let (Some(t), Some(topic), Some(payload)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("unexpected line {line}");
        };
        let t: f64 = t.parse().unwrap_or_else(|e| panic!("time {t}: {e}"));
        out.push((topic.to_string(), payload.to_string(), t));
    }
    out
}

#[test]
fn surfboards_publish_plain_numbers_once_a_second_at_qos0() {
    let s = start(DemoConfig {
        surfboards: 2,
        vehicle: false,
        cloud_monitor: false,
        ..DemoConfig::default()
    });
    let p = port_arg(&s);
    let sub = Client::spawn(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-t",
            "surfboards/#",
            "-q",
            "2",
            "-F",
            "%U %t %q %p",
        ],
    );
    let readings = timed_readings(&sub, Duration::from_millis(5500));
    let mut times: HashMap<String, Vec<f64>> = HashMap::new();
    for (topic, rest, t) in &readings {
        let (qos, payload) = rest.split_once(' ').unwrap_or_default();
        assert_eq!(
            qos, "0",
            "delivered at QoS 0 although subscribed at 2: {topic}"
        );
        let value: f64 = payload
            .parse()
            .unwrap_or_else(|e| panic!("{topic} carries {payload:?}, not a plain number: {e}"));
        if topic.ends_with("/status") {
            assert!(
                payload.len() == 1 && (0.0..=4.0).contains(&value),
                "status {payload}"
            );
        } else {
            assert!(payload.contains('.'), "a float like the book's: {payload}");
        }
        times.entry(topic.clone()).or_default().push(*t);
    }
    let mut topics: Vec<&String> = times.keys().collect();
    topics.sort();
    let expected: Vec<String> = ["surfboard01", "surfboard02"]
        .iter()
        .flat_map(|b| {
            ["altitudefeet", "speedmph", "status", "temperaturef"]
                .map(|r| format!("surfboards/{b}/{r}"))
        })
        .collect();
    assert_eq!(topics, expected.iter().collect::<Vec<_>>());
    for (topic, t) in &times {
        assert!(
            (4..=6).contains(&t.len()),
            "{topic}: {} readings in 5.5 s",
            t.len()
        );
        for gap in t.windows(2).map(|w| w[1] - w[0]) {
            assert!(
                (0.8..1.2).contains(&gap),
                "{topic}: {gap:.3} s between readings"
            );
        }
        let mean = (t[t.len() - 1] - t[0]) / (t.len() - 1) as f64;
        assert!(
            (0.95..1.05).contains(&mean),
            "{topic}: one every {mean:.3} s"
        );
    }
}

#[test]
fn surfboard_status_follows_a_ride_with_valid_transitions() {
    // Faster than the book's 1 Hz, so a test sees many rides.
    let s = start(DemoConfig {
        surfboards: 3,
        surf_rate_hz: 40.0,
        vehicle: false,
        cloud_monitor: false,
        ..DemoConfig::default()
    });
    let p = port_arg(&s);
    let sub = Client::spawn(
        "mosquitto_sub",
        &[
            "-p",
            &p,
            "-t",
            "surfboards/+/status",
            "-t",
            "surfboards/+/speedmph",
            "-v",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut status: HashMap<String, u8> = HashMap::new();
    let mut seen = [0usize; 5];
    let mut riding_speed = 0.0f64;
    let mut transitions = 0;
    while Instant::now() < deadline {
        let Some(line) = sub.next_line(Duration::from_millis(500)) else {
            continue;
        };
        let (topic, payload) = line.split_once(' ').unwrap_or_default();
        let board = topic.split('/').nth(1).unwrap_or_default().to_string();
        if topic.ends_with("/speedmph") {
            if status.get(&board) == Some(&2) {
                riding_speed = riding_speed.max(payload.parse().unwrap_or(0.0));
            }
            continue;
        }
        let now: u8 = payload.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        if let Some(before) = status.insert(board, now) {
            assert!(
                valid_transition(before, now),
                "{topic}: {} -> {}",
                STATUS_NAMES[usize::from(before)],
                STATUS_NAMES[usize::from(now)]
            );
            transitions += usize::from(before != now);
        }
        seen[usize::from(now)] += 1;
        if seen.iter().all(|n| *n > 0) && transitions > 20 {
            break;
        }
    }
    assert!(seen.iter().all(|n| *n > 0), "every status occurs: {seen:?}");
    assert!(riding_speed > 8.0, "riding is fast: {riding_speed}");
}

#[test]
fn the_cloud_broker_receives_each_boards_summary_with_the_books_keys() {
    let s = start(DemoConfig {
        surfboards: 2,
        surf_rate_hz: 5.0,
        vehicle: false,
        ..DemoConfig::default()
    });
    let cloud = s.cloud_port().expect("the cloud broker runs");
    assert_ne!(cloud, s.port());
    let c = cloud.to_string();
    let p = port_arg(&s);
    let local = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-t", "surfboards/+/speedmph", "-v"],
    );
    let sub = Client::spawn("mosquitto_sub", &["-p", &c, "-t", "#", "-v"]);
    let mut summaries: HashMap<String, serde_json::Value> = HashMap::new();
    let mut raw: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + WAIT;
    while summaries.len() < 2 && Instant::now() < deadline {
        let Some(line) = sub.next_line(Duration::from_millis(500)) else {
            continue;
        };
        let (topic, payload) = line.split_once(' ').unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(payload).unwrap_or_else(|e| panic!("{line}: {e}"));
        // Zeros until the monitor heard a speed.
        if v["Speed MPH"] != 0.0 || v["Status"] != "Idle" {
            raw.insert(topic.to_string(), payload.to_string());
            summaries.insert(topic.to_string(), v);
        }
    }
    let mut boards: Vec<&String> = summaries.keys().collect();
    boards.sort();
    assert_eq!(boards, ["surfboard01", "surfboard02"], "{summaries:?}");
    for (board, v) in &summaries {
        let keys: Vec<&String> = v
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let mut book_keys = [
            "Altitude Feet",
            "Speed MPH",
            "Status",
            "Water Temperature F",
        ];
        book_keys.sort();
        assert_eq!(keys, book_keys, "{board}: {v}");
        assert!(
            raw[board].starts_with("{\"Status\": \""),
            "key order: {}",
            raw[board]
        );
        assert!(
            STATUS_NAMES.contains(&v["Status"].as_str().unwrap_or("")),
            "{v}"
        );
        for k in ["Speed MPH", "Altitude Feet", "Water Temperature F"] {
            assert!(v[k].is_f64(), "{board}: {k} is a float: {v}");
        }
        let t = v["Water Temperature F"].as_f64().unwrap_or(0.0);
        assert!((50.0..=65.0).contains(&t), "{v}");
    }
    // The summary carries a speed the board really published.
    let (board, v) = summaries.iter().next().expect("a summary");
    let speed = v["Speed MPH"].as_f64().unwrap_or(-1.0);
    let published = local.wait_for(WAIT, |l| {
        l.strip_prefix(&format!("surfboards/{board}/speedmph "))
            .and_then(|x| x.parse::<f64>().ok())
            .is_some_and(|x| (x - speed).abs() < 1e-9)
    });
    // Or it was published before `local` subscribed: then the summary of a
    // later second matches a later reading.
    if published.is_none() {
        let again = sub.wait_for(WAIT, |l| l.starts_with(&format!("{board} ")));
        panic!("summary speed {speed} never seen among {board}'s readings; next: {again:?}");
    }
}

#[test]
fn the_cloud_broker_has_its_own_port_and_can_be_off() {
    let s = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        cloud: CloudBroker::Port(0),
        ..SandboxConfig::default()
    })
    .expect("starts");
    let cloud = s.cloud_port().expect("cloud runs");
    let (ok, out, err) = run(
        "mosquitto_pub",
        &[
            "-p",
            &cloud.to_string(),
            "-t",
            "surfboard01",
            "-m",
            "{}",
            "-d",
        ],
    );
    assert!(ok, "the cloud broker takes clients: {err}");
    assert!(out.contains("received CONNACK (0)"), "{out}");
    drop(s);

    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a port");
    let port = taken.local_addr().expect("addr").port();
    let refused = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        cloud: CloudBroker::Port(port),
        ..SandboxConfig::default()
    });
    let Err(e) = refused else {
        panic!("started on a taken cloud port");
    };
    assert!(
        e.to_string()
            .contains(&format!("cloud broker on 127.0.0.1:{port}")),
        "{e}"
    );

    let s = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::default(),
        cloud: CloudBroker::Off,
        ..SandboxConfig::default()
    })
    .expect("starts");
    assert_eq!(s.cloud_port(), None);
}

/// `mqscope sandbox` printing its lines as they come.
struct SandboxCli {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl SandboxCli {
    fn spawn(args: &[&str]) -> SandboxCli {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mqscope"))
            .arg("sandbox")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mqscope: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        SandboxCli { child, lines }
    }

    /// Lines up to the one starting with "try:" (the end of the banner).
    fn banner(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            let last = line.starts_with("try:");
            out.push(line);
            if last {
                break;
            }
        }
        out
    }
}

impl Drop for SandboxCli {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn port_in(banner: &[String], prefix: &str) -> Option<String> {
    banner
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
}

#[test]
fn mqscope_sandbox_runs_the_books_devices_and_the_cloud_by_default() {
    let cli = SandboxCli::spawn(&["-p", "0", "--cloud-port", "0", "--surfboards", "2"]);
    let banner = cli.banner();
    let port = port_in(&banner, "sandbox broker listening on 127.0.0.1:").expect("port");
    let cloud = port_in(&banner, "cloud broker listening on 127.0.0.1:").expect("cloud port");
    let text = banner.join("\n");
    assert!(
        text.contains(
            "surfboards/{surfboard01..surfboard02}/{status,speedmph,altitudefeet,temperaturef}"
        ),
        "{text}"
    );
    assert!(text.contains("vehicles/vehiclepi01/commands"), "{text}");
    assert!(!text.contains("vehicle-1"), "no extras by default: {text}");

    let (ok, out, err) = run(
        "mosquitto_sub",
        &["-p", &cloud, "-t", "surfboard02", "-C", "1", "-W", "8"],
    );
    assert!(ok, "no summary on the cloud broker: {err}");
    assert!(out.starts_with("{\"Status\": \""), "{out}");
    let (ok, out, err) = run(
        "mosquitto_sub",
        &["-p", &port, "-t", STATE, "-C", "1", "-W", "8"],
    );
    assert!(ok, "no vehicle state: {err}");
    assert!(out.contains("\"engine_on\":false"), "{out}");
}

#[test]
fn mqscope_sandbox_extras_and_no_cloud() {
    let cli = SandboxCli::spawn(&["-p", "0", "--no-cloud", "--extras"]);
    let banner = cli.banner();
    let text = banner.join("\n");
    assert!(!text.contains("cloud broker"), "{text}");
    for extra in [
        "vehicles/vehicle-1/commands",
        "devices/flaky-sensor/reading",
        "surfing/board/{1..4}/telemetry",
        "vehicles/vehiclepi01/commands",
    ] {
        assert!(text.contains(extra), "{extra} in {text}");
    }
}

/// One TCP segment's MQTT packets as tshark (a real dissector) reads them:
/// several packets in one segment give comma-separated values.
struct Segment {
    src_port: String,
    msgtypes: Vec<String>,
    /// Of PUBLISH and SUBSCRIBE packets, in order.
    topics: Vec<String>,
    /// Of PUBLISH packets, in order.
    qos: Vec<String>,
    /// Of a SUBSCRIBE.
    sub_qos: String,
}

fn tshark_mqtt(path: &std::path::Path, port: u16) -> Vec<Segment> {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-d",
            &format!("tcp.port=={port},mqtt"),
            "-Y",
            "mqtt",
            "-T",
            "fields",
        ])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "mqtt.msgtype",
            "-e",
            "mqtt.topic",
        ])
        .args(["-e", "mqtt.qos", "-e", "mqtt.sub.qos"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark (apt-get install tshark): {e}"));
    // A file still being written may end in a partial packet: tshark says
    // so and fails, after printing the whole ones.
    let list = |f: Option<&str>| -> Vec<String> {
        f.filter(|f| !f.is_empty())
            .map(|f| f.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Segment {
                src_port: f.first().copied().unwrap_or_default().to_string(),
                msgtypes: list(f.get(1).copied()),
                topics: list(f.get(2).copied()),
                qos: list(f.get(3).copied()),
                sub_qos: f.get(4).copied().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

fn has_publish(seg: &Segment, topic: &str, qos: &str) -> bool {
    seg.topics
        .iter()
        .zip(&seg.qos)
        .any(|(t, q)| t == topic && q == qos)
}

/// On the wire, as tshark dissects it: the vehicle is a client of its own
/// (CONNECT, then SUBSCRIBE at QoS 2 to its commands), takes a QoS 2
/// command with PUBREC/PUBCOMP, and answers with a QoS 0 PUBLISH, as the
/// book's paho client does.
#[test]
fn on_the_wire_the_vehicle_subscribes_at_qos2_and_answers_at_qos0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vehicle.pcap");
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut sniffer = capture::Sniffer::start(capture::Tool::TcpdumpLo, port, &path);
    let s = Sandbox::start(SandboxConfig {
        port: Some(port),
        demo: DemoConfig {
            surfboards: 0,
            cloud_monitor: false,
            ..DemoConfig::default()
        },
        cloud: CloudBroker::Off,
        ..SandboxConfig::default()
    })
    .expect("the sandbox starts");
    wait_vehicle(&s);
    let p = port_arg(&s);
    let answer = Client::spawn(
        "mosquitto_sub",
        &["-p", &p, "-t", EXECUTED, "-q", "2", "-C", "1"],
    );
    wait_subscriptions(&s, 2);
    publish_command(&s, &command_message("TURN_ON_ENGINE", None));
    assert!(answer.next_line(WAIT).is_some(), "no answer");
    // tcpdump hands packets over up to a second late: read the file until
    // the answer is in it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut segments = tshark_mqtt(&path, port);
    while !segments.iter().any(|seg| has_publish(seg, EXECUTED, "0")) {
        assert!(
            Instant::now() < deadline,
            "the capture never held the answer"
        );
        std::thread::sleep(Duration::from_millis(100));
        segments = tshark_mqtt(&path, port);
    }
    sniffer.stop();
    let subscribe = segments
        .iter()
        .find(|seg| seg.msgtypes == ["8"] && seg.topics == [COMMANDS_TOPIC])
        .expect("the vehicle's SUBSCRIBE");
    assert_eq!(subscribe.sub_qos, "2", "subscribed at QoS 2");
    let vehicle = &subscribe.src_port;
    let from_vehicle: Vec<&Segment> = segments
        .iter()
        .filter(|seg| &seg.src_port == vehicle)
        .collect();
    assert!(
        from_vehicle
            .iter()
            .any(|seg| has_publish(seg, EXECUTED, "0")),
        "the answer is a QoS 0 PUBLISH from the vehicle's own connection"
    );
    for (msgtype, what) in [("1", "CONNECT"), ("5", "PUBREC"), ("7", "PUBCOMP")] {
        assert!(
            from_vehicle
                .iter()
                .any(|seg| seg.msgtypes.iter().any(|t| t == msgtype)),
            "{what} from the vehicle"
        );
    }
}

#[test]
fn a_reading_the_monitor_cannot_use_is_counted_in_the_sandbox_log() {
    let s = start(DemoConfig {
        surfboards: 0,
        vehicle: false,
        ..DemoConfig::default()
    });
    let cloud = s.cloud_port().expect("cloud").to_string();
    let p = port_arg(&s);
    // The monitor subscribes to surfboards/+/+ once connected.
    wait_subscriptions(&s, 1);
    for (topic, payload) in [
        ("surfboards/surfboard07/speedmph", "fast"),
        ("surfboards/surfboard07/status", "7"),
        ("surfboards/surfboard07/altitudefeet", "4.5"),
    ] {
        let (ok, _, err) = run("mosquitto_pub", &["-p", &p, "-t", topic, "-m", payload]);
        assert!(ok, "{err}");
    }
    let line = sandbox_util::wait_log(&s, "surfboards/surfboard07/status");
    assert!(
        line.contains("surfboard monitor: reading ignored (2 so far)")
            && line.contains("7 is not a status 0..4"),
        "{line}"
    );
    assert!(sandbox_util::log(&s).contains(
        "reading ignored (1 so far): surfboards/surfboard07/speedmph: not a plain number"
    ));
    // The usable reading still reaches the cloud.
    let (ok, out, err) = run(
        "mosquitto_sub",
        &["-p", &cloud, "-t", "surfboard07", "-C", "1", "-W", "5"],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        r#"{"Status": "Idle", "Speed MPH": 0.0, "Altitude Feet": 4.5, "Water Temperature F": 0.0}"#
    );
}

#[test]
fn the_cloud_broker_moves_to_a_free_port_when_1884_is_taken() {
    // Held by this test, or by someone else on this machine: taken either way.
    let _held = std::net::TcpListener::bind(("127.0.0.1", 1884));
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", 1884)).is_err(),
        "1884 is taken"
    );
    let s = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        cloud: CloudBroker::Auto,
        ..SandboxConfig::default()
    })
    .expect("starts although 1884 is taken");
    let cloud = s.cloud_port().expect("a cloud broker");
    assert_ne!(cloud, 1884);
    assert_ne!(cloud, s.port());
    let (ok, _, err) = run(
        "mosquitto_pub",
        &["-p", &cloud.to_string(), "-t", "surfboard01", "-m", "{}"],
    );
    assert!(ok, "{err}");
}
