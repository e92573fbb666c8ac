//! `mqscope export`: the messages of a tcpdump capture of a real Mosquitto
//! exchange, to CSV (parsed back with the csv crate, as a spreadsheet would
//! read it) and JSON Lines. Needs root and tcpdump.

mod common;
#[path = "common/capture.rs"]
mod sniff;

use base64::Engine as _;
use common::*;
use sniff::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
const TEXT: &str = "21,5 \"C\"\nsecond line";

/// A capture with a text payload full of CSV specials, a binary one, an
/// MQTT 5 one with properties, and one on a topic outside the filter.
fn capture(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let broker = Broker::start();
    let file = dir.join("export.pcap");
    let mut sniffer = Sniffer::start(Tool::TcpdumpLo, broker.port, &file);
    let binary: Vec<u8> = (0u8..=255).chain(0u8..=255).collect();
    let bin_file = dir.join("payload.bin");
    std::fs::write(&bin_file, &binary).expect("write");
    mosquitto_pub(&broker, &["-t", "plant/text", "-m", TEXT, "-q", "1"]);
    mosquitto_pub(
        &broker,
        &[
            "-t",
            "plant/bin",
            "-f",
            &bin_file.display().to_string(),
            "-r",
        ],
    );
    mosquitto_pub(
        &broker,
        &[
            "-t",
            "plant/v5",
            "-m",
            "{\"t\":20}",
            "-q",
            "2",
            "-V",
            "mqttv5",
            "-D",
            "publish",
            "user-property",
            "unit",
            "C",
            "-D",
            "publish",
            "content-type",
            "application/json",
        ],
    );
    mosquitto_pub(&broker, &["-t", "office/x", "-m", "not exported"]);
    wait_for_capture(&file, |c| {
        c.streams.len() == 4 && c.streams.iter().all(|s| s.info.closed)
    });
    sniffer.stop();
    (file, binary)
}

#[test]
fn csv_and_jsonl_exports_of_a_capture_read_back_message_for_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, binary) = capture(dir.path());
    let out = dir.path().join("out.csv");
    let done = run_with_timeout(
        mqscope()
            .args(["export", &file.display().to_string(), "--format", "csv"])
            .args(["-t", "plant/#", "-o", &out.display().to_string()]),
        LIMIT,
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(done.stderr.contains("3 messages"), "{}", done.stderr);

    let mut reader = csv::Reader::from_path(&out).expect("csv opens");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "timestamp",
            "topic",
            "qos",
            "retain",
            "size",
            "encoding",
            "payload",
            "truncated",
            "properties",
            "client",
            "broker",
            "direction"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row = |topic: &str| {
        rows.iter()
            .find(|r| &r[1] == topic)
            .unwrap_or_else(|| panic!("no row for {topic}: {rows:?}"))
    };
    let text = row("plant/text");
    assert_eq!(&text[2], "1");
    assert_eq!(&text[5], "text");
    assert_eq!(&text[6], TEXT, "commas, quotes and newlines survive");
    assert_eq!(&text[4], TEXT.len().to_string());
    assert_eq!(&text[11], "publish");
    assert!(text[9].starts_with("127.0.0.1:"));
    assert!(
        text[0].ends_with('Z') && text[0].contains('T'),
        "RFC 3339: {}",
        &text[0]
    );
    let bin = row("plant/bin");
    assert_eq!(&bin[5], "base64");
    assert_eq!(&bin[3], "true", "retained");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&bin[6])
        .expect("base64");
    assert_eq!(decoded, binary);
    let v5 = row("plant/v5");
    let props: serde_json::Value = serde_json::from_str(&v5[8]).expect("properties as JSON");
    assert_eq!(props["content_type"], "application/json");
    assert_eq!(props["user_property"][0], serde_json::json!(["unit", "C"]));
    assert_eq!(&text[8], "", "no properties: empty cell");

    // JSON Lines to standard output, the same messages.
    let done = run_with_timeout(
        mqscope().args([
            "export",
            &file.display().to_string(),
            "--format",
            "jsonl",
            "-t",
            "plant/#",
        ]),
        LIMIT,
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let lines: Vec<serde_json::Value> = done
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3);
    let v5 = lines
        .iter()
        .find(|l| l["topic"] == "plant/v5")
        .expect("v5 line");
    assert_eq!(v5["qos"], 2);
    assert_eq!(v5["payload"], "{\"t\":20}");
    assert_eq!(v5["properties"]["content_type"], "application/json");
    assert_eq!(v5["direction"], "publish");
    assert!(lines.iter().all(|l| l["topic"] != "office/x"));
}

#[test]
fn a_bad_filter_or_output_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let done = run_with_timeout(
        mqscope().args(["export", "x.pcap", "--format", "csv", "-t", "a/#/b"]),
        LIMIT,
    );
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("invalid topic filter"),
        "{}",
        done.stderr
    );
    let done = run_with_timeout(
        mqscope().args(["export", "x.pcap", "--format", "xlsx"]),
        LIMIT,
    );
    assert_eq!(done.code, Some(2), "clap refuses an unknown format");
    assert!(done.stderr.contains("use csv or jsonl"), "{}", done.stderr);
    let nowhere = dir.path().join("no/such/dir/out.csv");
    let done = run_with_timeout(
        mqscope()
            .args(["export", "x.pcap", "--format", "csv", "-o"])
            .arg(&nowhere),
        LIMIT,
    );
    assert_eq!(done.code, Some(1));
    assert!(done.stderr.contains("cannot create"), "{}", done.stderr);
}
