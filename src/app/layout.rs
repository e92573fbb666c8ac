//! The window's frame around the views: the tab strip, the status bar with
//! the connection's counters, and what each tab lays out where.

use super::connection::{ConnectionState, TimelineSource};
use super::plots::SelectedTopic;
use super::profile_editor::human_size;
use super::qos_fault::LabClient;
use super::{Action, App, Notice, Tab};
use crate::mqtt::ConnStatus;
use egui::RichText;

impl App {
    pub(super) fn connection_list_ui(&mut self, ui: &mut egui::Ui) {
        let now = std::time::Instant::now();
        let shown = self.current().and_then(|e| e.conn);
        for conn in &self.open {
            if let Some(c) = self.connections.get_mut(conn) {
                let total = c.state.store.total_messages();
                c.state.rate.sample(now, total);
            }
        }
        let items: Vec<super::connection_list::ListItem<'_>> = self
            .open
            .iter()
            .filter_map(|conn| {
                let c = self.connections.get(conn)?;
                let name = self.book.entries.iter().find(|e| e.conn == Some(*conn))?;
                Some(super::connection_list::ListItem {
                    conn: *conn,
                    name: &name.profile.name,
                    status: &c.state.status,
                    rate: c.state.rate.rate(now, c.state.store.total_messages()),
                    errors: c.state.errors,
                    last_error: c.state.last_error(),
                    shown: shown == Some(*conn),
                })
            })
            .collect();
        let openable: Vec<super::connection_list::Openable<'_>> = self
            .book
            .entries
            .iter()
            .enumerate()
            .map(|(index, e)| super::connection_list::Openable {
                index,
                name: &e.profile.name,
                open: e.conn.is_some_and(|c| self.open.contains(&c)),
            })
            .collect();
        let actions = super::connection_list::ui(ui, &items, &openable);
        self.actions.extend(actions.into_iter().map(Action::List));
    }

    pub(super) fn side_by_side_tab_ui(&mut self, ui: &mut egui::Ui) {
        let choices: Vec<super::side_by_side::Choice> = self
            .open
            .iter()
            .filter_map(|conn| {
                let e = self.book.entries.iter().find(|e| e.conn == Some(*conn))?;
                Some(super::side_by_side::Choice {
                    conn: *conn,
                    name: e.profile.name.clone(),
                })
            })
            .collect();
        let shown = self.current().and_then(|e| e.conn);
        self.side.fit(&choices, shown);
        let now = self.now();
        let actions = self.side.ui(ui, &choices, &mut self.connections, now);
        self.actions.extend(
            actions
                .into_iter()
                .map(|(conn, action)| Action::TreeOf(conn, action)),
        );
    }

    pub(super) fn explorer_ui(&mut self, ui: &mut egui::Ui) {
        let width = self.state.tree_width;
        let panel = egui::Panel::left("explorer_tree")
            .resizable(true)
            .default_size(width)
            .min_size(280.0)
            .show(ui, |ui| {
                ui.add_space(4.0);
                let selected = self.book.current().map(|e| &e.profile);
                if selected.is_some_and(super::sandbox_panel::follows_sandbox) {
                    let asked = self.sandbox.panel_ui(ui, selected);
                    self.actions.extend(asked.into_iter().map(Action::Sandbox));
                    ui.separator();
                }
                let source = self.current().and_then(|e| e.conn);
                if source.is_some_and(|c| self.captures.contains_key(&c)) {
                    let targets = self.replay_targets();
                    let asked = super::replay_panel::replay_panel_ui(
                        ui,
                        &targets,
                        &mut self.replay_target,
                        &mut self.replay_form,
                        self.replay.as_ref(),
                    );
                    self.actions.extend(asked);
                }
                let entry = self.book.current();
                let connection = entry
                    .and_then(|e| e.conn)
                    .and_then(|c| self.connections.get(&c))
                    .map(|c| &c.state);
                let asked = self.sub_form.ui(ui, entry, connection);
                self.actions.extend(asked);
                ui.separator();
                self.topic_tree_ui(ui);
            });
        self.state.tree_width = panel.response.rect.width();
        egui::Panel::bottom("publish_panel")
            .resizable(true)
            .default_size(320.0)
            .min_size(120.0)
            .show(ui, |ui| {
                ui.add_space(4.0);
                let v5 = self
                    .current()
                    .is_some_and(|e| e.profile.protocol == crate::profile::ProtocolVersion::V5);
                let request = self.selected_mut().and_then(|c| {
                    c.views.publish.set_v5(v5);
                    c.views.publish.ui(ui)
                });
                if let Some(request) = request {
                    self.actions.push(Action::Publish(request));
                }
            });
        egui::CentralPanel::default().show(ui, |ui| self.inspector_ui(ui));
    }

    fn topic_tree_ui(&mut self, ui: &mut egui::Ui) {
        let now = self.now();
        let Some(conn) = self.current().and_then(|e| e.conn) else {
            ui.weak("Connect to see the broker's topics.");
            return;
        };
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let super::connection::Connection { state, views } = connection;
        for action in views.tree.ui(ui, &mut state.store, now) {
            self.actions.push(Action::Tree(action));
        }
    }

    fn inspector_ui(&mut self, ui: &mut egui::Ui) {
        let Some(conn) = self.current().and_then(|e| e.conn) else {
            ui.add_space(12.0);
            ui.vertical_centered(|ui| ui.weak("Select a topic in the tree to see its messages."));
            return;
        };
        let ids: Vec<(u32, String)> = self
            .current()
            .map(|e| {
                e.profile
                    .subscriptions
                    .iter()
                    .filter_map(|s| s.subscription_identifier.map(|i| (i, s.filter.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let offline = self.offline.get(&conn).cloned();
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let super::connection::Connection { state, views } = connection;
        views.inspector.set_subscription_ids(ids);
        views.inspector.set_offline(offline);
        if let Some(action) = views.inspector.ui(ui, &state.store, views.tree.selected) {
            self.actions.push(Action::Inspector(action));
        }
    }

    pub(super) fn plots_tab_ui(&mut self, ui: &mut egui::Ui) {
        // The field picker offers the numeric fields of the topic selected
        // in the Explorer's tree (small payloads only: parsed every frame).
        let name = self.current().map(|e| e.profile.name.clone());
        let Some(connection) = self.selected_mut() else {
            return;
        };
        let super::connection::Connection { state, views } = connection;
        let selected = views.tree.selected.and_then(|node| {
            let store = &state.store;
            let payload = store.last_payload(node).filter(|p| p.len() <= 16 * 1024)?;
            Some(SelectedTopic {
                topic: store.path(node),
                numeric_paths: crate::model::payload::numeric_paths(payload),
            })
        });
        let changed = egui::CentralPanel::default()
            .show(ui, |ui| state.plots.ui(ui, selected.as_ref()))
            .inner;
        let export = state.plots.take_export();
        let csv = (export == Some(super::plots::PlotExport::Csv)).then(|| state.plots.to_csv());
        let rect = state.plots.plot_rect();
        if changed && let Some(name) = name {
            let specs = state.plots.specs().to_vec();
            if specs.is_empty() {
                self.state.plot_layouts.remove(&name);
            } else {
                self.state.plot_layouts.insert(name, specs);
            }
        }
        match export {
            Some(super::plots::PlotExport::Csv) => {
                let csv = csv.unwrap_or_default();
                self.save_text("Export the plot's points as CSV", "plot.csv", &csv);
            }
            Some(super::plots::PlotExport::Png) => self.ask_plot_png(ui.ctx(), rect),
            None => {}
        }
    }

    pub(super) fn timeline_tab_ui(&mut self, ui: &mut egui::Ui) {
        let Some(conn) = self.current().and_then(|e| e.conn) else {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.weak("Connect to see every control packet of the connection.");
            });
            return;
        };
        let connected = self
            .connections
            .get(&conn)
            .is_some_and(|c| matches!(c.state.status, ConnStatus::Connected { .. }));
        let active = self
            .connections
            .get(&conn)
            .is_some_and(|c| c.state.is_active());
        egui::Panel::top("session_demos").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("Session and will demos");
                if ui
                    .add_enabled(
                        connected,
                        egui::Button::new("Drop connection (no DISCONNECT)"),
                    )
                    .on_hover_text(
                        "Cut the TCP connection without DISCONNECT: the broker publishes \
                         this profile's will",
                    )
                    .clicked()
                {
                    self.actions.push(Action::DropConnection);
                }
                if ui
                    .add_enabled(!active, egui::Button::new("Reconnect"))
                    .on_hover_text(
                        "Connect again, keeping the timeline: with clean session off, \
                         CONNACK says session present and the queued messages arrive",
                    )
                    .clicked()
                {
                    self.actions.push(Action::Reconnect);
                }
                if let Some(ConnStatus::Disconnected {
                    reason: Some(reason),
                }) = self.connections.get(&conn).map(|c| &c.state.status)
                {
                    ui.colored_label(ui.visuals().warn_fg_color, reason);
                }
            });
        });
        if let Some(c) = self.connections.get_mut(&conn) {
            timeline_source_ui(ui, c);
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(connection) = self.connections.get_mut(&conn) else {
                return;
            };
            let super::connection::Connection { state, views } = connection;
            let lab_run = state.lab.as_ref().and_then(|l| l.failure());
            let action = match (views.timeline_source, lab_run) {
                // The QoS lab's own publisher or subscriber.
                (TimelineSource::Lab(client), Some(run)) => {
                    views.lab_timelines.get_mut(client).ui(ui, run.log(client))
                }
                // An opened capture pages through all its packets from the file.
                _ => match self.offline.get(&conn) {
                    Some(offline) => views.timeline.offline_ui(ui, offline),
                    None => views.timeline.ui(ui, &state.packets),
                },
            };
            if let Some(action) = action {
                self.actions.push(Action::Timeline(action));
            }
        });
    }

    pub(super) fn qos_lab_tab_ui(&mut self, ui: &mut egui::Ui) {
        let connected = self
            .current_connection()
            .is_some_and(|c| matches!(c.state.status, ConnStatus::Connected { .. }));
        let sandbox_conn = self.sandbox.running.is_some()
            && self
                .current()
                .is_some_and(|e| super::sandbox_panel::is_sandbox_profile(&e.profile));
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(connection) = self.selected_mut() else {
                return;
            };
            let super::connection::Connection { state, views } = connection;
            views.lab_view.sandbox_available = sandbox_conn;
            if let Some(action) = views.lab_view.ui(ui, state.lab.as_ref(), connected) {
                self.actions.push(Action::Lab(action));
            }
        });
    }

    pub(super) fn clear_retained_modal_ui(&mut self, ctx: &egui::Context) {
        let Some(clear) = &self.confirm_clear else {
            return;
        };
        let count = clear.topics.len();
        let topic = clear.topic.clone();
        let shown: Vec<String> = clear.topics.iter().take(8).cloned().collect();
        let mut answer = None;
        let modal = egui::Modal::new(egui::Id::unique("confirm_clear_retained")).show(ctx, |ui| {
            ui.set_width(420.0);
            ui.heading("Clear retained messages");
            ui.add_space(6.0);
            ui.label(format!(
                "Delete {count} retained messages under '{topic}' from the broker?"
            ));
            ui.weak("An empty retained message is published to each topic:");
            for t in &shown {
                ui.label(RichText::new(t).monospace());
            }
            if count > shown.len() {
                ui.weak(format!("… and {} more", count - shown.len()));
            }
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                if ui.button(format!("Clear {count} retained")).clicked() {
                    answer = Some(Action::ConfirmClearRetained);
                }
                if ui.button("Cancel").clicked() {
                    answer = Some(Action::CancelClearRetained);
                }
            });
        });
        if answer.is_none() && modal.should_close() {
            answer = Some(Action::CancelClearRetained);
        }
        if let Some(action) = answer {
            self.actions.push(action);
        }
    }
}

/// The tabs, Settings… and the Sandbox button (with its port when running).
pub(super) fn tab_strip_ui(
    ui: &mut egui::Ui,
    shown: Tab,
    sandbox_port: Option<u16>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        for tab in Tab::ALL {
            let label = RichText::new(tab.label()).size(15.0);
            if ui.selectable_label(shown == tab, label).clicked() {
                actions.push(Action::SelectTab(tab));
            }
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("Settings…").clicked() {
                actions.push(Action::OpenSettings);
            }
            let text = match sandbox_port {
                Some(port) => format!("Sandbox :{port}"),
                None => "Sandbox".to_string(),
            };
            if ui
                .button(text)
                .on_hover_text("The MQTT broker inside mqscope, with simulated devices")
                .clicked()
            {
                actions.push(Action::OpenSandbox);
            }
        });
    });
    actions
}

/// The status bar: the connection log toggle, the shown connection's
/// counters (drops and evictions in colour) and the last notice.
pub(super) fn status_bar_ui(
    ui: &mut egui::Ui,
    log_open: &mut bool,
    connection: Option<&ConnectionState>,
    notice: Option<&Notice>,
    tab: Tab,
) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        let label = if *log_open {
            "Hide connection log"
        } else {
            "Connection log"
        };
        if ui.selectable_label(*log_open, label).clicked() {
            *log_open = !*log_open;
        }
        ui.separator();
        match connection.map(|c| &c.store) {
            Some(store) => {
                ui.label(format!("{} messages", store.total_messages()));
                ui.label(format!("{} topics", store.topic_count()));
                ui.label(human_size(store.total_bytes() as usize));
                let evicted = store.evicted_payloads();
                let text = format!("{evicted} payloads evicted");
                if evicted > 0 {
                    ui.colored_label(ui.visuals().warn_fg_color, text)
                        .on_hover_text(
                            "The history limits dropped these payloads (oldest first); \
                             their topics and counts are kept. Raise the limits in Settings.",
                        );
                } else {
                    ui.weak(text);
                }
                if let Some(c) = connection
                    && c.dropped_messages + c.dropped_packets > 0
                {
                    ui.colored_label(
                        ui.visuals().error_fg_color,
                        format!("{} messages dropped (window behind)", c.dropped_messages),
                    )
                    .on_hover_text(format!(
                        "The window could not keep up and the worker's memory budget was \
                         full: {} messages and {} packet records were not shown",
                        c.dropped_messages, c.dropped_packets
                    ));
                }
                let truncated = store.truncated_payloads();
                if truncated > 0 {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{truncated} payloads truncated"),
                    );
                }
                ui.weak(format!("store ≈ {}", human_size(store.memory_estimate())))
                    .on_hover_text("Estimated memory held by the topic tree and history");
            }
            None => {
                ui.weak("Not connected");
            }
        }
        if let Some(notice) = notice
            && tab != Tab::Profiles
        {
            ui.separator();
            let color = if notice.is_error {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.add(egui::Label::new(RichText::new(&notice.text).color(color)).truncate());
            if ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                actions.push(Action::DismissNotice);
            }
        }
    });
    actions
}

/// When the connection's QoS lab ran a failure case, chooses whose packets
/// the Timeline shows: the connection's own or those of the lab's publisher
/// or subscriber (their own clients, so their own flows).
fn timeline_source_ui(ui: &mut egui::Ui, connection: &mut super::connection::Connection) {
    let super::connection::Connection { state, views } = connection;
    let Some(run) = state.lab.as_ref().and_then(|l| l.failure()) else {
        // No lab connections (any more): the connection's own packets.
        views.timeline_source = TimelineSource::Own;
        return;
    };
    egui::Panel::top("timeline_source").show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label("Packets of:");
            ui.selectable_value(
                &mut views.timeline_source,
                TimelineSource::Own,
                "this connection",
            );
            let choices = [
                (
                    LabClient::Publisher,
                    "QoS lab publisher",
                    run.publisher_id(),
                ),
                (
                    LabClient::Subscriber,
                    "QoS lab subscriber",
                    run.subscriber_id(),
                ),
            ];
            for (client, name, id) in choices {
                let n = run.log(client).len();
                ui.selectable_value(
                    &mut views.timeline_source,
                    TimelineSource::Lab(client),
                    format!("{name} ({n})"),
                )
                .on_hover_text(format!(
                    "Client {id}: the QoS lab's own connection for the failure run \
                     (cut at {}), with its own packets and flows",
                    run.step().label()
                ));
            }
        });
    });
}
