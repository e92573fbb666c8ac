//! Admission under `max_connections`: a socket counts from the moment it is
//! accepted — during its TLS or websocket handshake and while its CONNECT
//! is awaited, not only once it is an MQTT client — so a flood of connects
//! that never finish their handshake cannot open more sockets than the
//! bound. Such unfinished connections are also the ones that give way:
//! when the bound is reached, the oldest connection still unfinished after
//! [`STALE_AFTER`] is closed to make room for the new one, so a flood of
//! stalled handshakes cannot starve clients that finish theirs in
//! milliseconds. Clients already connected are never closed for room.

use super::broker::Broker;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// An unfinished connection younger than this (or than half the connect
/// timeout, if shorter) is never closed to make room: a burst of good
/// clients connecting together must not push each other out.
pub const STALE_AFTER: Duration = Duration::from_millis(500);

/// Refusals are logged at most once per this interval (with the count of
/// the others), so a flood cannot push everything else out of the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// The admission state of one broker.
#[derive(Default)]
pub(crate) struct Gate {
    /// Connections not past CONNECT yet, oldest first (ids only grow).
    unfinished: Mutex<BTreeMap<u64, Unfinished>>,
    next: AtomicU64,
    refusals: Mutex<RefusalLog>,
}

struct Unfinished {
    peer: SocketAddr,
    what: &'static str,
    since: Instant,
    evict: Arc<Notify>,
    counted: Arc<AtomicBool>,
}

#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    /// Refusals not logged since `last`.
    quiet: u64,
}

/// One admitted socket, counted in `sockets` until dropped.
pub(crate) struct Admission {
    broker: Broker,
    id: u64,
    evict: Arc<Notify>,
    counted: Arc<AtomicBool>,
}

/// " (TLS)" and the like, for a log line; nothing for plain TCP.
fn via(what: &str) -> String {
    if what.is_empty() {
        String::new()
    } else {
        format!(" ({what})")
    }
}

impl Broker {
    /// Admits a socket just accepted on a listener (`what`: "TLS",
    /// "websocket", "wss", "" for plain TCP), or refuses it (logged,
    /// counted): `None` means close it now.
    pub(crate) fn admit(&self, peer: SocketAddr, what: &'static str) -> Option<Admission> {
        let gate = self.gate();
        let counters = self.counters();
        let max = self.limits().max_connections as u64;
        let stale = STALE_AFTER.min(self.limits().connect_timeout / 2);
        let mut unfinished = gate.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        if counters.sockets.load(Ordering::Relaxed) >= max {
            // Room is made only by an unfinished connection that has had
            // its chance.
            let oldest = unfinished
                .first_key_value()
                .filter(|(_, u)| u.since.elapsed() >= stale)
                .map(|(&id, _)| id);
            let Some(old) = oldest.and_then(|id| unfinished.remove(&id)) else {
                drop(unfinished);
                self.refused(peer, what);
                return None;
            };
            old.evict.notify_one();
            // Its slot is handed over now: the bound holds even before its
            // task has noticed.
            if old.counted.swap(false, Ordering::Relaxed) {
                counters.sockets.fetch_sub(1, Ordering::Relaxed);
            }
            counters.evicted.fetch_add(1, Ordering::Relaxed);
            self.log(format!(
                "{}{}: closed, its handshake or CONNECT unfinished after {:.1} s, to make room for a new connection (max_connections {max})",
                old.peer,
                via(old.what),
                old.since.elapsed().as_secs_f64()
            ));
        }
        counters.sockets.fetch_add(1, Ordering::Relaxed);
        let id = gate.next.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        let counted = Arc::new(AtomicBool::new(true));
        unfinished.insert(
            id,
            Unfinished {
                peer,
                what,
                since: Instant::now(),
                evict: evict.clone(),
                counted: counted.clone(),
            },
        );
        Some(Admission {
            broker: self.clone(),
            id,
            evict,
            counted,
        })
    }

    fn refused(&self, peer: SocketAddr, what: &str) {
        let counters = self.counters();
        counters.refused.fetch_add(1, Ordering::Relaxed);
        let mut log = self
            .gate()
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if log
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY)
        {
            log.quiet += 1;
            return;
        }
        let more = match log.quiet {
            0 => String::new(),
            n => format!(" ({n} more refused since the last such line)"),
        };
        log.last = Some(now);
        log.quiet = 0;
        drop(log);
        self.log(format!(
            "{peer}{}: refused, already {} connections (max_connections){more}",
            via(what),
            self.limits().max_connections
        ));
    }
}

impl Admission {
    /// Runs `fut` (a handshake, the wait for CONNECT) unless this
    /// connection is closed first to make room for a newer one: `None`.
    pub(crate) async fn unless_evicted<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::select! {
            out = fut => Some(out),
            () = self.evict.notified() => None,
        }
    }

    /// The client's CONNECT was accepted: it keeps its slot for good.
    /// False if it was closed to make room just before (its slot is gone).
    pub(crate) fn established(&self) -> bool {
        let gate = self.broker.gate();
        let mut unfinished = gate.unfinished.lock().unwrap_or_else(|e| e.into_inner());
        unfinished.remove(&self.id);
        self.counted.load(Ordering::Relaxed)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.established();
        if self.counted.swap(false, Ordering::Relaxed) {
            self.broker
                .counters()
                .sockets
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}
