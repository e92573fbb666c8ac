//! The background MQTT worker: a thread running a tokio runtime, one session
//! task per open connection. The GUI (or a headless command) sends
//! [`Command`]s and receives [`Event`]s; it never touches the network.

mod errors;
pub mod fault;
mod options;
mod session;
pub(crate) mod v4;
pub(crate) mod v5;
pub(crate) mod wire;
mod worker;

pub use crate::model::protocol::Message;
pub use errors::{
    Failure, describe_connection_error, describe_connection_error_v5, describe_return_code,
};
pub use options::{OptionsError, build_options, build_options_v5};
pub use worker::{CommandSender, DEFAULT_BACKPRESSURE, DEFAULT_EVENT_BUDGET, Wake, Worker};

use crate::model::packet::PacketRecord;
use crate::model::protocol::Properties;
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
        /// MQTT 5 PUBLISH properties (a 3.1.1 connection refuses them).
        props: Option<Box<Properties>>,
    },
    /// Record every event of the connection (packets, messages, status,
    /// acknowledgements) to a capture file at `path`, from now until
    /// `StopRecording` or shutdown; `status` shows its progress and errors.
    Record {
        conn: ConnectionId,
        path: std::path::PathBuf,
        status: crate::capture::record::RecordingStatus,
    },
    /// Close the connection's recording (writes its end record).
    StopRecording {
        conn: ConnectionId,
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

/// The outcome of one `Command::Publish`.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishOutcome {
    /// QoS 0: written to the socket (there is no acknowledgement).
    Sent,
    /// QoS 1 PUBACK or QoS 2 PUBCOMP received.
    Acknowledged,
    /// Acknowledged with an MQTT 5 reason code that is not plain success,
    /// in words ("PUBACK 0x10 No matching subscribers").
    AcknowledgedWith(String),
    /// Refused (an MQTT 5 reason code of 0x80 or more, in words) or lost.
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
        /// The reason code in words: for a refusal, and for every MQTT 5
        /// answer ("0x87 Not authorized", "0x01 Granted QoS 1").
        reason: Option<String>,
    },
    Unsubscribed {
        filter: String,
        /// MQTT 5: a reason code other than success, in words.
        reason: Option<String>,
    },
    /// The broker accepted the connection: CONNACK's session-present flag
    /// and, for MQTT 5, its properties (assigned client id, limits, ...).
    Connack {
        session_present: bool,
        props: Option<Box<Properties>>,
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
    /// The window fell so far behind that the worker dropped this many
    /// messages and packet records of the connection (counted, never silent).
    Dropped {
        messages: u64,
        packets: u64,
    },
}

#[derive(Clone, Debug)]
pub struct Event {
    pub conn: ConnectionId,
    pub kind: EventKind,
}
