//! The replay section beside an opened capture: the connection to publish
//! it into, the form (pace, range, topic map, QoS/retain), and the running
//! replay's progress with Pause/Stop. A view: it takes what it shows and
//! returns Actions.

use super::Action;
use super::capture_ui::{self, ReplayForm};
use crate::capture::replay::Replay;
use crate::mqtt::ConnectionId;

/// Draws the section; `targets` are the live connections (id, profile
/// name) a capture can be replayed into, `target` the one chosen (kept
/// valid here), `replay` the replay running or last run.
pub(crate) fn replay_panel_ui(
    ui: &mut egui::Ui,
    targets: &[(ConnectionId, String)],
    target: &mut Option<ConnectionId>,
    form: &mut ReplayForm,
    replay: Option<&Replay>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    ui.strong("Replay this capture");
    if target.is_none_or(|t| !targets.iter().any(|(c, _)| *c == t)) {
        *target = targets.first().map(|(c, _)| *c);
    }
    if targets.is_empty() {
        ui.weak("Connect to a broker (\"+ Open…\") to replay into it.");
    } else {
        ui.horizontal(|ui| {
            let label = ui.label("Into");
            let shown = targets
                .iter()
                .find(|(c, _)| Some(*c) == *target)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            egui::ComboBox::from_id_salt("replay_target")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    for (c, name) in targets {
                        ui.selectable_value(target, Some(*c), name);
                    }
                })
                .response
                .labelled_by(label.id);
        });
        if let Some(options) = form.ui(ui, None) {
            actions.push(Action::StartReplay(options));
        }
    }
    if let Some(replay) = replay {
        let progress = replay.progress();
        if !progress.finished {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(500));
        }
        if let Some(action) = capture_ui::replay_progress_ui(ui, &progress) {
            actions.push(Action::Replay(action));
        }
    }
    ui.separator();
    actions
}
