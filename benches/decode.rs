//! Benchmarks of the history diff and the payload decoders on large
//! payloads: a 1 MB text payload with 10,000 changed lines (the old
//! hand-written LCS gave up past 4M cells and marked every line), a 4 MiB
//! pair where every line differs (the worst case), and decoding a large
//! Sparkplug B, MessagePack and CBOR payload.
//!
//! `cargo bench --bench decode` (about half a minute).

use criterion::{Criterion, criterion_group, criterion_main};
use mqscope::model::decode::sparkplug::{build, schema::MetricValue};
use mqscope::model::decode::{SparkplugAliases, cbor, msgpack, sparkplug};
use mqscope::model::diff::{LineKind, line_diff};
use std::hint::black_box;
use std::time::Duration;

/// `lines` JSON-ish lines; every `every`-th one differs between the two.
fn pair(lines: usize, every: usize) -> (String, String) {
    let mut old = String::new();
    let mut new = String::new();
    for i in 0..lines {
        let line = format!("{{\"row\": {i:7}, \"value\": \"sensor reading\", \"unit\": \"C\"}},\n");
        old.push_str(&line);
        if i % every == every - 1 {
            new.push_str(&format!(
                "{{\"row\": {i:7}, \"value\": \"CHANGED\", \"unit\": \"K\"}},\n"
            ));
        } else {
            new.push_str(&line);
        }
    }
    (old, new)
}

fn diff_benches(c: &mut Criterion) {
    let (old, new) = pair(20_000, 2);
    let changed = line_diff(&old, &new)
        .iter()
        .filter(|l| l.kind == LineKind::Removed)
        .count();
    println!(
        "diff: {} bytes, {} lines, {changed} changed lines found",
        old.len(),
        20_000
    );
    c.bench_function("line_diff 1 MB, 10,000 changed lines", |b| {
        b.iter(|| line_diff(black_box(&old), black_box(&new)))
    });
    let (old, new) = pair(70_000, 1);
    println!("diff worst case: {} bytes, every line changed", old.len());
    c.bench_function("line_diff 4 MiB, every line changed", |b| {
        b.iter(|| line_diff(black_box(&old), black_box(&new)))
    });
}

fn decoder_benches(c: &mut Criterion) {
    let metrics = (0..10_000u64)
        .map(|i| {
            build::metric(
                None,
                Some(i),
                None,
                MetricValue::DoubleValue(i as f64 * 0.5),
            )
        })
        .collect();
    let spb = build::payload(1_700_000_000_000, 1, metrics);
    println!("Sparkplug DDATA: {} bytes, 10,000 metrics", spb.len());
    c.bench_function("sparkplug decode 10,000 metrics", |b| {
        b.iter(|| {
            sparkplug::decode(
                "spBv1.0/g/DDATA/e/d",
                black_box(&spb),
                &mut SparkplugAliases::default(),
            )
        })
    });
    let value = rmpv::Value::Array(
        (0..50_000)
            .map(|i| {
                rmpv::Value::Map(vec![
                    ("id".into(), rmpv::Value::from(i)),
                    ("v".into(), rmpv::Value::F64(f64::from(i) / 3.0)),
                ])
            })
            .collect(),
    );
    let mut mp = Vec::new();
    if rmpv::encode::write_value(&mut mp, &value).is_err() {
        return;
    }
    println!("MessagePack: {} bytes, 50,000 maps", mp.len());
    c.bench_function("msgpack decode 50,000 maps", |b| {
        b.iter(|| msgpack::decode(black_box(&mp)))
    });
    let cv = ciborium::Value::Array(
        (0..50_000)
            .map(|i| {
                ciborium::Value::Map(vec![
                    (
                        ciborium::Value::Text("id".into()),
                        ciborium::Value::Integer(i.into()),
                    ),
                    (
                        ciborium::Value::Text("v".into()),
                        ciborium::Value::Float(f64::from(i) / 3.0),
                    ),
                ])
            })
            .collect(),
    );
    let mut cb = Vec::new();
    if ciborium::ser::into_writer(&cv, &mut cb).is_err() {
        return;
    }
    println!("CBOR: {} bytes, 50,000 maps", cb.len());
    c.bench_function("cbor decode 50,000 maps", |b| {
        b.iter(|| cbor::decode(black_box(&cb)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = diff_benches, decoder_benches
}
criterion_main!(benches);
