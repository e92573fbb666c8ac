//! The strip of open connections under the connection bar: each with its
//! live status at a glance (a dot, messages per second, errors), a click
//! shows it, and each is reconnected or closed on its own. "Open" offers
//! the profiles that are not open yet, and a second connection of one that
//! is (under another client id, said so), so one profile is never opened
//! twice by mistake.

use super::connection_bar::status_color;
use crate::mqtt::{ConnStatus, ConnectionId};
use egui::{RichText, Role, WidgetInfo};

/// One open connection as the strip shows it.
pub(crate) struct ListItem<'a> {
    pub(crate) conn: ConnectionId,
    pub(crate) name: &'a str,
    pub(crate) status: &'a ConnStatus,
    pub(crate) rate: f64,
    pub(crate) errors: u64,
    pub(crate) last_error: Option<&'a str>,
    pub(crate) shown: bool,
}

/// A profile the "Open" menu offers.
pub(crate) struct Openable<'a> {
    pub(crate) index: usize,
    pub(crate) name: &'a str,
    pub(crate) open: bool,
}

/// What the strip asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListAction {
    Show(ConnectionId),
    Reconnect(ConnectionId),
    Close(ConnectionId),
    /// Connect the profile at this index.
    Open(usize),
    /// A second connection of an open profile, as a copy with its own
    /// client id.
    OpenAgain(usize),
    /// A capture file, offline.
    OpenCapture,
}

/// "12 msg/s", "0.4 msg/s", "idle".
pub(crate) fn rate_text(rate: f64) -> String {
    if rate <= 0.0 {
        "idle".into()
    } else if rate < 10.0 {
        format!("{rate:.1} msg/s")
    } else {
        format!("{rate:.0} msg/s")
    }
}

/// Draws the strip; returns what was clicked.
pub(crate) fn ui(
    ui: &mut egui::Ui,
    items: &[ListItem<'_>],
    openable: &[Openable<'_>],
) -> Vec<ListAction> {
    let mut actions = Vec::new();
    ui.horizontal_wrapped(|ui| {
        ui.weak("Connections");
        if items.is_empty() {
            ui.weak("none open: connect a profile, or open a capture file");
        }
        for item in items {
            let frame = egui::Frame::group(ui.style())
                .inner_margin(egui::Margin::symmetric(6, 2))
                .fill(if item.shown {
                    ui.visuals().selection.bg_fill.gamma_multiply(0.35)
                } else {
                    ui.visuals().faint_bg_color
                });
            frame.show(ui, |ui| {
                ui.horizontal(|ui| {
                    let color = status_color(ui, Some(item.status));
                    let (dot, _) =
                        ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().circle_filled(dot.center(), 5.0, color);
                    let name = RichText::new(item.name);
                    let name = if item.shown { name.strong() } else { name };
                    let show = ui
                        .add(egui::Button::new(name).frame(false))
                        .on_hover_text(format!("Show {} in the window", item.name));
                    let label = format!("Show connection {}", item.name);
                    show.widget_info(|| WidgetInfo::labeled(Role::Button, true, &label));
                    if show.clicked() {
                        actions.push(ListAction::Show(item.conn));
                    }
                    ui.weak(rate_text(item.rate));
                    if item.errors > 0 {
                        let errors = ui
                            .colored_label(
                                ui.visuals().error_fg_color,
                                format!("⚠ {}", item.errors),
                            )
                            .on_hover_text(format!(
                                "{} errors on this connection; the last: {}",
                                item.errors,
                                item.last_error.unwrap_or("(no longer in the log)")
                            ));
                        let label = format!("{} errors on {}", item.errors, item.name);
                        errors.widget_info(|| WidgetInfo::labeled(Role::Label, true, &label));
                    }
                    let active = !matches!(item.status, ConnStatus::Disconnected { .. });
                    let hover = if active {
                        "Connect again now (a new session, the tree starts empty)"
                    } else {
                        "Connect again"
                    };
                    let again = ui.small_button("⟳").on_hover_text(hover);
                    let label = format!("Reconnect {}", item.name);
                    again.widget_info(|| WidgetInfo::labeled(Role::Button, true, &label));
                    if again.clicked() {
                        actions.push(ListAction::Reconnect(item.conn));
                    }
                    let close = ui
                        .small_button("✖")
                        .on_hover_text("Disconnect and close this connection");
                    let label = format!("Close {}", item.name);
                    close.widget_info(|| WidgetInfo::labeled(Role::Button, true, &label));
                    if close.clicked() {
                        actions.push(ListAction::Close(item.conn));
                    }
                });
            });
        }
        ui.menu_button("+ Open…", |ui| {
            if ui
                .button("Capture file…")
                .on_hover_text(
                    "A recording (.mqcap) or a packet capture (.pcap, .pcapng: one \
                     connection per TCP stream), offline: tree, inspector, timeline and plots",
                )
                .clicked()
            {
                actions.push(ListAction::OpenCapture);
                ui.close();
            }
            ui.separator();
            if openable.is_empty() {
                ui.weak("No profiles yet: add one in Profiles.");
            }
            for p in openable {
                if p.open {
                    if ui
                        .button(format!("{} — a second connection", p.name))
                        .on_hover_text(
                            "Already open: a copy of the profile connects with its own client id",
                        )
                        .clicked()
                    {
                        actions.push(ListAction::OpenAgain(p.index));
                        ui.close();
                    }
                } else if ui.button(p.name).clicked() {
                    actions.push(ListAction::Open(p.index));
                    ui.close();
                }
            }
        });
    });
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_at_a_glance() {
        assert_eq!(rate_text(0.0), "idle");
        assert_eq!(rate_text(0.42), "0.4 msg/s");
        assert_eq!(rate_text(7.04), "7.0 msg/s");
        assert_eq!(rate_text(51_234.6), "51235 msg/s");
    }
}
