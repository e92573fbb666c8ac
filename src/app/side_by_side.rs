//! "Side by side": two open connections' topic trees next to each other,
//! and one topic compared across them — its last payload, how many
//! messages and how fast, retained or not. The demo is the book's chapter 6
//! bridge: what a device publishes on the plant broker against what
//! arrives upstream.

use super::connection::Connection;
use super::connection_bar::status_color;
use super::tree_view::TreeAction;
use crate::model::store::Store;
use crate::mqtt::ConnectionId;
use egui::RichText;
use std::collections::HashMap;
use std::time::SystemTime;

/// Characters of a payload shown in the comparison.
const PAYLOAD_CHARS: usize = 120;

/// Which connections are compared, and on what topic.
#[derive(Debug, Default)]
pub(crate) struct SideBySide {
    pub(crate) left: Option<ConnectionId>,
    pub(crate) right: Option<ConnectionId>,
    /// The topic last selected in either tree.
    pub(crate) topic: Option<String>,
}

/// One side of the comparison: what a connection knows of a topic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TopicSide {
    pub(crate) messages: u64,
    pub(crate) retained: bool,
    /// The last payload as text (UTF-8) or hex, shortened.
    pub(crate) last_payload: Option<String>,
    pub(crate) last_bytes: Option<Vec<u8>>,
    pub(crate) last_size: usize,
    pub(crate) last_received: SystemTime,
    /// Messages per second over the kept history (two messages at least).
    pub(crate) rate: Option<f64>,
}

/// What `store` knows of `topic`; `None` when nothing arrived on it.
pub(crate) fn summarize(store: &Store, topic: &str) -> Option<TopicSide> {
    let node = store.find(topic)?;
    let info = store.topic_info(node)?;
    let mut first = None;
    let mut count = 0usize;
    for item in store.history(node) {
        first = Some(first.map_or(item.received, |f: SystemTime| f.min(item.received)));
        count += 1;
    }
    let rate = first.and_then(|first| {
        let span = info.last.received.duration_since(first).ok()?.as_secs_f64();
        (count >= 2 && span > 0.0).then(|| (count - 1) as f64 / span)
    });
    let payload = info.last.payload;
    Some(TopicSide {
        messages: info.messages,
        retained: info.retained,
        last_payload: payload.map(preview),
        last_bytes: payload.map(<[u8]>::to_vec),
        last_size: info.last.size,
        last_received: info.last.received,
        rate,
    })
}

/// A payload as one line: its text when it is UTF-8, else its hex.
fn preview(bytes: &[u8]) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.replace(['\n', '\r'], " "),
        Err(_) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    };
    match text.char_indices().nth(PAYLOAD_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The verdict on the last payloads of both sides.
pub(crate) fn same_payload(a: Option<&TopicSide>, b: Option<&TopicSide>) -> &'static str {
    match (a, b) {
        (Some(a), Some(b)) => match (&a.last_bytes, &b.last_bytes) {
            (Some(x), Some(y)) if x == y => "identical",
            (Some(_), Some(_)) => "different",
            _ => "unknown (a payload was evicted)",
        },
        (Some(_), None) | (None, Some(_)) => "only one side has it",
        (None, None) => "neither side has it",
    }
}

/// A connection the pickers offer: id and profile name.
pub(crate) struct Choice {
    pub(crate) conn: ConnectionId,
    pub(crate) name: String,
}

/// What the view asks of the window: tree actions of either connection.
pub(crate) type SideActions = Vec<(ConnectionId, TreeAction)>;

impl SideBySide {
    /// Keeps both sides on open connections: left defaults to the one
    /// shown in the window, right to another one.
    pub(crate) fn fit(&mut self, choices: &[Choice], shown: Option<ConnectionId>) {
        let open = |c: Option<ConnectionId>| c.filter(|c| choices.iter().any(|x| x.conn == *c));
        self.left = open(self.left).or(shown.filter(|s| choices.iter().any(|x| x.conn == *s)));
        self.left = self.left.or(choices.first().map(|c| c.conn));
        self.right = open(self.right).filter(|r| Some(*r) != self.left);
        if self.right.is_none() {
            self.right = choices
                .iter()
                .map(|c| c.conn)
                .find(|c| Some(*c) != self.left);
        }
    }

    pub(crate) fn ui(
        &mut self,
        ui: &mut egui::Ui,
        choices: &[Choice],
        connections: &mut HashMap<ConnectionId, Connection>,
        now: SystemTime,
    ) -> SideActions {
        let mut actions = Vec::new();
        if choices.len() < 2 {
            ui.add_space(24.0);
            ui.vertical_centered(|ui| {
                ui.heading("Two brokers side by side");
                ui.label(
                    "Open a second connection (\"+ Open…\" above) to see two topic trees next \
                     to each other and compare a topic across them.",
                );
            });
            return actions;
        }
        let name_of = |c: Option<ConnectionId>| {
            choices
                .iter()
                .find(|x| Some(x.conn) == c)
                .map_or("—".to_string(), |x| x.name.clone())
        };
        egui::Panel::bottom("side_by_side_compare")
            .resizable(true)
            .default_size(250.0)
            .min_size(230.0)
            .show(ui, |ui| {
                self.compare_ui(ui, connections, &name_of(self.left), &name_of(self.right));
            });
        let mut sides = [self.left, self.right];
        let mut topic = None;
        egui::CentralPanel::default().show(ui, |ui| {
            ui.columns(2, |cols| {
                for (i, col) in cols.iter_mut().enumerate() {
                    let other = sides[1 - i];
                    let side = &mut sides[i];
                    col.push_id(i, |ui| {
                        let label = if i == 0 { "Left" } else { "Right" };
                        ui.horizontal(|ui| {
                            let l = ui.label(label);
                            egui::ComboBox::from_id_salt(("side", i))
                                .selected_text(name_of(*side))
                                .show_ui(ui, |ui| {
                                    for c in choices.iter().filter(|c| Some(c.conn) != other) {
                                        ui.selectable_value(side, Some(c.conn), &c.name);
                                    }
                                })
                                .response
                                .labelled_by(l.id);
                            if let Some(c) = side.and_then(|c| connections.get(&c)) {
                                let color = status_color(ui, Some(&c.state.status));
                                let (dot, _) = ui.allocate_exact_size(
                                    egui::vec2(10.0, 10.0),
                                    egui::Sense::hover(),
                                );
                                ui.painter().circle_filled(dot.center(), 5.0, color);
                                let (m, t) =
                                    (c.state.store.total_messages(), c.state.store.topic_count());
                                ui.weak(format!(
                                    "{m} message{} · {t} topic{}",
                                    if m == 1 { "" } else { "s" },
                                    if t == 1 { "" } else { "s" }
                                ));
                            }
                        });
                        ui.separator();
                        let Some(conn) = *side else {
                            return;
                        };
                        if let Some(c) = connections.get_mut(&conn) {
                            let Connection { state, views } = c;
                            for action in views.tree.ui(ui, &mut state.store, now) {
                                if let TreeAction::Select { topic: t, .. } = &action {
                                    topic = Some(t.clone());
                                }
                                actions.push((conn, action));
                            }
                        }
                    });
                }
            });
        });
        [self.left, self.right] = sides;
        if topic.is_some() {
            self.topic = topic;
        }
        actions
    }

    fn compare_ui(
        &self,
        ui: &mut egui::Ui,
        connections: &HashMap<ConnectionId, Connection>,
        left_name: &str,
        right_name: &str,
    ) {
        let Some(topic) = &self.topic else {
            ui.add_space(6.0);
            ui.weak("Select a topic in either tree to compare it across both connections.");
            return;
        };
        let side = |c: Option<ConnectionId>| {
            c.and_then(|c| connections.get(&c))
                .and_then(|c| summarize(&c.state.store, topic))
        };
        let (a, b) = (side(self.left), side(self.right));
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.label("Compared topic");
            ui.label(RichText::new(topic).monospace().strong());
        });
        let verdict = same_payload(a.as_ref(), b.as_ref());
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("side_by_side_grid")
                .num_columns(3)
                .striped(true)
                .spacing([24.0, 4.0])
                .show(ui, |ui| {
                    ui.label("");
                    ui.strong(left_name);
                    ui.strong(right_name);
                    ui.end_row();
                    let row = |ui: &mut egui::Ui, name: &str, f: &dyn Fn(&TopicSide) -> String| {
                        ui.label(name);
                        for s in [&a, &b] {
                            match s {
                                Some(s) => ui.monospace(f(s)),
                                None => ui.weak("no message on this topic"),
                            };
                        }
                        ui.end_row();
                    };
                    row(ui, "Last payload", &|s| {
                        s.last_payload
                            .clone()
                            .unwrap_or_else(|| format!("(evicted, {} bytes)", s.last_size))
                    });
                    row(ui, "Messages", &|s| s.messages.to_string());
                    row(ui, "Rate", &|s| match s.rate {
                        Some(r) if r >= 10.0 => format!("{r:.0} msg/s"),
                        Some(r) => format!("{r:.2} msg/s"),
                        None => "—".into(),
                    });
                    row(ui, "Retained", &|s| {
                        if s.retained { "yes" } else { "no" }.to_string()
                    });
                    row(ui, "Last received", &|s| {
                        super::clock::time_of_day(s.last_received, true)
                    });
                    ui.label("Last payloads");
                    let color = if verdict == "identical" {
                        ui.visuals().text_color()
                    } else {
                        ui.visuals().warn_fg_color
                    };
                    ui.colored_label(color, verdict);
                    ui.end_row();
                });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::protocol::{Message, Qos};
    use crate::model::store::HistoryLimits;
    use std::time::{Duration, UNIX_EPOCH};

    fn msg(topic: &str, payload: &[u8], retain: bool, at: u64) -> Message {
        Message {
            topic: topic.into(),
            payload: bytes::Bytes::copy_from_slice(payload),
            qos: Qos::AtMostOnce,
            retain,
            received: UNIX_EPOCH + Duration::from_millis(at),
            ..Message::default()
        }
    }

    #[test]
    fn a_topic_is_summarized_with_its_rate_and_retained_flag() {
        let mut store = Store::new(HistoryLimits::default());
        for i in 0..5 {
            store.apply_message(&msg("plant/t", format!("{i}").as_bytes(), false, i * 500));
        }
        store.apply_message(&msg("plant/r", b"on", true, 0));
        let t = summarize(&store, "plant/t").unwrap();
        assert_eq!(t.messages, 5);
        assert_eq!(t.last_payload.as_deref(), Some("4"));
        assert!((t.rate.unwrap() - 2.0).abs() < 1e-9);
        assert!(!t.retained);
        let r = summarize(&store, "plant/r").unwrap();
        assert!(r.retained);
        assert_eq!(r.rate, None);
        assert_eq!(summarize(&store, "plant"), None);
        assert_eq!(summarize(&store, "nowhere"), None);
    }

    #[test]
    fn binary_and_long_payloads_are_shown_on_one_line() {
        assert_eq!(preview(&[0xff, 0x00, 0x10]), "ff0010");
        assert_eq!(preview(b"a\nb"), "a b");
        let long = "x".repeat(PAYLOAD_CHARS + 10);
        assert_eq!(preview(long.as_bytes()).chars().count(), PAYLOAD_CHARS + 1);
    }

    #[test]
    fn the_verdict_compares_the_last_payloads() {
        let mut a = Store::new(HistoryLimits::default());
        let mut b = Store::new(HistoryLimits::default());
        a.apply_message(&msg("t", b"1", false, 0));
        b.apply_message(&msg("t", b"1", false, 5));
        let (sa, sb) = (summarize(&a, "t"), summarize(&b, "t"));
        assert_eq!(same_payload(sa.as_ref(), sb.as_ref()), "identical");
        b.apply_message(&msg("t", b"2", false, 9));
        let sb = summarize(&b, "t");
        assert_eq!(same_payload(sa.as_ref(), sb.as_ref()), "different");
        assert_eq!(same_payload(sa.as_ref(), None), "only one side has it");
    }

    #[test]
    fn the_sides_stay_on_open_connections() {
        let choices = |ids: &[ConnectionId]| -> Vec<Choice> {
            ids.iter()
                .map(|c| Choice {
                    conn: *c,
                    name: format!("c{c}"),
                })
                .collect()
        };
        let mut s = SideBySide::default();
        s.fit(&choices(&[1, 2, 3]), Some(2));
        assert_eq!((s.left, s.right), (Some(2), Some(1)));
        // The right one closes: another one takes its place.
        s.fit(&choices(&[2, 3]), Some(2));
        assert_eq!((s.left, s.right), (Some(2), Some(3)));
        // Only one left open: nothing to compare it with.
        s.fit(&choices(&[3]), Some(3));
        assert_eq!((s.left, s.right), (Some(3), None));
    }
}
