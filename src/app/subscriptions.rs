//! The subscriptions panel above the topic tree: the selected profile's
//! topic filters with what the broker answered, and the form to add one.

use super::{Action, App};
use crate::profile::{Qos, validate_topic_filter};
use egui::{RichText, TextEdit};

/// What the broker said about one filter of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubState {
    /// Sent (or waiting for the connection); no SUBACK yet.
    Pending,
    Granted(Qos),
    /// With the reason code in words when the broker gave one (MQTT 5).
    Refused(Option<String>),
    /// UNSUBSCRIBE sent, no UNSUBACK yet.
    Leaving,
}

impl SubState {
    pub(crate) fn text(&self) -> String {
        match self {
            SubState::Pending => "pending…".into(),
            SubState::Granted(qos) => format!("granted {qos}"),
            SubState::Refused(None) => "refused".into(),
            SubState::Refused(Some(why)) => format!("refused: {why}"),
            SubState::Leaving => "unsubscribing…".into(),
        }
    }
}

/// The form's input, kept between frames.
#[derive(Debug, Default)]
pub(crate) struct SubscribeForm {
    pub(crate) filter: String,
    pub(crate) qos: Qos,
    /// Why the last typed filter was refused.
    pub(crate) error: Option<String>,
}

impl App {
    pub(super) fn subscriptions_ui(&mut self, ui: &mut egui::Ui) {
        let Some(entry) = self.current() else {
            ui.weak("Add a profile in the Profiles tab to subscribe.");
            return;
        };
        let specs = entry.profile.subscriptions.clone();
        let connection = self.connection_of(entry);
        let active = connection.is_some_and(|c| c.state.is_active());
        let states: Vec<Option<SubState>> = specs
            .iter()
            .map(|s| {
                connection
                    .and_then(|c| c.state.subs.get(&s.filter))
                    .cloned()
            })
            .collect();
        ui.horizontal(|ui| {
            ui.strong("Subscriptions");
            if !active {
                ui.weak("(sent when you connect)");
            }
        });
        if specs.is_empty() {
            ui.weak("No subscriptions: nothing will arrive.");
        }
        let error_color = ui.visuals().error_fg_color;
        for (spec, state) in specs.iter().zip(&states) {
            ui.horizontal(|ui| {
                if ui
                    .small_button("✖")
                    .on_hover_text("Unsubscribe")
                    .accessible_name(format!("Unsubscribe {}", spec.filter))
                    .clicked()
                {
                    self.actions.push(Action::Unsubscribe(spec.filter.clone()));
                }
                ui.label(RichText::new(&spec.filter).monospace());
                ui.weak(spec.qos.to_string());
                if active && let Some(state) = state {
                    let text = state.text();
                    if matches!(state, SubState::Refused(_)) {
                        ui.colored_label(error_color, text);
                    } else {
                        ui.weak(text);
                    }
                }
            });
        }

        // The field takes the whole row; sizing it from what is left beside
        // other widgets would make the resizable panel grow every frame.
        let response = ui.add(
            TextEdit::singleline(&mut self.sub_form.filter)
                .hint_text("topic filter, e.g. sensors/#")
                .desired_width(f32::INFINITY),
        );
        let response = response.accessible_name("New subscription");
        if response.changed() {
            self.sub_form.error = None;
        }
        let entered = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            let combo = egui::ComboBox::from_id_salt("new_subscription_qos")
                .selected_text(self.sub_form.qos.to_string())
                .width(64.0)
                .show_ui(ui, |ui| {
                    for qos in Qos::ALL {
                        ui.selectable_value(&mut self.sub_form.qos, qos, qos.to_string());
                    }
                });
            combo
                .response
                .accessible_name("QoS of the new subscription");
            if ui.button("Subscribe").clicked() || entered {
                let filter = self.sub_form.filter.trim().to_string();
                match validate_topic_filter(&filter) {
                    Ok(()) => {
                        self.actions.push(Action::Subscribe {
                            filter,
                            qos: self.sub_form.qos,
                        });
                        self.sub_form.filter.clear();
                    }
                    Err(why) => self.sub_form.error = Some(why),
                }
            }
            let has_sys = specs.iter().any(|s| s.filter == "$SYS/#");
            if !has_sys
                && ui
                    .button("+ $SYS/#")
                    .on_hover_text("Subscribe to the broker's own statistics")
                    .clicked()
            {
                self.actions.push(Action::Subscribe {
                    filter: "$SYS/#".into(),
                    qos: Qos::AtMostOnce,
                });
            }
        });
        if let Some(error) = &self.sub_form.error {
            ui.colored_label(error_color, error);
        }
    }
}
