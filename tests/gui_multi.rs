//! Several brokers at once in one window, driven like a user would with two
//! real Mosquitto brokers: each connection's messages land only in its own
//! tree, closing one leaves the other running, switching back keeps the
//! selection, and two trees side by side compare a topic across brokers.

mod common;

use common::gui::{click, has_label, step_until};

use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::{App, Tab};
use mqscope::mqtt::{ConnStatus, Message};
use mqscope::profile::{Profile, ProfileStore, Qos, SubscriptionSpec};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(10);

fn profile(name: &str, broker: &common::Broker) -> Profile {
    Profile {
        name: name.into(),
        client_id: format!("mqscope-multi-{name}"),
        subscriptions: vec![SubscriptionSpec::new("#", Qos::AtMostOnce)],
        ..common::profile_for(broker)
    }
}

fn harness_with(dir: &Path, profiles: &[Profile]) -> Harness<'static, App> {
    ProfileStore::at(dir)
        .save(profiles)
        .expect("the profiles are saved");
    common::gui::app(dir)
}

fn connected(h: &Harness<'_, App>, name: &str) -> bool {
    matches!(
        h.state().status_of(name),
        Some(ConnStatus::Connected { .. })
    )
}

fn messages_on(h: &Harness<'_, App>, name: &str, topic: &str) -> u64 {
    h.state()
        .store_of(name)
        .and_then(|s| s.find(topic).and_then(|n| s.topic_info(n)))
        .map_or(0, |i| i.messages)
}

/// Connects "plant" (shown first) and opens "cloud" from the strip's menu.
fn open_both(harness: &mut Harness<'_, App>, plant: &common::Broker, cloud: &common::Broker) {
    click(harness, "Connect");
    click(harness, "+ Open…");
    click(harness, "cloud");
    step_until(harness, "both connections up", LIMIT, |h| {
        connected(h, "plant") && connected(h, "cloud")
    });
    plant.wait_subscribed("mqscope-multi-plant", "#");
    cloud.wait_subscribed("mqscope-multi-cloud", "#");
    assert_eq!(harness.state().open_connections(), ["plant", "cloud"]);
}

#[test]
fn two_brokers_each_fill_their_own_tree_and_one_closes_alone() {
    let plant = common::Broker::start();
    let cloud = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(
        dir.path(),
        &[profile("plant", &plant), profile("cloud", &cloud)],
    );
    open_both(&mut harness, &plant, &cloud);

    common::mosquitto_pub(&plant, &["-t", "plant/boiler/temp", "-m", "71.5"]);
    common::mosquitto_pub(&cloud, &["-t", "upstream/summary", "-m", "{\"t\":71.5}"]);
    step_until(&mut harness, "each message in its tree", LIMIT, |h| {
        messages_on(h, "plant", "plant/boiler/temp") == 1
            && messages_on(h, "cloud", "upstream/summary") == 1
    });
    let app = harness.state();
    let (p, c) = (
        app.store_of("plant").unwrap(),
        app.store_of("cloud").unwrap(),
    );
    assert!(
        p.find("upstream/summary").is_none(),
        "cloud's message leaked into plant"
    );
    assert!(
        c.find("plant/boiler/temp").is_none(),
        "plant's message leaked into cloud"
    );

    // The strip shows "cloud" (just opened); back to plant, select a topic,
    // away and back: the selection is where it was.
    assert!(has_label(&harness, "upstream"));
    click(&mut harness, "Show connection plant");
    assert!(has_label(&harness, "plant") && !has_label(&harness, "upstream"));
    click(&mut harness, "plant");
    assert_eq!(harness.state().selected_topic().as_deref(), Some("plant"));
    click(&mut harness, "Show connection cloud");
    assert_eq!(harness.state().selected_topic(), None);
    click(&mut harness, "Show connection plant");
    assert_eq!(harness.state().selected_topic().as_deref(), Some("plant"));

    // Closing cloud disconnects it and nothing else.
    click(&mut harness, "Close cloud");
    step_until(&mut harness, "cloud disconnected", LIMIT, |h| {
        matches!(
            h.state().status_of("cloud"),
            Some(ConnStatus::Disconnected { .. })
        )
    });
    assert_eq!(harness.state().open_connections(), ["plant"]);
    assert!(!has_label(&harness, "Show connection cloud"));
    common::mosquitto_pub(&plant, &["-t", "plant/boiler/temp", "-m", "72.0"]);
    step_until(&mut harness, "plant still receiving", LIMIT, |h| {
        messages_on(h, "plant", "plant/boiler/temp") == 2
    });
    assert!(connected(&harness, "plant"));
    assert!(
        cloud.wait_for_log("mqscope-multi-cloud", LIMIT),
        "the cloud broker saw the client"
    );
}

#[test]
fn an_open_profile_opens_again_only_as_a_second_client() {
    let plant = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(dir.path(), &[profile("plant", &plant)]);
    click(&mut harness, "Connect");
    step_until(&mut harness, "plant up", LIMIT, |h| connected(h, "plant"));
    click(&mut harness, "+ Open…");
    click(&mut harness, "plant — a second connection");
    step_until(&mut harness, "the copy up", LIMIT, |h| {
        h.state().open_connections().len() == 2
            && h.state()
                .open_connections()
                .iter()
                .all(|name| connected(h, name))
    });
    let open = harness.state().open_connections();
    let copy = harness
        .state()
        .profiles()
        .find(|p| p.name == open[1])
        .expect("the copy is a profile")
        .clone();
    assert_ne!(copy.client_id, "mqscope-multi-plant");
    assert!(
        common::gui::has_label_containing(&harness, "already open: a second connection"),
        "the window says what happened"
    );
    // Both sessions stay up: neither took the other's client id over.
    common::gui::steps(&mut harness, 20);
    assert!(connected(&harness, "plant") && connected(&harness, &copy.name));
}

#[test]
fn side_by_side_compares_a_topic_across_two_brokers() {
    let plant = common::Broker::start();
    let cloud = common::Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(
        dir.path(),
        &[profile("plant", &plant), profile("cloud", &cloud)],
    );
    // Plant's broker holds the reading retained (sent to a new subscriber
    // with the retain flag); cloud's arrives live.
    common::mosquitto_pub(&plant, &["-t", "bridge/reading", "-m", "42", "-r"]);
    open_both(&mut harness, &plant, &cloud);
    common::mosquitto_pub(&cloud, &["-t", "bridge/reading", "-m", "42"]);
    step_until(&mut harness, "the reading on both", LIMIT, |h| {
        messages_on(h, "plant", "bridge/reading") == 1
            && messages_on(h, "cloud", "bridge/reading") == 1
    });
    click(&mut harness, "Side by side");
    assert_eq!(harness.state().tab(), Tab::SideBySide);
    // Both trees show "bridge": open the left one down to the reading.
    harness
        .get_all_by_label("bridge")
        .next()
        .expect("a bridge row")
        .click();
    harness.run_ok();
    harness.key_press(Key::ArrowRight);
    harness.run_ok();
    click(&mut harness, "reading");
    step_until(&mut harness, "the comparison", LIMIT, |h| {
        has_label(h, "identical")
    });
    assert!(has_label(&harness, "yes"), "plant's reading is retained");
    assert!(has_label(&harness, "no"), "cloud's is not");

    common::mosquitto_pub(&cloud, &["-t", "bridge/reading", "-m", "43"]);
    step_until(&mut harness, "the payloads to differ", LIMIT, |h| {
        has_label(h, "different")
    });
    assert!(has_label(&harness, "43"));
}

fn message(topic: &str, payload: &[u8], received: SystemTime, retain: bool) -> Message {
    Message {
        topic: topic.into(),
        payload: bytes::Bytes::copy_from_slice(payload),
        qos: Qos::AtMostOnce,
        retain,
        received,
        ..Default::default()
    }
}

#[test]
fn side_by_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plant = Profile {
        name: "sandbox".into(),
        ..Profile::default()
    };
    let cloud = Profile {
        name: "sandbox cloud".into(),
        port: 1884,
        ..Profile::default()
    };
    let mut harness = harness_with(dir.path(), &[plant, cloud]);
    let now = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let ago = |s: u64| now - Duration::from_secs(s);
    let app = harness.state_mut();
    app.set_clock(Some(now));
    assert!(app.open_offline("sandbox"));
    for (i, speed) in ["14.2", "15.8", "17.1"].iter().enumerate() {
        let at = ago(3 - i as u64);
        app.inject_message(message(
            "surfboards/surfboard01/speedmph",
            speed.as_bytes(),
            at,
            false,
        ));
        app.inject_message(message("surfboards/surfboard01/status", b"2", at, false));
    }
    app.inject_message(message(
        "surfboard01",
        b"{\"Status\": \"Riding\", \"Speed MPH\": 17.1}",
        ago(1),
        false,
    ));
    assert!(app.open_offline("sandbox cloud"));
    for (i, speed) in ["15.8", "17.1"].iter().enumerate() {
        let json = format!("{{\"Status\": \"Riding\", \"Speed MPH\": {speed}}}");
        app.inject_message(message(
            "surfboard01",
            json.as_bytes(),
            ago(2 - i as u64),
            false,
        ));
    }
    harness.run_ok();
    click(&mut harness, "Side by side");
    // Left is the connection shown ("sandbox cloud", opened last).
    harness
        .get_all_by_label("surfboard01")
        .next()
        .expect("a surfboard01 row")
        .click();
    harness.run_ok();
    harness.remove_cursor();
    harness.run_ok();
    assert!(has_label(&harness, "identical"));
    harness.snapshot("side_by_side");
}

/// A frame's batch of events over three busy connections is applied on two
/// threads (the window's own path for the worker's events): each message
/// lands in its own connection's tree, each topic's history in the order the
/// broker sent it, and an event of a connection that is not open is dropped.
#[test]
fn busy_connections_in_one_batch_each_get_their_own_messages_in_order() {
    use mqscope::mqtt::{Event, EventKind};
    let dir = tempfile::tempdir().expect("temp dir");
    let names = ["plant", "cloud", "lab"];
    let profiles: Vec<Profile> = names
        .iter()
        .map(|n| Profile {
            name: (*n).into(),
            ..Profile::default()
        })
        .collect();
    let mut harness = harness_with(dir.path(), &profiles);
    let app = harness.state_mut();
    let ids: Vec<_> = names
        .iter()
        .map(|n| {
            assert!(app.open_offline(n));
            app.connection_id(n).expect("opened")
        })
        .collect();
    let n = 700;
    let mut events = Vec::new();
    for i in 0..n {
        for (j, &conn) in ids.iter().enumerate() {
            // Uneven loads: the first connection gets two topics.
            let topics: &[String] = if j == 0 {
                &[format!("{}/a", names[j]), format!("{}/b", names[j])]
            } else {
                &[format!("{}/a", names[j])]
            };
            for topic in topics {
                events.push(Event {
                    conn,
                    kind: EventKind::Message(Message {
                        topic: topic.clone(),
                        payload: i.to_string().into_bytes().into(),
                        received: SystemTime::now(),
                        ..Message::default()
                    }),
                });
            }
        }
        // Not an open connection: nowhere to go.
        events.push(Event {
            conn: 9_999,
            kind: EventKind::Message(Message {
                topic: "stray".into(),
                payload: b"x".to_vec().into(),
                ..Message::default()
            }),
        });
    }
    app.deliver_events(events);
    for (j, name) in names.iter().enumerate() {
        let store = harness.state().store_of(name).expect("its store");
        let topics = if j == 0 { 2 } else { 1 };
        assert_eq!(store.total_messages(), (n * topics) as u64, "{name}");
        assert_eq!(store.topic_count(), topics, "{name}: only its own topics");
        let node = store.find(&format!("{name}/a")).expect("its topic");
        let history: Vec<usize> = store
            .history(node)
            .filter_map(|h| h.payload)
            .map(|p| String::from_utf8_lossy(p).parse().expect("a number"))
            .collect();
        assert!(history.len() > 10, "{name}: history kept");
        assert_eq!(history[0], n - 1, "{name}: the last one is newest");
        assert!(
            history.windows(2).all(|w| w[0] == w[1] + 1),
            "{name}: newest first, none missing or out of order"
        );
        assert!(store.find("stray").is_none());
    }
}

/// Two real brokers bursting at once: the window's drain takes both
/// connections' events in the same batches (applied on two threads) and
/// each tree gets every message of its own broker, in order.
#[test]
fn two_brokers_bursting_at_once_lose_nothing_and_keep_their_order() {
    use std::io::Write as _;
    let plant = common::Broker::builder()
        .config_line("max_queued_messages 0")
        .start();
    let cloud = common::Broker::builder()
        .config_line("max_queued_messages 0")
        .start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut harness = harness_with(
        dir.path(),
        &[profile("plant", &plant), profile("cloud", &cloud)],
    );
    open_both(&mut harness, &plant, &cloud);
    let n = 5_000;
    let lines: String = (0..n).map(|i| format!("{i}\n")).collect();
    let publishers: Vec<_> = [&plant, &cloud]
        .iter()
        .map(|broker| {
            let mut child = std::process::Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
                .args(["-t", "burst/x", "-l"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("mosquitto_pub runs");
            child
                .stdin
                .take()
                .expect("its stdin")
                .write_all(lines.as_bytes())
                .expect("lines written");
            child
        })
        .collect();
    for mut p in publishers {
        assert!(p.wait().expect("mosquitto_pub ends").success());
    }
    step_until(
        &mut harness,
        "both bursts whole",
        Duration::from_secs(30),
        |h| messages_on(h, "plant", "burst/x") == n && messages_on(h, "cloud", "burst/x") == n,
    );
    for name in ["plant", "cloud"] {
        let store = harness.state().store_of(name).expect("its store");
        let node = store.find("burst/x").expect("the topic");
        let kept: Vec<u64> = store
            .history(node)
            .filter_map(|h| h.payload)
            .map(|p| String::from_utf8_lossy(p).parse().expect("a number"))
            .collect();
        assert_eq!(
            kept.first(),
            Some(&(n - 1)),
            "{name}: the newest is the last sent"
        );
        assert!(
            kept.windows(2).all(|w| w[0] == w[1] + 1),
            "{name}: kept history in the order sent"
        );
        assert_eq!(store.total_messages(), n, "{name}: nothing else arrived");
    }
}
