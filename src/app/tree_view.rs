//! The live topic tree: one row per visible topic level with its counts,
//! retained marker, payload preview and age, a filter box, the `$SYS`
//! toggle and keyboard navigation. Only the rows on screen are laid out.

use crate::model::payload;
use crate::model::store::Store;
use crate::model::tree::{FilterJob, NodeId, Row};
use egui::{Color32, Label, RichText, Sense, TextEdit};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Height of one tree row.
const ROW_H: f32 = 20.0;
/// Indentation per level.
const INDENT: f32 = 16.0;
/// Characters of payload shown on a row.
const PREVIEW_CHARS: usize = 80;
/// A row that changed glows this long...
const FLASH: Duration = Duration::from_millis(1000);
/// ...fading in this many steps, so a glowing tree is redrawn a few times a
/// second instead of every frame.
const FLASH_STEPS: u64 = 4;

/// The glow of a row that changed `since_us` ago: its strength (1 = just
/// changed) and how long until it next changes; `None` once it is over.
pub fn glow(since_us: u64) -> Option<(f32, Duration)> {
    let flash = FLASH.as_micros() as u64;
    if since_us >= flash {
        return None;
    }
    let step = flash / FLASH_STEPS;
    let n = since_us / step;
    let strength = 1.0 - n as f32 / FLASH_STEPS as f32;
    Some((strength, Duration::from_micros(step * (n + 1) - since_us)))
}
/// Typing in the filter box waits this long before the (whole-tree) filter
/// runs, so a big tree is filtered once per pause, not once per keystroke.
const FILTER_DEBOUNCE: Duration = Duration::from_millis(200);
/// A running filter gets at most this much of a frame...
const FILTER_SLICE_TIME: Duration = Duration::from_millis(3);
/// ...checked every this many nodes.
const FILTER_SLICE_NODES: usize = 4096;

/// What the tree asks its owner to do after the frame.
#[derive(Clone, Debug, PartialEq)]
pub enum TreeAction {
    /// The selection moved to this node (its full topic given too).
    Select { node: NodeId, topic: String },
    /// Ask the user to confirm clearing the retained messages under a node.
    ClearRetained(NodeId),
}

/// View state of the topic tree; the tree itself lives in the [`Store`].
#[derive(Debug)]
pub struct TreeView {
    pub selected: Option<NodeId>,
    pub filter_text: String,
    /// The text the store's filter mask was computed for.
    applied_filter: String,
    filter_edited: Option<Instant>,
    /// A filter being computed over several frames.
    filter_job: Option<FilterJob>,
    pub show_sys: bool,
    /// Scroll so this row is visible on the next frame.
    scroll_to: Option<usize>,
    /// Scroll offset and viewport height of the last frame.
    last_offset: f32,
    last_height: f32,
}

impl Default for TreeView {
    fn default() -> Self {
        TreeView {
            selected: None,
            filter_text: String::new(),
            applied_filter: String::new(),
            filter_edited: None,
            filter_job: None,
            show_sys: true,
            scroll_to: None,
            last_offset: 0.0,
            last_height: 0.0,
        }
    }
}

/// "3 s ago", "5 min ago", "2 h ago", "4 d ago".
pub fn age_text(now: SystemTime, then_us: u64) -> String {
    let then = UNIX_EPOCH + Duration::from_micros(then_us);
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// "(4 msgs, 2 topics)" for a level with topics below, "(1 msg)" for a leaf.
pub fn counts_text(messages: u64, topics_below: u32) -> String {
    let msgs = if messages == 1 { "msg" } else { "msgs" };
    if topics_below == 0 {
        format!("({messages} {msgs})")
    } else {
        let topics = if topics_below == 1 { "topic" } else { "topics" };
        format!("({messages} {msgs}, {topics_below} {topics})")
    }
}

fn to_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl TreeView {
    /// Forgets the selection and filter state tied to one store (the store
    /// was replaced: its node ids mean nothing any more).
    pub fn reset(&mut self) {
        self.selected = None;
        self.applied_filter.clear();
        // Its node ids belong to the old store.
        self.filter_job = None;
        self.filter_edited = if self.filter_text.trim().is_empty() {
            None
        } else {
            // Apply the typed filter to the new store at once.
            Some(Instant::now() - FILTER_DEBOUNCE)
        };
        self.scroll_to = None;
    }

    /// The filter box, the `$SYS` toggle and the rows. `now` is the clock
    /// the ages and highlights are measured against.
    pub fn ui(&mut self, ui: &mut egui::Ui, store: &mut Store, now: SystemTime) -> Vec<TreeAction> {
        let mut actions = Vec::new();
        self.toolbar_ui(ui, store, &mut actions);
        self.apply_filter(ui.ctx(), store);
        self.continue_filter(ui.ctx(), store);
        if store.tree().show_sys() != self.show_sys {
            store.set_show_sys(self.show_sys);
        }

        let tree_id = ui.scope_id().with("topic_tree_focus");
        let area = ui.available_rect_before_wrap();
        // A focus target for the keyboard; rows give it focus when clicked.
        ui.interact(area, tree_id, Sense::focusable_noninteractive());
        let focused = ui.memory(|m| m.has_focus(tree_id));
        if focused {
            ui.memory_mut(|m| {
                m.set_focus_lock_filter(
                    tree_id,
                    egui::EventFilter {
                        horizontal_arrows: true,
                        vertical_arrows: true,
                        ..Default::default()
                    },
                )
            });
            self.keyboard(ui, store, &mut actions);
        }

        let rows: Vec<Row> = store.visible_rows().to_vec();
        if rows.is_empty() {
            ui.add_space(8.0);
            ui.weak(if store.topic_count() == 0 {
                "No messages yet."
            } else {
                "No topic matches the filter."
            });
            return actions;
        }
        let mut scroll = egui::ScrollArea::both()
            .id_salt("topic_tree_rows")
            .auto_shrink([false, false]);
        if let Some(i) = self.scroll_to.take() {
            let top = i as f32 * (ROW_H + ui.spacing().item_spacing.y);
            let bottom = top + ROW_H;
            if top < self.last_offset {
                scroll = scroll.vertical_scroll_offset(top);
            } else if bottom > self.last_offset + self.last_height {
                scroll = scroll.vertical_scroll_offset(bottom - self.last_height);
            }
        }
        let now_us = to_us(now);
        let mut flashing: Option<Duration> = None;
        let mut ages_shown = false;
        let output = scroll.show_rows(ui, ROW_H, rows.len(), |ui, range| {
            for row in &rows[range] {
                let (changed, glowing) =
                    self.row_ui(ui, store, *row, now, now_us, tree_id, &mut actions);
                if let Some(next) = glowing {
                    flashing = Some(flashing.map_or(next, |f| f.min(next)));
                }
                ages_shown |= changed;
            }
        });
        self.last_offset = output.state.clamped_offset().y;
        self.last_height = output.inner_rect.height();
        if let Some(next) = flashing {
            // The next glow step, not every frame.
            super::pacing::repaint_after(ui.ctx(), next);
        } else if ages_shown {
            // Keeps "N s ago" honest without repainting every frame.
            super::pacing::repaint_after(ui.ctx(), Duration::from_secs(1));
        }
        actions
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui, store: &Store, actions: &mut Vec<TreeAction>) {
        // Full row: a width computed from the widgets beside it would make
        // the resizable panel grow every frame.
        let response = ui.add(
            TextEdit::singleline(&mut self.filter_text)
                .hint_text("Filter topics and payloads")
                .desired_width(f32::INFINITY),
        );
        // Screen readers (and the GUI tests) find the box by this name.
        response.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::TextInput,
                ui.is_enabled(),
                "Filter topics and payloads",
            )
        });
        if response.changed() {
            self.filter_edited = Some(Instant::now());
        }
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.show_sys, "Show $SYS");
            if let Some(job) = &self.filter_job {
                let (checked, total) = job.progress();
                ui.weak(format!(
                    "filtering... {}%",
                    checked.saturating_mul(100) / total.max(1)
                ));
            }
            if let Some(node) = self.selected {
                let retained = store.retained_count(node);
                if retained > 0
                    && ui
                        .button("Clear retained…")
                        .on_hover_text(format!(
                            "Delete the {retained} retained messages under the selected topic"
                        ))
                        .clicked()
                {
                    actions.push(TreeAction::ClearRetained(node));
                }
            }
        });
    }

    fn apply_filter(&mut self, ctx: &egui::Context, store: &mut Store) {
        let Some(edited) = self.filter_edited else {
            return;
        };
        let waited = edited.elapsed();
        if waited < FILTER_DEBOUNCE {
            ctx.request_repaint_after(FILTER_DEBOUNCE - waited);
            return;
        }
        self.filter_edited = None;
        let text = self.filter_text.trim().to_string();
        if text == self.applied_filter {
            return;
        }
        // New messages are matched as they arrive (`Tree::filter_consider`);
        // only a new query walks the whole tree, a slice per frame (see
        // `continue_filter`), so a million topics never freeze a frame.
        match store.start_filter(&text) {
            Some(job) => self.filter_job = Some(job),
            None => {
                self.filter_job = None;
                store.set_filter(&text);
            }
        }
        self.applied_filter = text;
    }

    /// Advances a running filter for at most ~3 ms of this frame.
    fn continue_filter(&mut self, ctx: &egui::Context, store: &mut Store) {
        let Some(mut job) = self.filter_job.take() else {
            return;
        };
        let start = Instant::now();
        while start.elapsed() < FILTER_SLICE_TIME {
            match store.continue_filter(job, FILTER_SLICE_NODES) {
                Some(more) => job = more,
                None => return,
            }
        }
        self.filter_job = Some(job);
        ctx.request_repaint();
    }

    /// Lays out one row; returns (shows an age, when its glow next changes).
    #[allow(clippy::too_many_arguments)]
    fn row_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &mut Store,
        row: Row,
        now: SystemTime,
        now_us: u64,
        tree_id: egui::Id,
        actions: &mut Vec<TreeAction>,
    ) -> (bool, Option<Duration>) {
        let node = row.node;
        let width = ui.available_width().max(200.0);
        let (rect, response) = ui.allocate_exact_size(egui::vec2(width, ROW_H), Sense::click());
        let selected = self.selected == Some(node);
        let visuals = ui.visuals();
        let last_us = store.tree().subtree_last_us(node);
        let since = now_us.saturating_sub(last_us);
        let glowing = if last_us > 0 { glow(since) } else { None };
        if selected {
            ui.painter()
                .rect_filled(rect, 2.0, visuals.selection.bg_fill);
        } else if let Some((strength, _)) = glowing {
            let glow = Color32::from_rgb(230, 180, 60).gamma_multiply(0.45 * strength);
            ui.painter().rect_filled(rect, 2.0, glow);
        } else if response.hovered() {
            ui.painter()
                .rect_filled(rect, 2.0, visuals.widgets.hovered.weak_bg_fill);
        }

        let tree = store.tree();
        let has_children = tree.has_children(node);
        let expanded = tree.is_expanded(node);
        let indent = f32::from(row.depth) * INDENT;
        let arrow_rect = egui::Rect::from_min_size(
            rect.min + egui::vec2(indent, 0.0),
            egui::vec2(INDENT, ROW_H),
        );
        let mut toggle = false;
        if has_children {
            let arrow = ui.interact(
                arrow_rect,
                ui.scope_id().with(("arrow", node)),
                Sense::click(),
            );
            let color = if arrow.hovered() {
                visuals.strong_text_color()
            } else {
                visuals.text_color()
            };
            let c = arrow_rect.center();
            let points = if expanded {
                vec![
                    c + egui::vec2(-4.0, -2.0),
                    c + egui::vec2(4.0, -2.0),
                    c + egui::vec2(0.0, 3.0),
                ]
            } else {
                vec![
                    c + egui::vec2(-2.0, -4.0),
                    c + egui::vec2(3.0, 0.0),
                    c + egui::vec2(-2.0, 4.0),
                ]
            };
            ui.painter().add(egui::Shape::convex_polygon(
                points,
                color,
                egui::Stroke::NONE,
            ));
            toggle = arrow.clicked();
        }

        let name = tree.name(node).to_string();
        let counts = counts_text(tree.subtree_messages(node), tree.subtopic_count(node));
        let info = store.topic_info(node);
        let retained = info.is_some_and(|i| i.retained);
        let preview = info
            .and_then(|i| i.last.payload)
            .map(|p| payload::preview(p, PREVIEW_CHARS));
        let age = (last_us > 0).then(|| age_text(now, last_us));

        let text_rect =
            egui::Rect::from_min_max(egui::pos2(arrow_rect.max.x + 2.0, rect.min.y), rect.max);
        let mut content = ui.new_child(
            egui::UiBuilder::new()
                .max_rect(text_rect)
                .layout(egui::Layout::left_to_right(egui::Align::Center)),
        );
        content.spacing_mut().item_spacing.x = 6.0;
        let name_text = if selected {
            RichText::new(name).strong()
        } else {
            RichText::new(name)
        };
        content.add(Label::new(name_text).selectable(false));
        content.add(Label::new(RichText::new(counts).weak().small()).selectable(false));
        if retained {
            let badge = RichText::new(" R ")
                .small()
                .color(Color32::WHITE)
                .background_color(Color32::from_rgb(70, 110, 190));
            content
                .add(Label::new(badge).selectable(false))
                .on_hover_text("The broker holds a retained message for this topic");
        }
        if let Some(age) = &age {
            // Age first (right-aligned), then the preview takes what is left.
            content.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.add(Label::new(RichText::new(age).weak().small()).selectable(false));
                if let Some(preview) = preview.filter(|p| !p.is_empty()) {
                    ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                        ui.add(
                            Label::new(RichText::new(preview).monospace().weak())
                                .selectable(false)
                                .truncate(),
                        );
                    });
                }
            });
        }

        if toggle {
            store.set_expanded(node, !expanded);
        } else if response.clicked() {
            ui.memory_mut(|m| m.request_focus(tree_id));
            if has_children && response.double_clicked() {
                store.set_expanded(node, !expanded);
            }
            self.select(store, node, actions);
        }
        if toggle || response.clicked() {
            ui.memory_mut(|m| m.request_focus(tree_id));
        }
        response.context_menu(|ui| {
            let retained = store.retained_count(node);
            if retained == 0 {
                ui.weak("No retained messages here");
            } else if ui.button("Clear retained…").clicked() {
                actions.push(TreeAction::ClearRetained(node));
                ui.close();
            }
            if has_children {
                let label = if expanded { "Collapse" } else { "Expand" };
                if ui.button(label).clicked() {
                    store.set_expanded(node, !expanded);
                    ui.close();
                }
            }
        });
        (age.is_some(), glowing.map(|(_, next)| next))
    }

    fn select(&mut self, store: &Store, node: NodeId, actions: &mut Vec<TreeAction>) {
        if self.selected != Some(node) {
            self.selected = Some(node);
            actions.push(TreeAction::Select {
                node,
                topic: store.path(node),
            });
        }
    }

    /// Up/Down move the selection, Left collapses (or goes to the parent),
    /// Right expands (or goes to the first child).
    fn keyboard(&mut self, ui: &egui::Ui, store: &mut Store, actions: &mut Vec<TreeAction>) {
        let (up, down, left, right) = ui.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::ArrowDown),
                i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::ArrowRight),
            )
        });
        if !(up || down || left || right) {
            return;
        }
        let rows_len = store.visible_rows().len();
        if rows_len == 0 {
            return;
        }
        let current = self.selected.and_then(|n| store.tree_mut().row_of(n));
        let Some(at) = current else {
            // Nothing selected yet: any arrow selects the first row.
            if let Some(first) = store.visible_rows().first().map(|r| r.node) {
                self.select(store, first, actions);
                self.scroll_to = Some(0);
            }
            return;
        };
        let node = store.visible_rows()[at].node;
        let mut target = at;
        if up {
            target = at.saturating_sub(1);
        } else if down {
            target = (at + 1).min(rows_len - 1);
        } else if left {
            if store.tree().is_expanded(node) && store.tree().has_children(node) {
                store.set_expanded(node, false);
                return;
            }
            let parent = store.tree().parent(node).filter(|&p| p != store.root());
            if let Some(parent) = parent
                && let Some(i) = store.tree_mut().row_of(parent)
            {
                target = i;
            }
        } else if right && store.tree().has_children(node) {
            if !store.tree().is_expanded(node) {
                store.set_expanded(node, true);
                return;
            }
            target = (at + 1).min(rows_len - 1);
        }
        if target != at {
            let next = store.visible_rows()[target].node;
            self.select(store, next, actions);
            self.scroll_to = Some(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glow_fades_in_four_steps_and_asks_for_a_frame_per_step() {
        assert_eq!(glow(0), Some((1.0, Duration::from_millis(250))));
        assert_eq!(glow(100_000), Some((1.0, Duration::from_millis(150))));
        assert_eq!(glow(250_000), Some((0.75, Duration::from_millis(250))));
        assert_eq!(glow(999_000), Some((0.25, Duration::from_millis(1))));
        assert_eq!(glow(1_000_000), None);
    }

    #[test]
    fn counts_say_messages_and_topics_below() {
        assert_eq!(counts_text(4, 2), "(4 msgs, 2 topics)");
        assert_eq!(counts_text(1, 0), "(1 msg)");
        assert_eq!(counts_text(3, 1), "(3 msgs, 1 topic)");
    }

    #[test]
    fn age_reads_in_the_largest_whole_unit() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let us = |secs_before: u64| (1_000_000 - secs_before) * 1_000_000;
        assert_eq!(age_text(now, us(3)), "3 s ago");
        assert_eq!(age_text(now, us(300)), "5 min ago");
        assert_eq!(age_text(now, us(7200)), "2 h ago");
        assert_eq!(age_text(now, us(3 * 86_400)), "3 d ago");
        // A message stamped after `now` (clock skew) is not "-1 s ago".
        assert_eq!(age_text(now, 2_000_000 * 1_000_000), "0 s ago");
    }
}
