//! The subscriptions panel above the topic tree: the selected profile's
//! topic filters with what the broker answered, and the form to add one.

use super::connection::ConnectionState;
use super::profiles::Entry;
use super::{Action, props_edit};
use crate::profile::{
    ProtocolVersion, Qos, RetainHandling, SubscriptionSpec, check_user_properties,
    validate_topic_filter,
};
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
    /// MQTT 5 subscription options of the next subscription.
    pub(crate) no_local: bool,
    pub(crate) retain_as_published: bool,
    pub(crate) retain_handling: RetainHandling,
    pub(crate) subscription_identifier: Option<u32>,
    pub(crate) user_properties: Vec<(String, String)>,
    /// Why the last typed filter was refused.
    pub(crate) error: Option<String>,
}

impl SubscribeForm {
    /// The selected profile's (`entry`) subscriptions with what its
    /// connection's broker answered, and the form to add one; returns what
    /// the user asked for.
    pub(super) fn ui(
        &mut self,
        ui: &mut egui::Ui,
        entry: Option<&Entry>,
        connection: Option<&ConnectionState>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(entry) = entry else {
            ui.weak("Add a profile in the Profiles tab to subscribe.");
            return actions;
        };
        let specs = &entry.profile.subscriptions;
        let active = connection.is_some_and(|c| c.is_active());
        let states: Vec<Option<&SubState>> = specs
            .iter()
            .map(|s| connection.and_then(|c| c.subs.get(&s.filter)))
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
                    actions.push(Action::Unsubscribe(spec.filter.clone()));
                }
                ui.label(RichText::new(&spec.filter).monospace());
                ui.weak(spec.qos.to_string());
                let options = v5_options_text(spec);
                if !options.is_empty() {
                    ui.weak(options);
                }
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
            TextEdit::singleline(&mut self.filter)
                .hint_text("topic filter, e.g. sensors/#")
                .desired_width(f32::INFINITY),
        );
        let response = response.accessible_name("New subscription");
        if response.changed() {
            self.error = None;
        }
        let entered = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let v5 = entry.profile.protocol == ProtocolVersion::V5;
        if v5 {
            let form = &mut *self;
            egui::CollapsingHeader::new("MQTT 5 subscription options")
                .id_salt("subscription v5 options")
                .show(ui, |ui| {
                    ui.checkbox(&mut form.no_local, "No local (not my own publishes)");
                    ui.checkbox(&mut form.retain_as_published, "Retain as published");
                    ui.horizontal(|ui| {
                        ui.label("Retained messages:");
                        for (rh, text) in [
                            (RetainHandling::OnSubscribe, "send (0)"),
                            (RetainHandling::OnNewSubscribe, "if new (1)"),
                            (RetainHandling::Never, "never (2)"),
                        ] {
                            ui.radio_value(&mut form.retain_handling, rh, text);
                        }
                    });
                    props_edit::optional_u32(
                        ui,
                        "Subscription identifier",
                        &mut form.subscription_identifier,
                        1,
                        "",
                    );
                    props_edit::user_properties(
                        ui,
                        "subscription user property",
                        &mut form.user_properties,
                    );
                });
        }
        ui.horizontal(|ui| {
            let combo = egui::ComboBox::from_id_salt("new_subscription_qos")
                .selected_text(self.qos.to_string())
                .width(64.0)
                .show_ui(ui, |ui| {
                    for qos in Qos::ALL {
                        ui.selectable_value(&mut self.qos, qos, qos.to_string());
                    }
                });
            combo
                .response
                .accessible_name("QoS of the new subscription");
            if ui.button("Subscribe").clicked() || entered {
                let filter = self.filter.trim().to_string();
                let form = &*self;
                let checked = validate_topic_filter(&filter).and_then(|()| {
                    if form.subscription_identifier == Some(0) {
                        return Err("a subscription identifier starts at 1".into());
                    }
                    match check_user_properties(&form.user_properties) {
                        Some(e) => Err(e),
                        None => Ok(()),
                    }
                });
                match checked {
                    Ok(()) => {
                        let spec = if v5 {
                            SubscriptionSpec {
                                filter,
                                qos: form.qos,
                                no_local: form.no_local,
                                retain_as_published: form.retain_as_published,
                                retain_handling: form.retain_handling,
                                subscription_identifier: form.subscription_identifier,
                                user_properties: form.user_properties.clone(),
                            }
                        } else {
                            SubscriptionSpec::new(filter, form.qos)
                        };
                        actions.push(Action::SubscribeSpec(spec));
                        self.filter.clear();
                    }
                    Err(why) => self.error = Some(why),
                }
            }
            let has_sys = specs.iter().any(|s| s.filter == "$SYS/#");
            if !has_sys
                && ui
                    .button("+ $SYS/#")
                    .on_hover_text("Subscribe to the broker's own statistics")
                    .clicked()
            {
                actions.push(Action::Subscribe {
                    filter: "$SYS/#".into(),
                    qos: Qos::AtMostOnce,
                });
            }
        });
        if let Some(error) = &self.error {
            ui.colored_label(error_color, error);
        }
        actions
    }
}

/// The MQTT 5 options of a subscription in a few words ("no local, retain
/// as published, retained: never, id 7"); empty when it has none.
pub(crate) fn v5_options_text(spec: &SubscriptionSpec) -> String {
    let mut parts = Vec::new();
    if spec.no_local {
        parts.push("no local".to_string());
    }
    if spec.retain_as_published {
        parts.push("retain as published".to_string());
    }
    match spec.retain_handling {
        RetainHandling::OnSubscribe => {}
        RetainHandling::OnNewSubscribe => parts.push("retained: if new".into()),
        RetainHandling::Never => parts.push("retained: never".into()),
    }
    if let Some(id) = spec.subscription_identifier {
        parts.push(format!("id {id}"));
    }
    if !spec.user_properties.is_empty() {
        parts.push(format!("{} user prop.", spec.user_properties.len()));
    }
    parts.join(", ")
}
