//! `$SYS` topics as Mosquitto publishes them (retained, every
//! [`Limits::sys_interval`](super::broker::Limits)), so a class that
//! subscribes to `$SYS/#` sees the same tree on the sandbox as on Mosquitto,
//! plus what only the sandbox counts: `$SYS/broker/messages/dropped` and the
//! drops per client under `$SYS/broker/messages/dropped/<client id>`.

use super::broker::Broker;
use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Mosquitto's load averages: an exponentially weighted per-minute rate over
/// 1, 5 and 15 minutes.
#[derive(Default)]
struct Load {
    last: u64,
    avg: [f64; 3],
}

impl Load {
    fn update(&mut self, total: u64, seconds: f64) -> [f64; 3] {
        let per_minute = total.saturating_sub(self.last) as f64 * 60.0 / seconds.max(0.001);
        self.last = total;
        for (avg, window) in self.avg.iter_mut().zip([60.0, 300.0, 900.0]) {
            let e = (-seconds / window).exp();
            *avg = per_minute + e * (*avg - per_minute);
        }
        self.avg
    }
}

/// Topic and payload of every `$SYS` value right now.
pub fn snapshot(broker: &Broker) -> Vec<(String, String)> {
    let stats = broker.stats();
    let c = broker.counters();
    let mut v: Vec<(String, String)> = [
        (
            "version",
            format!("mqscope sandbox {}", env!("CARGO_PKG_VERSION")),
        ),
        ("uptime", format!("{} seconds", broker.uptime().as_secs())),
        ("clients/connected", stats.clients.to_string()),
        ("clients/active", stats.clients.to_string()),
        (
            "clients/disconnected",
            stats.sessions.saturating_sub(stats.clients).to_string(),
        ),
        (
            "clients/inactive",
            stats.sessions.saturating_sub(stats.clients).to_string(),
        ),
        ("clients/total", stats.sessions.to_string()),
        (
            "clients/maximum",
            c.clients_maximum.load(Ordering::Relaxed).to_string(),
        ),
        ("messages/received", stats.received.to_string()),
        ("messages/sent", stats.sent.to_string()),
        ("messages/dropped", stats.dropped.to_string()),
        ("publish/messages/received", stats.received.to_string()),
        ("publish/messages/sent", stats.sent.to_string()),
        ("publish/messages/dropped", stats.dropped.to_string()),
        ("retained messages/count", stats.retained.to_string()),
        ("subscriptions/count", stats.subscriptions.to_string()),
        ("bytes/received", stats.bytes_received.to_string()),
        ("bytes/sent", stats.bytes_sent.to_string()),
    ]
    .into_iter()
    .map(|(t, p)| (format!("$SYS/broker/{t}"), p))
    .collect();
    for (client, n) in broker.drops_by_client() {
        // A client id may hold characters a topic level cannot.
        let level: String = client
            .chars()
            .map(|ch| {
                if matches!(ch, '/' | '+' | '#') {
                    '_'
                } else {
                    ch
                }
            })
            .collect();
        v.push((
            format!("$SYS/broker/messages/dropped/{level}"),
            n.to_string(),
        ));
    }
    v
}

/// Publishes `$SYS` every `sys_interval` until the runtime stops.
pub async fn run(broker: Broker) {
    // (`interval` panics on zero.)
    let interval = broker.limits().sys_interval.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loads: [Load; 4] = Default::default();
    let mut last = Instant::now();
    loop {
        tick.tick().await;
        broker.sweep();
        let now = Instant::now();
        let seconds = now.duration_since(last).as_secs_f64();
        last = now;
        let mut values = snapshot(&broker);
        let stats = broker.stats();
        let totals = [
            ("messages/received", stats.received),
            ("messages/sent", stats.sent),
            ("bytes/received", stats.bytes_received),
            ("bytes/sent", stats.bytes_sent),
        ];
        for (load, (name, total)) in loads.iter_mut().zip(totals) {
            let avg = load.update(total, seconds);
            for (a, window) in avg.iter().zip(["1min", "5min", "15min"]) {
                values.push((
                    format!("$SYS/broker/load/{name}/{window}"),
                    format!("{a:.2}"),
                ));
            }
        }
        for (topic, payload) in values {
            broker.publish_internal(&topic, Bytes::from(payload), QoS::AtMostOnce, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_converges_to_the_per_minute_rate() {
        let mut l = Load::default();
        let mut total = 0;
        let mut avg = [0.0; 3];
        // 10 messages per second for three hours, sampled every 10 s.
        for _ in 0..1080 {
            total += 100;
            avg = l.update(total, 10.0);
        }
        for a in avg {
            assert!((a - 600.0).abs() < 1.0, "{avg:?}");
        }
    }
}
