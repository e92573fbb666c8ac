//! The worker thread: owns the tokio runtime and routes commands to sessions.

use super::session::Session;
use super::{Command, ConnStatus, ConnectionId, Event, EventKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tmpsc;

/// Called by the worker when events are waiting and the receiver has not been
/// woken since it last drained (the GUI passes `ctx.request_repaint`).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The sending half the sessions use: pushes an event and wakes the receiver
/// once per drain, not once per message.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<Event>,
    wake: Option<Wake>,
    wake_pending: Arc<AtomicBool>,
    /// Zero point of every packet timestamp.
    pub(crate) epoch: Instant,
}

impl EventSink {
    pub(crate) fn send(&self, conn: ConnectionId, kind: EventKind) {
        // A failed send only means the receiver is gone.
        self.tx.send(Event { conn, kind }).ok();
        if let Some(wake) = &self.wake
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            wake();
        }
    }

    pub(crate) fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// Handle to the background worker. Dropping it stops every session.
pub struct Worker {
    commands: tmpsc::UnboundedSender<Command>,
    events: mpsc::Receiver<Event>,
    wake_pending: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread. `wake` is called when new events wait.
    pub fn spawn(wake: Option<Wake>) -> Worker {
        let (cmd_tx, cmd_rx) = tmpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let sink = EventSink {
            tx: ev_tx,
            wake,
            wake_pending: wake_pending.clone(),
            epoch: Instant::now(),
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
            thread,
        }
    }

    pub fn send(&self, cmd: Command) {
        // Fails only once the worker has stopped; nothing left to do then.
        self.commands.send(cmd).ok();
    }

    /// Takes up to `budget` waiting events without blocking.
    pub fn drain(&self, budget: usize) -> Vec<Event> {
        self.wake_pending.store(false, Ordering::Release);
        self.events.try_iter().take(budget).collect()
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
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
    while let Some(cmd) = commands.recv().await {
        match cmd {
            Command::Connect { conn, profile } => {
                if let Some(old) = sessions.remove(&conn) {
                    old.close(false).await;
                }
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
}

impl Command {
    fn conn(&self) -> ConnectionId {
        match self {
            Command::Connect { conn, .. }
            | Command::Disconnect { conn }
            | Command::Drop { conn }
            | Command::Subscribe { conn, .. }
            | Command::Unsubscribe { conn, .. }
            | Command::Publish { conn, .. } => *conn,
            Command::Shutdown => 0,
        }
    }
}
