//! Benchmarks of the model at explorer scale: building the topic tree,
//! updating known topics, filtering and flattening 100,000 topics.
//!
//! `cargo bench --bench model` (about a minute). The memory per topic for a
//! million topics is printed once at the start.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mqscope::model::store::Store;
use mqscope::profile::Qos;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

/// Topics shaped like a large installation's retained burst.
fn topics(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "site{}/building{}/device{}/temperature",
                i % 10,
                (i / 10) % 100,
                i
            )
        })
        .collect()
}

fn filled(topics: &[String], payload: &[u8]) -> Store {
    let mut store = Store::default();
    let now = SystemTime::now();
    for t in topics {
        store.ingest(t, payload, Qos::AtMostOnce, true, false, 0, now);
    }
    store
}

fn print_memory_per_topic() {
    let n = 1_000_000;
    let store = filled(&topics(n), &[b'x'; 100]);
    println!(
        "memory estimate for {n} topics with 100-byte payloads: {} bytes/topic, {} MiB total",
        store.memory_estimate() / n,
        store.memory_estimate() >> 20
    );
}

fn model(c: &mut Criterion) {
    print_memory_per_topic();
    let payload = [b'x'; 100];
    let t200k = topics(200_000);
    let t100k = topics(100_000);
    let now = SystemTime::now();

    let mut group = c.benchmark_group("model");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    group.bench_function("insert 200k distinct topics", |b| {
        b.iter(|| black_box(filled(&t200k, &payload)).topic_count())
    });

    group.bench_function("update 200k existing topics", |b| {
        b.iter_batched(
            || filled(&t200k, &payload),
            |mut store| {
                for t in &t200k {
                    store.ingest(t, &payload, Qos::AtMostOnce, false, false, 0, now);
                }
                store
            },
            BatchSize::PerIteration,
        )
    });

    let mut store = filled(&t100k, &[b'x'; 100]);
    group.bench_function("set_filter on 100k topics", |b| {
        b.iter(|| {
            store.set_filter(black_box("device4242"));
            store.visible_rows().len()
        })
    });

    store.set_filter("");
    store.tree_mut().expand_all();
    group.bench_function("flatten 100k expanded topics", |b| {
        b.iter(|| {
            // Toggling the `$` filter forces a rebuild of every row.
            store.set_show_sys(false);
            store.set_show_sys(true);
            store.visible_rows().len()
        })
    });
    group.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
