//! Publishing a capture again: its messages (or a time range / topic subset
//! of them) into any connection, at the original pace, N× faster or as fast
//! as the broker takes them, topics optionally remapped, QoS and retain as
//! recorded or overridden. GUI-free: a [`Replay`] runs on its own thread,
//! sends `Command::Publish` through whatever `send` it was given (the
//! worker's), and is told each publish's outcome by
//! [`Replay::on_published`]; pause, resume, stop and progress are methods.

use super::file::{CaptureError, CaptureFile};
use crate::model::protocol::{Properties, Qos};
use crate::model::topic::{matches as topic_matches, validate_topic_filter};
use crate::mqtt::{Command, ConnectionId, PublishOutcome, PublishToken};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tokens of replayed publishes carry this bit (the QoS lab uses bit 63).
pub const TOKEN_BIT: PublishToken = 1 << 62;

/// How fast to replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// The recorded gaps divided by this factor (1.0 = the original pace).
    Times(f64),
    /// As fast as the broker acknowledges (a bounded number in flight).
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let n = s.strip_suffix(['x', 'X']).unwrap_or(s);
        match n.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Times(f)),
            _ => Err(format!(
                "speed '{s}' is not a positive number or 'max' (e.g. 1, 10, 0.5, max)"
            )),
        }
    }
}

/// `FROM=TO`: topics matching the filter FROM are published on TO, whose
/// `+` and `#` take the levels FROM's wildcards matched, in order
/// (`plant/#=test/plant/#`: `plant/a/b` → `test/plant/a/b`, `plant` →
/// `test/plant`).
#[derive(Clone, Debug, PartialEq)]
pub struct TopicMap {
    pub from: String,
    pub to: String,
}

impl std::str::FromStr for TopicMap {
    type Err = String;
    fn from_str(s: &str) -> Result<TopicMap, String> {
        let Some((from, to)) = s.split_once('=') else {
            return Err(format!("--map '{s}' is not FROM=TO"));
        };
        validate_topic_filter(from).map_err(|why| format!("--map: FROM '{from}': {why}"))?;
        validate_topic_filter(to).map_err(|why| format!("--map: TO '{to}': {why}"))?;
        let count = |t: &str, w: &str| t.split('/').filter(|l| *l == w).count();
        if count(from, "+") != count(to, "+") || count(from, "#") != count(to, "#") {
            return Err(format!(
                "--map '{s}': TO must have the same wildcards as FROM (each + and # of FROM says where its levels go in TO)"
            ));
        }
        Ok(TopicMap {
            from: from.into(),
            to: to.into(),
        })
    }
}

impl TopicMap {
    /// The topic `topic` is published on, or `None` when FROM does not match.
    pub fn apply(&self, topic: &str) -> Option<String> {
        let from: Vec<&str> = self.from.split('/').collect();
        let levels: Vec<&str> = topic.split('/').collect();
        let mut plus = Vec::new();
        let mut rest: Option<Vec<&str>> = None;
        let mut i = 0;
        for f in &from {
            match *f {
                "#" => {
                    rest = Some(levels.get(i..).map(<[&str]>::to_vec).unwrap_or_default());
                    i = levels.len();
                    break;
                }
                "+" => plus.push(*levels.get(i)?),
                lit => {
                    if levels.get(i) != Some(&lit) {
                        return None;
                    }
                }
            }
            i += 1;
        }
        if i != levels.len() {
            return None;
        }
        if rest.is_none() && (topic.starts_with('$') != self.from.starts_with('$')) {
            return None;
        }
        let mut out: Vec<&str> = Vec::new();
        let mut plus = plus.into_iter();
        for t in self.to.split('/') {
            match t {
                "+" => out.push(plus.next()?),
                "#" => out.extend(rest.iter().flatten().copied()),
                lit => out.push(lit),
            }
        }
        Some(out.join("/"))
    }
}

/// What to replay, and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub speed: Speed,
    /// Only messages recorded at or after this many seconds from the
    /// capture's first record.
    pub from_secs: Option<f64>,
    /// Only messages recorded before this many seconds from the first record.
    pub to_secs: Option<f64>,
    /// Only messages on topics matching one of these filters (all if empty).
    pub topics: Vec<String>,
    /// The first map that matches a topic renames it.
    pub maps: Vec<TopicMap>,
    /// QoS for every message instead of the recorded one.
    pub qos: Option<Qos>,
    /// Retain flag for every message instead of the recorded one.
    pub retain: Option<bool>,
    /// Send the recorded MQTT 5 properties (needs an MQTT 5 connection).
    pub properties: bool,
    /// Publishes without an outcome yet, at most.
    pub in_flight: usize,
    /// Start paused (the caller resumes).
    pub paused: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            speed: Speed::Times(1.0),
            from_secs: None,
            to_secs: None,
            topics: Vec::new(),
            maps: Vec::new(),
            qos: None,
            retain: None,
            properties: true,
            in_flight: 256,
            paused: false,
        }
    }
}

/// Where a replay stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayProgress {
    /// Messages selected for replay.
    pub total: u64,
    /// Publishes handed to the connection.
    pub sent: u64,
    /// Published (QoS 0 written, QoS 1/2 acknowledged).
    pub done: u64,
    /// Refused or lost publishes.
    pub failed: u64,
    /// The first failures in words (at most 10).
    pub failures: Vec<String>,
    pub paused: bool,
    /// Stopped by the user before the end.
    pub stopped: bool,
    /// Nothing more will happen: every publish has its outcome, or stopped.
    pub finished: bool,
    /// A problem that ended the replay early (an unreadable record).
    pub error: Option<String>,
}

#[derive(Default)]
struct Shared {
    paused: AtomicBool,
    stop: AtomicBool,
    sent: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    feeding_over: AtomicBool,
    state: Mutex<(Vec<String>, Option<String>)>,
}

/// A running replay. Dropping it stops it.
pub struct Replay {
    id: u64,
    total: u64,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

static REPLAY_IDS: AtomicU64 = AtomicU64::new(1);

impl Replay {
    /// The messages of `capture` these options select (message numbers, in
    /// recorded order).
    pub fn select(capture: &CaptureFile, options: &ReplayOptions) -> Vec<u32> {
        let first = capture.time_span().map_or(0, |(f, _)| f);
        let from = options.from_secs.map(|s| first + (s.max(0.0) * 1e6) as u64);
        let to = options.to_secs.map(|s| first + (s.max(0.0) * 1e6) as u64);
        let wanted: Vec<bool> = capture
            .topics()
            .iter()
            .map(|t| {
                options.topics.is_empty() || options.topics.iter().any(|f| topic_matches(f, t))
            })
            .collect();
        (0..capture.message_count() as u32)
            .filter(|&i| {
                let Some(m) = capture.message_info(i) else {
                    return false;
                };
                let topic_ok = wanted.get(m.topic_id as usize).copied().unwrap_or(false);
                topic_ok && from.is_none_or(|f| m.t_us >= f) && to.is_none_or(|t| m.t_us < t)
            })
            .collect()
    }

    /// Starts publishing into connection `conn` through `send`.
    pub fn start(
        capture: Arc<CaptureFile>,
        conn: ConnectionId,
        options: ReplayOptions,
        send: Box<dyn Fn(Command) + Send>,
    ) -> Replay {
        let selected = Replay::select(&capture, &options);
        let id = REPLAY_IDS.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff;
        let shared = Arc::new(Shared::default());
        shared.paused.store(options.paused, Ordering::Release);
        let total = selected.len() as u64;
        let feeder = Feeder {
            capture,
            conn,
            options,
            send,
            shared: shared.clone(),
            id,
        };
        let thread = std::thread::Builder::new()
            .name("mqscope-replay".into())
            .spawn(move || feeder.run(selected))
            .map_err(|e| {
                shared.state.lock().unwrap_or_else(|e| e.into_inner()).1 =
                    Some(format!("cannot start the replay: {e}"));
                shared.feeding_over.store(true, Ordering::Release);
            })
            .ok();
        Replay {
            id,
            total,
            shared,
            thread,
        }
    }

    /// True for the tokens of this replay's publishes.
    pub fn owns_token(&self, token: PublishToken) -> bool {
        token & TOKEN_BIT != 0 && (token >> 32) & 0x3fff_ffff == self.id
    }

    /// Tells the replay the outcome of one publish; false if the token is
    /// not one of its own.
    pub fn on_published(&self, token: PublishToken, outcome: &PublishOutcome) -> bool {
        if !self.owns_token(token) {
            return false;
        }
        match outcome {
            PublishOutcome::Failed(why) => {
                self.shared.failed.fetch_add(1, Ordering::AcqRel);
                let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.0.len() < 10 {
                    state.0.push(why.clone());
                }
            }
            _ => {
                self.shared.done.fetch_add(1, Ordering::AcqRel);
            }
        }
        true
    }

    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::Release);
    }

    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::Release);
    }

    /// Sends nothing more; publishes already sent still get their outcome.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    pub fn progress(&self) -> ReplayProgress {
        let s = &self.shared;
        let sent = s.sent.load(Ordering::Acquire);
        let done = s.done.load(Ordering::Acquire);
        let failed = s.failed.load(Ordering::Acquire);
        let feeding_over = s.feeding_over.load(Ordering::Acquire);
        let stopped = s.stop.load(Ordering::Acquire);
        let state = s.state.lock().unwrap_or_else(|e| e.into_inner());
        ReplayProgress {
            total: self.total,
            sent,
            done,
            failed,
            failures: state.0.clone(),
            paused: s.paused.load(Ordering::Acquire),
            stopped,
            finished: feeding_over && (stopped || done + failed >= sent),
            error: state.1.clone(),
        }
    }

    /// Publishes sent that have no outcome yet.
    pub fn outstanding(&self) -> u64 {
        let s = &self.shared;
        s.sent
            .load(Ordering::Acquire)
            .saturating_sub(s.done.load(Ordering::Acquire) + s.failed.load(Ordering::Acquire))
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

struct Feeder {
    capture: Arc<CaptureFile>,
    conn: ConnectionId,
    options: ReplayOptions,
    send: Box<dyn Fn(Command) + Send>,
    shared: Arc<Shared>,
    id: u64,
}

impl Feeder {
    fn outstanding(&self) -> u64 {
        let s = &self.shared;
        s.sent
            .load(Ordering::Acquire)
            .saturating_sub(s.done.load(Ordering::Acquire) + s.failed.load(Ordering::Acquire))
    }

    /// Waits while paused or while too many publishes are in flight; false
    /// when stopped.
    fn wait_ready(&self, paused_for: &mut Duration) -> bool {
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return false;
            }
            if self.shared.paused.load(Ordering::Acquire) {
                let t = Instant::now();
                std::thread::sleep(Duration::from_millis(10));
                *paused_for += t.elapsed();
                continue;
            }
            if self.outstanding() >= self.options.in_flight.max(1) as u64 {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            return true;
        }
    }

    /// Waits until every publish sent has its outcome; false when stopped.
    fn wait_drained(&self, paused_for: &mut Duration) -> bool {
        while self.outstanding() > 0 {
            if !self.wait_ready(paused_for) {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    fn run(self, selected: Vec<u32>) {
        let start = Instant::now();
        let mut last_qos = None;
        let mut paused_for = Duration::ZERO;
        let first_t = selected
            .first()
            .and_then(|&i| self.capture.message_info(i))
            .map_or(0, |m| m.t_us);
        for (n, &i) in selected.iter().enumerate() {
            if !self.wait_ready(&mut paused_for) {
                break;
            }
            if let Speed::Times(f) = self.options.speed {
                let t = self.capture.message_info(i).map_or(first_t, |m| m.t_us);
                let due = Duration::from_secs_f64((t.saturating_sub(first_t)) as f64 / 1e6 / f);
                loop {
                    let elapsed = start.elapsed().saturating_sub(paused_for);
                    if elapsed >= due {
                        break;
                    }
                    if !self.wait_ready(&mut paused_for) {
                        return self.over();
                    }
                    std::thread::sleep((due - elapsed).min(Duration::from_millis(10)));
                }
            }
            let message = match self.capture.message(i) {
                Ok(m) => m,
                Err(e) => {
                    self.fail_all(e);
                    return self.over();
                }
            };
            let topic = self
                .options
                .maps
                .iter()
                .find_map(|m| m.apply(&message.topic))
                .unwrap_or_else(|| message.topic.clone());
            let props = if self.options.properties {
                message.props.and_then(|p| replayable(*p).boxed())
            } else {
                None
            };
            let qos = self.options.qos.unwrap_or(message.qos);
            // MQTT keeps order only among messages of one QoS (a QoS 2
            // message is delivered after its handshake): before a change of
            // QoS, let what is in flight finish, so the order stays as recorded.
            if last_qos.is_some_and(|q| q != qos) && !self.wait_drained(&mut paused_for) {
                break;
            }
            last_qos = Some(qos);
            let token = TOKEN_BIT | (self.id << 32) | (n as u64 & 0xffff_ffff);
            self.shared.sent.fetch_add(1, Ordering::AcqRel);
            (self.send)(Command::Publish {
                conn: self.conn,
                token,
                topic,
                payload: message.payload.to_vec(),
                qos,
                retain: self.options.retain.unwrap_or(message.retain),
                props,
            });
        }
        self.over();
    }

    fn fail_all(&self, e: CaptureError) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = Some(e.to_string());
        self.shared.stop.store(true, Ordering::Release);
    }

    fn over(&self) {
        self.shared.feeding_over.store(true, Ordering::Release);
    }
}

/// The properties a client may send again: those a broker adds on delivery
/// (subscription identifiers) or that only meant something on the recorded
/// connection (topic alias, already resolved) are left out.
fn replayable(mut p: Properties) -> Properties {
    p.subscription_identifier.clear();
    p.topic_alias = None;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> TopicMap {
        s.parse().expect("valid map")
    }

    #[test]
    fn hash_map_moves_a_subtree_and_its_root() {
        let m = map("plant/#=test/plant/#");
        assert_eq!(m.apply("plant/a/b").as_deref(), Some("test/plant/a/b"));
        assert_eq!(m.apply("plant").as_deref(), Some("test/plant"));
        assert_eq!(m.apply("plants/a"), None);
        assert_eq!(m.apply("other/plant"), None);
    }

    #[test]
    fn plus_levels_keep_their_order() {
        let m = map("site/+/dev/+/temp=t/+/+");
        assert_eq!(m.apply("site/s1/dev/d9/temp").as_deref(), Some("t/s1/d9"));
        assert_eq!(m.apply("site/s1/dev/d9/hum"), None);
    }

    #[test]
    fn exact_map_renames_one_topic() {
        let m = map("a/b=c");
        assert_eq!(m.apply("a/b").as_deref(), Some("c"));
        assert_eq!(m.apply("a/b/c"), None);
    }

    #[test]
    fn map_with_mismatched_wildcards_is_refused() {
        assert!("plant/#=test".parse::<TopicMap>().is_err());
        assert!("a/+=b/#".parse::<TopicMap>().is_err());
        assert!("no-equals".parse::<TopicMap>().is_err());
        assert!("a/#/b=c".parse::<TopicMap>().is_err());
    }

    #[test]
    fn speed_parses_factors_and_max() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("10".parse::<Speed>(), Ok(Speed::Times(10.0)));
        assert_eq!("2x".parse::<Speed>(), Ok(Speed::Times(2.0)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
