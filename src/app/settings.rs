//! What the window remembers between runs (through eframe's storage) and the
//! small "Settings" window that edits the history limits and the theme.

use super::plots::SeriesSpec;
use crate::model::store::HistoryLimits;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The tabs under the connection bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    #[default]
    Explorer,
    Plots,
    Timeline,
    QosLab,
    Profiles,
    SideBySide,
    Learn,
}

impl Tab {
    pub const ALL: [Tab; 7] = [
        Tab::Explorer,
        Tab::SideBySide,
        Tab::Plots,
        Tab::Timeline,
        Tab::QosLab,
        Tab::Profiles,
        Tab::Learn,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tab::Explorer => "Explorer",
            Tab::Plots => "Plots",
            Tab::Timeline => "Timeline",
            Tab::QosLab => "QoS lab",
            Tab::Profiles => "Profiles",
            Tab::SideBySide => "Side by side",
            Tab::Learn => "Learn",
        }
    }
}

/// What is remembered between runs that is not a profile.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct State {
    /// The profile selected when the app was closed.
    pub(crate) last_profile: Option<String>,
    pub(crate) tab: Tab,
    /// Width of the Explorer's left column (subscriptions + tree).
    pub(crate) tree_width: f32,
    /// Bounds of each connection's message history.
    pub(crate) limits: HistoryLimits,
    pub(crate) dark: bool,
    /// The live plots' series per profile name. Kept here rather than in
    /// the profile file so an exported profile stays a connection setting.
    pub(crate) plot_layouts: HashMap<String, Vec<SeriesSpec>>,
    /// The profiles whose connections were open, reopened at the next start.
    pub(crate) open_profiles: Vec<String>,
    /// Redraws per second at most for live data (the user's own input is
    /// always answered at once): a busy broker cannot push past it.
    pub(crate) max_fps: u32,
    /// The lesson steps done ("lesson/step"), kept across runs.
    pub(crate) lessons_done: std::collections::BTreeSet<String>,
}

/// The default cap of live redraws: a tree, a timeline and plots that move
/// visibly, for a few percent of a core even on software rendering.
pub(crate) const DEFAULT_MAX_FPS: u32 = 5;

impl Default for State {
    fn default() -> Self {
        State {
            last_profile: None,
            tab: Tab::Explorer,
            tree_width: 560.0,
            limits: HistoryLimits::default(),
            dark: true,
            plot_layouts: HashMap::new(),
            open_profiles: Vec::new(),
            max_fps: DEFAULT_MAX_FPS,
            lessons_done: Default::default(),
        }
    }
}

const MIB: usize = 1 << 20;

/// What the Settings window was set to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Chosen {
    pub(crate) limits: HistoryLimits,
    pub(crate) dark: bool,
    pub(crate) max_fps: u32,
}

/// The "Settings" window, while `open`; returns what the user changed (the
/// theme is switched here at once).
pub(super) fn settings_window_ui(
    ctx: &egui::Context,
    open: &mut bool,
    state: &State,
) -> Option<Chosen> {
    if !*open {
        return None;
    }
    let before = Chosen {
        limits: state.limits,
        dark: state.dark,
        max_fps: state.max_fps,
    };
    let Chosen {
        mut limits,
        mut dark,
        max_fps: mut fps,
    } = before;
    egui::Window::new("Settings")
        .open(open)
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            egui::Grid::new("settings_grid")
                .num_columns(2)
                .spacing([12.0, 8.0])
                .show(ui, |ui| {
                    let label = ui.label("Messages kept per topic");
                    ui.add(
                        egui::DragValue::new(&mut limits.per_topic_count)
                            .range(1..=100_000)
                            .speed(1.0),
                    )
                    .labelled_by(label.id);
                    ui.end_row();

                    let label = ui.label("Total history budget (MiB)");
                    let mut mib = limits.total_bytes / MIB;
                    if ui
                        .add(egui::DragValue::new(&mut mib).range(1..=65_536).speed(1.0))
                        .labelled_by(label.id)
                        .changed()
                    {
                        limits.total_bytes = mib.saturating_mul(MIB);
                    }
                    ui.end_row();

                    let label = ui.label("Live redraws per second (at most)");
                    ui.add(egui::DragValue::new(&mut fps).range(1..=60).speed(0.2))
                        .labelled_by(label.id)
                        .on_hover_text(
                            "How often new messages are drawn. Clicks and typing are \
                             answered at once. Where a frame is expensive (software \
                             rendering in VMs and remote desktops) live redraws are \
                             spaced further, to stay within a tenth of a core.",
                        );
                    ui.end_row();

                    ui.label("Theme");
                    ui.horizontal(|ui| {
                        ui.selectable_value(&mut dark, true, "Dark");
                        ui.selectable_value(&mut dark, false, "Light");
                    });
                    ui.end_row();
                });
            ui.weak(
                "When the budget is full the oldest payloads are dropped and counted \
                 in the status bar; topics and counts are kept.",
            );
        });
    if dark != before.dark {
        ctx.set_theme(if dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
    }
    let chosen = Chosen {
        limits,
        dark,
        max_fps: fps,
    };
    (chosen != before).then_some(chosen)
}
