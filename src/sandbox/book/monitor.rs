//! The book's surfboard monitor (chapter 6): it subscribes to the boards'
//! readings on the sandbox and, once a second, publishes one JSON summary
//! per board to the "cloud" broker, on a topic named after the board:
//! `{"Status": "Riding", "Speed MPH": 15.0, "Altitude Feet": 3.0,
//! "Water Temperature F": 56.0}`, keys and spelling as the book's
//! `surfboard_monitor.py` (`json.dumps`) writes them. In the book the cloud
//! is PubNub; here it is the sandbox's second broker.
//!
//! It bridges every board publishing under `surfboards/+/+`, the sandbox's
//! own and any a user runs (the book's emulator), not only `surfboard01`.

use super::surf::{READINGS, STATUS_NAMES, python_float};
use crate::sandbox::broker::Broker;
use crate::sandbox::devices::{drive, options};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The monitor's subscription on the sandbox.
pub const READINGS_FILTER: &str = "surfboards/+/+";
/// Boards summarised at most: a client inventing board names must not make
/// the monitor grow without bound.
pub const MAX_BOARDS: usize = 256;

/// The last readings of one board; the book's `Surfboard` starts at Idle
/// and zeros.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub status: u8,
    pub speed_mph: f64,
    pub altitude_feet: f64,
    pub water_temperature_f: f64,
}

impl Summary {
    /// The book's JSON message, keys in its order.
    pub fn json(&self) -> String {
        let status = STATUS_NAMES
            .get(usize::from(self.status))
            .copied()
            .unwrap_or("Idle");
        format!(
            "{{\"Status\": \"{status}\", \"Speed MPH\": {}, \"Altitude Feet\": {}, \
             \"Water Temperature F\": {}}}",
            python_float(self.speed_mph),
            python_float(self.altitude_feet),
            python_float(self.water_temperature_f)
        )
    }
}

/// The boards heard so far, by name.
#[derive(Debug, Default)]
pub struct Boards {
    boards: BTreeMap<String, Summary>,
    /// Readings that were not a number (or not a known status), or came
    /// from a board over [`MAX_BOARDS`].
    pub ignored: u64,
}

impl Boards {
    /// Takes one reading from `surfboards/<board>/<reading>`; returns why
    /// it was ignored, if it was.
    pub fn take(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        let mut levels = topic.split('/');
        let (Some("surfboards"), Some(board), Some(reading), None) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return Ok(());
        };
        if board.is_empty() || !READINGS.contains(&reading) {
            return Ok(());
        }
        let value = std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite());
        let Some(value) = value else {
            self.ignored += 1;
            return Err(format!("{topic}: not a plain number"));
        };
        if !self.boards.contains_key(board) && self.boards.len() >= MAX_BOARDS {
            self.ignored += 1;
            return Err(format!("{topic}: more than {MAX_BOARDS} boards"));
        }
        let summary = self.boards.entry(board.to_string()).or_default();
        match reading {
            "status" => {
                if value.fract() == 0.0 && (0.0..STATUS_NAMES.len() as f64).contains(&value) {
                    summary.status = value as u8;
                } else {
                    self.ignored += 1;
                    return Err(format!("{topic}: {value} is not a status 0..4"));
                }
            }
            "speedmph" => summary.speed_mph = value,
            "altitudefeet" => summary.altitude_feet = value,
            _ => summary.water_temperature_f = value,
        }
        Ok(())
    }

    /// `(cloud topic, JSON)` for every board heard.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.boards
            .iter()
            .map(|(name, s)| (name.clone(), s.json()))
            .collect()
    }
}

/// Ignored readings logged one by one; after that, every
/// [`LOG_EVERY`]th, with the count.
const LOG_FIRST: u64 = 10;
const LOG_EVERY: u64 = 1000;

/// Bridges the sandbox on `port` to the cloud broker on `cloud_port`.
/// Readings it cannot use are counted in the sandbox's log (the panel,
/// `mqscope sandbox`'s stderr).
pub(crate) async fn run(broker: Broker, port: u16, cloud_port: u16) {
    let boards = Arc::new(Mutex::new(Boards::default()));
    let (local, local_el) = AsyncClient::new(options("surfboard-monitor", port), 256);
    let (cloud, cloud_el) = AsyncClient::new(options("surfboard-monitor", cloud_port), 256);
    let heard = boards.clone();
    let listen = drive(local_el, move |ev| match ev {
        Event::Incoming(Packet::ConnAck(_)) => {
            local.try_subscribe(READINGS_FILTER, QoS::AtMostOnce).ok();
        }
        Event::Incoming(Packet::Publish(p)) => {
            if let Ok(mut b) = heard.lock()
                && let Err(why) = b.take(&p.topic, &p.payload)
                && (b.ignored <= LOG_FIRST || b.ignored.is_multiple_of(LOG_EVERY))
            {
                broker.log(format!(
                    "surfboard monitor: reading ignored ({} so far): {why}",
                    b.ignored
                ));
            }
        }
        _ => {}
    });
    let publisher = async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let messages = match boards.lock() {
                Ok(b) => b.messages(),
                Err(_) => Vec::new(),
            };
            for (topic, json) in messages {
                // QoS 0, as the book publishes to PubNub.
                cloud.try_publish(topic, QoS::AtMostOnce, false, json).ok();
            }
        }
    };
    tokio::join!(listen, drive(cloud_el, |_| {}), publisher);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_has_the_books_keys_and_spelling() {
        let s = Summary {
            status: 2,
            speed_mph: 15.0,
            altitude_feet: 3.0,
            water_temperature_f: 56.0,
        };
        assert_eq!(
            s.json(),
            r#"{"Status": "Riding", "Speed MPH": 15.0, "Altitude Feet": 3.0, "Water Temperature F": 56.0}"#
        );
    }

    #[test]
    fn readings_update_their_board_and_bad_ones_are_counted() {
        let mut b = Boards::default();
        assert!(b.take("surfboards/surfboard01/status", b"4").is_ok());
        assert!(b.take("surfboards/surfboard01/speedmph", b"1.5").is_ok());
        let why = b.take("surfboards/surfboard01/altitudefeet", b"not a number");
        assert_eq!(
            why,
            Err("surfboards/surfboard01/altitudefeet: not a plain number".into())
        );
        assert!(b.take("surfboards/surfboard01/status", b"9").is_err());
        assert!(b.take("surfboards/surfboard01/other", b"1").is_ok());
        assert!(b.take("elsewhere/surfboard01/status", b"1").is_ok());
        let m = b.messages();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "surfboard01");
        assert!(
            m[0].1
                .starts_with(r#"{"Status": "Wiped out", "Speed MPH": 1.5, "Altitude Feet": 0.0"#)
        );
        assert_eq!(b.ignored, 2);
    }

    #[test]
    fn invented_board_names_are_bounded() {
        let mut b = Boards::default();
        for i in 0..MAX_BOARDS + 10 {
            b.take(&format!("surfboards/b{i}/status"), b"1").ok();
        }
        assert_eq!(b.messages().len(), MAX_BOARDS);
        assert_eq!(b.ignored, 10);
    }
}
