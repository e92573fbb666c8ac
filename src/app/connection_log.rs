//! The bottom panel: recent events of the selected profile's connection
//! (status changes, subscriptions, errors), newest last.

use super::connection::ConnectionState;
use egui::RichText;

/// The log of `connection` (the selected profile's, if it was opened).
pub(super) fn connection_log_ui(ui: &mut egui::Ui, connection: Option<&ConnectionState>) {
    ui.horizontal(|ui| {
        ui.strong("Connection log");
        if let Some(c) = connection {
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.weak(format!("{} messages received", c.store.total_messages()));
            });
        }
    });
    ui.separator();
    let Some(connection) = connection else {
        ui.weak(if super::clock::zone().is_utc() {
            "Events of the connection appear here once you connect (times in UTC)."
        } else {
            "Events of the connection appear here once you connect."
        });
        return;
    };
    let error = ui.visuals().error_fg_color;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show(ui, |ui| {
            for line in &connection.log {
                ui.horizontal(|ui| {
                    ui.label(
                        RichText::new(super::clock::time_of_day(line.at, true))
                            .monospace()
                            .weak(),
                    );
                    let text = RichText::new(&line.text);
                    ui.label(if line.is_error {
                        text.color(error)
                    } else {
                        text
                    });
                });
            }
        });
}
