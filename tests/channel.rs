//! The worker → window channel is bounded in memory: a window that stops
//! draining makes the session wait (backpressure, nothing lost), and past
//! the wait the worker drops messages with a count — never silently.

mod common;

use common::{Broker, profile_for, wait_connected};
use mqscope::mqtt::{Command, EventKind, Worker};
use mqscope::profile::{Qos, SubscriptionSpec};
use std::time::{Duration, Instant};

const CONN: u64 = 1;
const N: u64 = 2_000;

/// Publishes N messages of 1 KiB on `burst/N` with one mosquitto_pub run.
fn burst(broker: &Broker) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: String = (0..N)
        .map(|i| format!("{i:04}{}\n", "x".repeat(1019)))
        .collect();
    let file = dir.path().join("burst.txt");
    std::fs::write(&file, lines).expect("write the burst");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mosquitto_pub -h 127.0.0.1 -p {} -t burst/x -q 1 -l < {}",
            broker.port,
            file.display()
        ))
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success(), "mosquitto_pub -l failed");
}

/// Counts messages and reported drops until `total` are accounted for.
fn account(worker: &Worker, total: u64, timeout: Duration) -> (u64, u64) {
    let deadline = Instant::now() + timeout;
    let (mut got, mut dropped) = (0, 0);
    while got + dropped < total && Instant::now() < deadline {
        for e in worker.drain(10_000) {
            match e.kind {
                EventKind::Message(_) => got += 1,
                EventKind::Dropped { messages, .. } => dropped += messages,
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (got, dropped)
}

fn subscribed_worker(broker: &Broker, budget: usize, max_wait: Duration) -> Worker {
    let worker = Worker::spawn_bounded(None, budget, max_wait);
    let mut profile = profile_for(broker);
    profile.subscriptions = vec![SubscriptionSpec::new("burst/#", Qos::AtMostOnce)];
    worker.send(Command::Connect {
        conn: CONN,
        profile: Box::new(profile),
    });
    assert!(!wait_connected(&worker, CONN));
    common::wait_for(&worker, Duration::from_secs(5), |e| {
        matches!(e.kind, EventKind::Subscribed { .. }).then_some(())
    });
    worker
}

#[test]
fn a_window_that_pauses_loses_nothing_within_the_wait() {
    let broker = Broker::builder()
        .config_line("max_queued_messages 0")
        .start();
    // 64 KiB of budget: the burst of 2 MB cannot wait in the channel.
    let worker = subscribed_worker(&broker, 64 << 10, Duration::from_secs(30));
    burst(&broker);
    // The window is "frozen" for a second: the session must stop reading.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        worker.queued_bytes() < 256 << 10,
        "the channel holds {} bytes, over its budget",
        worker.queued_bytes()
    );
    let (got, dropped) = account(&worker, N, Duration::from_secs(30));
    assert_eq!(
        (got, dropped),
        (N, 0),
        "every message arrives, none dropped"
    );
}

#[test]
fn past_the_wait_messages_are_dropped_and_counted() {
    let broker = Broker::builder()
        .config_line("max_queued_messages 0")
        .start();
    let worker = subscribed_worker(&broker, 64 << 10, Duration::from_millis(50));
    burst(&broker);
    std::thread::sleep(Duration::from_secs(1));
    let (got, dropped) = account(&worker, N, Duration::from_secs(30));
    assert!(
        dropped > 0,
        "a frozen window past the wait must cost messages"
    );
    assert_eq!(got + dropped, N, "received {got} + dropped {dropped}");
}
