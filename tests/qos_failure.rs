//! The QoS lab's failure cases on real brokers, through the real worker: a
//! connection cut at a step of the publish handshake (by the relay on the
//! client side, or by the sandbox on its side), and what a separate
//! subscriber counted: QoS 0 lost, QoS 1 resent with DUP (a duplicate when
//! the PUBACK was lost), QoS 2 exactly once.

mod common;
mod sandbox_util;

use mqscope::app::qos_fault::{FaultLine, FaultRow, FaultSide, FaultStatus, Verdict, owner_of};
use mqscope::app::qos_lab::QosLab;
use mqscope::model::packet::{Direction, PacketKind};
use mqscope::mqtt::fault::CutStep;
use mqscope::mqtt::{Command, ConnStatus, ConnectionId, EventKind, PublishOutcome, Worker};
use mqscope::profile::{Profile, ProtocolVersion};
use mqscope::sandbox::Sandbox;
use std::time::{Duration, Instant};

const OWNER: ConnectionId = 5;

fn send(worker: &Worker, cmds: Vec<Command>) {
    for cmd in cmds {
        worker.send(cmd);
    }
}

/// Runs one failure case to its end; returns the lab (with its rows).
fn run_case(
    profile: &Profile,
    step: CutStep,
    side: FaultSide,
    sandbox: Option<&Sandbox>,
) -> QosLab {
    let worker = Worker::spawn(None);
    let mut lab = QosLab::new(OWNER);
    let first = lab
        .start_failure(
            OWNER,
            profile,
            step,
            side,
            sandbox.map(|s| s.broker().clone()),
            24,
        )
        .expect("the failure run starts");
    send(&worker, first);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab.is_done() {
        assert!(
            Instant::now() < deadline,
            "the failure run did not finish: {:?}",
            lab.failure().map(|f| f.status().clone())
        );
        if let Some(event) = worker.recv_timeout(Duration::from_millis(50))
            && owner_of(event.conn) == Some(OWNER)
        {
            let cmds = lab.on_lab_event(event.conn, &event.kind);
            send(&worker, cmds);
        }
        let cmds = lab.tick(Instant::now());
        send(&worker, cmds);
    }
    let run = lab.failure().expect("a failure run");
    assert_eq!(run.status(), &FaultStatus::Done, "rows: {:#?}", run.rows());
    lab
}

fn rows(lab: &QosLab) -> [FaultRow; 3] {
    lab.failure().expect("a failure run").rows().clone()
}

fn verdicts(rows: &[FaultRow; 3]) -> Vec<Verdict> {
    rows.iter()
        .map(|r| r.verdict().expect("finished"))
        .collect()
}

/// The publisher's PUBLISH records of a level: (dup, before or after the cut).
fn publishes(row: &FaultRow) -> Vec<(bool, bool)> {
    let mut after_cut = false;
    let mut out = Vec::new();
    for line in &row.lines {
        match line {
            FaultLine::Cut(_) => after_cut = true,
            FaultLine::Packet(r) if r.kind == PacketKind::Publish && r.dir == Direction::Out => {
                out.push((r.detail.dup == Some(true), after_cut));
            }
            _ => {}
        }
    }
    out
}

fn check_lost_publish(rows: &[FaultRow; 3]) {
    assert_eq!(
        verdicts(rows),
        vec![Verdict::Lost, Verdict::Once, Verdict::Once],
        "{rows:#?}"
    );
    assert!(rows[0].cut.is_some(), "QoS 0 was cut: {:?}", rows[0]);
    assert_eq!(rows[0].resent_with_dup, 0, "QoS 0 is never resent");
    assert_eq!(publishes(&rows[0]), vec![(false, false)]);
    assert_eq!(rows[0].outcome, Some(PublishOutcome::Sent));
    for row in &rows[1..] {
        assert_eq!(row.session_present, Some(true), "{row:?}");
        // The first PUBLISH was lost; the resend after the reconnect has DUP.
        assert_eq!(
            publishes(row),
            vec![(false, false), (true, true)],
            "{row:?}"
        );
        assert_eq!(row.outcome, Some(PublishOutcome::Acknowledged));
    }
    assert!(rows[0].summary().contains("lost the message"));
    assert!(rows[1].summary().contains("redelivered it with DUP"));
}

fn check_lost_ack(rows: &[FaultRow; 3]) {
    assert_eq!(
        verdicts(rows),
        vec![Verdict::Once, Verdict::Duplicate(2), Verdict::Once],
        "{rows:#?}"
    );
    assert!(!rows[0].applies && rows[0].cut.is_none());
    assert!(rows[1].cut.as_deref().is_some_and(|c| c.contains("PUBACK")));
    assert!(rows[2].cut.as_deref().is_some_and(|c| c.contains("PUBREC")));
    for row in &rows[1..] {
        assert_eq!(
            publishes(row),
            vec![(false, false), (true, true)],
            "{row:?}"
        );
        assert_eq!(row.resent_pubrel, 0, "no PUBREL went out before the cut");
    }
    assert!(rows[1].summary().contains("duplicate"));
    assert!(rows[2].summary().contains("once"));
}

fn check_cut_after_pubrel(rows: &[FaultRow; 3]) {
    assert_eq!(
        verdicts(rows),
        vec![Verdict::Once, Verdict::Once, Verdict::Once],
        "{rows:#?}"
    );
    assert!(!rows[0].applies && !rows[1].applies);
    assert!(
        rows[2]
            .cut
            .as_deref()
            .is_some_and(|c| c.contains("PUBCOMP"))
    );
    // Only the PUBREL is resent, not the PUBLISH.
    assert_eq!(publishes(&rows[2]), vec![(false, false)]);
    assert!(rows[2].pubrel_before_cut);
    assert!(rows[2].resent_pubrel >= 1, "{:?}", rows[2]);
    assert_eq!(rows[2].outcome, Some(PublishOutcome::Acknowledged));
    assert!(rows[2].summary().contains("resent PUBREL"));
}

#[test]
fn mosquitto_client_side_cuts_lose_qos0_duplicate_qos1_and_keep_qos2_once() {
    let broker = common::Broker::start();
    let profile = common::profile_for(&broker);

    let lab = run_case(&profile, CutStep::AfterPublish, FaultSide::Client, None);
    check_lost_publish(&rows(&lab));

    let lab = run_case(&profile, CutStep::AfterAck, FaultSide::Client, None);
    let r = rows(&lab);
    check_lost_ack(&r);
    // On the wire (as the relay saw it): the QoS 1 and 2 resends had DUP set.
    let relay = lab.failure().and_then(|f| f.relay()).expect("relay");
    let dup_publishes: Vec<u8> = relay
        .seen()
        .iter()
        .filter(|f| f.kind == PacketKind::Publish && f.dir == Direction::Out && f.dup)
        .map(|f| f.qos)
        .collect();
    assert_eq!(dup_publishes, vec![1, 2]);
    assert_eq!(relay.cuts().len(), 2);
    // The connections through the relay: one, plus one reconnect per cut.
    assert_eq!(relay.connections(), 3);

    let lab = run_case(&profile, CutStep::AfterPubrel, FaultSide::Client, None);
    check_cut_after_pubrel(&rows(&lab));
    // The broker keeps no session of the lab's publisher after the run.
    let publisher = lab.failure().expect("run").publisher_id().to_string();
    let worker = Worker::spawn(None);
    let mut again = common::profile_for(&broker);
    again.client_id = publisher;
    again.clean_session = false;
    worker.send(Command::Connect {
        conn: 9,
        profile: Box::new(again),
    });
    let present = common::wait_for(&worker, Duration::from_secs(10), |e| match &e.kind {
        EventKind::Status(ConnStatus::Connected {
            session_present, ..
        }) if e.conn == 9 => Some(*session_present),
        _ => None,
    });
    assert!(!present, "the lab's session was left on the broker");
    let relay = lab.failure().and_then(|f| f.relay()).expect("relay");
    let pubrels = relay
        .seen()
        .iter()
        .filter(|f| f.kind == PacketKind::Pubrel && f.dir == Direction::Out)
        .count();
    assert_eq!(pubrels, 2, "PUBREL before the cut and again after it");
}

#[test]
fn mosquitto_mqtt5_session_expiry_keeps_the_retry() {
    let broker = common::Broker::start();
    let mut profile = common::profile_for(&broker);
    profile.protocol = ProtocolVersion::V5;
    let lab = run_case(&profile, CutStep::AfterAck, FaultSide::Client, None);
    check_lost_ack(&rows(&lab));
}

#[test]
fn sandbox_client_side_cuts_match_mosquitto() {
    let sandbox = sandbox_util::broker(Default::default());
    let profile = sandbox_profile(&sandbox);
    check_lost_publish(&rows(&run_case(
        &profile,
        CutStep::AfterPublish,
        FaultSide::Client,
        None,
    )));
    check_lost_ack(&rows(&run_case(
        &profile,
        CutStep::AfterAck,
        FaultSide::Client,
        None,
    )));
    check_cut_after_pubrel(&rows(&run_case(
        &profile,
        CutStep::AfterPubrel,
        FaultSide::Client,
        None,
    )));
}

#[test]
fn sandbox_side_faults_are_logged_counted_and_give_the_same_verdicts() {
    let sandbox = sandbox_util::broker(Default::default());
    let profile = sandbox_profile(&sandbox);

    let lab = run_case(
        &profile,
        CutStep::AfterPublish,
        FaultSide::Sandbox,
        Some(&sandbox),
    );
    let r = rows(&lab);
    check_lost_publish(&r);
    assert!(r[0].cut.as_deref().is_some_and(|c| c.contains("sandbox")));
    assert_eq!(sandbox.broker().faults_injected(), 3);
    let log = sandbox_util::log(&sandbox);
    assert!(
        log.contains("fault injected") && log.contains("PUBLISH dropped unread"),
        "{log}"
    );

    check_lost_ack(&rows(&run_case(
        &profile,
        CutStep::AfterAck,
        FaultSide::Sandbox,
        Some(&sandbox),
    )));
    assert_eq!(sandbox.broker().faults_injected(), 5);
    check_cut_after_pubrel(&rows(&run_case(
        &profile,
        CutStep::AfterPubrel,
        FaultSide::Sandbox,
        Some(&sandbox),
    )));
    assert_eq!(sandbox.broker().faults_injected(), 6);
    let log = sandbox_util::log(&sandbox);
    assert!(
        log.contains("fault injected: client 'mqscope-lab-pub-"),
        "{log}"
    );
    for words in ["PUBACK id=", "PUBREC id=", "PUBCOMP id="] {
        let line = log.lines().find(|l| l.contains(words));
        assert!(
            line.is_some_and(|l| l.contains("not sent and the connection closed")),
            "{words}: {log}"
        );
    }
    assert_eq!(sandbox.broker().fault(), None, "nothing left armed");
}

#[test]
fn sandbox_side_needs_the_sandbox_and_client_side_needs_plain_tcp() {
    let sandbox = sandbox_util::broker(Default::default());
    let mut profile = sandbox_profile(&sandbox);
    let mut lab = QosLab::new(OWNER);
    let err = lab
        .start_failure(
            OWNER,
            &profile,
            CutStep::AfterAck,
            FaultSide::Sandbox,
            None,
            24,
        )
        .expect_err("no sandbox given");
    assert!(err.contains("sandbox"), "{err}");
    assert_eq!(lab.failure_error(), Some(err.as_str()));
    profile.transport = mqscope::profile::TransportKind::Tls;
    let err = lab
        .start_failure(
            OWNER,
            &profile,
            CutStep::AfterAck,
            FaultSide::Client,
            None,
            24,
        )
        .expect_err("TLS through the relay");
    assert!(err.contains("plain TCP"), "{err}");
}

fn sandbox_profile(sandbox: &Sandbox) -> Profile {
    Profile {
        name: "sandbox".into(),
        host: "127.0.0.1".into(),
        port: sandbox.port(),
        subscriptions: Vec::new(),
        ..Profile::default()
    }
}

#[test]
fn an_unreachable_broker_ends_the_run_with_the_reason() {
    let port = common::free_port();
    let profile = Profile {
        name: "nobody".into(),
        host: "127.0.0.1".into(),
        port,
        subscriptions: Vec::new(),
        ..Profile::default()
    };
    let worker = Worker::spawn(None);
    let mut lab = QosLab::new(OWNER);
    let first = lab
        .start_failure(
            OWNER,
            &profile,
            CutStep::AfterAck,
            FaultSide::Client,
            None,
            24,
        )
        .expect("starts");
    send(&worker, first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lab.is_done() {
        assert!(Instant::now() < deadline, "the run did not end");
        if let Some(event) = worker.recv_timeout(Duration::from_millis(50))
            && owner_of(event.conn) == Some(OWNER)
        {
            send(&worker, lab.on_lab_event(event.conn, &event.kind));
        }
        send(&worker, lab.tick(Instant::now()));
    }
    let Some(FaultStatus::Aborted(why)) = lab.failure().map(|f| f.status().clone()) else {
        panic!("expected an aborted run");
    };
    // Whichever of the lab's two connections noticed first says so.
    assert!(
        why.contains(&format!("127.0.0.1:{port}")) && why.contains("connect"),
        "{why}"
    );
    assert!(
        lab.failure()
            .expect("run")
            .rows()
            .iter()
            .all(|r| !r.finished)
    );
}

#[test]
fn stopping_a_run_removes_the_lab_session_from_the_broker() {
    let broker = common::Broker::start();
    let profile = common::profile_for(&broker);
    let worker = Worker::spawn(None);
    let mut lab = QosLab::new(OWNER);
    let first = lab
        .start_failure(
            OWNER,
            &profile,
            CutStep::AfterPubrel,
            FaultSide::Client,
            None,
            24,
        )
        .expect("starts");
    send(&worker, first);
    // Stop as soon as the first level is under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the run did not start");
        if let Some(event) = worker.recv_timeout(Duration::from_millis(50))
            && owner_of(event.conn) == Some(OWNER)
        {
            send(&worker, lab.on_lab_event(event.conn, &event.kind));
        }
        if matches!(
            lab.failure().map(|f| f.status().clone()),
            Some(FaultStatus::Level(_))
        ) {
            break;
        }
    }
    send(&worker, lab.stop());
    let publisher = lab.failure().expect("run").publisher_id().to_string();
    // The lab reopens its publisher clean and closes it once it is in.
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !closed {
        if let Some(event) = worker.recv_timeout(Duration::from_millis(50))
            && owner_of(event.conn) == Some(OWNER)
        {
            let cmds = lab.on_lab_event(event.conn, &event.kind);
            closed = cmds.iter().any(|c| matches!(c, Command::Disconnect { .. }));
            send(&worker, cmds);
        }
    }
    assert!(closed, "the clean publisher was closed");
    std::thread::sleep(Duration::from_millis(300));
    let mut again = common::profile_for(&broker);
    again.client_id = publisher;
    again.clean_session = false;
    worker.send(Command::Connect {
        conn: 9,
        profile: Box::new(again),
    });
    let present = common::wait_for(&worker, Duration::from_secs(10), |e| match &e.kind {
        EventKind::Status(ConnStatus::Connected {
            session_present, ..
        }) if e.conn == 9 => Some(*session_present),
        _ => None,
    });
    assert!(!present, "the stopped run left its session on the broker");
}
