//! Small editors for MQTT 5 values shared by the profile form, the publish
//! panel and the subscriptions panel: an optional number ("send this
//! property or not") and a user-property list (keys may repeat, order kept).

use egui::{TextEdit, Ui};

/// A checkbox that decides whether the property is sent, and its value.
/// `label` names both for screen readers and tests. Returns whether it changed.
pub(crate) fn optional_u32(
    ui: &mut Ui,
    label: &str,
    value: &mut Option<u32>,
    default: u32,
    suffix: &str,
) -> bool {
    let mut on = value.is_some();
    let mut changed = false;
    ui.horizontal(|ui| {
        if ui.checkbox(&mut on, label).changed() {
            *value = on.then_some(value.unwrap_or(default));
            changed = true;
        }
        if let Some(v) = value.as_mut() {
            changed |= ui
                .add(egui::DragValue::new(v).suffix(suffix))
                .on_hover_text(label)
                .changed();
        }
    });
    changed
}

/// As [`optional_u32`] for a two-byte property.
pub(crate) fn optional_u16(
    ui: &mut Ui,
    label: &str,
    value: &mut Option<u16>,
    default: u16,
) -> bool {
    let mut wide = value.map(u32::from);
    let changed = optional_u32(ui, label, &mut wide, u32::from(default), "");
    if changed {
        *value = wide.map(|v| v.min(u32::from(u16::MAX)) as u16);
    }
    changed
}

/// An editable list of user properties: one row per pair with a remove
/// button, and "Add user property". `id` keeps rows of different lists
/// apart. Returns whether the list changed.
pub(crate) fn user_properties(ui: &mut Ui, id: &str, props: &mut Vec<(String, String)>) -> bool {
    let mut changed = false;
    let mut remove = None;
    for (i, (k, v)) in props.iter_mut().enumerate() {
        ui.push_id((id, i), |ui| {
            ui.horizontal(|ui| {
                changed |= ui
                    .add(
                        TextEdit::singleline(k)
                            .hint_text("name")
                            .desired_width(110.0),
                    )
                    .on_hover_text("User property name")
                    .accessible_name(format!("{id} name {}", i + 1))
                    .changed();
                changed |= ui
                    .add(
                        TextEdit::singleline(v)
                            .hint_text("value")
                            .desired_width(150.0),
                    )
                    .on_hover_text("User property value")
                    .accessible_name(format!("{id} value {}", i + 1))
                    .changed();
                if ui
                    .small_button("x")
                    .on_hover_text("Remove this user property")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
        });
    }
    if let Some(i) = remove {
        props.remove(i);
        changed = true;
    }
    if ui
        .small_button(format!("Add {id}"))
        .on_hover_text("Keys may repeat; the order is kept on the wire")
        .clicked()
    {
        props.push((String::new(), String::new()));
        changed = true;
    }
    changed
}
