//! The bottom panel: recent events of the selected profile's connection
//! (status changes, subscriptions, errors), newest last.

use super::App;
use egui::RichText;
use std::time::{SystemTime, UNIX_EPOCH};

fn time_of_day_utc(t: SystemTime) -> String {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let day = (millis / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        millis % 1000
    )
}

impl App {
    pub(super) fn connection_log_ui(&mut self, ui: &mut egui::Ui) {
        let connection = self.current().and_then(|e| self.connection_of(e));
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
            ui.weak("Events of the connection appear here once you connect (times in UTC).");
            return;
        };
        let error = ui.visuals().error_fg_color;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                for line in &connection.log {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(time_of_day_utc(line.at)).monospace().weak());
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
}
