//! Random and mutated packet streams against a running sandbox, over real
//! sockets, from several threads at once: the broker must close what it
//! cannot read, keep nothing of clean sessions once they are gone, and still
//! serve a well-behaved client afterwards. Seeded, so a failure replays:
//! `SANDBOX_FUZZ_SEED=n SANDBOX_FUZZ_CONNS=5000 cargo test --test sandbox_fuzz`.

mod sandbox_util;

use bytes::Bytes;
use mqscope::sandbox::Limits;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{Connect, Packet, PubAck, PubRel, Publish, QoS, Subscribe, Unsubscribe};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use sandbox_util::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Well-formed packets a client could send after CONNECT (3.1.1 and 5).
fn after_connect(rng: &mut StdRng) -> Vec<u8> {
    let qos = match rng.random_range(0..3) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let topic = ["a", "a/b", "fuzz/x", "$SYS/x", "+", "a/#", ""][rng.random_range(0..7)];
    let pkid = rng.random_range(1..5);
    match rng.random_range(0..8) {
        0 | 1 => {
            let mut p = Publish::new(topic, qos, vec![b'p'; rng.random_range(0..300)]);
            p.pkid = if qos == QoS::AtMostOnce { 0 } else { pkid };
            p.retain = rng.random_bool(0.2);
            encode(&Packet::Publish(p))
        }
        2 => encode(&Packet::Subscribe(Subscribe::new(topic, qos))),
        3 => encode(&Packet::Unsubscribe(Unsubscribe::new(topic))),
        4 => encode(&Packet::PubAck(PubAck::new(pkid))),
        5 => encode(&Packet::PubRel(PubRel::new(pkid))),
        6 => encode(&Packet::PingReq),
        _ => {
            let mut p = v5p::Publish::new(topic, q5(qos), Bytes::from_static(b"v5"), None);
            p.pkid = pkid;
            encode5(&v5p::Packet::Publish(p))
        }
    }
}

fn mutate(rng: &mut StdRng, frame: &mut Vec<u8>) {
    match rng.random_range(0..4) {
        0 if !frame.is_empty() => {
            let i = rng.random_range(0..frame.len());
            frame[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !frame.is_empty() => {
            let at = rng.random_range(0..frame.len());
            frame.truncate(at);
        }
        2 => {
            let at = rng.random_range(0..=frame.len());
            let junk: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
            frame.splice(at..at, junk);
        }
        _ => *frame = (0..rng.random_range(0..40)).map(|_| rng.random()).collect(),
    }
}

/// One connection's stream: a valid clean CONNECT (3.1.1 or 5, unique id)
/// unless `any_connect`, then packets, some of them mutated.
fn stream(rng: &mut StdRng, id: u64, any_connect: bool) -> Vec<u8> {
    let mut out = if rng.random_bool(0.5) {
        encode(&Packet::Connect(Connect::new(format!("fuzz-{id}"))))
    } else {
        encode5(&v5p::Packet::Connect(
            v5p::Connect {
                keep_alive: 60,
                client_id: format!("fuzz-{id}"),
                clean_start: true,
                properties: None,
            },
            None,
            None,
        ))
    };
    if any_connect {
        mutate(rng, &mut out);
    }
    for _ in 0..rng.random_range(0..12) {
        let mut p = after_connect(rng);
        if rng.random_bool(0.3) {
            mutate(rng, &mut p);
        }
        out.extend(p);
    }
    out
}

/// Sends a stream, reads whatever comes back for a moment, hangs up.
fn play(port: u16, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    s.write_all(bytes).ok();
    s.set_read_timeout(Some(Duration::from_millis(30))).ok();
    let mut sink = [0u8; 16 * 1024];
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn random_streams_cost_nothing_and_the_broker_still_serves() {
    let seed = env("SANDBOX_FUZZ_SEED", 11);
    let conns = env("SANDBOX_FUZZ_CONNS", 400);
    let s = broker(Limits {
        max_packet_size: 64 * 1024,
        connect_timeout: Duration::from_millis(500),
        ..Limits::default()
    });
    let port = s.port();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(t));
                for i in 0..conns / 4 {
                    let bytes = stream(&mut rng, t * 1_000_000 + i, false);
                    play(port, &bytes);
                }
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().is_ok(), "a fuzz thread panicked");
    }
    // Every connection was clean: once they are gone, nothing of them stays.
    wait_until(WAIT, "all fuzz clients gone", || s.stats().clients == 0);
    let stats = s.stats();
    assert_eq!(stats.sessions, 0, "clean sessions left behind");
    assert_eq!(stats.subscriptions, 0, "subscriptions left behind");
    assert_still_serves(&s);
}

#[test]
fn mutated_connects_never_hurt_the_broker() {
    let seed = env("SANDBOX_FUZZ_SEED", 12);
    let conns = env("SANDBOX_FUZZ_CONNS", 400);
    let s = broker(Limits {
        max_connect_size: 4096,
        connect_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..conns {
        let bytes = stream(&mut rng, i, true);
        play(s.port(), &bytes);
    }
    assert_still_serves(&s);
}
