//! The connection bar: which profile, Connect / Disconnect, and where the
//! connection stands, always visible at the top of the window.

use super::Action;
use super::connection::ConnectionState;
use super::profiles::ProfileBook;
use crate::mqtt::ConnStatus;
use crate::profile::TransportKind;
use egui::{Color32, RichText};
use std::time::Duration;

/// Green that reads well on the dark and the light theme.
const CONNECTED_GREEN: Color32 = Color32::from_rgb(80, 200, 120);

/// The status line for `status`, `elapsed` after it was reported (the
/// reconnect countdown runs from the report).
pub fn status_text(status: &ConnStatus, elapsed: Duration) -> String {
    match status {
        ConnStatus::Connecting => "Connecting…".to_string(),
        ConnStatus::Connected {
            since,
            session_present,
        } => {
            let resumed = if *session_present {
                " (session resumed)"
            } else {
                ""
            };
            format!(
                "Connected since {}{}{resumed}",
                super::clock::time_of_day(*since, false),
                super::clock::zone_suffix()
            )
        }
        ConnStatus::Reconnecting {
            attempt,
            retry_in,
            reason,
        } => {
            let left = retry_in.saturating_sub(elapsed);
            // Round up: "next try in 0 s" while still waiting would be a lie.
            let secs = left.as_millis().div_ceil(1000);
            format!("Reconnecting (attempt {attempt}, next try in {secs} s): {reason}")
        }
        ConnStatus::Disconnected {
            reason: Some(reason),
        } => format!("Disconnected: {reason}"),
        ConnStatus::Disconnected { reason: None } => "Disconnected".to_string(),
    }
}

/// The colour the status is written in.
pub(crate) fn status_color(ui: &egui::Ui, status: Option<&ConnStatus>) -> Color32 {
    match status {
        Some(ConnStatus::Connected { .. }) => CONNECTED_GREEN,
        Some(ConnStatus::Reconnecting { .. })
        | Some(ConnStatus::Disconnected { reason: Some(_) }) => ui.visuals().error_fg_color,
        Some(ConnStatus::Connecting) => ui.visuals().warn_fg_color,
        Some(ConnStatus::Disconnected { reason: None }) | None => ui.visuals().weak_text_color(),
    }
}

/// The connection bar of the selected profile (`book.current()`) and its
/// connection, if one was opened; returns what the user asked for.
pub(super) fn connection_bar_ui(
    ui: &mut egui::Ui,
    book: &ProfileBook,
    connection: Option<&ConnectionState>,
    bar_error: Option<&str>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        let label = ui.label("Profile");
        let current_name = book
            .current()
            .map(|e| e.profile.name.clone())
            .unwrap_or_else(|| "No profile".to_string());
        let mut picked = None;
        let combo = egui::ComboBox::from_id_salt("profile_picker")
            .selected_text(current_name)
            .width(200.0)
            .show_ui(ui, |ui| {
                for (i, entry) in book.entries.iter().enumerate() {
                    if ui
                        .selectable_label(i == book.selected, &entry.profile.name)
                        .clicked()
                    {
                        picked = Some(i);
                    }
                }
            });
        combo.response.labelled_by(label.id);
        if let Some(i) = picked {
            actions.push(Action::Select(i));
        }

        let active = connection.is_some_and(|c| c.is_active());
        let has_profile = book.current().is_some();
        let button_size = egui::vec2(96.0, 0.0);
        if active {
            if ui
                .add(egui::Button::new("Disconnect").min_size(button_size))
                .clicked()
            {
                actions.push(Action::Disconnect);
            }
        } else if ui
            .add_enabled(
                has_profile,
                egui::Button::new(RichText::new("Connect").strong())
                    .fill(ui.visuals().selection.bg_fill)
                    .min_size(button_size),
            )
            .clicked()
        {
            actions.push(Action::Connect);
        }

        let unverified = book.current().is_some_and(|e| {
            matches!(e.profile.transport, TransportKind::Tls | TransportKind::Wss)
                && !e.profile.tls.verify_server
        });
        if unverified {
            ui.colored_label(
                ui.visuals().error_fg_color,
                "⚠ server certificate not verified",
            )
            .on_hover_text(
                "This profile accepts any server certificate: anyone on the \
                     network path can pose as the broker.",
            );
        }

        ui.separator();
        let status = connection.map(|c| &c.status);
        let text = match connection {
            Some(c) => status_text(&c.status, c.status_at.elapsed()),
            None => "Not connected".to_string(),
        };
        let color = status_color(ui, status);
        let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().circle_filled(dot.center(), 5.0, color);
        let server = connection
            .filter(|c| matches!(c.status, ConnStatus::Connected { .. }))
            .and_then(|c| c.server.as_deref());
        if let Some(props) = server {
            let summary = match &props.assigned_client_identifier {
                Some(id) => format!("MQTT 5 · assigned id {id}"),
                None => "MQTT 5 · CONNACK".to_string(),
            };
            ui.add(egui::Label::new(RichText::new(summary).weak()).sense(egui::Sense::hover()))
                .on_hover_ui(|ui| {
                    ui.strong("What the broker said in CONNACK");
                    egui::Grid::new("connack_props")
                        .striped(true)
                        .show(ui, |ui| {
                            for (name, value) in props.rows() {
                                ui.label(name);
                                ui.label(value);
                                ui.end_row();
                            }
                        });
                });
        }
        ui.add(egui::Label::new(RichText::new(text).color(color)).truncate());
        if book.current().is_some_and(|e| e.capture.is_none()) {
            ui.separator();
            let connected = matches!(status, Some(ConnStatus::Connected { .. }));
            let recording = connection.and_then(|c| c.recording.as_ref());
            if let Some(action) = super::capture_ui::record_ui(ui, connected, recording) {
                actions.push(Action::Record(action));
            }
        }
    });

    if let Some(message) = bar_error {
        ui.colored_label(ui.visuals().error_fg_color, message);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_countdown_rounds_up_and_keeps_the_reason() {
        let status = ConnStatus::Reconnecting {
            attempt: 3,
            retry_in: Duration::from_secs(4),
            reason: "connection refused".into(),
        };
        assert_eq!(
            status_text(&status, Duration::from_millis(1500)),
            "Reconnecting (attempt 3, next try in 3 s): connection refused"
        );
        assert_eq!(
            status_text(&status, Duration::from_secs(10)),
            "Reconnecting (attempt 3, next try in 0 s): connection refused"
        );
    }

    #[test]
    fn connected_shows_clock_and_resumed_session() {
        let since =
            std::time::UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 13 * 3600 + 5 * 60 + 9);
        let status = ConnStatus::Connected {
            since,
            session_present: true,
        };
        assert_eq!(
            status_text(&status, Duration::ZERO),
            "Connected since 13:05:09 UTC (session resumed)"
        );
    }

    #[test]
    fn disconnected_with_and_without_reason() {
        let with = ConnStatus::Disconnected {
            reason: Some("bad user name or password".into()),
        };
        assert_eq!(
            status_text(&with, Duration::ZERO),
            "Disconnected: bad user name or password"
        );
        let without = ConnStatus::Disconnected { reason: None };
        assert_eq!(status_text(&without, Duration::ZERO), "Disconnected");
    }
}
