//! The profile list (left panel) and the form that edits the selected
//! profile (central panel), with each validation message under its field.

use super::connection_bar::status_color;
use super::profiles::ProfileBook;
use super::props_edit;
use super::{Action, Entry, Notice, PathField};
use crate::mqtt::{ConnStatus, ConnectionId};
use crate::profile::{Field, FieldError, MQTT_MAX_PACKET, ProtocolVersion, Qos, TransportKind};
use egui::{Color32, RichText, TextEdit, Ui};
use std::path::PathBuf;

/// Width of the form's text fields.
const FIELD_WIDTH: f32 = 340.0;

/// Shows the messages of `field` under the widget they belong to.
fn field_errors(ui: &mut Ui, errors: &[FieldError], field: Field) {
    let color = ui.visuals().error_fg_color;
    for error in errors.iter().filter(|e| e.field == field) {
        ui.label(RichText::new(&error.message).color(color).small());
    }
}

/// The label cell of a form row; its id names the widget for screen readers
/// and for the GUI tests.
fn row_label(ui: &mut Ui, text: &str) -> egui::Response {
    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
        ui.label(text)
    })
    .inner
}

/// A labelled single-line text row. Returns whether the text changed.
fn text_row(
    ui: &mut Ui,
    label: &str,
    text: &mut String,
    hint: &str,
    errors: &[FieldError],
    field: Option<Field>,
) -> bool {
    let label = row_label(ui, label);
    let changed = ui
        .vertical(|ui| {
            let response = ui
                .add(
                    TextEdit::singleline(text)
                        .hint_text(hint)
                        .desired_width(FIELD_WIDTH),
                )
                .labelled_by(label.id);
            if let Some(field) = field {
                field_errors(ui, errors, field);
            }
            response.changed()
        })
        .inner;
    ui.end_row();
    changed
}

/// A file path row with a "Browse…" button. An empty field means "none".
/// Returns (changed by typing, browse clicked).
fn path_row(
    ui: &mut Ui,
    label: &str,
    path: &mut Option<PathBuf>,
    hint: &str,
    browse_name: &str,
    errors: &[FieldError],
    field: Field,
) -> (bool, bool) {
    let label = row_label(ui, label);
    let result = ui
        .vertical(|ui| {
            let (changed, browse) = ui
                .horizontal(|ui| {
                    let mut text = path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let response = ui
                        .add(
                            TextEdit::singleline(&mut text)
                                .hint_text(hint)
                                .desired_width(FIELD_WIDTH - 80.0),
                        )
                        .labelled_by(label.id);
                    let changed = response.changed();
                    if changed {
                        *path = (!text.trim().is_empty()).then(|| PathBuf::from(text));
                    }
                    let browse = ui
                        .button("Browse…")
                        .accessible_name(browse_name)
                        .on_hover_text(browse_name)
                        .clicked();
                    (changed, browse)
                })
                .inner;
            field_errors(ui, errors, field);
            (changed, browse)
        })
        .inner;
    ui.end_row();
    result
}

/// The extra HTTP headers of a websocket upgrade: one row per header with a
/// remove button, and "Add header". Returns whether the list changed.
fn ws_headers_ui(ui: &mut Ui, headers: &mut Vec<(String, String)>) -> bool {
    let mut changed = false;
    let mut remove = None;
    for (i, (name, value)) in headers.iter_mut().enumerate() {
        ui.push_id(("ws_header", i), |ui| {
            ui.horizontal(|ui| {
                changed |= ui
                    .add(
                        TextEdit::singleline(name)
                            .hint_text("Header name")
                            .desired_width(130.0),
                    )
                    .accessible_name(format!("Header name {}", i + 1))
                    .changed();
                changed |= ui
                    .add(
                        TextEdit::singleline(value)
                            .hint_text("Value")
                            .desired_width(200.0),
                    )
                    .accessible_name(format!("Header value {}", i + 1))
                    .changed();
                if ui
                    .small_button("x")
                    .on_hover_text("Remove this header")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
        });
    }
    if let Some(i) = remove {
        headers.remove(i);
        changed = true;
    }
    if ui
        .small_button("Add header")
        .on_hover_text("Sent with the websocket upgrade request, e.g. Authorization")
        .clicked()
    {
        headers.push((String::new(), String::new()));
        changed = true;
    }
    changed
}

fn section(ui: &mut Ui, title: &str) {
    ui.add_space(12.0);
    ui.label(RichText::new(title).strong().size(15.0));
    ui.separator();
}

fn form_grid(id: &str) -> egui::Grid {
    egui::Grid::new(id)
        .num_columns(2)
        .min_col_width(150.0)
        .spacing([12.0, 8.0])
}

/// A framed message across the form; returns true when dismissed.
fn banner(ui: &mut Ui, color: Color32, text: &str, dismissable: bool) -> bool {
    let mut dismissed = false;
    egui::Frame::new()
        .fill(color.gamma_multiply(0.12))
        .stroke(egui::Stroke::new(1.0, color))
        .corner_radius(4)
        .inner_margin(8)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                if dismissable {
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::TOP), |ui| {
                        dismissed = ui.button("Dismiss").clicked();
                        ui.add(egui::Label::new(RichText::new(text).color(color)).wrap());
                    });
                } else {
                    ui.add(egui::Label::new(RichText::new(text).color(color)).wrap());
                }
            });
        });
    ui.add_space(6.0);
    dismissed
}

/// "256 MiB" for a byte count.
pub(super) fn human_size(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl ProfileBook {
    /// The list of profiles with Add, Duplicate, Rename, Delete, Import and
    /// Export; `status_of` gives a connection's status for its dot.
    pub(crate) fn list_ui<'a>(
        &mut self,
        ui: &mut Ui,
        status_of: impl Fn(ConnectionId) -> Option<&'a ConnStatus>,
        actions: &mut Vec<Action>,
    ) {
        ui.add_space(6.0);
        ui.heading("Profiles");
        ui.add_space(4.0);
        let has_profile = self.current().is_some();
        ui.horizontal_wrapped(|ui| {
            if ui.button("Add").on_hover_text("A new profile").clicked() {
                actions.push(Action::Add);
            }
            if ui
                .add_enabled(has_profile, egui::Button::new("Duplicate"))
                .clicked()
            {
                actions.push(Action::Duplicate);
            }
            if ui
                .add_enabled(has_profile, egui::Button::new("Rename"))
                .clicked()
            {
                actions.push(Action::StartRename);
                self.focus_rename = true;
            }
            if ui
                .add_enabled(has_profile, egui::Button::new("Delete"))
                .clicked()
            {
                actions.push(Action::RequestDelete);
            }
        });
        ui.horizontal(|ui| {
            if ui
                .button("Import…")
                .on_hover_text("Add a profile from a file")
                .clicked()
            {
                actions.push(Action::Import);
            }
            if ui
                .add_enabled(has_profile, egui::Button::new("Export…"))
                .on_hover_text("Write the selected profile to a file (without its password)")
                .clicked()
            {
                actions.push(Action::Export);
            }
        });
        ui.separator();

        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for (i, entry) in self.entries.iter().enumerate() {
                    let selected = i == self.selected;
                    if selected && let Some(name) = self.renaming.as_mut() {
                        let response = ui.add(
                            TextEdit::singleline(name)
                                .desired_width(f32::INFINITY)
                                .hint_text("Profile name"),
                        );
                        let response = response.accessible_name("Profile name");
                        if self.focus_rename {
                            response.request_focus();
                            self.focus_rename = false;
                        }
                        if response.lost_focus() {
                            let cancelled = ui.input(|i| i.key_pressed(egui::Key::Escape));
                            actions.push(Action::FinishRename { commit: !cancelled });
                        }
                        continue;
                    }
                    let status = entry.conn.and_then(&status_of);
                    ui.horizontal(|ui| {
                        let color = status_color(ui, status);
                        let (dot, _) =
                            ui.allocate_exact_size(egui::vec2(8.0, 8.0), egui::Sense::hover());
                        ui.painter().circle_filled(dot.center(), 4.0, color);
                        let response = ui.add(
                            egui::Button::selectable(
                                selected,
                                // The grow atom pushes the name to the left edge.
                                (entry.profile.name.as_str(), egui::Atom::grow()),
                            )
                            .min_size(egui::vec2(ui.available_width(), 0.0)),
                        );
                        if response.clicked() {
                            actions.push(Action::Select(i));
                        }
                        if response.double_clicked() {
                            actions.push(Action::StartRename);
                            self.focus_rename = true;
                        }
                    });
                }
            });
    }

    /// The selected profile's form; `notice` is the app's last notice,
    /// shown above it.
    pub(crate) fn form_ui(
        &mut self,
        ui: &mut Ui,
        notice: Option<&Notice>,
        actions: &mut Vec<Action>,
    ) {
        let error_color = ui.visuals().error_fg_color;
        let warn_color = ui.visuals().warn_fg_color;
        if let Some(problem) = &self.store_problem {
            let text = match &self.recovered_to {
                Some(path) => format!("{problem} Changes are saved to {}.", path.display()),
                None => problem.clone(),
            };
            banner(ui, warn_color, &text, false);
        }
        if let Some(notice) = notice {
            let color = if notice.is_error {
                error_color
            } else {
                ui.visuals().text_color()
            };
            if banner(ui, color, &notice.text, true) {
                actions.push(Action::DismissNotice);
            }
        }

        // Where the selected profile's password is kept (not for a capture,
        // which is not a saved profile).
        let password_home = self
            .current()
            .filter(|e| e.capture.is_none())
            .and_then(|e| Some(self.store.as_ref()?.password_home(&e.profile)));
        let Some(entry) = self.entries.get_mut(self.selected) else {
            ui.add_space(24.0);
            ui.vertical_centered(|ui| {
                ui.label("No profiles yet. Add one to connect to a broker.");
            });
            return;
        };
        let save_failed = self.save_failed.as_deref();
        let Entry {
            profile,
            port_text,
            errors,
            ..
        } = entry;
        let errors: &[FieldError] = errors;
        let mut changed = false;

        ui.horizontal(|ui| {
            ui.heading(&profile.name);
            match save_failed {
                Some(why) => {
                    ui.colored_label(
                        error_color,
                        format!("Unsaved changes: {why}. Trying again every few seconds."),
                    );
                }
                None => {
                    ui.weak("Changes are saved automatically.");
                }
            }
        });

        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                section(ui, "Broker");
                form_grid("form_broker").show(ui, |ui| {
                    changed |= text_row(ui, "Name", &mut profile.name, "", errors, Some(Field::Name));
                    changed |= text_row(
                        ui,
                        "Host",
                        &mut profile.host,
                        "broker.example.com",
                        errors,
                        Some(Field::Host),
                    );
                    if text_row(ui, "Port", port_text, "1883", errors, Some(Field::Port)) {
                        changed = true;
                        if let Ok(port) = crate::profile::validate_port(port_text) {
                            profile.port = port;
                        }
                    }
                    row_label(ui, "Transport");
                    ui.horizontal(|ui| {
                        let before = profile.transport;
                        ui.radio_value(&mut profile.transport, TransportKind::Tcp, "TCP");
                        ui.radio_value(&mut profile.transport, TransportKind::Tls, "TLS");
                        ui.radio_value(&mut profile.transport, TransportKind::Ws, "WebSocket")
                            .on_hover_text("MQTT over ws://host:port/path");
                        ui.radio_value(
                            &mut profile.transport,
                            TransportKind::Wss,
                            "WebSocket + TLS",
                        )
                        .on_hover_text("MQTT over wss://host:port/path, with the TLS settings below");
                        if profile.transport != before {
                            changed = true;
                            // Follow the well-known ports unless the user chose another.
                            let swap = match profile.transport {
                                TransportKind::Tls => ("1883", "8883"),
                                _ => ("8883", "1883"),
                            };
                            if port_text.trim() == swap.0 {
                                *port_text = swap.1.to_string();
                                profile.port = swap.1.parse().unwrap_or(profile.port);
                            }
                        }
                    });
                    ui.end_row();
                    row_label(ui, "Protocol");
                    ui.horizontal(|ui| {
                        changed |= ui
                            .radio_value(&mut profile.protocol, ProtocolVersion::V311, "MQTT 3.1.1")
                            .changed();
                        changed |= ui
                            .radio_value(&mut profile.protocol, ProtocolVersion::V5, "MQTT 5")
                            .on_hover_text(
                                "Reason codes, properties, session expiry, request/response",
                            )
                            .changed();
                    });
                    ui.end_row();
                });

                section(ui, "Identity");
                form_grid("form_identity").show(ui, |ui| {
                    let label = row_label(ui, "Client ID");
                    ui.vertical(|ui| {
                        ui.horizontal(|ui| {
                            changed |= ui
                                .add(
                                    TextEdit::singleline(&mut profile.client_id)
                                        .desired_width(FIELD_WIDTH - 80.0),
                                )
                                .labelled_by(label.id)
                                .changed();
                            if ui
                                .button("Generate")
                                .on_hover_text("A new random client id")
                                .clicked()
                            {
                                actions.push(Action::GenerateClientId);
                            }
                        });
                        field_errors(ui, errors, Field::ClientId);
                    });
                    ui.end_row();
                    changed |= text_row(ui, "Username", &mut profile.username, "", errors, None);
                    let label = row_label(ui, "Password");
                    ui.horizontal(|ui| {
                        changed |= ui
                            .add(
                                TextEdit::singleline(&mut profile.password)
                                    .password(true)
                                    .desired_width(FIELD_WIDTH - 130.0),
                            )
                            .labelled_by(label.id)
                            .changed();
                        let hover = match &password_home {
                            Some(home) => format!(
                                "Kept in {}; never in an exported profile",
                                home.place()
                            ),
                            None => "Never kept in an exported profile".to_string(),
                        };
                        changed |= ui
                            .checkbox(&mut profile.save_password, "Save password")
                            .on_hover_text(hover)
                            .changed();
                    });
                    ui.end_row();
                    // Where the password is kept, once the user asks to keep it.
                    if let Some(home) = password_home.as_ref().filter(|_| profile.save_password) {
                        row_label(ui, "");
                        let saved = !profile.password.is_empty();
                        let text = home.describe(saved);
                        let color = match home {
                            crate::profile::PasswordHome::File { .. } if saved => warn_color,
                            _ => ui.visuals().weak_text_color(),
                        };
                        ui.add(egui::Label::new(RichText::new(text).small().color(color)).wrap());
                        ui.end_row();
                    }
                });

                section(ui, "Session");
                form_grid("form_session").show(ui, |ui| {
                    let label = row_label(ui, "Keep-alive (s)");
                    ui.vertical(|ui| {
                        ui.horizontal(|ui| {
                            changed |= ui
                                .add(egui::DragValue::new(&mut profile.keep_alive_secs))
                                .labelled_by(label.id)
                                .changed();
                            ui.weak("0 turns the keep-alive off");
                        });
                        field_errors(ui, errors, Field::KeepAlive);
                    });
                    ui.end_row();
                    row_label(ui, "");
                    changed |= ui
                        .checkbox(&mut profile.clean_session, "Clean session")
                        .on_hover_text("Start without the subscriptions and messages the broker kept for this client id")
                        .changed();
                    ui.end_row();
                    let label = row_label(ui, "Max packet size");
                    ui.vertical(|ui| {
                        ui.horizontal(|ui| {
                            changed |= ui
                                .add(
                                    egui::DragValue::new(&mut profile.max_packet_size)
                                        .range(1024..=MQTT_MAX_PACKET)
                                        .speed(1024)
                                        .suffix(" bytes"),
                                )
                                .labelled_by(label.id)
                                .changed();
                            ui.weak(human_size(profile.max_packet_size));
                        });
                        field_errors(ui, errors, Field::MaxPacketSize);
                    });
                    ui.end_row();
                });

                if profile.protocol == ProtocolVersion::V5 {
                    section(ui, "MQTT 5");
                    form_grid("form_v5").show(ui, |ui| {
                        let v5 = &mut profile.v5;
                        row_label(ui, "Session");
                        ui.vertical(|ui| {
                            changed |= props_edit::optional_u32(
                                ui,
                                "Session expiry interval",
                                &mut v5.session_expiry_interval,
                                3600,
                                " s",
                            );
                            if !profile.clean_session
                                && v5.session_expiry_interval.unwrap_or(0) == 0
                            {
                                ui.colored_label(
                                    warn_color,
                                    "With clean start off, MQTT 5 keeps the session only for \
                                     its expiry interval: set one to resume it after a drop",
                                );
                            }
                        });
                        ui.end_row();
                        row_label(ui, "Limits");
                        ui.vertical(|ui| {
                            changed |= props_edit::optional_u16(
                                ui,
                                "Receive maximum",
                                &mut v5.receive_maximum,
                                100,
                            );
                            changed |= props_edit::optional_u16(
                                ui,
                                "Topic alias maximum",
                                &mut v5.topic_alias_maximum,
                                16,
                            );
                        });
                        ui.end_row();
                        row_label(ui, "Ask for");
                        ui.vertical(|ui| {
                            changed |= ui
                                .checkbox(
                                    &mut v5.request_response_information,
                                    "Request response information",
                                )
                                .changed();
                            changed |= ui
                                .checkbox(
                                    &mut v5.request_problem_information,
                                    "Request problem information",
                                )
                                .on_hover_text(
                                    "Let the broker add reason strings and user properties to \
                                     its refusals",
                                )
                                .changed();
                        });
                        ui.end_row();
                        row_label(ui, "User properties");
                        ui.vertical(|ui| {
                            changed |= props_edit::user_properties(
                                ui,
                                "connect user property",
                                &mut v5.user_properties,
                            );
                            field_errors(ui, errors, Field::V5Options);
                        });
                        ui.end_row();
                    });
                }

                section(ui, "Last will");
                form_grid("form_will").show(ui, |ui| {
                    row_label(ui, "");
                    changed |= ui
                        .checkbox(&mut profile.will.enabled, "Enabled")
                        .on_hover_text("The broker publishes this message if the connection dies without a DISCONNECT")
                        .changed();
                    ui.end_row();
                    if profile.will.enabled {
                        let will = &mut profile.will;
                        changed |=
                            text_row(ui, "Topic", &mut will.topic, "status/offline", errors, Some(Field::WillTopic));
                        changed |= text_row(
                            ui,
                            "Payload",
                            &mut will.payload,
                            "",
                            errors,
                            Some(Field::WillPayload),
                        );
                        row_label(ui, "QoS");
                        ui.horizontal(|ui| {
                            for qos in Qos::ALL {
                                changed |= ui
                                    .radio_value(&mut will.qos, qos, qos.to_string())
                                    .changed();
                            }
                        });
                        ui.end_row();
                        row_label(ui, "");
                        changed |= ui.checkbox(&mut will.retain, "Retain").changed();
                        ui.end_row();
                        if profile.protocol == ProtocolVersion::V5 {
                            row_label(ui, "Will properties");
                            ui.vertical(|ui| {
                                changed |= props_edit::optional_u32(
                                    ui,
                                    "Will delay interval",
                                    &mut will.delay_interval,
                                    30,
                                    " s",
                                );
                                changed |= props_edit::optional_u32(
                                    ui,
                                    "Will message expiry",
                                    &mut will.message_expiry,
                                    3600,
                                    " s",
                                );
                            });
                            ui.end_row();
                            changed |= text_row(
                                ui,
                                "Content type",
                                &mut will.content_type,
                                "text/plain",
                                errors,
                                None,
                            );
                            changed |= text_row(
                                ui,
                                "Response topic",
                                &mut will.response_topic,
                                "",
                                errors,
                                None,
                            );
                            changed |= text_row(
                                ui,
                                "Correlation data",
                                &mut will.correlation_data,
                                "",
                                errors,
                                None,
                            );
                            row_label(ui, "");
                            ui.vertical(|ui| {
                                changed |= props_edit::user_properties(
                                    ui,
                                    "will user property",
                                    &mut will.user_properties,
                                );
                                field_errors(ui, errors, Field::WillProperties);
                            });
                            ui.end_row();
                        }
                    }
                });

                if matches!(profile.transport, TransportKind::Ws | TransportKind::Wss) {
                    section(ui, "WebSocket");
                    form_grid("form_ws").show(ui, |ui| {
                        changed |= text_row(
                            ui,
                            "Path",
                            &mut profile.ws.path,
                            "/mqtt",
                            errors,
                            Some(Field::WsPath),
                        );
                        row_label(ui, "Extra headers");
                        ui.vertical(|ui| {
                            changed |= ws_headers_ui(ui, &mut profile.ws.headers);
                            field_errors(ui, errors, Field::WsHeaders);
                        });
                        ui.end_row();
                    });
                }

                if matches!(profile.transport, TransportKind::Tls | TransportKind::Wss) {
                    section(ui, "TLS");
                    form_grid("form_tls").show(ui, |ui| {
                        let tls = &mut profile.tls;
                        let mut browse = |field: PathField, clicked: bool| {
                            if clicked {
                                actions.push(Action::Browse(field));
                            }
                        };
                        let (typed, clicked) = path_row(
                            ui,
                            "CA file",
                            &mut tls.ca_file,
                            "System roots",
                            "Browse for CA file",
                            errors,
                            Field::CaFile,
                        );
                        changed |= typed;
                        browse(PathField::CaFile, clicked);
                        let (typed, clicked) = path_row(
                            ui,
                            "Client certificate",
                            &mut tls.client_cert,
                            "None",
                            "Browse for client certificate",
                            errors,
                            Field::ClientCert,
                        );
                        changed |= typed;
                        browse(PathField::ClientCert, clicked);
                        let (typed, clicked) = path_row(
                            ui,
                            "Client key",
                            &mut tls.client_key,
                            "None",
                            "Browse for client key",
                            errors,
                            Field::ClientKey,
                        );
                        changed |= typed;
                        browse(PathField::ClientKey, clicked);

                        row_label(ui, "");
                        ui.horizontal(|ui| {
                            changed |= ui
                                .checkbox(&mut tls.verify_server, "Verify server certificate")
                                .changed();
                            if !tls.verify_server {
                                ui.colored_label(
                                    error_color,
                                    "⚠ Any server is accepted: anyone on the network path can pose as the broker",
                                );
                            }
                        });
                        ui.end_row();
                        changed |= text_row(
                            ui,
                            "ALPN",
                            &mut tls.alpn,
                            "e.g. mqtt (comma separated)",
                            errors,
                            Some(Field::Alpn),
                        );
                    });
                }

                let other = errors.iter().filter(|e| e.field == Field::Subscriptions);
                for error in other {
                    ui.colored_label(error_color, &error.message);
                }
                ui.add_space(12.0);
            });

        if changed {
            actions.push(Action::Edited);
        }
    }

    /// Asks to confirm a deletion; `active` says whether the profile's
    /// connection is open (it will be closed).
    pub(crate) fn delete_modal_ui(
        &mut self,
        ctx: &egui::Context,
        active: impl Fn(&Entry) -> bool,
        actions: &mut Vec<Action>,
    ) {
        let Some(index) = self.confirm_delete else {
            return;
        };
        let Some(entry) = self.entries.get(index) else {
            self.confirm_delete = None;
            return;
        };
        let name = entry.profile.name.clone();
        let connected = active(entry);
        let mut answer = None;
        let modal = egui::Modal::new(egui::Id::unique("confirm_delete_profile")).show(ctx, |ui| {
            ui.set_width(360.0);
            ui.heading("Delete profile");
            ui.add_space(6.0);
            ui.label(format!(
                "Delete the profile '{name}'? This cannot be undone."
            ));
            if connected {
                ui.label("Its connection will be closed.");
            }
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                if ui.button("Yes, delete").clicked() {
                    answer = Some(Action::ConfirmDelete);
                }
                if ui.button("Cancel").clicked() {
                    answer = Some(Action::CancelDelete);
                }
            });
        });
        if answer.is_none() && modal.should_close() {
            answer = Some(Action::CancelDelete);
        }
        if let Some(action) = answer {
            actions.push(action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn packet_sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(10 * 1024), "10.0 KiB");
        assert_eq!(human_size(crate::profile::MQTT_MAX_PACKET), "256.0 MiB");
    }
}
