//! The book's vehicle `vehiclepi01` (chapters 4 and 5): it subscribes at
//! QoS 2 to `vehicles/vehiclepi01/commands`, executes JSON commands keyed
//! `"CMD"` and answers each one on `vehicles/vehiclepi01/executedcommands`
//! with `{"SUCCESSFULLY_PROCESSED_COMMAND": "<CMD>"}`, byte for byte what the
//! book's Python client (`json.dumps`) sends. What the book ignores silently
//! (invalid JSON, an unsupported command) gets no answer there either, but
//! an explanation on `vehicles/vehiclepi01/errors`; the vehicle's state is
//! kept retained on `vehicles/vehiclepi01/state`.

use crate::sandbox::devices::{drive, options};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};

/// The vehicle's name in the book.
pub const VEHICLE_NAME: &str = "vehiclepi01";
pub const COMMANDS_TOPIC: &str = "vehicles/vehiclepi01/commands";
pub const EXECUTED_TOPIC: &str = "vehicles/vehiclepi01/executedcommands";
/// Not in the book: why a message got no answer.
pub const ERRORS_TOPIC: &str = "vehicles/vehiclepi01/errors";
/// Not in the book: the vehicle's state, retained.
pub const STATE_TOPIC: &str = "vehicles/vehiclepi01/state";

pub const COMMAND_KEY: &str = "CMD";
pub const KEY_DEGREES: &str = "DEGREES";
pub const KEY_MPH: &str = "MPH";
pub const PROCESSED_KEY: &str = "SUCCESSFULLY_PROCESSED_COMMAND";

/// Every command the book's `vehicle_commands.py` defines, in its order.
pub const COMMANDS: [&str; 16] = [
    "TURN_ON_ENGINE",
    "TURN_OFF_ENGINE",
    "LOCK_DOORS",
    "UNLOCK_DOORS",
    "PARK",
    "PARK_IN_SAFE_PLACE",
    "TURN_ON_HEADLIGHTS",
    "TURN_OFF_HEADLIGHTS",
    "TURN_ON_PARKING_LIGHTS",
    "TURN_OFF_PARKING_LIGHTS",
    "ACCELERATE",
    "BRAKE",
    "ROTATE_RIGHT",
    "ROTATE_LEFT",
    "SET_MAX_SPEED",
    "SET_MIN_SPEED",
];

/// How much one ACCELERATE or BRAKE changes the speed.
pub const SPEED_STEP_MPH: f64 = 5.0;

/// The command message the book's remote control builds
/// (`build_command_message`): `{"CMD": "ROTATE_RIGHT", "DEGREES": 15}`.
pub fn command_message(cmd: &str, key_value: Option<(&str, f64)>) -> String {
    match key_value {
        Some((key, value)) => format!(
            "{{\"{COMMAND_KEY}\": \"{cmd}\", \"{key}\": {}}}",
            python_number(value)
        ),
        None => format!("{{\"{COMMAND_KEY}\": \"{cmd}\"}}"),
    }
}

/// The answer to an executed command, as the book's `json.dumps` writes it.
pub fn processed_message(cmd: &str) -> String {
    // `cmd` is one of COMMANDS: nothing to escape.
    format!("{{\"{PROCESSED_KEY}\": \"{cmd}\"}}")
}

/// A number as Python's `json.dumps` writes it (`30`, `15.5`).
fn python_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// What the vehicle reports on its state topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VehicleState {
    pub engine_on: bool,
    pub doors_locked: bool,
    pub parked: bool,
    pub parked_in_safe_place: bool,
    pub headlights_on: bool,
    pub parking_lights_on: bool,
    pub speed_mph: f64,
    /// The book's `Vehicle` starts with 0 and 10.
    pub min_speed_mph: f64,
    pub max_speed_mph: f64,
    /// 0..360, clockwise.
    pub heading_degrees: f64,
    pub last_command: Option<String>,
    pub commands_executed: u64,
}

impl Default for VehicleState {
    fn default() -> Self {
        VehicleState {
            engine_on: false,
            doors_locked: false,
            parked: true,
            parked_in_safe_place: false,
            headlights_on: false,
            parking_lights_on: false,
            speed_mph: 0.0,
            min_speed_mph: 0.0,
            max_speed_mph: 10.0,
            heading_degrees: 0.0,
            last_command: None,
            commands_executed: 0,
        }
    }
}

/// A number a command carries under `key`; missing means 0, as in the book.
fn number_arg(msg: &serde_json::Map<String, Value>, cmd: &str, key: &str) -> Result<f64, String> {
    match msg.get(key) {
        None => Ok(0.0),
        Some(v) => v.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
            format!(
                "{cmd} needs \"{key}\" to be a number, e.g. {}",
                example(cmd)
            )
        }),
    }
}

fn example(cmd: &str) -> String {
    match cmd {
        "ROTATE_RIGHT" | "ROTATE_LEFT" => command_message(cmd, Some((KEY_DEGREES, 15.0))),
        "SET_MAX_SPEED" | "SET_MIN_SPEED" => command_message(cmd, Some((KEY_MPH, 30.0))),
        _ => command_message(cmd, None),
    }
}

impl VehicleState {
    /// Executes one command payload and returns the command's name (what
    /// the answer carries). `Err` is the explanation for the errors topic;
    /// the state is unchanged then.
    pub fn execute(&mut self, payload: &[u8]) -> Result<&'static str, String> {
        let msg: Value = serde_json::from_slice(payload).map_err(|e| {
            format!(
                "invalid message, not JSON ({e}); send e.g. {}",
                command_message("TURN_ON_ENGINE", None)
            )
        })?;
        let Value::Object(msg) = msg else {
            return Err(format!(
                "invalid message, not a JSON object; send e.g. {}",
                command_message("TURN_ON_ENGINE", None)
            ));
        };
        let Some(cmd) = msg.get(COMMAND_KEY) else {
            return Err(format!(
                "no \"{COMMAND_KEY}\" key; send e.g. {}",
                command_message("TURN_ON_ENGINE", None)
            ));
        };
        let Some(cmd) = cmd
            .as_str()
            .and_then(|c| COMMANDS.iter().find(|k| **k == c))
        else {
            let shown: String = cmd.to_string().chars().take(100).collect();
            return Err(format!(
                "unsupported command {shown}; supported: {}",
                COMMANDS.join(", ")
            ));
        };
        let cmd: &'static str = cmd;
        let mut next = self.clone();
        match cmd {
            "TURN_ON_ENGINE" => next.engine_on = true,
            "TURN_OFF_ENGINE" => {
                next.engine_on = false;
                next.speed_mph = 0.0;
            }
            "LOCK_DOORS" => next.doors_locked = true,
            "UNLOCK_DOORS" => next.doors_locked = false,
            "PARK" | "PARK_IN_SAFE_PLACE" => {
                next.speed_mph = 0.0;
                next.parked = true;
                next.parked_in_safe_place = cmd == "PARK_IN_SAFE_PLACE";
            }
            "TURN_ON_HEADLIGHTS" => next.headlights_on = true,
            "TURN_OFF_HEADLIGHTS" => next.headlights_on = false,
            "TURN_ON_PARKING_LIGHTS" => next.parking_lights_on = true,
            "TURN_OFF_PARKING_LIGHTS" => next.parking_lights_on = false,
            // Like pressing the gas pedal: the car only moves with its engine
            // on (with it off the command is still executed, as in the
            // book), and stays within the speed limits set.
            "ACCELERATE" if next.engine_on => {
                let (lo, hi) = (
                    next.min_speed_mph,
                    next.max_speed_mph.max(next.min_speed_mph),
                );
                next.speed_mph = (next.speed_mph + SPEED_STEP_MPH).clamp(lo, hi);
                next.parked = false;
                next.parked_in_safe_place = false;
            }
            "BRAKE" => next.speed_mph = (next.speed_mph - SPEED_STEP_MPH).max(0.0),
            "ROTATE_RIGHT" | "ROTATE_LEFT" => {
                let degrees = number_arg(&msg, cmd, KEY_DEGREES)?;
                let signed = if cmd == "ROTATE_RIGHT" {
                    degrees
                } else {
                    -degrees
                };
                next.heading_degrees = (next.heading_degrees + signed).rem_euclid(360.0);
            }
            "SET_MAX_SPEED" | "SET_MIN_SPEED" => {
                let mph = number_arg(&msg, cmd, KEY_MPH)?;
                if mph < 0.0 {
                    return Err(format!("{cmd}: {mph} MPH is negative"));
                }
                if cmd == "SET_MAX_SPEED" {
                    next.max_speed_mph = mph;
                    next.speed_mph = next.speed_mph.min(mph);
                } else {
                    next.min_speed_mph = mph;
                }
            }
            _ => {}
        }
        next.last_command = Some(cmd.to_string());
        next.commands_executed += 1;
        *self = next;
        Ok(cmd)
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The vehicle, connected to the sandbox on `port` as client `vehiclepi01`.
pub(crate) async fn run(port: u16) {
    let (client, el) = AsyncClient::new(options(VEHICLE_NAME, port), 64);
    let mut state = VehicleState::default();
    drive(el, |ev| match ev {
        Event::Incoming(Packet::ConnAck(_)) => {
            // A clean session each time: subscribe again on every connect.
            client.try_subscribe(COMMANDS_TOPIC, QoS::ExactlyOnce).ok();
            client
                .try_publish(STATE_TOPIC, QoS::AtLeastOnce, true, state.json())
                .ok();
        }
        Event::Incoming(Packet::Publish(p)) if p.topic == COMMANDS_TOPIC => {
            match state.execute(&p.payload) {
                Ok(cmd) => {
                    // QoS 0, not retained: the book's `client.publish`
                    // defaults.
                    client
                        .try_publish(
                            EXECUTED_TOPIC,
                            QoS::AtMostOnce,
                            false,
                            processed_message(cmd),
                        )
                        .ok();
                    client
                        .try_publish(STATE_TOPIC, QoS::AtLeastOnce, true, state.json())
                        .ok();
                }
                Err(why) => {
                    let raw = String::from_utf8_lossy(&p.payload);
                    let raw: String = raw.chars().take(200).collect();
                    let err = json!({ "error": why, "payload": raw });
                    client
                        .try_publish(ERRORS_TOPIC, QoS::AtLeastOnce, false, err.to_string())
                        .ok();
                }
            }
        }
        _ => {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_messages_are_spelled_like_pythons_json_dumps() {
        assert_eq!(
            command_message("SET_MAX_SPEED", Some((KEY_MPH, 30.0))),
            r#"{"CMD": "SET_MAX_SPEED", "MPH": 30}"#
        );
        assert_eq!(
            command_message("LOCK_DOORS", None),
            r#"{"CMD": "LOCK_DOORS"}"#
        );
        assert_eq!(
            processed_message("LOCK_DOORS"),
            r#"{"SUCCESSFULLY_PROCESSED_COMMAND": "LOCK_DOORS"}"#
        );
    }

    #[test]
    fn the_books_remote_control_sequence_drives_within_the_limits() {
        let mut v = VehicleState::default();
        for (cmd, arg) in [
            ("SET_MAX_SPEED", Some((KEY_MPH, 30.0))),
            ("SET_MIN_SPEED", Some((KEY_MPH, 8.0))),
            ("LOCK_DOORS", None),
            ("TURN_ON_ENGINE", None),
            ("ROTATE_RIGHT", Some((KEY_DEGREES, 15.0))),
            ("ACCELERATE", None),
            ("ROTATE_RIGHT", Some((KEY_DEGREES, 25.0))),
            ("ACCELERATE", None),
            ("ROTATE_LEFT", Some((KEY_DEGREES, 15.0))),
            ("ACCELERATE", None),
        ] {
            assert_eq!(v.execute(command_message(cmd, arg).as_bytes()), Ok(cmd));
        }
        assert_eq!(v.heading_degrees, 25.0);
        assert_eq!(v.speed_mph, 18.0);
        assert!(v.doors_locked && v.engine_on && !v.parked);
        assert_eq!(
            v.execute(br#"{"CMD": "TURN_OFF_ENGINE"}"#),
            Ok("TURN_OFF_ENGINE")
        );
        assert_eq!(v.speed_mph, 0.0);
        assert_eq!(v.commands_executed, 11);
    }

    #[test]
    fn rotating_left_past_north_wraps_around() {
        let mut v = VehicleState::default();
        v.execute(br#"{"CMD": "ROTATE_LEFT", "DEGREES": 90}"#).ok();
        assert_eq!(v.heading_degrees, 270.0);
    }

    #[test]
    fn rejected_messages_explain_why_and_change_nothing() {
        let mut v = VehicleState::default();
        let before = v.clone();
        for bad in [
            &b"TURN_ON_ENGINE"[..],
            br#"["CMD"]"#,
            br#"{"cmd": "TURN_ON_ENGINE"}"#,
            br#"{"CMD": "FLY"}"#,
            br#"{"CMD": 5}"#,
            br#"{"CMD": "ROTATE_LEFT", "DEGREES": "ninety"}"#,
            br#"{"CMD": "SET_MAX_SPEED", "MPH": -3}"#,
            &[0xff, 0xfe, 0x00],
        ] {
            let err = v.execute(bad).unwrap_err();
            assert!(!err.is_empty());
        }
        assert_eq!(v, before);
        let err = v.execute(br#"{"CMD": "FLY"}"#).unwrap_err();
        assert!(
            err.contains("\"FLY\"") && err.contains("PARK_IN_SAFE_PLACE"),
            "{err}"
        );
    }

    #[test]
    fn missing_numbers_count_as_zero_as_in_the_book() {
        let mut v = VehicleState::default();
        assert_eq!(
            v.execute(br#"{"CMD": "SET_MAX_SPEED"}"#),
            Ok("SET_MAX_SPEED")
        );
        assert_eq!(v.max_speed_mph, 0.0);
    }
}
