//! Simulated devices that make the sandbox interesting. By default they
//! are the book's (*Hands-On MQTT Programming with Python*, see
//! [`super::book`]): surfboards publishing plain numbers, the vehicle
//! `vehiclepi01` obeying JSON commands, and the monitor bridging the boards
//! to the sandbox's cloud broker. The older demo devices stay as opt-in
//! extras: JSON surfboards, a vehicle with its own command set, retained
//! status topics and a flaky sensor whose last will can be watched. Each is
//! a real MQTT client (rumqttc) connected to the sandbox over TCP, so its
//! packets are real.

use super::book::{monitor, surf, vehicle as book_vehicle};
use super::broker::Broker;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use super::book::vehicle::{
    COMMANDS_TOPIC as BOOK_VEHICLE_COMMANDS, ERRORS_TOPIC as BOOK_VEHICLE_ERRORS,
    EXECUTED_TOPIC as BOOK_VEHICLE_EXECUTED, STATE_TOPIC as BOOK_VEHICLE_STATE,
};

/// The extra demo vehicle (not the book's).
pub const VEHICLE_COMMANDS: &str = "vehicles/vehicle-1/commands";
pub const VEHICLE_EXECUTED: &str = "vehicles/vehicle-1/executed";
pub const VEHICLE_STATE: &str = "vehicles/vehicle-1/state";
pub const VEHICLE_ERRORS: &str = "vehicles/vehicle-1/errors";
pub const FLAKY_STATUS: &str = "devices/flaky-sensor/status";
pub const FLAKY_READING: &str = "devices/flaky-sensor/reading";
pub const SANDBOX_INFO: &str = "sandbox/info";
pub const COMPETITION_STATUS: &str = "surfing/competition/status";

/// The telemetry topic of the extra JSON surfboard `n` (1-based).
pub fn surfboard_topic(n: usize) -> String {
    format!("surfing/board/{n}/telemetry")
}

/// Which simulated devices run, and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// The book's surfboards `surfboard01`… (0: none).
    pub surfboards: usize,
    /// Readings per second, per board (the book's: 1).
    pub surf_rate_hz: f64,
    /// The book's vehicle `vehiclepi01`.
    pub vehicle: bool,
    /// The book's monitor: board summaries published to the cloud broker
    /// (when the sandbox runs one).
    pub cloud_monitor: bool,
    /// Extra: JSON telemetry boards on `surfing/board/<n>/telemetry`.
    pub json_surfboards: usize,
    /// Extra: the demo vehicle `vehicle-1` (lower-case JSON commands,
    /// refuses impossible ones).
    pub demo_vehicle: bool,
    /// Extra: a sensor that drops its connection; its will says offline.
    pub flaky: bool,
    /// Extra: `sandbox/info` and `surfing/competition/status` (retained).
    pub retained_status: bool,
    /// The flaky sensor stays connected for a random time in this range...
    pub flaky_online: (Duration, Duration),
    /// ...then stays away this long before reconnecting.
    pub flaky_offline: Duration,
}

impl Default for DemoConfig {
    /// The book's devices, no extras.
    fn default() -> Self {
        DemoConfig {
            surfboards: 4,
            surf_rate_hz: 1.0,
            vehicle: true,
            cloud_monitor: true,
            json_surfboards: 0,
            demo_vehicle: false,
            flaky: false,
            retained_status: false,
            flaky_online: (Duration::from_secs(20), Duration::from_secs(40)),
            flaky_offline: Duration::from_secs(4),
        }
    }
}

impl DemoConfig {
    /// No devices at all: an empty broker.
    pub fn off() -> DemoConfig {
        DemoConfig {
            surfboards: 0,
            vehicle: false,
            cloud_monitor: false,
            ..DemoConfig::default()
        }
    }

    /// The book's devices and every extra.
    pub fn with_extras() -> DemoConfig {
        DemoConfig {
            json_surfboards: 4,
            demo_vehicle: true,
            flaky: true,
            retained_status: true,
            ..DemoConfig::default()
        }
    }
}

/// The topics the devices of `cfg` publish or listen on, for a person.
pub fn demo_topics(cfg: &DemoConfig) -> Vec<String> {
    let mut t = Vec::new();
    match cfg.surfboards {
        0 => {}
        n => {
            let boards = if n == 1 {
                surf::board_name(1)
            } else {
                format!("{{{}..{}}}", surf::board_name(1), surf::board_name(n))
            };
            t.push(format!(
                "surfboards/{boards}/{{status,speedmph,altitudefeet,temperaturef}} (plain numbers)"
            ));
        }
    }
    if cfg.vehicle {
        t.push(format!(
            "{BOOK_VEHICLE_COMMANDS} (send {})",
            book_vehicle::command_message("TURN_ON_ENGINE", None)
        ));
        t.push(BOOK_VEHICLE_EXECUTED.into());
        t.push(format!("{BOOK_VEHICLE_STATE} (retained)"));
        t.push(BOOK_VEHICLE_ERRORS.into());
    }
    if cfg.retained_status {
        t.push(format!("{SANDBOX_INFO} (retained)"));
        t.push(format!("{COMPETITION_STATUS} (retained)"));
    }
    match cfg.json_surfboards {
        0 => {}
        1 => t.push(surfboard_topic(1)),
        n => t.push(format!("surfing/board/{{1..{n}}}/telemetry")),
    }
    if cfg.demo_vehicle {
        t.push(format!("{VEHICLE_COMMANDS} (send commands here)"));
        t.push(VEHICLE_EXECUTED.into());
        t.push(format!("{VEHICLE_STATE} (retained)"));
        t.push(VEHICLE_ERRORS.into());
    }
    if cfg.flaky {
        t.push(FLAKY_READING.into());
        t.push(format!("{FLAKY_STATUS} (retained; last will \"offline\")"));
    }
    t
}

/// Ready-made publishes for the publish panel: (label, topic, payload): the
/// book's remote control's commands to `vehiclepi01`, and two it ignores.
pub fn example_commands() -> Vec<(String, String, String)> {
    use book_vehicle::{KEY_DEGREES, KEY_MPH, command_message};
    let mut out: Vec<(String, String)> = book_vehicle::COMMANDS
        .iter()
        .map(|cmd| {
            let arg = match *cmd {
                "ROTATE_RIGHT" => Some((KEY_DEGREES, 15.0)),
                "ROTATE_LEFT" => Some((KEY_DEGREES, 15.0)),
                "SET_MAX_SPEED" => Some((KEY_MPH, 30.0)),
                "SET_MIN_SPEED" => Some((KEY_MPH, 8.0)),
                _ => None,
            };
            let label = match arg {
                Some((key, v)) => format!("vehiclepi01: {cmd} {v} {key}"),
                None => format!("vehiclepi01: {cmd}"),
            };
            (label, command_message(cmd, arg))
        })
        .collect();
    out.push((
        "vehiclepi01: unsupported command (no answer)".into(),
        command_message("FLY", None),
    ));
    out.push((
        "vehiclepi01: not JSON (no answer)".into(),
        "TURN_ON_ENGINE".into(),
    ));
    out.into_iter()
        .map(|(label, payload)| (label, BOOK_VEHICLE_COMMANDS.into(), payload))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Device {
    BookSurfboard(usize),
    BookVehicle,
    Monitor,
    Surfboard(usize),
    Vehicle,
    Flaky,
    Judge,
}

/// Keeps the running devices in line with the configuration until the
/// sandbox stops. `cloud_port`: the cloud broker the monitor publishes to.
pub(crate) async fn run(
    broker: Broker,
    port: u16,
    cloud_port: Option<u16>,
    started_at: SystemTime,
    mut cfg_rx: watch::Receiver<DemoConfig>,
) {
    let mut running: HashMap<Device, AbortHandle> = HashMap::new();
    let mut info_published = false;
    loop {
        let cfg = cfg_rx.borrow_and_update().clone();
        let mut wanted: Vec<Device> = (1..=cfg.surfboards).map(Device::BookSurfboard).collect();
        if cfg.vehicle {
            wanted.push(Device::BookVehicle);
        }
        if cfg.cloud_monitor && cloud_port.is_some() {
            wanted.push(Device::Monitor);
        }
        wanted.extend((1..=cfg.json_surfboards).map(Device::Surfboard));
        if cfg.demo_vehicle {
            wanted.push(Device::Vehicle);
        }
        if cfg.flaky {
            wanted.push(Device::Flaky);
        }
        if cfg.retained_status {
            wanted.push(Device::Judge);
            if !info_published {
                info_published = true;
                let since = started_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let info = json!({
                    "broker": "mqscope sandbox (MQTT 3.1.1 and 5)",
                    "host": "127.0.0.1",
                    "port": port,
                    "started_at_unix": since,
                    "try": format!("mosquitto_sub -h 127.0.0.1 -p {port} -t '#' -v"),
                });
                broker.publish(SANDBOX_INFO, info.to_string(), QoS::AtLeastOnce, true);
            }
        }
        running.retain(|device, handle| {
            let keep = wanted.contains(device);
            if !keep {
                handle.abort();
            }
            keep
        });
        for device in wanted {
            if running.contains_key(&device) {
                continue;
            }
            let task = match device {
                Device::BookSurfboard(n) => tokio::spawn(surf::run(port, n, cfg_rx.clone())),
                Device::BookVehicle => tokio::spawn(book_vehicle::run(port)),
                Device::Monitor => match cloud_port {
                    Some(cloud) => tokio::spawn(monitor::run(broker.clone(), port, cloud)),
                    None => continue,
                },
                Device::Surfboard(n) => tokio::spawn(surfboard(port, n, cfg_rx.clone())),
                Device::Vehicle => tokio::spawn(vehicle(port)),
                Device::Flaky => tokio::spawn(flaky(port, cfg.flaky_online, cfg.flaky_offline)),
                Device::Judge => tokio::spawn(judge(port, cfg_rx.clone())),
            };
            running.insert(device, task.abort_handle());
        }
        if cfg_rx.changed().await.is_err() {
            break;
        }
    }
    for handle in running.values() {
        handle.abort();
    }
}

pub(crate) fn options(client_id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    // The sandbox's own login: its password file and ACL do not apply.
    if let Some((user, password)) = super::broker::device_login(port) {
        o.set_credentials(user, password);
    }
    o.set_keep_alive(Duration::from_secs(30));
    // The vehicle must survive someone publishing a big payload to its
    // command topic: rumqttc's 10 KiB default would make it reconnect.
    o.set_max_packet_size(64 << 20, 1 << 20);
    o
}

/// Polls a client's event loop forever, handing incoming events to
/// `on_event`; waits a moment after errors (rumqttc retries at once).
pub(crate) async fn drive(mut el: EventLoop, mut on_event: impl FnMut(Event)) {
    loop {
        match el.poll().await {
            Ok(ev) => on_event(ev),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(rand::random())
}

/// A surfer's board: the state drifts like a heat (paddle, ride, wipe out).
struct Board {
    speed_kmh: f64,
    heart_rate_bpm: f64,
    water_temp_c: f64,
    status: &'static str,
    ticks_in_status: u32,
}

impl Board {
    fn new(rng: &mut StdRng) -> Board {
        Board {
            speed_kmh: rng.random_range(2.0..6.0),
            heart_rate_bpm: rng.random_range(95.0..120.0),
            water_temp_c: rng.random_range(16.0..22.0),
            status: "paddling",
            ticks_in_status: 0,
        }
    }

    fn step(&mut self, rng: &mut StdRng) {
        self.ticks_in_status += 1;
        let next = match self.status {
            "paddling" if self.ticks_in_status > 4 && rng.random_bool(0.25) => Some("riding"),
            "riding" if self.ticks_in_status > 3 && rng.random_bool(0.3) => {
                Some(if rng.random_bool(0.4) {
                    "wiped_out"
                } else {
                    "paddling"
                })
            }
            "wiped_out" if self.ticks_in_status > 1 => Some("paddling"),
            _ => None,
        };
        if let Some(s) = next {
            self.status = s;
            self.ticks_in_status = 0;
        }
        let (speed_target, hr_target) = match self.status {
            "riding" => (28.0, 165.0),
            "wiped_out" => (0.0, 150.0),
            _ => (4.0, 115.0),
        };
        self.speed_kmh += (speed_target - self.speed_kmh) * 0.5 + rng.random_range(-1.5..1.5);
        self.speed_kmh = self.speed_kmh.clamp(0.0, 45.0);
        self.heart_rate_bpm +=
            (hr_target - self.heart_rate_bpm) * 0.3 + rng.random_range(-3.0..3.0);
        self.heart_rate_bpm = self.heart_rate_bpm.clamp(60.0, 200.0);
        self.water_temp_c = (self.water_temp_c + rng.random_range(-0.05..0.05)).clamp(10.0, 30.0);
    }

    fn json(&self, n: usize) -> String {
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "board": n,
            "speed_kmh": round1(self.speed_kmh),
            "heart_rate_bpm": self.heart_rate_bpm.round() as u32,
            "water_temp_c": round1(self.water_temp_c),
            "status": self.status,
        })
        .to_string()
    }
}

async fn surfboard(port: u16, n: usize, cfg: watch::Receiver<DemoConfig>) {
    let (client, el) = AsyncClient::new(options(&format!("surfboard-{n}"), port), 64);
    let topic = surfboard_topic(n);
    let publisher = async {
        let mut rng = rng();
        let mut board = Board::new(&mut rng);
        loop {
            let rate = cfg.borrow().surf_rate_hz;
            let period = if rate.is_finite() && rate > 0.0 {
                Duration::from_secs_f64((1.0 / rate).clamp(0.001, 3600.0))
            } else {
                Duration::from_secs(1)
            };
            tokio::time::sleep(period).await;
            board.step(&mut rng);
            // Telemetry can be skipped while the broker is busy or away.
            client
                .try_publish(&topic, QoS::AtMostOnce, false, board.json(n))
                .ok();
        }
    };
    tokio::join!(drive(el, |_| {}), publisher);
}

/// The retained competition status, refreshed now and then.
async fn judge(port: u16, cfg: watch::Receiver<DemoConfig>) {
    let (client, el) = AsyncClient::new(options("competition-judge", port), 16);
    let publisher = async {
        let mut heat = 1u32;
        loop {
            let boards = cfg.borrow().json_surfboards;
            let status = json!({
                "event": "Sandbox Surf Pro",
                "heat": heat,
                "boards_in_water": boards,
                "state": if boards > 0 { "heat in progress" } else { "waiting for surfers" },
            });
            client
                .try_publish(
                    COMPETITION_STATUS,
                    QoS::AtLeastOnce,
                    true,
                    status.to_string(),
                )
                .ok();
            tokio::time::sleep(Duration::from_secs(60)).await;
            heat += 1;
        }
    };
    tokio::join!(drive(el, |_| {}), publisher);
}

/// What the vehicle reports on its state topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VehicleState {
    pub engine_on: bool,
    pub locked: bool,
    pub parked: bool,
    pub speed_kmh: f64,
    pub heading_deg: u16,
}

impl Default for VehicleState {
    fn default() -> Self {
        VehicleState {
            engine_on: false,
            locked: true,
            parked: true,
            speed_kmh: 0.0,
            heading_deg: 0,
        }
    }
}

impl VehicleState {
    /// Executes one command payload; Err is the message for the errors
    /// topic. The state is unchanged on error.
    pub fn execute(&mut self, payload: &[u8]) -> Result<Value, String> {
        let cmd: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("not a JSON command ({e}); try {{\"cmd\":\"engine_on\"}}"))?;
        let name = cmd
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or("missing \"cmd\" (a string), e.g. {\"cmd\":\"engine_on\"}")?;
        let mut next = self.clone();
        match name {
            "engine_on" => next.engine_on = true,
            "engine_off" => {
                if self.speed_kmh > 0.0 {
                    return Err(format!(
                        "cannot switch the engine off at {} km/h: set_speed 0 or park first",
                        self.speed_kmh
                    ));
                }
                next.engine_on = false;
            }
            "lock" => next.locked = true,
            "unlock" => next.locked = false,
            "set_speed" => {
                let kmh = cmd
                    .get("kmh")
                    .and_then(Value::as_f64)
                    .ok_or("set_speed needs \"kmh\", a number")?;
                if !(0.0..=250.0).contains(&kmh) {
                    return Err(format!("speed {kmh} km/h is outside 0..250"));
                }
                if !self.engine_on && kmh > 0.0 {
                    return Err(
                        "cannot set a speed with the engine off: send engine_on first".into(),
                    );
                }
                next.speed_kmh = kmh;
                if kmh > 0.0 {
                    next.parked = false;
                }
            }
            "turn" => {
                let delta = match cmd.get("direction").and_then(Value::as_str) {
                    Some("left") => 270,
                    Some("right") => 90,
                    _ => return Err("turn needs \"direction\": \"left\" or \"right\"".into()),
                };
                if self.speed_kmh <= 0.0 {
                    return Err("cannot turn while standing still: set_speed first".into());
                }
                next.heading_deg = (self.heading_deg + delta) % 360;
            }
            "park" => {
                next.speed_kmh = 0.0;
                next.parked = true;
            }
            other => {
                return Err(format!(
                    "unknown command \"{other}\"; known: engine_on, engine_off, lock, unlock, set_speed, turn, park"
                ));
            }
        }
        *self = next;
        Ok(cmd)
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

async fn vehicle(port: u16) {
    let (client, el) = AsyncClient::new(options("vehicle-1", port), 64);
    let mut state = VehicleState::default();
    drive(el, |ev| match ev {
        Event::Incoming(Packet::ConnAck(_)) => {
            // A clean session each time: subscribe again on every connect.
            client
                .try_subscribe(VEHICLE_COMMANDS, QoS::AtLeastOnce)
                .ok();
            client
                .try_publish(VEHICLE_STATE, QoS::AtLeastOnce, true, state.json())
                .ok();
        }
        Event::Incoming(Packet::Publish(p)) if p.topic == VEHICLE_COMMANDS => {
            match state.execute(&p.payload) {
                Ok(cmd) => {
                    let executed = json!({ "command": cmd, "state": &state });
                    client
                        .try_publish(
                            VEHICLE_EXECUTED,
                            QoS::AtLeastOnce,
                            false,
                            executed.to_string(),
                        )
                        .ok();
                    client
                        .try_publish(VEHICLE_STATE, QoS::AtLeastOnce, true, state.json())
                        .ok();
                }
                Err(why) => {
                    let raw = String::from_utf8_lossy(&p.payload);
                    let raw: String = raw.chars().take(200).collect();
                    let err = json!({ "error": why, "command": raw });
                    client
                        .try_publish(VEHICLE_ERRORS, QoS::AtLeastOnce, false, err.to_string())
                        .ok();
                }
            }
        }
        _ => {}
    })
    .await;
}

/// Connects with a last will, reports "online", sends readings, and drops
/// its TCP connection without DISCONNECT now and then, so the broker
/// publishes the will ("offline").
async fn flaky(port: u16, online: (Duration, Duration), offline: Duration) {
    let mut rng = rng();
    loop {
        let mut o = options("flaky-sensor", port);
        o.set_last_will(LastWill::new(
            FLAKY_STATUS,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, el) = AsyncClient::new(o, 16);
        let (lo, hi) = (online.0.min(online.1), online.0.max(online.1));
        let stay = if hi > lo {
            rng.random_range(lo..hi)
        } else {
            lo
        };
        let connection = drive(el, |ev| {
            if let Event::Incoming(Packet::ConnAck(_)) = ev {
                client
                    .try_publish(FLAKY_STATUS, QoS::AtLeastOnce, true, "online")
                    .ok();
            }
        });
        let readings = async {
            let mut value: f64 = 20.0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                value += rand::random_range(-0.5..0.5);
                let reading = json!({ "value": (value * 100.0).round() / 100.0 });
                client
                    .try_publish(FLAKY_READING, QoS::AtMostOnce, false, reading.to_string())
                    .ok();
            }
        };
        tokio::select! {
            _ = connection => {}
            _ = readings => {}
            _ = tokio::time::sleep(stay) => {}
        }
        // Dropping the event loop closes the socket with no DISCONNECT.
        tokio::time::sleep(offline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vehicle_drives_after_engine_on() {
        let mut v = VehicleState::default();
        assert!(v.execute(br#"{"cmd":"engine_on"}"#).is_ok());
        assert!(v.execute(br#"{"cmd":"set_speed","kmh":50}"#).is_ok());
        assert_eq!(v.speed_kmh, 50.0);
        assert!(!v.parked);
        assert!(v.execute(br#"{"cmd":"turn","direction":"left"}"#).is_ok());
        assert_eq!(v.heading_deg, 270);
        assert!(v.execute(br#"{"cmd":"park"}"#).is_ok());
        assert!(v.parked && v.speed_kmh == 0.0);
    }

    #[test]
    fn impossible_or_malformed_commands_are_errors_and_change_nothing() {
        let mut v = VehicleState::default();
        let before = v.clone();
        assert!(v.execute(br#"{"cmd":"set_speed","kmh":50}"#).is_err());
        assert!(v.execute(b"start the engine").is_err());
        assert!(v.execute(br#"{"cmd":"fly"}"#).is_err());
        assert!(v.execute(br#"{"cmd":"turn","direction":"up"}"#).is_err());
        assert!(v.execute(br#"[1,2]"#).is_err());
        assert_eq!(v, before);
    }

    #[test]
    fn engine_cannot_stop_while_moving() {
        let mut v = VehicleState::default();
        v.execute(br#"{"cmd":"engine_on"}"#).ok();
        v.execute(br#"{"cmd":"set_speed","kmh":30}"#).ok();
        let err = v.execute(br#"{"cmd":"engine_off"}"#).unwrap_err();
        assert!(err.contains("30"), "{err}");
        assert!(v.engine_on);
    }

    #[test]
    fn example_commands_all_target_the_vehicle() {
        let examples = example_commands();
        assert_eq!(examples.len(), book_vehicle::COMMANDS.len() + 2);
        assert!(examples.iter().all(|(_, t, _)| t == BOOK_VEHICLE_COMMANDS));
        let mut v = book_vehicle::VehicleState::default();
        let executed = examples
            .iter()
            .filter(|(_, _, payload)| v.execute(payload.as_bytes()).is_ok())
            .count();
        assert_eq!(executed, book_vehicle::COMMANDS.len());
    }

    #[test]
    fn board_telemetry_stays_plausible() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Board::new(&mut rng);
        for _ in 0..1000 {
            b.step(&mut rng);
            assert!((0.0..=45.0).contains(&b.speed_kmh));
            assert!((60.0..=200.0).contains(&b.heart_rate_bpm));
        }
        let v: Value = serde_json::from_str(&b.json(1)).unwrap_or_default();
        assert!(v.get("speed_kmh").is_some_and(Value::is_number));
    }
}
