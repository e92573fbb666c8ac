//! `mqscope sub --decode`: real encoded payloads published with
//! `mosquitto_pub -f FILE` through a real Mosquitto, printed as JSON lines.

mod common;

use common::*;
use mqscope::model::decode::sparkplug::build::{metric, payload};
use mqscope::model::decode::sparkplug::datatype::{BOOLEAN, FLOAT, INT16, UINT64};
use mqscope::model::decode::sparkplug::schema::MetricValue;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// Starts `mqscope sub` with `args` and waits for its subscription.
fn start_sub(broker: &Broker, id: &str, filter: &str, args: &[&str]) -> Lines {
    let mut cmd = mqscope();
    cmd.arg("sub")
        .args(mqscope_connection_args(broker))
        .args(["-i", id, "-t", filter])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let sub = Lines::new(cmd.spawn().expect("cannot start mqscope sub"));
    broker.wait_subscribed(id, filter);
    sub
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("cannot write payload file");
    path
}

fn publish_file(broker: &Broker, topic: &str, file: &Path, extra: &[&str]) {
    let file = file.to_str().expect("utf-8 temp path");
    let mut args = vec!["-t", topic, "-f", file];
    args.extend_from_slice(extra);
    mosquitto_pub(broker, &args);
}

/// The next line, split as `-v` prints it: topic, then the JSON.
fn next_json(sub: &Lines) -> (String, Value) {
    let line = sub.next_line(LIMIT).expect("a line within the time limit");
    let (topic, json) = line.split_once(' ').expect("-v prints `topic json`");
    let value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    (topic.to_string(), value)
}

#[test]
fn sub_decode_auto_names_sparkplug_ddata_metrics_from_its_births() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nbirth = payload(
        1_700_000_000_000,
        0,
        vec![
            metric(
                Some("bdSeq"),
                Some(0),
                Some(UINT64),
                MetricValue::LongValue(1),
            ),
            metric(
                Some("Node Control/Rebirth"),
                Some(1),
                Some(BOOLEAN),
                MetricValue::BooleanValue(false),
            ),
        ],
    );
    let dbirth = payload(
        1_700_000_000_010,
        1,
        vec![
            metric(
                Some("Temperature"),
                Some(10),
                Some(FLOAT),
                MetricValue::FloatValue(20.5),
            ),
            metric(
                Some("Offset"),
                Some(11),
                Some(INT16),
                MetricValue::IntValue(0),
            ),
        ],
    );
    let ddata = payload(
        1_700_000_001_000,
        2,
        vec![
            metric(None, Some(10), None, MetricValue::FloatValue(21.25)),
            metric(None, Some(11), None, MetricValue::IntValue(65_531)),
        ],
    );
    let mut sub = start_sub(
        &broker,
        "dec-spb",
        "spBv1.0/#",
        &["-v", "--decode", "auto", "-C", "4"],
    );
    publish_file(
        &broker,
        "spBv1.0/plant/NBIRTH/edge1",
        &write(dir.path(), "nb", &nbirth),
        &[],
    );
    publish_file(
        &broker,
        "spBv1.0/plant/DBIRTH/edge1/press",
        &write(dir.path(), "db", &dbirth),
        &[],
    );
    publish_file(
        &broker,
        "spBv1.0/plant/DDATA/edge1/press",
        &write(dir.path(), "dd", &ddata),
        &[],
    );
    // Plain text on the namespace is said to be what it is, never `{}`.
    mosquitto_pub(
        &broker,
        &["-t", "spBv1.0/plant/DDATA/edge1/press", "-m", "ONLINE"],
    );

    let (topic, birth) = next_json(&sub);
    assert_eq!(topic, "spBv1.0/plant/NBIRTH/edge1");
    assert_eq!(birth["metrics"][0]["name"], json!("bdSeq"));
    next_json(&sub);
    let (topic, data) = next_json(&sub);
    assert_eq!(topic, "spBv1.0/plant/DDATA/edge1/press");
    assert_eq!(
        data,
        json!({
            "timestamp": 1_700_000_001_000_u64,
            "seq": 2,
            "metrics": [
                {"name": "Temperature", "alias": 10, "datatype": "Float", "value": 21.25},
                {"name": "Offset", "alias": 11, "datatype": "Int16", "value": -5},
            ]
        })
    );
    let (_, text) = next_json(&sub);
    assert_eq!(
        text,
        json!({"error": "not a Sparkplug B payload (it is text)", "payload": "ONLINE"})
    );
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("spBv1.0/plant/DDATA/edge1/press: not a Sparkplug B payload"),
        "{stderr}"
    );
}

#[test]
fn sub_decode_auto_follows_the_mqtt5_content_type() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut msgpack = Vec::new();
    rmpv::encode::write_value(
        &mut msgpack,
        &rmpv::Value::Map(vec![
            ("temp".into(), rmpv::Value::F64(21.5)),
            ("ok".into(), true.into()),
        ]),
    )
    .expect("encode msgpack");
    let mut cbor = Vec::new();
    ciborium::ser::into_writer(
        &ciborium::Value::Map(vec![(
            ciborium::Value::Integer(1.into()),
            ciborium::Value::Bytes(vec![0xde, 0xad]),
        )]),
        &mut cbor,
    )
    .expect("encode cbor");
    let mut sub = start_sub(
        &broker,
        "dec-ct",
        "ct/#",
        &["-V", "5", "-v", "--decode", "auto", "-C", "3"],
    );
    let v5 = ["-V", "mqttv5", "-D", "publish", "content-type"];
    let with_type = |t: &'static str| {
        let mut a = v5.to_vec();
        a.push(t);
        a
    };
    publish_file(
        &broker,
        "ct/mp",
        &write(dir.path(), "mp", &msgpack),
        &with_type("application/msgpack"),
    );
    publish_file(
        &broker,
        "ct/cbor",
        &write(dir.path(), "cb", &cbor),
        &with_type("application/cbor"),
    );
    // The same MessagePack bytes without a content type: not guessed.
    publish_file(
        &broker,
        "ct/raw",
        &write(dir.path(), "raw", &msgpack),
        &["-V", "mqttv5"],
    );

    assert_eq!(
        next_json(&sub),
        ("ct/mp".into(), json!({"temp": 21.5, "ok": true}))
    );
    assert_eq!(
        next_json(&sub),
        ("ct/cbor".into(), json!({"1": {"$binary": "3q0="}}))
    );
    let (topic, raw) = next_json(&sub);
    assert_eq!(topic, "ct/raw");
    assert!(raw.get("$binary").is_some(), "{raw}");
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn sub_decode_forced_msgpack_and_cbor_without_content_type() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut msgpack = Vec::new();
    rmpv::encode::write_value(
        &mut msgpack,
        &rmpv::Value::Array(vec![1.into(), "two".into()]),
    )
    .expect("encode msgpack");
    let mut sub = start_sub(&broker, "dec-mp", "mp", &["--decode", "msgpack", "-C", "2"]);
    publish_file(&broker, "mp", &write(dir.path(), "mp", &msgpack), &[]);
    mosquitto_pub(&broker, &["-t", "mp", "-m", "hello"]);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some(r#"[1,"two"]"#));
    let line = sub.next_line(LIMIT).unwrap_or_default();
    assert!(line.contains("bytes left after the first value"), "{line}");
    sub.finish(LIMIT);

    let mut cbor = Vec::new();
    ciborium::ser::into_writer(&ciborium::Value::Float(f64::NAN), &mut cbor).expect("encode");
    let mut sub = start_sub(&broker, "dec-cb", "cb", &["--decode", "cbor", "-C", "1"]);
    publish_file(&broker, "cb", &write(dir.path(), "cb", &cbor), &[]);
    assert_eq!(sub.next_line(LIMIT).as_deref(), Some(r#""NaN""#));
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

const PROTO: &str = r#"
syntax = "proto3";
package factory;
message Reading {
  string sensor = 1;
  double celsius = 2;
  repeated int32 samples = 3;
}
"#;

#[test]
fn sub_decode_protobuf_with_a_proto_file() {
    use prost_reflect::{DynamicMessage, Value as PValue};
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let proto = write(dir.path(), "reading.proto", PROTO.as_bytes());
    // Encode with a pool compiled independently of mqscope's own loader.
    let pool = protox::compile([&proto], [dir.path()]).expect("test proto compiles");
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(pool).expect("pool");
    let desc = pool
        .get_message_by_name("factory.Reading")
        .expect("declared");
    let mut msg = DynamicMessage::new(desc);
    msg.set_field_by_name("sensor", PValue::String("press-7".into()));
    msg.set_field_by_name("celsius", PValue::F64(81.25));
    msg.set_field_by_name(
        "samples",
        PValue::List(vec![PValue::I32(-1), PValue::I32(7)]),
    );
    let bytes = prost::Message::encode_to_vec(&msg);

    let spec = format!("protobuf:{}:factory.Reading", proto.display());
    let mut sub = start_sub(
        &broker,
        "dec-pb",
        "pb/#",
        &["-v", "--decode", &spec, "-C", "1"],
    );
    publish_file(&broker, "pb/r", &write(dir.path(), "r.bin", &bytes), &[]);
    assert_eq!(
        next_json(&sub),
        (
            "pb/r".into(),
            json!({"sensor": "press-7", "celsius": 81.25, "samples": [-1, 7]})
        )
    );
    let (code, stderr) = sub.finish(LIMIT);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn sub_decode_wrong_proto_or_decoder_fails_before_connecting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let proto = write(dir.path(), "reading.proto", PROTO.as_bytes());
    let broken = write(dir.path(), "broken.proto", b"message { oops");
    let cases = [
        (
            format!("protobuf:{}:factory.Nope", proto.display()),
            "no message type 'factory.Nope'; the file declares factory.Reading",
        ),
        (format!("protobuf:{}:X", broken.display()), "broken.proto"),
        (
            "protobuf:/no/such.proto:X".to_string(),
            "no such .proto file",
        ),
        ("yaml".to_string(), "unknown decoder 'yaml'"),
    ];
    for (spec, expected) in cases {
        // Port 1 is never listening: the error must come first.
        let done = run_with_timeout(
            mqscope().args([
                "sub",
                "-h",
                "127.0.0.1",
                "-p",
                "1",
                "-t",
                "x",
                "--decode",
                &spec,
            ]),
            LIMIT,
        );
        assert_eq!(done.code, Some(1), "{spec}: {}", done.stderr);
        assert!(
            done.stderr.contains("mqscope sub: --decode: ") && done.stderr.contains(expected),
            "{spec}: {}",
            done.stderr
        );
    }
}
