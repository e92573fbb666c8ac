//! The worker against the sandbox's MQTT 5 side: a broker DISCONNECT with a
//! reason code reaches the status, the log's packet record and the trace.
//! (Mosquitto 2.0.11 closes a taken-over session without a DISCONNECT.)

mod common;

use mqscope::model::packet::{Direction, PacketKind};
use mqscope::mqtt::{Command, ConnStatus, EventKind, Worker};
use mqscope::profile::{Profile, ProtocolVersion};
use mqscope::sandbox::{CloudBroker, DemoConfig, Sandbox, SandboxConfig};
use std::time::Duration;

fn profile(port: u16) -> Profile {
    Profile {
        name: "sandbox v5".into(),
        host: "127.0.0.1".into(),
        port,
        protocol: ProtocolVersion::V5,
        client_id: "same-id".into(),
        subscriptions: Vec::new(),
        ..Profile::default()
    }
}

#[test]
fn a_session_taken_over_hears_disconnect_0x8e_in_words() {
    let sandbox = Sandbox::start(SandboxConfig {
        port: Some(0),
        demo: DemoConfig::off(),
        cloud: CloudBroker::Off,
        ..SandboxConfig::default()
    })
    .expect("the sandbox starts");
    let first = Worker::spawn(None);
    first.send(Command::Connect {
        conn: 1,
        profile: Box::new(profile(sandbox.port())),
    });
    common::wait_connected(&first, 1);

    let second = Worker::spawn(None);
    second.send(Command::Connect {
        conn: 2,
        profile: Box::new(profile(sandbox.port())),
    });
    common::wait_connected(&second, 2);

    let mut record = None;
    let status = common::wait_for(&first, Duration::from_secs(10), |e| match &e.kind {
        EventKind::Packet(r) if r.dir == Direction::In && r.kind == PacketKind::Disconnect => {
            record = Some(r.clone());
            None
        }
        EventKind::Status(s @ ConnStatus::Reconnecting { .. }) => Some(s.clone()),
        _ => None,
    });
    let record = record.expect("the broker's DISCONNECT is recorded before the status");
    assert_eq!(record.detail.reason, Some(0x8E));
    assert_eq!(
        record.detail.reason_text.as_deref(),
        Some("0x8E Session taken over")
    );
    let ConnStatus::Reconnecting { reason, .. } = status else {
        unreachable!()
    };
    assert!(
        reason.contains("0x8E Session taken over"),
        "the status says why: {reason}"
    );
}
