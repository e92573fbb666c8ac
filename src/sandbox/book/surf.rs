//! The book's surfboards (chapter 6): each board publishes its four sensor
//! readings once a second at QoS 0 as plain numbers, like the book's
//! `surfboard_sensors_emulator.py` replaying its recording:
//! `surfboards/<name>/status` (0 Idle, 1 Paddling, 2 Riding, 3 Ride
//! finished, 4 Wiped out), `…/speedmph`, `…/altitudefeet`, `…/temperaturef`.
//! The values follow a plausible ride instead of a fixed file.

use crate::sandbox::devices::{DemoConfig, drive, options};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rumqttc::{AsyncClient, QoS};
use std::time::Duration;
use tokio::sync::watch;

/// The book's status codes and names (`surfboard_status.py`).
pub const STATUS_NAMES: [&str; 5] = ["Idle", "Paddling", "Riding", "Ride finished", "Wiped out"];
pub const IDLE: u8 = 0;
pub const PADDLING: u8 = 1;
pub const RIDING: u8 = 2;
pub const RIDE_FINISHED: u8 = 3;
pub const WIPED_OUT: u8 = 4;

/// The four readings' topic levels, in the order the book publishes them.
pub const READINGS: [&str; 4] = ["status", "speedmph", "altitudefeet", "temperaturef"];

/// The name of board `n` (1-based): `surfboard01`.
pub fn board_name(n: usize) -> String {
    format!("surfboard{n:02}")
}

/// `surfboards/<name>/<reading>`.
pub fn reading_topic(board: &str, reading: &str) -> String {
    format!("surfboards/{board}/{reading}")
}

/// Whether a board may go from status `from` to `to` in one reading.
pub fn valid_transition(from: u8, to: u8) -> bool {
    from == to
        || matches!(
            (from, to),
            (IDLE, PADDLING)
                | (PADDLING, RIDING)
                | (RIDING, RIDE_FINISHED)
                | (RIDING, WIPED_OUT)
                | (RIDE_FINISHED, IDLE)
                | (WIPED_OUT, IDLE)
        )
}

/// A number as Python's `str(float)` writes it (`15.0`, `1.1`): what the
/// book's emulator publishes.
pub fn python_float(v: f64) -> String {
    format!("{:?}", (v * 10.0).round() / 10.0)
}

/// One board's sensors during a session: idle, paddle out, ride a wave,
/// then finish the ride or wipe out, and again.
pub struct Ride {
    pub status: u8,
    pub speed_mph: f64,
    pub altitude_feet: f64,
    pub temperature_f: f64,
    /// Readings left in the current status.
    left: u32,
    /// How high the wave being ridden is.
    wave_feet: f64,
    rng: StdRng,
}

impl Ride {
    pub fn new(seed: u64) -> Ride {
        let mut rng = StdRng::seed_from_u64(seed);
        Ride {
            status: IDLE,
            speed_mph: rng.random_range(0.0..1.0),
            altitude_feet: 2.0,
            temperature_f: rng.random_range(55.0..59.0),
            // Boards start out of step with each other.
            left: rng.random_range(1..6),
            wave_feet: 4.0,
            rng,
        }
    }

    /// Advances one reading (one second).
    pub fn step(&mut self) {
        let rng = &mut self.rng;
        if self.left == 0 {
            self.status = match self.status {
                IDLE => PADDLING,
                PADDLING => RIDING,
                RIDING if rng.random_bool(0.3) => WIPED_OUT,
                RIDING => RIDE_FINISHED,
                _ => IDLE,
            };
            self.left = match self.status {
                IDLE => rng.random_range(2..5),
                PADDLING => rng.random_range(4..9),
                RIDING => rng.random_range(6..12),
                RIDE_FINISHED => rng.random_range(3..6),
                _ => rng.random_range(2..4),
            };
            if self.status == RIDING {
                self.wave_feet = rng.random_range(3.0..8.0);
            }
        }
        self.left -= 1;
        let (speed, altitude) = match self.status {
            IDLE => (rng.random_range(0.0..1.2), 2.0),
            PADDLING => (rng.random_range(2.0..5.0), rng.random_range(2.0..3.5)),
            RIDING => (
                (self.speed_mph + rng.random_range(1.0..4.0)).min(rng.random_range(14.0..22.0)),
                (self.wave_feet - rng.random_range(0.0..1.5)).max(2.0),
            ),
            RIDE_FINISHED => (self.speed_mph * 0.4, rng.random_range(2.5..3.5)),
            _ => (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0)),
        };
        self.speed_mph = speed.max(0.0);
        self.altitude_feet = altitude;
        self.temperature_f = (self.temperature_f + rng.random_range(-0.1..0.1)).clamp(50.0, 65.0);
    }

    /// `(reading, payload)` in publishing order.
    pub fn readings(&self) -> [(&'static str, String); 4] {
        [
            (READINGS[0], self.status.to_string()),
            (READINGS[1], python_float(self.speed_mph)),
            (READINGS[2], python_float(self.altitude_feet)),
            (READINGS[3], python_float(self.temperature_f)),
        ]
    }
}

/// Board `n` connected to the sandbox on `port` as client `surfboardNN`.
pub(crate) async fn run(port: u16, n: usize, cfg: watch::Receiver<DemoConfig>) {
    let name = board_name(n);
    let (client, el) = AsyncClient::new(options(&name, port), 64);
    let topics = READINGS.map(|r| reading_topic(&name, r));
    let publisher = async {
        let mut ride = Ride::new(rand::random());
        let period_of = |rate: f64| {
            if rate.is_finite() && rate > 0.0 {
                Duration::from_secs_f64((1.0 / rate).clamp(0.001, 3600.0))
            } else {
                Duration::from_secs(1)
            }
        };
        // A steady clock, not sleeps one after another: exactly once a
        // second on average, however long publishing takes.
        let mut period = period_of(cfg.borrow().surf_rate_hz);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let wanted = period_of(cfg.borrow().surf_rate_hz);
            if wanted != period {
                period = wanted;
                tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            ride.step();
            for (topic, (_, payload)) in topics.iter().zip(ride.readings()) {
                // QoS 0 readings may be skipped while the broker is busy or
                // away, as with the book's emulator.
                client
                    .try_publish(topic, QoS::AtMostOnce, false, payload)
                    .ok();
            }
        }
    };
    tokio::join!(drive(el, |_| {}), publisher);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_topics_follow_the_book() {
        assert_eq!(board_name(1), "surfboard01");
        assert_eq!(board_name(12), "surfboard12");
        assert_eq!(
            reading_topic("surfboard01", "speedmph"),
            "surfboards/surfboard01/speedmph"
        );
    }

    #[test]
    fn numbers_look_like_the_books_floats() {
        assert_eq!(python_float(15.0), "15.0");
        assert_eq!(python_float(1.1), "1.1");
        assert_eq!(python_float(57.04), "57.0");
    }

    #[test]
    fn a_long_session_only_makes_valid_transitions_and_sane_values() {
        let mut ride = Ride::new(3);
        let mut seen = [false; 5];
        let mut before = ride.status;
        for _ in 0..2000 {
            ride.step();
            assert!(
                valid_transition(before, ride.status),
                "{before} -> {}",
                ride.status
            );
            before = ride.status;
            seen[usize::from(ride.status)] = true;
            assert!((0.0..=25.0).contains(&ride.speed_mph), "{}", ride.speed_mph);
            assert!((0.0..=10.0).contains(&ride.altitude_feet));
            assert!((50.0..=65.0).contains(&ride.temperature_f));
            for (_, payload) in ride.readings() {
                assert!(payload.parse::<f64>().is_ok(), "{payload}");
            }
        }
        assert!(seen.iter().all(|s| *s), "every status occurs: {seen:?}");
    }
}
