//! The background MQTT worker: a thread running a tokio runtime, one session
//! task per open connection. The GUI (or a headless command) sends
//! [`Command`]s and receives [`Event`]s; it never touches the network.

mod errors;
mod options;
mod session;
mod worker;

pub use errors::{Failure, describe_connection_error, describe_return_code};
pub use options::{OptionsError, build_options};
pub use worker::{Wake, Worker};

use crate::model::packet::PacketRecord;
use crate::profile::{Profile, Qos, SubscriptionSpec};
use std::time::{Duration, SystemTime};

/// Identifies one open connection; chosen by whoever sends `Connect`.
pub type ConnectionId = u64;

/// Identifies one publish request, so its outcome can be reported back.
pub type PublishToken = u64;

/// What the GUI or a headless command asks the worker to do.
#[derive(Debug)]
pub enum Command {
    /// Open (or reopen) a connection with these settings. `profile.password`
    /// is used as given.
    Connect {
        conn: ConnectionId,
        profile: Box<Profile>,
    },
    /// Graceful: sends DISCONNECT (the broker discards the will).
    Disconnect {
        conn: ConnectionId,
    },
    /// Cut the TCP connection without DISCONNECT (the broker fires the will).
    Drop {
        conn: ConnectionId,
    },
    Subscribe {
        conn: ConnectionId,
        sub: SubscriptionSpec,
    },
    Unsubscribe {
        conn: ConnectionId,
        filter: String,
    },
    Publish {
        conn: ConnectionId,
        token: PublishToken,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
        retain: bool,
    },
    /// Stop every session and the runtime.
    Shutdown,
}

/// Where a connection stands, as shown in the connection bar.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnStatus {
    Connecting,
    Connected {
        since: SystemTime,
        session_present: bool,
    },
    /// The last attempt failed (or the connection dropped); the next attempt
    /// starts after `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        reason: String,
    },
    /// Closed by the user, or failed in a way retrying cannot fix.
    Disconnected {
        reason: Option<String>,
    },
}

/// A PUBLISH received from the broker.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    /// Cloning is a reference-count bump, not a copy.
    pub payload: bytes::Bytes,
    pub qos: Qos,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
    pub received: SystemTime,
}

/// The outcome of one `Command::Publish`.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishOutcome {
    /// QoS 0: written to the socket (there is no acknowledgement).
    Sent,
    /// QoS 1 PUBACK or QoS 2 PUBCOMP received.
    Acknowledged,
    Failed(String),
}

#[derive(Clone, Debug)]
pub enum EventKind {
    Status(ConnStatus),
    Message(Message),
    /// SUBACK for a filter: `Some(granted)` or `None` when refused (0x80).
    Subscribed {
        filter: String,
        granted: Option<Qos>,
    },
    Unsubscribed {
        filter: String,
    },
    Published {
        token: PublishToken,
        outcome: PublishOutcome,
    },
    /// Every control packet that crossed the wire, in either direction.
    Packet(PacketRecord),
    /// A problem that does not change the connection status (e.g. a
    /// subscription the worker could not queue).
    Error(String),
}

#[derive(Clone, Debug)]
pub struct Event {
    pub conn: ConnectionId,
    pub kind: EventKind,
}
