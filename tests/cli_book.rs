//! The command lines of the book typed at `mqscope sub` / `mqscope pub`
//! instead of `mosquitto_sub` / `mosquitto_pub`, against a real Mosquitto,
//! side by side with the mosquitto clients: the same `-d` lines, the same
//! output for -R / -T / -N / -l / -U / -E / -L, the same TLS flags.

mod common;
mod ws_util;

use common::*;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    Mosquitto,
    Mqscope,
}

use Tool::{Mosquitto, Mqscope};

/// `mosquitto_sub` or `mqscope sub` (`verb` = "sub"/"pub") on 127.0.0.1:`port`.
fn cmd(tool: Tool, verb: &str, port: u16, args: &[&str]) -> Command {
    let mut c = match tool {
        Mosquitto => {
            let mut c = Command::new(format!("mosquitto_{verb}"));
            c.stdin(Stdio::null());
            c
        }
        Mqscope => {
            let mut c = mqscope();
            c.arg(verb);
            c
        }
    };
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    c
}

fn spawn_sub(tool: Tool, port: u16, args: &[&str]) -> Lines {
    let mut c = cmd(tool, "sub", port, args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    Lines::new(c.spawn().expect("cannot start the subscriber"))
}

fn run(tool: Tool, verb: &str, port: u16, args: &[&str]) -> Finished {
    run_with_timeout(&mut cmd(tool, verb, port, args), LIMIT)
}

/// Reads lines until one satisfies `done` (included), or panics.
fn read_until(sub: &Lines, what: &str, mut done: impl FnMut(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(line) = sub.next_line(LIMIT) {
        let stop = done(&line);
        seen.push(line);
        if stop {
            return seen;
        }
    }
    panic!("{what} never came; stdout so far:\n{}", seen.join("\n"));
}

/// Every line left until the process exits; with its exit code and stderr.
fn read_rest(mut sub: Lines) -> (Vec<String>, Option<i32>, String) {
    let (code, err) = sub.finish(LIMIT);
    let mut rest = Vec::new();
    while let Some(line) = sub.next_line(Duration::from_millis(500)) {
        rest.push(line);
    }
    (rest, code, err)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// A subscriber with -d (QoS 2, four messages) and three publishers with -d
/// (QoS 0, 1, 2) against a fresh broker holding one retained message: the
/// stdout of every process, in order.
fn book_exchange(tool: Tool, version: &str) -> Vec<Vec<String>> {
    let broker = Broker::start();
    mosquitto_pub(
        &broker,
        &["-t", "book/retained", "-m", "stale", "-r", "-q", "1"],
    );
    let sub = spawn_sub(
        tool,
        broker.port,
        &[
            "-d", "-V", version, "-i", "book-sub", "-t", "book/#", "-q", "2", "-C", "4",
        ],
    );
    let mut sub_out = read_until(&sub, "the retained message", |l| l == "stale");
    let mut outputs = Vec::new();
    for (qos, payload) in [("0", "zero"), ("1", "one"), ("2", "two")] {
        let topic = format!("book/q{qos}");
        let done = run(
            tool,
            "pub",
            broker.port,
            &[
                "-d", "-V", version, "-i", "book-pub", "-t", &topic, "-m", payload, "-q", qos,
            ],
        );
        assert_eq!(done.code, Some(0), "{tool:?} pub failed: {}", done.stderr);
        outputs.push(lines(&done.stdout));
        sub_out.extend(read_until(&sub, payload, |l| l == payload));
    }
    let (rest, code, err) = read_rest(sub);
    assert_eq!(code, Some(0), "{tool:?} sub failed: {err}");
    sub_out.extend(rest);
    outputs.insert(0, sub_out);
    outputs
}

fn assert_same(ours: &[Vec<String>], theirs: &[Vec<String>]) {
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            o.join("\n"),
            t.join("\n"),
            "process {i} (0 = the subscriber): mqscope's -d output (left) differs from mosquitto's (right)"
        );
    }
    assert_eq!(ours.len(), theirs.len());
}

#[test]
fn debug_lines_match_mosquitto_for_mqtt311_qos_0_1_2_and_retained() {
    let theirs = book_exchange(Mosquitto, "mqttv311");
    let ours = book_exchange(Mqscope, "mqttv311");
    // The exchange really had every step.
    let all = theirs.concat().join("\n");
    for step in [
        "sending CONNECT",
        "received CONNACK (0)",
        "sending SUBSCRIBE (Mid: 1, Topic: book/#, QoS: 2, Options: 0x00)",
        "received SUBACK",
        "Subscribed (mid: 1): 2",
        "received PUBLISH (d0, q1, r1, m1, 'book/retained', ... (5 bytes))",
        "sending PUBACK (m1, rc0)",
        "received PUBACK (Mid: 1, RC:0)",
        "received PUBREC (Mid: 1)",
        "sending PUBREL (m1)",
        "received PUBCOMP (Mid: 1, RC:0)",
        "sending PUBREC (m",
        "received PUBREL (Mid: ",
        "sending PUBCOMP (m",
        "sending DISCONNECT",
    ] {
        assert!(all.contains(step), "mosquitto printed no '{step}':\n{all}");
    }
    assert_same(&ours, &theirs);
}

#[test]
fn debug_lines_match_mosquitto_for_mqtt5() {
    let theirs = book_exchange(Mosquitto, "mqttv5");
    let ours = book_exchange(Mqscope, "mqttv5");
    assert_same(&ours, &theirs);
}

#[test]
fn debug_lines_match_mosquitto_for_a_publish_the_acl_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite open/#\n").expect("acl file");
    let broker = Broker::builder()
        .config_line(&format!("acl_file {}", acl.display()))
        .start();
    let args = [
        "-d", "-V", "mqttv5", "-i", "refused", "-t", "closed/t", "-m", "no", "-q", "1",
    ];
    let theirs = run(Mosquitto, "pub", broker.port, &args);
    let ours = run(Mqscope, "pub", broker.port, &args);
    assert!(
        theirs.stdout.contains("received PUBACK (Mid: 1, RC:135)"),
        "{}",
        theirs.stdout
    );
    assert_eq!(ours.stdout, theirs.stdout);
    assert_eq!(ours.code, Some(1), "a refused publish fails");
    assert!(ours.stderr.contains("Not authorized"), "{}", ours.stderr);
}

#[test]
fn debug_lines_match_mosquitto_for_keepalive_ping_and_timeout() {
    let broker = Broker::start();
    let port = broker.port;
    // Both at once (7 s each), under their own client ids.
    let args = |id: &'static str| ["-d", "-i", id, "-t", "quiet", "-k", "5", "-W", "7"];
    let theirs = std::thread::spawn(move || run(Mosquitto, "sub", port, &args("pinger-m")));
    let ours = run(Mqscope, "sub", port, &args("pinger-q"));
    let theirs = theirs.join().expect("mosquitto_sub thread");
    assert!(
        theirs.stdout.contains("sending PINGREQ"),
        "{}",
        theirs.stdout
    );
    assert_eq!(
        ours.stdout.replace("pinger-q", "pinger"),
        theirs.stdout.replace("pinger-m", "pinger")
    );
    assert_eq!(ours.code, theirs.code, "-W ends with exit code 27 for both");
    assert_eq!(ours.code, Some(27));
}

/// The subscriber's stdout for `sub_args` while `publish` runs, for both tools.
fn sub_output(
    broker: &Broker,
    tool: Tool,
    id: &str,
    filter: &str,
    sub_args: &[&str],
    publish: &dyn Fn(),
) -> String {
    let mut args = vec!["-i", id, "-t", filter];
    args.extend_from_slice(sub_args);
    let mut c = cmd(tool, "sub", broker.port, &args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("subscriber");
    // stdout read whole (bytes as written: -N leaves no newline).
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).ok();
        text
    });
    broker.wait_subscribed(id, filter);
    publish();
    let deadline = std::time::Instant::now() + LIMIT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).ok();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "{tool:?} sub {args:?} failed or hung ({status:?}): {err}"
    );
    reader.join().unwrap_or_default()
}

#[test]
fn no_retained_flag_skips_stale_messages_like_mosquitto() {
    let broker = Broker::start();
    mosquitto_pub(&broker, &["-t", "r/a", "-m", "stale", "-r"]);
    let publish = || {
        mosquitto_pub(&broker, &["-t", "r/a", "-m", "live"]);
    };
    let theirs = sub_output(
        &broker,
        Mosquitto,
        "r-m",
        "r/#",
        &["-R", "-C", "1"],
        &publish,
    );
    let ours = sub_output(&broker, Mqscope, "r-q", "r/#", &["-R", "-C", "1"], &publish);
    assert_eq!(theirs, "live\n");
    assert_eq!(ours, theirs);
}

#[test]
fn filter_out_and_no_newline_like_mosquitto() {
    let broker = Broker::start();
    let publish = || {
        for (t, m) in [
            ("f/secret", "hidden"),
            ("f/a", "A"),
            ("f/secret/x", "deep"),
            ("f/b", "B"),
        ] {
            mosquitto_pub(&broker, &["-t", t, "-m", m, "-q", "1"]);
        }
    };
    let args = [
        "-T",
        "f/secret",
        "-T",
        "f/secret/#",
        "-N",
        "-C",
        "2",
        "-q",
        "1",
    ];
    let theirs = sub_output(&broker, Mosquitto, "t-m", "f/#", &args, &publish);
    let ours = sub_output(&broker, Mqscope, "t-q", "f/#", &args, &publish);
    assert_eq!(theirs, "AB");
    assert_eq!(ours, theirs);
}

#[test]
fn stdin_lines_become_one_message_each_like_mosquitto_pub() {
    let broker = Broker::start();
    let input = "first\n\nthird line\nlast without newline";
    let publish_with = |tool: Tool| {
        let mut c = cmd(tool, "pub", broker.port, &["-t", "lines", "-l", "-q", "1"]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("publisher");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("publisher output");
        assert!(
            out.status.success(),
            "{tool:?} pub -l failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let args = ["-v", "-C", "4", "-q", "1"];
    let theirs = sub_output(&broker, Mosquitto, "l-m", "lines", &args, &|| {
        publish_with(Mosquitto)
    });
    let ours = sub_output(&broker, Mosquitto, "l-q", "lines", &args, &|| {
        publish_with(Mqscope)
    });
    assert_eq!(
        theirs,
        "lines first\nlines (null)\nlines third line\nlines last without newline\n"
    );
    assert_eq!(ours, theirs);
}

#[test]
fn exit_after_subscribe_prints_what_mosquitto_prints() {
    let broker = Broker::start();
    let args = [
        "-d", "-i", "quick", "-t", "e/1", "-t", "e/2", "-q", "1", "-E",
    ];
    let theirs = run(Mosquitto, "sub", broker.port, &args);
    let ours = run(Mqscope, "sub", broker.port, &args);
    assert_eq!(theirs.code, Some(0));
    assert_eq!(ours.code, Some(0), "{}", ours.stderr);
    assert_eq!(ours.stdout, theirs.stdout);
}

#[test]
fn unsubscribe_removes_a_persistent_subscription() {
    let broker = Broker::start();
    // Two persistent sessions subscribed to `keep`.
    for id in ["kept", "dropped"] {
        mosquitto_sub_done(&broker, &["-c", "-i", id, "-t", "keep", "-q", "1", "-E"]);
    }
    // mqscope -U removes one of them (and exits: nothing else to do).
    let done = run(
        Mqscope,
        "sub",
        broker.port,
        &["-c", "-i", "dropped", "-U", "keep", "-d"],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(
        done.stdout
            .contains("Client dropped sending UNSUBSCRIBE (Mid: 1, Topic: keep)")
            && done.stdout.contains("Client dropped received UNSUBACK"),
        "{}",
        done.stdout
    );
    mosquitto_pub(&broker, &["-t", "keep", "-m", "queued", "-q", "1"]);
    // The session still subscribed gets the queued message; the other not.
    let kept = run(
        Mosquitto,
        "sub",
        broker.port,
        &[
            "-c", "-i", "kept", "-t", "other", "-q", "1", "-C", "1", "-W", "3",
        ],
    );
    assert_eq!(kept.stdout, "queued\n", "the control session gets it");
    let dropped = run(
        Mosquitto,
        "sub",
        broker.port,
        &[
            "-c", "-i", "dropped", "-t", "other", "-q", "1", "-C", "1", "-W", "2",
        ],
    );
    assert_eq!(dropped.code, Some(27), "nothing queued: {}", dropped.stdout);
    assert_eq!(dropped.stdout, "");
}

fn mosquitto_sub_done(broker: &Broker, args: &[&str]) {
    let done = run(Mosquitto, "sub", broker.port, args);
    assert_eq!(
        done.code,
        Some(0),
        "mosquitto_sub {args:?}: {}",
        done.stderr
    );
}

#[test]
fn url_flag_carries_credentials_host_port_and_topic() {
    let broker = Broker::builder().password("book", "s3cret").start();
    let url = format!("mqtt://book:s3cret@127.0.0.1:{}/url/topic", broker.port);
    let mut c = mqscope();
    c.args(["sub", "-L", &url, "-C", "1", "-v", "-i", "url-sub"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let sub = Lines::new(c.spawn().expect("sub"));
    broker.wait_subscribed("url-sub", "url/topic");
    let mut c = mqscope();
    c.args(["pub", "-L", &url, "-m", "via -L"]);
    let done = run_with_timeout(&mut c, LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some("url/topic via -L"));
    // A wrong password in the URL is refused as such.
    let bad = format!("mqtt://book:wrong@127.0.0.1:{}/url/topic", broker.port);
    let mut c = mqscope();
    c.args(["pub", "-L", &bad, "-m", "x"]);
    let done = run_with_timeout(&mut c, LIMIT);
    assert_eq!(done.code, Some(1));
    assert!(done.stderr.contains("not authorized"), "{}", done.stderr);
}

#[test]
fn protocol_names_of_mosquitto_are_accepted_and_mqtt31_is_refused_clearly() {
    let broker = Broker::start();
    for v in ["mqttv311", "311", "mqttv5", "5"] {
        let done = run(
            Mqscope,
            "pub",
            broker.port,
            &["-V", v, "-t", "v", "-m", "x"],
        );
        assert_eq!(done.code, Some(0), "-V {v}: {}", done.stderr);
    }
    for v in ["mqttv31", "31"] {
        let done = run(
            Mqscope,
            "pub",
            broker.port,
            &["-V", v, "-t", "v", "-m", "x"],
        );
        assert_eq!(done.code, Some(2), "-V {v} is a usage error");
        assert!(
            done.stderr.contains("MQTT 3.1 is not supported"),
            "{}",
            done.stderr
        );
    }
    let done = run(Mqscope, "pub", broker.port, &["--no-such-flag", "-t", "v"]);
    assert_eq!(done.code, Some(2));
    assert!(
        done.stderr.contains("unexpected argument '--no-such-flag'"),
        "{}",
        done.stderr
    );
}

/// A Mosquitto with a plain listener and a TLS listener; returns it and the
/// TLS port.
fn tls_broker(pki: &Pki) -> (Broker, u16) {
    let tls_port = free_port();
    let broker = Broker::builder()
        .config_line(&format!("listener {tls_port} 127.0.0.1"))
        .config_line(&format!("cafile {}", pki.ca_cert.display()))
        .config_line(&format!("certfile {}", pki.server_cert.display()))
        .config_line(&format!("keyfile {}", pki.server_key.display()))
        .start();
    (broker, tls_port)
}

#[test]
fn tls_version_means_what_it_means_to_mosquitto_pub() {
    let pki = Pki::generate();
    let broker = Broker::start();
    let (cert, key) = (
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string(),
    );
    let tls12_only = ws_util::WsBroker::tls_gateway(
        broker.port,
        &["--cert", &cert, "--key", &key, "--tls-max", "TLSv1.2"],
    );
    let tls13_only = ws_util::WsBroker::tls_gateway(
        broker.port,
        &["--cert", &cert, "--key", &key, "--tls-min", "TLSv1.3"],
    );
    let ca = pki.ca_cert.display().to_string();
    // tlsv1.2 is "1.2 or newer", tlsv1.3 is "1.3 only", as in libmosquitto.
    for (port, version, ok) in [
        (tls12_only.port, "tlsv1.2", true),
        (tls12_only.port, "tlsv1.3", false),
        (tls13_only.port, "tlsv1.2", true),
        (tls13_only.port, "tlsv1.3", true),
    ] {
        let args = [
            "--cafile",
            &ca,
            "--tls-version",
            version,
            "-t",
            "v",
            "-m",
            "x",
        ];
        let theirs = run(Mosquitto, "pub", port, &args);
        let ours = run(Mqscope, "pub", port, &args);
        assert_eq!(
            theirs.code == Some(0),
            ok,
            "mosquitto_pub {version} on {port}: {}",
            theirs.stderr
        );
        assert_eq!(
            ours.code == Some(0),
            ok,
            "mqscope pub {version} on {port}: {}",
            ours.stderr
        );
        if !ok {
            assert!(ours.stderr.contains("TLS"), "{}", ours.stderr);
        }
    }
    let done = run(
        Mqscope,
        "pub",
        tls12_only.port,
        &["--tls-version", "tlsv1.1", "-t", "v", "-m", "x"],
    );
    assert_eq!(done.code, Some(2));
    assert!(
        done.stderr.contains("tlsv1.1 is not supported"),
        "{}",
        done.stderr
    );
}

#[test]
fn capath_and_os_certs_choose_the_roots() {
    let pki = Pki::generate();
    let (_broker, port) = tls_broker(&pki);
    let good = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&pki.ca_cert, good.path().join("test-ca.pem")).expect("copy CA");
    std::fs::write(good.path().join("README"), "not a certificate").expect("write");
    let wrong = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&pki.other_ca_cert, wrong.path().join("other.pem")).expect("copy CA");
    let ca = pki.ca_cert.display().to_string();
    let good_dir = good.path().display().to_string();
    let wrong_dir = wrong.path().display().to_string();
    let pub_ok = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["-t", "v", "-m", "x"]);
        run(Mqscope, "pub", port, &a)
    };
    let done = pub_ok(&["--capath", &good_dir]);
    assert_eq!(done.code, Some(0), "--capath with the CA: {}", done.stderr);
    let done = pub_ok(&["--capath", &wrong_dir]);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("not signed by a trusted CA"),
        "{}",
        done.stderr
    );
    // The system's roots do not know the test CA ...
    let done = pub_ok(&["--tls-use-os-certs"]);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("not signed by a trusted CA"),
        "{}",
        done.stderr
    );
    // ... and are used beside --cafile, not instead of it.
    let done = pub_ok(&["--tls-use-os-certs", "--cafile", &ca]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
}

#[test]
fn proxy_http_connect_with_credentials_and_socks_refused() {
    let broker = Broker::start();
    // "Basic " + base64("book:pw")
    let proxy = ws_util::WsBroker::http_proxy(&[
        "--require-header",
        "Proxy-Authorization:Basic Ym9vazpwdw==",
    ]);
    let with = format!("http://book:pw@127.0.0.1:{}", proxy.port);
    let sub = spawn_sub(
        Mqscope,
        broker.port,
        &["-i", "px", "-t", "px", "-C", "1", "--proxy", &with],
    );
    broker.wait_subscribed("px", "px");
    let done = run(
        Mqscope,
        "pub",
        broker.port,
        &["-t", "px", "-m", "proxied", "--proxy", &with],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some("proxied"));

    let without = format!("http://127.0.0.1:{}", proxy.port);
    let done = run(
        Mqscope,
        "pub",
        broker.port,
        &["-t", "px", "-m", "x", "--proxy", &without],
    );
    assert_eq!(done.code, Some(1));
    assert!(done.stderr.contains("HTTP 407"), "{}", done.stderr);

    let done = run(
        Mqscope,
        "pub",
        broker.port,
        &["-t", "px", "-m", "x", "--proxy", "socks5h://127.0.0.1:1080"],
    );
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr
            .contains("SOCKS proxies (socks5h://) are not supported"),
        "{}",
        done.stderr
    );
}

#[test]
fn rr_debug_lines_match_mosquitto_rr_when_nobody_answers() {
    let broker = Broker::start();
    let args = [
        "-d", "-i", "asker", "-t", "req", "-e", "resp", "-m", "ping", "-W", "1",
    ];
    let theirs = run(Mosquitto, "rr", broker.port, &args);
    let mut ours_args = args.to_vec();
    ours_args.extend(["-V", "5"]);
    let ours = run(Mqscope, "rr", broker.port, &ours_args);
    assert!(theirs.stdout.contains("m2, 'req'"), "{}", theirs.stdout);
    assert_eq!(ours.stdout, theirs.stdout);
    assert_eq!(ours.code, Some(27));
    assert_eq!(theirs.code, Some(27));
}

/// A fresh broker holding three retained messages under rr/.
fn retained_broker() -> Broker {
    let broker = Broker::start();
    for (t, m) in [("rr/a", "A"), ("rr/b", "B"), ("rr/keep", "K")] {
        mosquitto_pub(&broker, &["-t", t, "-m", m, "-r", "-q", "1"]);
    }
    broker
}

/// The retained messages left under rr/.
fn retained_left(broker: &Broker) -> String {
    run(
        Mosquitto,
        "sub",
        broker.port,
        &["-t", "rr/#", "-v", "--retained-only", "-W", "1"],
    )
    .stdout
}

#[test]
fn retained_only_prints_the_retained_messages_like_mosquitto_sub() {
    let mut outputs = Vec::new();
    for tool in [Mosquitto, Mqscope] {
        let broker = retained_broker();
        let out = sub_output(
            &broker,
            tool,
            "ret",
            "rr/#",
            &["--retained-only", "-v", "-q", "1"],
            &|| {
                mosquitto_pub(&broker, &["-t", "rr/live", "-m", "L", "-q", "1"]);
            },
        );
        outputs.push(out);
    }
    assert_eq!(outputs[0], "rr/a A\nrr/b B\nrr/keep K\n");
    assert_eq!(outputs[1], outputs[0]);
}

#[test]
fn remove_retained_clears_all_but_the_filtered_out_like_mosquitto_sub() {
    let mut results = Vec::new();
    for tool in [Mosquitto, Mqscope] {
        let broker = retained_broker();
        // -W: mosquitto_sub 2.0.11 does not exit after -C with
        // --remove-retained (it sends DISCONNECT and hangs).
        let done = run(
            tool,
            "sub",
            broker.port,
            &[
                "-t",
                "rr/#",
                "--remove-retained",
                "-T",
                "rr/keep",
                "-v",
                "-q",
                "1",
                "-W",
                "2",
            ],
        );
        // Its own empty publishes come back as live messages: "(null)".
        let mut lines: Vec<&str> = done.stdout.lines().collect();
        lines.sort();
        results.push((lines.join("\n"), done.code, retained_left(&broker)));
    }
    assert_eq!(
        results[0].0, "rr/a (null)\nrr/a A\nrr/b (null)\nrr/b B",
        "what mosquitto_sub printed"
    );
    assert_eq!(
        results[0].2, "rr/keep K\n",
        "only the filtered-out topic keeps its message"
    );
    assert_eq!(results[1], results[0]);
}
