//! The worker thread: owns the tokio runtime and routes commands to sessions.

use super::session::Session;
use super::{Command, ConnStatus, ConnectionId, Event, EventKind};
use crate::capture::record::{FLUSH_EVERY, Recorder, header_for};
use crate::profile::Profile;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tmpsc;

/// Called by the worker when events are waiting and the receiver has not been
/// woken since it last drained (the GUI passes `ctx.request_repaint`).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Memory the events waiting for the GUI may hold by default (payloads
/// included): past it, sessions stop reading their sockets for a while
/// (backpressure), then drop messages with a count.
pub const DEFAULT_EVENT_BUDGET: usize = 128 << 20;

/// How long a session waits for the window to catch up before it drops
/// messages rather than stop reading (the broker's keep-alive must not
/// expire meanwhile).
pub const DEFAULT_BACKPRESSURE: Duration = Duration::from_secs(5);

/// Bytes an event is taken to hold while it waits in the channel.
fn cost(kind: &EventKind) -> usize {
    match kind {
        EventKind::Message(m) => 96 + m.topic.len() + m.payload.len(),
        EventKind::Packet(r) => 160 + r.detail.topic.as_ref().map_or(0, String::len),
        _ => 128,
    }
}

/// What was dropped for one connection since it was last reported.
#[derive(Default)]
struct Drops {
    messages: u64,
    packets: u64,
}

/// The channel's shared bookkeeping: bytes waiting, and drops per connection.
#[derive(Default)]
struct Queue {
    queued: AtomicUsize,
    any_dropped: AtomicBool,
    drops: Mutex<HashMap<ConnectionId, Drops>>,
}

/// The sending half the sessions use: pushes an event and wakes the receiver
/// once per drain, not once per message. Bounded in memory: messages and
/// packet records past the budget are dropped and counted (control events
/// never are), and [`EventSink::over_budget`] tells a session to wait first.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<Event>,
    wake: Option<Wake>,
    wake_pending: Arc<AtomicBool>,
    queue: Arc<Queue>,
    budget: usize,
    max_wait: Duration,
    /// Zero point of every packet timestamp.
    pub(crate) epoch: Instant,
    /// Recordings by connection; written before the budget can drop anything.
    recorders: Arc<Mutex<HashMap<ConnectionId, Recorder>>>,
    recording: Arc<AtomicBool>,
}

impl EventSink {
    pub(crate) fn send(&self, conn: ConnectionId, kind: EventKind) {
        if self.recording.load(Ordering::Acquire) {
            self.record(conn, &kind);
        }
        let cost = cost(&kind);
        let droppable = matches!(kind, EventKind::Message(_) | EventKind::Packet(_));
        // Sessions wait from half the budget on (see `over_budget`); only
        // what overshoots the whole budget is dropped.
        if droppable && self.queue.queued.load(Ordering::Acquire) > self.budget {
            let mut drops = self.queue.drops.lock().unwrap_or_else(|e| e.into_inner());
            let d = drops.entry(conn).or_default();
            match kind {
                EventKind::Message(_) => d.messages += 1,
                _ => d.packets += 1,
            }
            self.queue.any_dropped.store(true, Ordering::Release);
            return;
        }
        if self.queue.any_dropped.load(Ordering::Acquire) {
            self.report_drops(conn);
        }
        self.push(conn, kind, cost);
    }

    /// Writes the event to the connection's recording, if it has one; a
    /// write error is said once (the recording counts what it loses).
    fn record(&self, conn: ConnectionId, kind: &EventKind) {
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = recorders.get_mut(&conn) else {
            return;
        };
        let failed = r.write(self.micros(), kind);
        drop(recorders);
        if let Some(why) = failed {
            self.push(conn, EventKind::Error(why), 128);
        }
    }

    fn start_recording(&self, conn: ConnectionId, recorder: Recorder) {
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        let old = recorders.insert(conn, recorder);
        self.recording.store(true, Ordering::Release);
        drop(recorders);
        if let Some(old) = old
            && let Err(why) = old.finish(self.micros())
        {
            self.push(conn, EventKind::Error(why), 128);
        }
    }

    fn stop_recording(&self, conn: Option<ConnectionId>) {
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        let stopped: Vec<(ConnectionId, Recorder)> = match conn {
            Some(c) => recorders.remove(&c).map(|r| (c, r)).into_iter().collect(),
            None => recorders.drain().collect(),
        };
        self.recording
            .store(!recorders.is_empty(), Ordering::Release);
        drop(recorders);
        for (conn, r) in stopped {
            if let Err(why) = r.finish(self.micros()) {
                self.push(conn, EventKind::Error(why), 128);
            }
        }
    }

    fn flush_recordings(&self) {
        let mut failures = Vec::new();
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        for (conn, r) in recorders.iter_mut() {
            if let Some(why) = r.flush() {
                failures.push((*conn, why));
            }
        }
        drop(recorders);
        for (conn, why) in failures {
            self.push(conn, EventKind::Error(why), 128);
        }
    }

    fn push(&self, conn: ConnectionId, kind: EventKind, cost: usize) {
        self.queue.queued.fetch_add(cost, Ordering::AcqRel);
        // A failed send only means the receiver is gone.
        self.tx.send(Event { conn, kind }).ok();
        if let Some(wake) = &self.wake
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            wake();
        }
    }

    /// Sends the count of what was dropped for `conn`, once there is room.
    fn report_drops(&self, conn: ConnectionId) {
        let mut drops = self.queue.drops.lock().unwrap_or_else(|e| e.into_inner());
        let Some(d) = drops.remove(&conn) else {
            return;
        };
        if drops.is_empty() {
            self.queue.any_dropped.store(false, Ordering::Release);
        }
        drop(drops);
        let kind = EventKind::Dropped {
            messages: d.messages,
            packets: d.packets,
        };
        let cost = cost(&kind);
        self.push(conn, kind, cost);
    }

    /// The window is behind: events waiting hold more than half the
    /// budget, so a session should wait before it reads more.
    pub(crate) fn over_budget(&self) -> bool {
        self.queue.queued.load(Ordering::Acquire) > self.budget / 2
    }

    /// Backpressure: while the window is behind, waits (without blocking
    /// other sessions) until it catches up — for at most `max_wait` in all
    /// since `behind_since`; past that the session reads on and what
    /// overshoots the budget is dropped and counted. Reports the drops of
    /// `conn` once there is room again.
    pub(crate) async fn wait_for_room(
        &self,
        conn: ConnectionId,
        behind_since: &mut Option<Instant>,
    ) {
        if !self.over_budget() {
            *behind_since = None;
        } else {
            let since = *behind_since.get_or_insert_with(Instant::now);
            while self.over_budget() && since.elapsed() < self.max_wait {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if !self.over_budget() {
                *behind_since = None;
            }
        }
        if self.queue.any_dropped.load(Ordering::Acquire) && !self.over_budget() {
            self.report_drops(conn);
        }
    }

    pub(crate) fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Sends commands to the worker from any thread; cloning shares it.
#[derive(Clone)]
pub struct CommandSender(tmpsc::UnboundedSender<Command>);

impl CommandSender {
    pub fn send(&self, cmd: Command) {
        // Fails only once the worker has stopped.
        self.0.send(cmd).ok();
    }
}

/// Handle to the background worker. Dropping it stops every session.
pub struct Worker {
    commands: tmpsc::UnboundedSender<Command>,
    events: mpsc::Receiver<Event>,
    wake_pending: Arc<AtomicBool>,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread. `wake` is called when new events wait.
    pub fn spawn(wake: Option<Wake>) -> Worker {
        Worker::spawn_bounded(wake, DEFAULT_EVENT_BUDGET, DEFAULT_BACKPRESSURE)
    }

    /// Like [`Worker::spawn`], with the memory the waiting events may hold
    /// and how long a session stops reading before it drops messages.
    pub fn spawn_bounded(wake: Option<Wake>, budget: usize, max_wait: Duration) -> Worker {
        let (cmd_tx, cmd_rx) = tmpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let queue = Arc::new(Queue::default());
        let sink = EventSink {
            tx: ev_tx,
            wake,
            wake_pending: wake_pending.clone(),
            queue: queue.clone(),
            budget,
            max_wait,
            epoch: Instant::now(),
            recorders: Arc::default(),
            recording: Arc::default(),
        };
        let thread = std::thread::Builder::new()
            .name("mqscope-worker".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        sink.send(
                            0,
                            EventKind::Error(format!("cannot start the network runtime: {e}")),
                        );
                        return;
                    }
                };
                runtime.block_on(run(cmd_rx, sink));
            })
            .ok();
        Worker {
            commands: cmd_tx,
            events: ev_rx,
            wake_pending,
            queue,
            thread,
        }
    }

    pub fn send(&self, cmd: Command) {
        // Fails only once the worker has stopped; nothing left to do then.
        self.commands.send(cmd).ok();
    }

    /// A handle other threads (a replay) use to send commands.
    pub fn sender(&self) -> CommandSender {
        CommandSender(self.commands.clone())
    }

    /// Takes up to `budget` waiting events without blocking. Once the
    /// channel is empty, what was dropped meanwhile is reported as
    /// [`EventKind::Dropped`] events.
    pub fn drain(&self, budget: usize) -> Vec<Event> {
        self.wake_pending.store(false, Ordering::Release);
        let mut events: Vec<Event> = self.events.try_iter().take(budget).collect();
        self.release(events.iter().map(|e| cost(&e.kind)).sum());
        if events.len() < budget {
            events.extend(self.take_drops());
        }
        events
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        let event = match self.events.try_recv() {
            Ok(event) => event,
            Err(_) => {
                if let Some(report) = self.take_drops().into_iter().next() {
                    return Some(report);
                }
                self.events.recv_timeout(timeout).ok()?
            }
        };
        self.release(cost(&event.kind));
        Some(event)
    }

    fn release(&self, freed: usize) {
        let queued = self.queue.queued.load(Ordering::Acquire);
        self.queue
            .queued
            .fetch_sub(freed.min(queued), Ordering::AcqRel);
    }

    /// The drops not reported yet, one event per connection.
    fn take_drops(&self) -> Vec<Event> {
        if !self.queue.any_dropped.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut drops = self.queue.drops.lock().unwrap_or_else(|e| e.into_inner());
        self.queue.any_dropped.store(false, Ordering::Release);
        drops
            .drain()
            .map(|(conn, d)| Event {
                conn,
                kind: EventKind::Dropped {
                    messages: d.messages,
                    packets: d.packets,
                },
            })
            .collect()
    }

    /// Bytes the events waiting in the channel are taken to hold.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued.load(Ordering::Acquire)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.commands.send(Command::Shutdown).ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

async fn run(mut commands: tmpsc::UnboundedReceiver<Command>, sink: EventSink) {
    let mut sessions: HashMap<ConnectionId, Session> = HashMap::new();
    // Packet sequence numbers per connection, kept across reopenings.
    let mut seqs: HashMap<ConnectionId, Arc<AtomicU64>> = HashMap::new();
    // What a capture's header says about each connection.
    let mut profiles: HashMap<ConnectionId, Profile> = HashMap::new();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let cmd = tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(cmd) => cmd,
                None => break,
            },
            _ = flush.tick() => {
                if sink.recording.load(Ordering::Acquire) {
                    sink.flush_recordings();
                }
                continue;
            }
        };
        match cmd {
            Command::Record { conn, path, status } => {
                let Some(profile) = profiles.get(&conn) else {
                    let why = "nothing to record: the connection was never opened".to_string();
                    status.failed_to_start(why.clone());
                    sink.send(conn, EventKind::Error(why));
                    continue;
                };
                match Recorder::create(&path, &header_for(profile, sink.epoch), status) {
                    Ok(r) => sink.start_recording(conn, r),
                    Err(why) => sink.send(conn, EventKind::Error(why)),
                }
            }
            Command::StopRecording { conn } => sink.stop_recording(Some(conn)),
            Command::Subscribe { conn, ref sub } => {
                if let Some(p) = profiles.get_mut(&conn)
                    && !p.subscriptions.iter().any(|s| s.filter == sub.filter)
                {
                    p.subscriptions.push(sub.clone());
                }
                match sessions.get(&conn) {
                    Some(s) => s.request(cmd),
                    None => sink.send(conn, EventKind::Error("not connected".into())),
                }
            }
            Command::Connect { conn, profile } => {
                if let Some(old) = sessions.remove(&conn) {
                    old.close(false).await;
                }
                let mut public = (*profile).clone();
                public.password.clear();
                profiles.insert(conn, public);
                let seq = seqs.entry(conn).or_default().clone();
                sessions.insert(conn, Session::start(conn, *profile, sink.clone(), seq));
            }
            Command::Disconnect { conn } => {
                if let Some(s) = sessions.remove(&conn) {
                    s.close(true).await;
                } else {
                    sink.send(
                        conn,
                        EventKind::Status(ConnStatus::Disconnected { reason: None }),
                    );
                }
            }
            Command::Drop { conn } => {
                if let Some(s) = sessions.remove(&conn) {
                    s.close(false).await;
                }
            }
            Command::Shutdown => break,
            other => {
                let conn = other.conn();
                match sessions.get(&conn) {
                    Some(s) => s.request(other),
                    None => sink.send(conn, EventKind::Error("not connected".into())),
                }
            }
        }
    }
    for (_, s) in sessions.drain() {
        s.close(true).await;
    }
    // After the sessions: their DISCONNECTs are in the recordings.
    sink.stop_recording(None);
}

impl Command {
    fn conn(&self) -> ConnectionId {
        match self {
            Command::Connect { conn, .. }
            | Command::Disconnect { conn }
            | Command::Drop { conn }
            | Command::Subscribe { conn, .. }
            | Command::Unsubscribe { conn, .. }
            | Command::Publish { conn, .. }
            | Command::Record { conn, .. }
            | Command::StopRecording { conn } => *conn,
            Command::Shutdown => 0,
        }
    }
}
