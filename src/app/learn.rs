//! "Learn": the path of *Hands-On MQTT Programming with Python* as short
//! guided lessons. Each step has a live check that turns green from what
//! really happened on the connections — a SUBACK, a QoS 2 flow that
//! completed, a will that arrived — never from a button the learner ticks.
//!
//! The checks ([`Check::holds`]) read the GUI-free per-connection state and
//! are unit-tested without egui; the view only draws them.

use super::Tab;
use super::connection::Connection;
use super::subscriptions::SubState;
use crate::model::flows::{FlowKind, Side};
use crate::model::packet::{Direction, PacketKind};
use crate::model::topic::matches as matches_filter;
use crate::mqtt::{ConnStatus, ConnectionId};
use crate::profile::{Profile, TransportKind};
use egui::{Color32, RichText};
use std::collections::{BTreeSet, HashMap};

/// The vehicle of chapters 4 and 5.
pub const COMMANDS: &str = "vehicles/vehiclepi01/commands";
pub const EXECUTED: &str = "vehicles/vehiclepi01/executedcommands";

/// What must have happened for a step to be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The connection shown is connected.
    Connected,
    /// The broker granted a subscription whose filter covers this topic.
    SubscribedTo(&'static str),
    /// A QoS 2 publish of ours on this topic completed its four packets.
    Qos2Completed(&'static str),
    /// A message on `topic` whose payload contains `text` arrived.
    MessageContains {
        topic: &'static str,
        text: &'static str,
    },
    /// The timeline shows the flow of a QoS 2 publish on this topic.
    FlowOpened(&'static str),
    /// Connected over TLS presenting the client certificate of this file
    /// name.
    TlsWithCertificate(&'static str),
    /// A TLS connection without a client certificate was refused and the
    /// log says so.
    TlsRefusedWithoutCertificate,
    /// A connection with a last will is up, and another one is subscribed
    /// to the will's topic.
    WillReady,
    /// A connection with a last will was dropped without DISCONNECT, and
    /// another connection received a message on the will's topic.
    WillArrived,
    /// The QoS lab measured all three levels on the connection shown.
    LabMeasured,
    /// A persistent session was resumed and messages queued while away
    /// were delivered right after CONNACK.
    SessionResumedWithQueued,
}

/// One connection as the checks see it.
#[derive(Clone, Copy)]
pub struct Seen<'a> {
    pub profile: &'a Profile,
    pub conn: &'a Connection,
}

impl Check {
    /// Whether the check holds; `shown` is the connection in the window,
    /// `all` every connection opened since the start (it included).
    pub fn holds(self, shown: Option<&Seen<'_>>, all: &[Seen<'_>]) -> bool {
        let Some(shown) = shown else {
            return false;
        };
        let state = &shown.conn.state;
        match self {
            Check::Connected => matches!(state.status, ConnStatus::Connected { .. }),
            Check::SubscribedTo(topic) => state.subs.iter().any(|(filter, sub)| {
                matches!(sub, SubState::Granted(_)) && matches_filter(filter, topic)
            }),
            Check::Qos2Completed(topic) => state.packets.flows().any(|f| {
                f.kind
                    == FlowKind::Publish {
                        qos: 2,
                        side: Side::Ours,
                    }
                    && f.topic.as_deref() == Some(topic)
                    && f.is_complete()
                    && f.steps.len() == 4
            }),
            Check::MessageContains { topic, text } => state.store.find(topic).is_some_and(|node| {
                state.store.history(node).any(|m| {
                    m.payload
                        .is_some_and(|p| String::from_utf8_lossy(p).contains(text))
                })
            }),
            Check::FlowOpened(topic) => {
                let views = &shown.conn.views;
                let flow = views.timeline.filter.flow.or_else(|| {
                    views
                        .timeline
                        .selected
                        .and_then(|seq| state.packets.get(seq))
                        .map(|e| e.flow)
                });
                flow.and_then(|id| state.packets.flow(id)).is_some_and(|f| {
                    matches!(f.kind, FlowKind::Publish { qos: 2, .. })
                        && f.topic.as_deref() == Some(topic)
                })
            }
            Check::TlsWithCertificate(file) => all.iter().any(|s| {
                matches!(s.conn.state.status, ConnStatus::Connected { .. })
                    && s.profile.transport == TransportKind::Tls
                    && s.profile
                        .tls
                        .client_cert
                        .as_ref()
                        .and_then(|p| p.file_name())
                        .is_some_and(|n| n == file)
            }),
            Check::TlsRefusedWithoutCertificate => all.iter().any(|s| {
                s.profile.transport == TransportKind::Tls
                    && s.profile.tls.client_cert.is_none()
                    && s.conn
                        .state
                        .log
                        .iter()
                        .any(|l| l.is_error && l.text.to_lowercase().contains("certificate"))
            }),
            Check::WillReady => all.iter().any(|with_will| {
                let will = &with_will.profile.will;
                will.enabled
                    && matches!(with_will.conn.state.status, ConnStatus::Connected { .. })
                    && all.iter().any(|other| {
                        !std::ptr::eq(other.conn, with_will.conn)
                            && other.conn.state.subs.iter().any(|(filter, sub)| {
                                matches!(sub, SubState::Granted(_))
                                    && matches_filter(filter, &will.topic)
                            })
                    })
            }),
            Check::WillArrived => all.iter().any(|dropped| {
                let will = &dropped.profile.will;
                will.enabled
                    && dropped
                        .conn
                        .state
                        .log
                        .iter()
                        .any(|l| l.text.contains("without DISCONNECT"))
                    && all.iter().any(|other| {
                        !std::ptr::eq(other.conn, dropped.conn)
                            && other.conn.state.store.find(&will.topic).is_some_and(|n| {
                                other
                                    .conn
                                    .state
                                    .store
                                    .history(n)
                                    .any(|m| m.payload == Some(will.payload.as_bytes()))
                            })
                    })
            }),
            Check::LabMeasured => state.lab.as_ref().is_some_and(|lab| {
                let rows = lab.results();
                lab.is_done()
                    && rows.len() == 3
                    && rows.iter().all(|r| !r.incomplete && r.completed > 0)
            }),
            Check::SessionResumedWithQueued => {
                let resumed = matches!(
                    state.status,
                    ConnStatus::Connected {
                        session_present: true,
                        ..
                    }
                );
                let after_connack = state
                    .packets
                    .entries()
                    .rev()
                    .take_while(|e| e.record.kind != PacketKind::Connack)
                    .any(|e| {
                        e.record.dir == Direction::In
                            && e.record.kind == PacketKind::Publish
                            && e.record.qos.unwrap_or(0) > 0
                    });
                resumed && !shown.profile.clean_session && after_connack
            }
        }
    }
}

/// One step of a lesson.
pub struct Step {
    pub text: &'static str,
    /// The book's command line (or what to click) for this step.
    pub hint: &'static str,
    /// Where it happens.
    pub tab: Tab,
    pub check: Check,
}

pub struct Lesson {
    pub id: &'static str,
    pub title: &'static str,
    /// The chapter of the book it follows.
    pub chapter: &'static str,
    pub intro: &'static str,
    pub steps: &'static [Step],
}

/// The lessons, in the book's order.
pub const LESSONS: &[Lesson] = &[
    Lesson {
        id: "listen",
        title: "Listen to the vehicle",
        chapter: "Chapter 2 · Using command-line and GUI tools",
        intro: "An MQTT client subscribes to topics; the broker forwards every message published \
                on them. Connect to the sandbox and listen to what the vehicle reports.",
        steps: &[
            Step {
                text: "Connect to the sandbox broker",
                hint: "Connect (the Sandbox profile)",
                tab: Tab::Explorer,
                check: Check::Connected,
            },
            Step {
                text: "Subscribe to vehicles/vehiclepi01/executedcommands",
                hint: "mosquitto_sub -V mqttv311 -t vehicles/vehiclepi01/executedcommands -d",
                tab: Tab::Explorer,
                check: Check::SubscribedTo(EXECUTED),
            },
        ],
    },
    Lesson {
        id: "qos2",
        title: "Command the vehicle at QoS 2",
        chapter: "Chapter 4 · Writing code to control a vehicle",
        intro: "The book's remote control sends each command at QoS 2: exactly once, in four \
                packets. Send one and find those four packets.",
        steps: &[
            Step {
                text: "Publish {\"CMD\": \"TURN_ON_ENGINE\"} to vehicles/vehiclepi01/commands at \
                       QoS 2 (the publish panel's Examples have it)",
                hint: "mosquitto_pub -V mqttv311 -t vehicles/vehiclepi01/commands -q 2 -m \
                       '{\"CMD\": \"TURN_ON_ENGINE\"}' -d",
                tab: Tab::Explorer,
                check: Check::Qos2Completed(COMMANDS),
            },
            Step {
                text: "See the vehicle answer on vehicles/vehiclepi01/executedcommands",
                hint: "{\"SUCCESSFULLY_PROCESSED_COMMAND\": \"TURN_ON_ENGINE\"}",
                tab: Tab::Explorer,
                check: Check::MessageContains {
                    topic: EXECUTED,
                    text: "TURN_ON_ENGINE",
                },
            },
            Step {
                text: "Open the command's flow on the timeline: PUBLISH, PUBREC, PUBREL, PUBCOMP",
                hint: "Inspector → Jump to flow, or click the PUBLISH on the Timeline",
                tab: Tab::Timeline,
                check: Check::FlowOpened(COMMANDS),
            },
        ],
    },
    Lesson {
        id: "tls",
        title: "Secure the connection with TLS",
        chapter: "Chapter 3 · Securing an MQTT 3.1.1 Mosquitto server",
        intro: "With TLS the broker proves who it is with a certificate signed by a CA you \
                trust, and can ask each client for a certificate of its own.",
        steps: &[
            Step {
                text: "Connect over TLS with board001's certificate",
                hint: "mosquitto_sub -V mqttv311 -p 8883 --cafile ca.crt --cert board001.crt \
                       --key board001.key -t '#' -d",
                tab: Tab::Profiles,
                check: Check::TlsWithCertificate("board001.crt"),
            },
            Step {
                text: "Try without a client certificate and read why it fails",
                hint: "A TLS profile with the CA only, on a listener that requires certificates",
                tab: Tab::Profiles,
                check: Check::TlsRefusedWithoutCertificate,
            },
        ],
    },
    Lesson {
        id: "will",
        title: "Leave a last will",
        chapter: "Chapter 4 · Working with last will and testament",
        intro: "A client can leave a message with the broker, published for it if it vanishes \
                without saying goodbye — the book's remote control parks the vehicle this way.",
        steps: &[
            Step {
                text: "Give a profile a last will, then open a second connection subscribed to \
                       its topic (\"+ Open…\" above)",
                hint: "Profiles → Last will → Enabled; then + Open… → a second connection",
                tab: Tab::Profiles,
                check: Check::WillReady,
            },
            Step {
                text: "Drop the first connection (\"Drop connection\", no DISCONNECT) and watch \
                       the will arrive on the second",
                hint: "The broker publishes the will when the socket closes without DISCONNECT",
                tab: Tab::Explorer,
                check: Check::WillArrived,
            },
        ],
    },
    Lesson {
        id: "cost",
        title: "What each QoS level costs",
        chapter: "Chapter 2 · Understanding the different QoS levels",
        intro: "Use QoS 2 only when it is really necessary: measure packets, bytes and round \
                trips of the three levels on the same broker.",
        steps: &[Step {
            text: "Run the QoS lab to the end",
            hint: "QoS lab → Run",
            tab: Tab::QosLab,
            check: Check::LabMeasured,
        }],
    },
    Lesson {
        id: "session",
        title: "Persistent sessions",
        chapter: "Chapter 2 · Working with persistent sessions",
        intro: "With clean session off the broker keeps your subscriptions and queues QoS 1 and \
                2 messages while you are away.",
        steps: &[Step {
            text: "Connect with clean session off and a QoS 1 subscription, disconnect, publish \
                   at QoS 1 while away, reconnect: the missed messages arrive",
            hint: "mosquitto_pub -V mqttv311 -t vehicles/vehiclepi01/commands -q 1 -m \
                   '{\"CMD\": \"LOCK_DOORS\"}'",
            tab: Tab::Explorer,
            check: Check::SessionResumedWithQueued,
        }],
    },
];

/// Progress through the lessons: steps done are remembered across runs.
#[derive(Debug, Default)]
pub struct LearnView {
    /// Index into [`LESSONS`].
    pub lesson: usize,
}

/// The key a done step is remembered by.
pub fn step_key(lesson: &Lesson, step: usize) -> String {
    format!("{}/{}", lesson.id, step)
}

/// Marks the steps of every lesson that hold now (a learner may do them in
/// any order); returns how many became done. Done steps stay done.
pub fn update(done: &mut BTreeSet<String>, shown: Option<&Seen<'_>>, all: &[Seen<'_>]) -> usize {
    let mut newly = 0;
    for lesson in LESSONS {
        for (i, step) in lesson.steps.iter().enumerate() {
            let key = step_key(lesson, i);
            if !done.contains(&key) && step.check.holds(shown, all) {
                done.insert(key);
                newly += 1;
            }
        }
    }
    newly
}

/// What the Learn tab asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnAction {
    Go(Tab),
    Reset(usize),
}

impl LearnView {
    pub fn ui(&mut self, ui: &mut egui::Ui, done: &BTreeSet<String>) -> Vec<LearnAction> {
        let mut actions = Vec::new();
        egui::Panel::left("learn_lessons")
            .resizable(false)
            .exact_size(300.0)
            .show(ui, |ui| {
                ui.add_space(6.0);
                ui.heading("Lessons");
                ui.weak("Hands-On MQTT Programming with Python, on the sandbox");
                ui.add_space(6.0);
                for (i, lesson) in LESSONS.iter().enumerate() {
                    let finished = (0..lesson.steps.len())
                        .filter(|s| done.contains(&step_key(lesson, *s)))
                        .count();
                    let mark = if finished == lesson.steps.len() {
                        "✔"
                    } else {
                        "○"
                    };
                    let text =
                        format!("{mark} {}  {finished}/{}", lesson.title, lesson.steps.len());
                    if ui.selectable_label(self.lesson == i, text).clicked() {
                        self.lesson = i;
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(lesson) = LESSONS.get(self.lesson) else {
                return;
            };
            ui.add_space(6.0);
            ui.heading(lesson.title);
            ui.weak(lesson.chapter);
            ui.add_space(4.0);
            ui.label(lesson.intro);
            ui.add_space(10.0);
            let green = Color32::from_rgb(80, 190, 110);
            for (i, step) in lesson.steps.iter().enumerate() {
                let is_done = done.contains(&step_key(lesson, i));
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.horizontal(|ui| {
                        let (mark, color) = if is_done {
                            ("✔", green)
                        } else {
                            ("○", ui.visuals().weak_text_color())
                        };
                        ui.label(RichText::new(mark).color(color).size(18.0));
                        let text = RichText::new(format!("{}. {}", i + 1, step.text));
                        ui.add(
                            egui::Label::new(if is_done { text.color(green) } else { text }).wrap(),
                        );
                    });
                    ui.horizontal(|ui| {
                        ui.add_space(26.0);
                        ui.add(
                            egui::Label::new(RichText::new(step.hint).monospace().weak()).wrap(),
                        );
                    });
                    ui.horizontal(|ui| {
                        ui.add_space(26.0);
                        let go = ui.small_button(format!("Go to {}", step.tab.label()));
                        let label = format!("Go to {} for step {}", step.tab.label(), i + 1);
                        go.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                        });
                        if go.clicked() {
                            actions.push(LearnAction::Go(step.tab));
                        }
                        let copy = ui.small_button("Copy");
                        let label = format!("Copy the hint of step {}", i + 1);
                        copy.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                        });
                        if copy.clicked() {
                            ui.ctx().copy_text(step.hint.to_string());
                        }
                        if is_done {
                            ui.colored_label(green, "done");
                        } else {
                            ui.weak("waiting for it to happen…");
                        }
                    });
                });
                ui.add_space(4.0);
            }
            ui.add_space(8.0);
            if ui
                .button("Start this lesson again")
                .on_hover_text("Forget which steps were done")
                .clicked()
            {
                actions.push(LearnAction::Reset(self.lesson));
            }
        });
        actions
    }
}

/// Every connection known to the window, with its profile, for the checks.
pub fn seen<'a>(
    profiles: impl Iterator<Item = (&'a Profile, Option<ConnectionId>)>,
    connections: &'a HashMap<ConnectionId, Connection>,
) -> Vec<(ConnectionId, Seen<'a>)> {
    profiles
        .filter_map(|(profile, conn)| {
            let conn_id = conn?;
            let conn = connections.get(&conn_id)?;
            Some((conn_id, Seen { profile, conn }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::PacketRecord;
    use crate::model::protocol::{Message, Qos};
    use crate::model::store::HistoryLimits;
    use crate::mqtt::EventKind;
    use std::time::SystemTime;

    fn connection() -> Connection {
        Connection::new(HistoryLimits::default())
    }

    fn packet(dir: Direction, kind: PacketKind, pkid: Option<u16>, qos: Option<u8>) -> EventKind {
        let mut r = PacketRecord::new(0, dir, kind, pkid, 4);
        r.qos = qos;
        if kind == PacketKind::Publish {
            r.detail.topic = Some(COMMANDS.into());
        }
        EventKind::Packet(r)
    }

    fn holds(check: Check, profile: &Profile, conn: &Connection) -> bool {
        let shown = Seen { profile, conn };
        let all = [Seen { profile, conn }];
        check.holds(Some(&shown), &all)
    }

    #[test]
    fn a_qos2_command_is_done_once_its_four_packets_completed() {
        let profile = Profile::default();
        let mut c = connection();
        c.state.apply(packet(
            Direction::Out,
            PacketKind::Publish,
            Some(1),
            Some(2),
        ));
        c.state
            .apply(packet(Direction::In, PacketKind::Pubrec, Some(1), None));
        assert!(!holds(Check::Qos2Completed(COMMANDS), &profile, &c));
        c.state
            .apply(packet(Direction::Out, PacketKind::Pubrel, Some(1), None));
        c.state
            .apply(packet(Direction::In, PacketKind::Pubcomp, Some(1), None));
        assert!(holds(Check::Qos2Completed(COMMANDS), &profile, &c));
        // Opening its flow on the timeline is the next step.
        assert!(!holds(Check::FlowOpened(COMMANDS), &profile, &c));
        let flow = c.state.packets.flows().next().map(|f| f.id);
        c.views.timeline.filter.flow = flow;
        assert!(holds(Check::FlowOpened(COMMANDS), &profile, &c));
    }

    #[test]
    fn the_vehicle_answer_is_found_in_the_history() {
        let profile = Profile::default();
        let mut c = connection();
        let check = Check::MessageContains {
            topic: EXECUTED,
            text: "TURN_ON_ENGINE",
        };
        assert!(!holds(check, &profile, &c));
        c.state.apply(EventKind::Message(Message {
            topic: EXECUTED.into(),
            payload: r#"{"SUCCESSFULLY_PROCESSED_COMMAND": "TURN_ON_ENGINE"}"#.into(),
            qos: Qos::AtLeastOnce,
            received: SystemTime::now(),
            ..Message::default()
        }));
        assert!(holds(check, &profile, &c));
    }

    #[test]
    fn a_subscription_counts_once_granted_and_when_its_filter_covers_the_topic() {
        let profile = Profile::default();
        let mut c = connection();
        c.state
            .subs
            .insert("vehicles/+/executedcommands".into(), SubState::Pending);
        assert!(!holds(Check::SubscribedTo(EXECUTED), &profile, &c));
        c.state.subs.insert(
            "vehicles/+/executedcommands".into(),
            SubState::Granted(Qos::AtMostOnce),
        );
        assert!(holds(Check::SubscribedTo(EXECUTED), &profile, &c));
        c.state.subs.clear();
        c.state
            .subs
            .insert("sensors/#".into(), SubState::Granted(Qos::AtMostOnce));
        assert!(!holds(Check::SubscribedTo(EXECUTED), &profile, &c));
    }

    #[test]
    fn a_will_counts_when_another_connection_received_it() {
        let mut dropped = Profile::default();
        dropped.will.enabled = true;
        dropped.will.topic = "vehicles/vehiclepi01/commands".into();
        dropped.will.payload = r#"{"CMD": "PARK_IN_SAFE_PLACE"}"#.into();
        let listener = Profile::default();
        let mut a = connection();
        let mut b = connection();
        a.state.log(
            "Connection dropped without DISCONNECT: the broker publishes the will".into(),
            true,
        );
        let all = |a: &Connection, b: &Connection| -> bool {
            let seen = [
                Seen {
                    profile: &dropped,
                    conn: a,
                },
                Seen {
                    profile: &listener,
                    conn: b,
                },
            ];
            Check::WillArrived.holds(Some(&seen[1]), &seen)
        };
        assert!(!all(&a, &b));
        b.state.apply(EventKind::Message(Message {
            topic: dropped.will.topic.clone(),
            payload: dropped.will.payload.clone().into(),
            received: SystemTime::now(),
            ..Message::default()
        }));
        assert!(all(&a, &b));
    }

    #[test]
    fn done_steps_stay_done() {
        let profile = Profile::default();
        let mut c = connection();
        let mut done = BTreeSet::new();
        c.state.status = ConnStatus::Connected {
            since: SystemTime::now(),
            session_present: false,
        };
        let seen = [Seen {
            profile: &profile,
            conn: &c,
        }];
        assert_eq!(update(&mut done, Some(&seen[0]), &seen), 1);
        assert!(done.contains("listen/0"));
        c.state.status = ConnStatus::Disconnected { reason: None };
        let seen = [Seen {
            profile: &profile,
            conn: &c,
        }];
        assert_eq!(update(&mut done, Some(&seen[0]), &seen), 0);
        assert!(done.contains("listen/0"), "a done step stays done");
    }
}
