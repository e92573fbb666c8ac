//! `mqscope sub` / `mqscope pub` against a real Mosquitto, used the way
//! mosquitto_sub / mosquitto_pub users would.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// `mqscope <sub|pub>` with the broker's connection flags.
fn mqscope_cmd(sub_or_pub: &str, broker: &Broker, args: &[&str]) -> Command {
    let mut cmd = mqscope();
    cmd.arg(sub_or_pub)
        .args(mqscope_connection_args(broker))
        .args(args);
    cmd
}

/// Starts `mqscope sub` with client id `id` and waits until the broker has
/// its subscription to `filter` (one of `args`' `-t`).
fn start_sub(broker: &Broker, id: &str, filter: &str, args: &[&str]) -> Lines {
    let mut cmd = mqscope_cmd("sub", broker, &["-i", id]);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let sub = Lines::new(cmd.spawn().expect("cannot start mqscope sub"));
    broker.wait_subscribed(id, filter);
    sub
}

/// Runs `mqscope pub` to completion.
fn run_pub(broker: &Broker, args: &[&str]) -> Finished {
    run_with_timeout(&mut mqscope_cmd("pub", broker, args), LIMIT)
}

fn assert_pub_ok(broker: &Broker, args: &[&str]) {
    let done = run_pub(broker, args);
    assert_eq!(
        done.code,
        Some(0),
        "mqscope pub {args:?} failed: {}\nbroker log:\n{}",
        done.stderr,
        broker.log()
    );
}

/// Reads `n` lines, sorted (several publishers: arrival order is not the test).
fn lines(sub: &Lines, n: usize) -> Vec<String> {
    let mut got: Vec<String> = (0..n).filter_map(|_| sub.next_line(LIMIT)).collect();
    got.sort();
    got
}

#[test]
fn sub_prints_topic_and_payload_at_each_qos_and_exits_after_count() {
    let broker = Broker::start();
    let mut sub = start_sub(
        &broker,
        "cli-sub",
        "cli/#",
        &["-t", "cli/#", "-q", "2", "-v", "-C", "3"],
    );
    mosquitto_pub(&broker, &["-t", "cli/q0", "-m", "zero", "-q", "0"]);
    mosquitto_pub(&broker, &["-t", "cli/q1", "-m", "one", "-q", "1"]);
    mosquitto_pub(&broker, &["-t", "cli/q2", "-m", "two words", "-q", "2"]);
    assert_eq!(
        lines(&sub, 3),
        ["cli/q0 zero", "cli/q1 one", "cli/q2 two words"]
    );
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "after -C 3 messages: {stderr}");
}

#[test]
fn sub_times_out_with_code_27() {
    let broker = Broker::start();
    let done = run_with_timeout(
        &mut mqscope_cmd("sub", &broker, &["-t", "quiet/#", "-C", "1", "-W", "1"]),
        LIMIT,
    );
    assert_eq!(done.code, Some(27), "stderr: {}", done.stderr);
    assert!(done.stdout.is_empty(), "stdout: {}", done.stdout);
}

#[test]
fn pub_reaches_a_mosquitto_subscriber_at_each_qos() {
    let broker = Broker::start();
    let sub = mosquitto_sub(
        &broker,
        &["-i", "msub", "-t", "clipub/#", "-q", "2", "-v", "-C", "3"],
    );
    let mut sub = Lines::new(sub);
    broker.wait_subscribed("msub", "clipub/#");
    for q in ["0", "1", "2"] {
        assert_pub_ok(
            &broker,
            &[
                "-t",
                &format!("clipub/{q}"),
                "-m",
                &format!("at qos {q}"),
                "-q",
                q,
            ],
        );
    }
    assert_eq!(
        lines(&sub, 3),
        [
            "clipub/0 at qos 0",
            "clipub/1 at qos 1",
            "clipub/2 at qos 2"
        ]
    );
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn wrong_password_fails_with_one_clear_line() {
    let broker = Broker::builder().password("alice", "s3cret").start();
    let wrong = |sub_or_pub: &str, args: &[&str]| {
        let mut cmd = mqscope();
        cmd.arg(sub_or_pub)
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
            .args(["-u", "alice", "-P", "wrong"])
            .args(args);
        run_with_timeout(&mut cmd, LIMIT)
    };
    for done in [
        wrong("sub", &["-t", "x/#"]),
        wrong("pub", &["-t", "x/y", "-m", "hi", "-q", "1"]),
    ] {
        assert_eq!(done.code, Some(1), "stderr: {}", done.stderr);
        // Mosquitto 2 refuses a wrong password with CONNACK code 5,
        // "not authorised" in mosquitto_sub's words.
        assert!(
            done.stderr.to_lowercase().contains("not authori"),
            "stderr: {}",
            done.stderr
        );
        assert_eq!(
            done.stderr.trim().lines().count(),
            1,
            "stderr: {}",
            done.stderr
        );
    }
    // The right password goes through.
    assert_pub_ok(&broker, &["-t", "x/y", "-m", "hi", "-q", "1"]);
}

#[test]
fn pub_to_a_closed_port_fails_clearly() {
    let port = free_port();
    let done = run_with_timeout(
        mqscope()
            .arg("pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "x", "-m", "hi"]),
        LIMIT,
    );
    assert_eq!(done.code, Some(1), "stderr: {}", done.stderr);
    let err = done.stderr.to_lowercase();
    assert!(err.contains("refused"), "stderr: {}", done.stderr);
    assert!(err.contains(&port.to_string()), "stderr: {}", done.stderr);
    assert_eq!(
        done.stderr.trim().lines().count(),
        1,
        "stderr: {}",
        done.stderr
    );
}

#[test]
fn tls_sub_and_pub_with_cafile() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.server_tls()).start();
    // mqscope_connection_args adds --cafile for a TLS broker.
    assert!(mqscope_connection_args(&broker).contains(&"--cafile".to_string()));
    let mut sub = start_sub(
        &broker,
        "tls-sub",
        "tls/#",
        &["-t", "tls/#", "-v", "-C", "1"],
    );
    assert_pub_ok(&broker, &["-t", "tls/x", "-m", "secret", "-q", "1"]);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some("tls/x secret"));
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn pub_with_a_client_certificate_passes_require_certificate() {
    let pki = Pki::generate();
    let broker = Broker::builder()
        .tls(pki.server_tls())
        .require_certificate(true)
        .start();
    let cert = pki.client_rsa_cert.display().to_string();
    let key = pki.client_rsa_key.display().to_string();
    assert_pub_ok(
        &broker,
        &[
            "--cert", &cert, "--key", &key, "-t", "m/x", "-m", "hi", "-q", "1",
        ],
    );
    // Without the certificate the broker says no, and the user is told why.
    let done = run_pub(&broker, &["-t", "m/x", "-m", "hi", "-q", "1"]);
    assert_eq!(done.code, Some(1), "stderr: {}", done.stderr);
    assert!(
        done.stderr.to_lowercase().contains("client certificate"),
        "stderr: {}",
        done.stderr
    );
}

#[test]
fn insecure_connects_to_a_broker_of_an_unknown_ca() {
    let pki = Pki::generate();
    let broker = Broker::builder().tls(pki.other_server_tls()).start();
    let port = broker.port.to_string();
    let base = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "i/x",
        "-m",
        "hi",
        "-q",
        "1",
    ];

    let verified = run_with_timeout(
        mqscope()
            .arg("pub")
            .args(["--cafile", &pki.ca_cert.display().to_string()])
            .args(base),
        LIMIT,
    );
    assert_eq!(verified.code, Some(1), "stderr: {}", verified.stderr);
    assert!(
        verified.stderr.contains("certificate"),
        "stderr: {}",
        verified.stderr
    );

    let insecure = run_with_timeout(mqscope().arg("pub").arg("--insecure").args(base), LIMIT);
    assert_eq!(insecure.code, Some(0), "stderr: {}", insecure.stderr);
}

#[test]
fn retained_message_is_seen_by_a_later_subscriber() {
    let broker = Broker::start();
    assert_pub_ok(&broker, &["-t", "ret/x", "-m", "kept", "-q", "1", "-r"]);
    assert_pub_ok(&broker, &["-t", "ret/y", "-m", "not kept", "-q", "1"]);
    // Without -v: the payload alone.
    let done = run_with_timeout(
        &mut mqscope_cmd("sub", &broker, &["-t", "ret/#", "-C", "1", "-W", "5"]),
        LIMIT,
    );
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
    assert_eq!(done.stdout, "kept\n");
}

#[test]
fn sub_will_is_published_when_the_process_dies() {
    let broker = Broker::start();
    let watcher = mosquitto_sub(
        &broker,
        &["-i", "watcher", "-t", "wills/#", "-v", "-C", "1"],
    );
    let mut watcher = Lines::new(watcher);
    broker.wait_subscribed("watcher", "wills/#");
    let mut sub = start_sub(
        &broker,
        "mortal",
        "work/#",
        &[
            "-t",
            "work/#",
            "-k",
            "5",
            "--will-topic",
            "wills/mortal",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ],
    );
    // SIGKILL: no DISCONNECT, the socket just closes.
    sub.child.kill().expect("cannot kill mqscope sub");
    assert_eq!(
        watcher.next_line(LIMIT).as_deref(),
        Some("wills/mortal gone")
    );
    let (code, stderr) = watcher.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn pub_trace_prints_each_packet_as_a_json_line_with_its_size() {
    let broker = Broker::start();
    let mut cmd = mqscope();
    cmd.arg("pub").args(mqscope_connection_args(&broker)).args([
        "-i",
        "mqscope-trace",
        "-t",
        "a/b",
        "-m",
        "hello",
        "-q",
        "2",
        "--trace",
    ]);
    let out = run_with_timeout(&mut cmd, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let seq: Vec<(String, String, u64)> = lines
        .iter()
        .map(|v| {
            (
                v["dir"].as_str().unwrap_or("?").to_string(),
                v["kind"].as_str().unwrap_or("?").to_string(),
                v["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want = [
        ("out", "CONNECT", 27), // 10 + client id 2+13, header 2
        ("in", "CONNACK", 4),
        ("out", "PUBLISH", 14), // the issue's example: "a/b" "hello" with a packet id
        ("in", "PUBREC", 4),
        ("out", "PUBREL", 4),
        ("in", "PUBCOMP", 4),
        ("out", "DISCONNECT", 2),
    ];
    let want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(d, k, b)| (d.to_string(), k.to_string(), *b))
        .collect();
    assert_eq!(seq, want, "{}", out.stderr);
    let publish = &lines[2];
    assert_eq!(publish["topic"], "a/b");
    assert_eq!(publish["qos"], 2);
    assert!(publish["pkid"].as_u64().is_some());
    assert_eq!(
        lines[3]["pkid"], publish["pkid"],
        "PUBREC answers the same packet id"
    );
    let times: Vec<u64> = lines
        .iter()
        .map(|v| v["t_us"].as_u64().unwrap_or(0))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}
