//! The packet timeline: a sequence diagram of every control packet of one
//! connection (client lane left, broker lane right, time running down), with
//! filters, a detail pane for the clicked packet, and export actions.
//!
//! Self-contained: it reads a [`PacketLog`] (a live connection) or pages
//! through an opened capture ([`Offline`]), and returns [`TimelineAction`]s
//! for what it cannot do itself (change the log, save a file).

use crate::capture::offline::Offline;
use crate::model::flows::{
    ALL_KINDS, Flow, FlowState, KindSet, PacketFilter, PacketLog, Seq, flow_rgb, format_relative,
    packet_label, to_jsonl, to_svg,
};
use crate::model::packet::{Direction, PacketRecord};
use egui::{Align2, Color32, FontId, Label, RichText, Sense, Shape, Stroke, TextEdit, pos2, vec2};

/// Height of one packet row (label above, arrow below).
const ROW_H: f32 = 30.0;
/// Width of the time column on the left.
const TIME_W: f32 = 96.0;
/// Distance of the broker lane from the right edge.
const LANE_MARGIN: f32 = 40.0;
/// The log limit the user can choose.
const CAPACITY_RANGE: std::ops::RangeInclusive<usize> = 100..=1_000_000;

/// What the timeline asks its owner to do after the frame.
#[derive(Clone, Debug, PartialEq)]
pub enum TimelineAction {
    /// Save these JSON Lines (the packets currently shown) to a file.
    ExportJsonl(String),
    /// Save this SVG sequence diagram (the packets currently shown) to a file.
    ExportSvg(String),
    /// Keep at most this many packets: call `PacketLog::set_capacity`.
    SetCapacity(usize),
    /// Forget every packet: call `PacketLog::clear`.
    Clear,
}

/// The timeline's view state; one per connection (or one shared, it only
/// keeps sequence numbers of the log it is shown with).
#[derive(Debug)]
pub struct TimelineView {
    /// Scroll to the newest packet as packets arrive. Off = paused: the list
    /// shown stays as it was until follow is turned back on.
    pub follow_live: bool,
    pub filter: PacketFilter,
    /// The packet whose fields the detail pane shows.
    pub selected: Option<Seq>,
    /// Rows shown, as log sequence numbers; rebuilt when the filter changes
    /// or, while following, when the log changes.
    rows: Vec<Seq>,
    rows_key: Option<(u64, PacketFilter)>,
    /// Packets pushed when the list was last rebuilt, to count new ones while paused.
    rows_pushed: u64,
    capacity_edit: usize,
    jump_to_bottom: bool,
    /// A packet to scroll to (and select) on the next frame.
    reveal: Option<Seq>,
    /// Paging through an opened capture's packets (instead of a PacketLog).
    paged: Paged,
}

/// Records loaded around the rows on screen, beyond them on each side, so
/// the flows of the rows shown are linked and scrolling a little reads
/// nothing.
const PAGE_MARGIN: usize = 256;
/// A page spanning more records than this (a sparse filter's rows) is read
/// row by row, without flows.
const PAGE_MAX: usize = 4096;
/// Packets of one flow loaded beside a page, at most (a flow has a few).
const MAX_PARTNERS: usize = 16;
/// Records the filter reads from the capture per frame.
const SCAN_PER_FRAME: usize = 20_000;

/// Where a jump button sends the paged timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Jump {
    Start,
    End,
    /// The row of this capture position, in the middle of the view.
    To(usize),
}

/// The view of an opened capture: every packet it holds, read from it a
/// page at a time.
#[derive(Debug, Default)]
struct Paged {
    /// The source's packet count when last drawn.
    total: usize,
    /// Time of the capture's first packet: the timeline's zero.
    origin: Option<u64>,
    /// Positions (in the capture) of the records in `page`, in order.
    page_pos: Vec<usize>,
    /// Their sequence numbers in `page`.
    page_seq: Vec<Seq>,
    /// The records loaded, with the flows they form among themselves.
    page: PacketLog,
    error: Option<String>,
    /// Positions of the packets that pass `scan_filter`, oldest first, as
    /// far as `scanned`.
    matches: Vec<usize>,
    scanned: usize,
    scan_filter: Option<PacketFilter>,
    /// The recent records the scan saw: a PUBACK matches a topic filter
    /// through the flow of its PUBLISH.
    scan_log: Option<PacketLog>,
    jump: Option<Jump>,
    /// The clicked packet, by its position in the capture (numbers in a
    /// page change as pages load).
    selected_pos: Option<usize>,
    /// Rows on screen last frame, for the header.
    visible: std::ops::Range<usize>,
    /// A step of the selected packet's flow clicked in the detail pane (its
    /// number in `page`): go there.
    goto: Option<Seq>,
}

impl Default for TimelineView {
    fn default() -> Self {
        TimelineView {
            follow_live: true,
            filter: PacketFilter::default(),
            selected: None,
            rows: Vec::new(),
            rows_key: None,
            rows_pushed: 0,
            capacity_edit: 0,
            jump_to_bottom: true,
            reveal: None,
            paged: Paged::default(),
        }
    }
}

impl TimelineView {
    pub fn new() -> TimelineView {
        TimelineView::default()
    }

    /// Selects the packet `seq` and scrolls to it on the next frame; stops
    /// following new packets so it stays in view.
    pub fn reveal(&mut self, seq: Seq) {
        self.selected = Some(seq);
        self.follow_live = false;
        self.reveal = Some(seq);
        // Rebuilt with everything up to now, so the packet is among the rows.
        self.rows_key = None;
    }

    /// The packets the view shows right now (sequence numbers, oldest first).
    pub fn shown(&self) -> &[Seq] {
        &self.rows
    }

    /// JSON Lines of the packets shown.
    pub fn export_jsonl(&self, log: &PacketLog) -> String {
        to_jsonl(self.rows.iter().filter_map(|&s| log.get(s)))
    }

    /// SVG sequence diagram of the packets shown.
    pub fn export_svg(&self, log: &PacketLog) -> String {
        to_svg(log, self.rows.iter().filter_map(|&s| log.get(s)))
    }

    fn refresh_rows(&mut self, log: &PacketLog) {
        match &self.rows_key {
            Some((_, filter)) if *filter != self.filter => self.rows_key = None,
            Some((revision, _)) if self.follow_live && *revision != log.revision() => {
                // Same filter, the log moved on: only look at what changed.
                log.refilter(&self.filter, &mut self.rows, self.rows_pushed);
                self.rows_key = Some((log.revision(), self.filter.clone()));
                self.rows_pushed = log.pushed();
                return;
            }
            _ => {}
        }
        if self.rows_key.is_none() {
            self.rows = log.filtered(&self.filter);
            self.rows_key = Some((log.revision(), self.filter.clone()));
            self.rows_pushed = log.pushed();
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, log: &PacketLog) -> Option<TimelineAction> {
        if self.capacity_edit == 0 {
            self.capacity_edit = log.capacity();
        }
        self.refresh_rows(log);
        let mut action = None;
        self.header_ui(ui, log, &mut action);
        self.controls_ui(ui, log, &mut action);
        ui.separator();
        if self.selected.is_some() {
            egui::Panel::right("mqscope_timeline_detail")
                .resizable(true)
                .default_size(280.0)
                .show(ui, |ui| {
                    self.detail_ui(ui, log, log.origin_us(), true, None, false)
                });
        }
        self.diagram_ui(ui, log);
        action
    }

    /// The timeline of an opened capture: a scrollbar over all its packets,
    /// only the rows on screen (and a margin) read from it; the filter runs
    /// over the whole capture, a slice per frame.
    pub fn offline_ui(&mut self, ui: &mut egui::Ui, source: &Offline) -> Option<TimelineAction> {
        let total = source.packet_count();
        let p = &mut self.paged;
        p.total = total;
        if p.origin.is_none() && total > 0 {
            p.origin = source
                .packets(0..1)
                .ok()
                .and_then(|r| r.first().map(|r| r.t_us));
        }
        // The flow filter names flows of a page: not meaningful across pages.
        self.filter.flow = None;
        if self.filter.is_empty() {
            p.scan_filter = None;
            p.matches.clear();
            p.scanned = 0;
            p.scan_log = None;
        } else {
            if p.scan_filter.as_ref() != Some(&self.filter) {
                p.scan_filter = Some(self.filter.clone());
                p.matches.clear();
                p.scanned = 0;
                p.scan_log = Some(PacketLog::new(PAGE_MAX));
            }
            if p.scanned < total {
                let end = (p.scanned + SCAN_PER_FRAME).min(total);
                match source.packets(p.scanned..end) {
                    Ok(records) => {
                        let log = p.scan_log.get_or_insert_with(|| PacketLog::new(PAGE_MAX));
                        for (k, r) in records.into_iter().enumerate() {
                            log.push(r);
                            if let Some(e) = log.entries().next_back()
                                && log.matches(e, &self.filter)
                            {
                                p.matches.push(p.scanned + k);
                            }
                        }
                        p.scanned = end;
                    }
                    Err(e) => {
                        p.error = Some(e);
                        p.scanned = total;
                    }
                }
                ui.ctx().request_repaint();
            }
        }
        let mut action = None;
        self.offline_header_ui(ui, source, &mut action);
        ui.separator();
        self.selected = self.paged_seq_of(self.paged.selected_pos);
        if self.paged.selected_pos.is_some() {
            let origin = self.paged.origin.unwrap_or(0);
            let page = std::mem::take(&mut self.paged.page);
            egui::Panel::right("mqscope_timeline_detail")
                .resizable(true)
                .default_size(280.0)
                .show(ui, |ui| {
                    let page_seq = std::mem::take(&mut self.paged.page_seq);
                    let page_pos = std::mem::take(&mut self.paged.page_pos);
                    let to_pos = |seq: Seq| -> Option<usize> {
                        let i = page_seq.binary_search(&seq).ok()?;
                        page_pos.get(i).copied()
                    };
                    let to_pos: &dyn Fn(Seq) -> Option<usize> = &to_pos;
                    let linked = source.flow_index().is_some();
                    self.detail_ui(ui, &page, origin, false, Some(to_pos), linked);
                    self.paged.page_seq = page_seq;
                    self.paged.page_pos = page_pos;
                });
            self.paged.page = page;
            if self.selected.is_none() && self.paged.selected_pos.is_some() {
                // Closed in the detail pane.
                self.paged.selected_pos = None;
            }
            if let Some(seq) = self.paged.goto.take()
                && let Some(i) = self.paged.page_seq.iter().position(|&s| s == seq)
                && let Some(&pos) = self.paged.page_pos.get(i)
            {
                if self.paged.scan_filter.is_some()
                    && self.paged.matches.binary_search(&pos).is_err()
                {
                    // Not among the rows the filter shows: show every row.
                    self.filter = PacketFilter::default();
                }
                self.paged.selected_pos = Some(pos);
                self.paged.jump = Some(Jump::To(pos));
                self.selected = Some(seq);
            }
        }
        self.offline_diagram_ui(ui, source);
        action
    }

    /// The number in the loaded page of the packet at capture position `pos`.
    fn paged_seq_of(&self, pos: Option<usize>) -> Option<Seq> {
        let i = self.paged.page_pos.binary_search(&pos?).ok()?;
        self.paged.page_seq.get(i).copied()
    }

    /// How many rows the paged timeline has: every packet, or the matches.
    fn paged_rows(&self) -> usize {
        if self.paged.scan_filter.is_some() {
            self.paged.matches.len()
        } else {
            self.paged.total
        }
    }

    /// The capture position shown on row `row`.
    fn paged_pos(&self, row: usize) -> Option<usize> {
        if self.paged.scan_filter.is_some() {
            self.paged.matches.get(row).copied()
        } else {
            (row < self.paged.total).then_some(row)
        }
    }

    fn offline_header_ui(
        &mut self,
        ui: &mut egui::Ui,
        source: &Offline,
        action: &mut Option<TimelineAction>,
    ) {
        let p = &self.paged;
        let rows = self.paged_rows();
        let shown = if p.visible.is_empty() || rows == 0 {
            "no packets on screen".to_string()
        } else {
            let first = self.paged_pos(p.visible.start).map_or(0, |x| x + 1);
            let last = self
                .paged_pos(p.visible.end.saturating_sub(1).min(rows - 1))
                .map_or(0, |x| x + 1);
            format!("packets {first}–{last}")
        };
        ui.horizontal(|ui| {
            ui.label(format!(
                "{shown} of {} packets · {}, read from it as you scroll",
                p.total,
                source.describe()
            ));
        });
        if p.scan_filter.is_some() {
            let text = if p.scanned < p.total {
                format!(
                    "filtering the whole capture: {} matches in the first {} of {} packets…",
                    p.matches.len(),
                    p.scanned,
                    p.total
                )
            } else {
                format!(
                    "{} of {} packets match the filter (the whole capture)",
                    p.matches.len(),
                    p.total
                )
            };
            ui.label(text);
        }
        if let Some(e) = &p.error {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("Could not read the capture: {e}"),
            );
        }
        ui.horizontal(|ui| {
            if ui
                .button("Jump to start")
                .on_hover_text("The capture's first packet")
                .clicked()
            {
                self.paged.jump = Some(Jump::Start);
            }
            if ui
                .button("Jump to end")
                .on_hover_text("The capture's last packet")
                .clicked()
            {
                self.paged.jump = Some(Jump::End);
            }
            let entries = || {
                self.paged
                    .page_seq
                    .iter()
                    .filter_map(|&s| self.paged.page.get(s))
            };
            if ui
                .button("Export JSONL")
                .on_hover_text("The packets loaded around the rows on screen")
                .clicked()
            {
                *action = Some(TimelineAction::ExportJsonl(to_jsonl(entries())));
            }
            if ui
                .button("Export SVG")
                .on_hover_text("The packets loaded around the rows on screen")
                .clicked()
            {
                *action = Some(TimelineAction::ExportSvg(to_svg(
                    &self.paged.page,
                    entries(),
                )));
            }
            self.filter_widgets_ui(ui);
        });
    }

    /// Loads the records of `rows` (plus a margin) unless already loaded.
    fn load_page(&mut self, source: &Offline, rows: std::ops::Range<usize>) {
        let positions: Vec<usize> = rows.clone().filter_map(|r| self.paged_pos(r)).collect();
        let (Some(&first), Some(&last)) = (positions.first(), positions.last()) else {
            return;
        };
        let p = &mut self.paged;
        let loaded = |x: &usize| p.page_pos.binary_search(x).is_ok();
        if positions.iter().all(loaded) {
            return;
        }
        let mut log = PacketLog::new(PAGE_MAX * 2);
        let mut pos = Vec::new();
        let mut seqs = Vec::new();
        let result = if last - first < PAGE_MAX {
            let start = first.saturating_sub(PAGE_MARGIN);
            let end = (last + 1 + PAGE_MARGIN).min(p.total);
            // The other packets of the page's flows, wherever they are in
            // the capture: a PUBLISH and its PUBACK pages apart are linked.
            let mut before = Vec::new();
            let mut after = Vec::new();
            if let Some(index) = source.flow_index() {
                for x in start..end {
                    for &y in index.flow_packets(x).iter().take(MAX_PARTNERS) {
                        let y = y as usize;
                        if y < start {
                            before.push(y);
                        } else if y >= end {
                            after.push(y);
                        }
                    }
                    if before.len() + after.len() > PAGE_MAX {
                        break;
                    }
                }
            }
            before.sort_unstable();
            before.dedup();
            after.sort_unstable();
            after.dedup();
            let mut read = |range: std::ops::Range<usize>| {
                let at = range.start;
                source.packets(range).map(|records| {
                    for (k, r) in records.into_iter().enumerate() {
                        seqs.push(push_seq(&mut log, r));
                        pos.push(at + k);
                    }
                })
            };
            before
                .iter()
                .try_for_each(|&x| read(x..x + 1))
                .and_then(|()| read(start..end))
                .and_then(|()| after.iter().try_for_each(|&x| read(x..x + 1)))
        } else {
            positions.iter().try_for_each(|&x| {
                source.packets(x..x + 1).map(|records| {
                    for r in records {
                        seqs.push(push_seq(&mut log, r));
                        pos.push(x);
                    }
                })
            })
        };
        match result {
            Ok(()) => {
                p.page = log;
                p.page_pos = pos;
                p.page_seq = seqs;
                p.error = None;
            }
            Err(e) => p.error = Some(e),
        }
    }

    fn offline_diagram_ui(&mut self, ui: &mut egui::Ui, source: &Offline) {
        self.lane_titles_ui(ui);
        let rows = self.paged_rows();
        let row_step = ROW_H + ui.spacing().item_spacing.y;
        let mut scroll = egui::ScrollArea::vertical()
            .id_salt("mqscope_timeline_pages")
            .auto_shrink(false);
        match self.paged.jump.take() {
            Some(Jump::Start) => scroll = scroll.vertical_scroll_offset(0.0),
            Some(Jump::To(pos)) => {
                let row = if self.paged.scan_filter.is_some() {
                    self.paged.matches.binary_search(&pos).unwrap_or_else(|i| i)
                } else {
                    pos
                };
                let offset = row as f32 * row_step - ui.available_height() / 2.0;
                scroll = scroll.vertical_scroll_offset(offset.max(0.0));
            }
            Some(Jump::End) => {
                // The exact bottom: show_rows overflows on f32::MAX.
                let content = rows as f32 * row_step;
                scroll = scroll.vertical_scroll_offset((content - ui.available_height()).max(0.0));
            }
            None => {}
        }
        let origin = self.paged.origin.unwrap_or(0);
        let output = scroll.show_rows(ui, ROW_H, rows, |ui, range| {
            self.paged.visible = range.clone();
            self.load_page(source, range.clone());
            let page = std::mem::take(&mut self.paged.page);
            let mut clicked = None;
            for row in range {
                let seq = self.paged_pos(row).and_then(|x| {
                    let i = self.paged.page_pos.binary_search(&x).ok()?;
                    self.paged.page_seq.get(i).copied()
                });
                match seq {
                    Some(seq) => {
                        if let Some(seq) = self.row_ui(ui, &page, seq, origin) {
                            clicked = Some(seq);
                        }
                    }
                    None => {
                        ui.allocate_exact_size(vec2(ui.available_width(), ROW_H), Sense::hover());
                    }
                }
            }
            self.paged.page = page;
            clicked
        });
        if rows == 0 {
            self.paged.visible = 0..0;
        }
        if let Some(seq) = output.inner {
            let pos = self
                .paged
                .page_seq
                .iter()
                .position(|&s| s == seq)
                .and_then(|i| self.paged.page_pos.get(i).copied());
            self.paged.selected_pos = if self.paged.selected_pos == pos {
                None
            } else {
                pos
            };
            self.selected = self.paged_seq_of(self.paged.selected_pos);
        }
    }

    /// "Client" and "Broker" above the lanes drawn in the rows below.
    fn lane_titles_ui(&self, ui: &mut egui::Ui) {
        let (title_rect, _) =
            ui.allocate_exact_size(vec2(ui.available_width(), 18.0), Sense::hover());
        let (client_x, broker_x) = lanes(title_rect);
        ui.place(
            egui::Rect::from_center_size(pos2(client_x, title_rect.center().y), vec2(80.0, 18.0)),
            Label::new(RichText::new("Client").strong()),
        );
        ui.place(
            egui::Rect::from_center_size(pos2(broker_x, title_rect.center().y), vec2(80.0, 18.0)),
            Label::new(RichText::new("Broker").strong()),
        );
    }

    fn header_ui(
        &mut self,
        ui: &mut egui::Ui,
        log: &PacketLog,
        action: &mut Option<TimelineAction>,
    ) {
        ui.horizontal(|ui| {
            ui.label(format!(
                "showing {} packets · {} older packets dropped (limit {})",
                self.rows.len(),
                log.dropped(),
                log.capacity()
            ));
            if !self.follow_live {
                let new = log.pushed().saturating_sub(self.rows_pushed);
                if new > 0 {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("paused · {new} new packets not shown"),
                    );
                }
            }
        });
        ui.horizontal(|ui| {
            let limit = ui.label("Limit");
            let drag = ui
                .add(
                    egui::DragValue::new(&mut self.capacity_edit)
                        .range(CAPACITY_RANGE)
                        .speed(100.0)
                        .suffix(" packets"),
                )
                .labelled_by(limit.id)
                .on_hover_text(
                    "How many packets the timeline keeps; older ones are dropped and counted.",
                );
            // Apply when a drag ends or a typed value is committed: dropping
            // packets cannot be undone, so not on every step of a drag.
            if (drag.drag_stopped() || (drag.changed() && !drag.dragged()))
                && self.capacity_edit != log.capacity()
            {
                *action = Some(TimelineAction::SetCapacity(self.capacity_edit));
            }
            if ui
                .button("Clear")
                .on_hover_text("Forget every packet shown")
                .clicked()
            {
                self.selected = None;
                *action = Some(TimelineAction::Clear);
            }
            if ui.button("Export JSONL").clicked() {
                *action = Some(TimelineAction::ExportJsonl(self.export_jsonl(log)));
            }
            if ui.button("Export SVG").clicked() {
                *action = Some(TimelineAction::ExportSvg(self.export_svg(log)));
            }
        });
    }

    fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        log: &PacketLog,
        _action: &mut Option<TimelineAction>,
    ) {
        ui.horizontal(|ui| {
            if ui.checkbox(&mut self.follow_live, "Follow live").changed() && self.follow_live {
                self.jump_to_bottom = true;
                // Show what arrived while paused.
                self.rows_key = None;
                self.refresh_rows(log);
            }
            self.filter_widgets_ui(ui);
            if let Some(flow) = self.filter.flow
                && ui.button(format!("only flow #{flow} · show all")).clicked()
            {
                self.filter.flow = None;
            }
        });
    }

    /// The kind menu and the topic field.
    fn filter_widgets_ui(&mut self, ui: &mut egui::Ui) {
        let shown_kinds = ALL_KINDS
            .iter()
            .filter(|&&k| self.filter.kinds.contains(k))
            .count();
        let kinds_title = if shown_kinds == ALL_KINDS.len() {
            "Kinds: all".to_string()
        } else {
            format!("Kinds: {shown_kinds}/{}", ALL_KINDS.len())
        };
        ui.menu_button(kinds_title, |ui| {
            ui.horizontal(|ui| {
                if ui.button("All").clicked() {
                    self.filter.kinds = KindSet::all();
                }
                if ui.button("None").clicked() {
                    self.filter.kinds = KindSet::none();
                }
            });
            for kind in ALL_KINDS {
                let mut on = self.filter.kinds.contains(kind);
                if ui.checkbox(&mut on, kind.name()).changed() {
                    self.filter.kinds.set(kind, on);
                }
            }
        });
        ui.add(
            TextEdit::singleline(&mut self.filter.topic)
                .hint_text("filter by topic")
                .desired_width(160.0),
        )
        .widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Filter packets by topic")
        });
    }

    fn diagram_ui(&mut self, ui: &mut egui::Ui, log: &PacketLog) {
        self.lane_titles_ui(ui);

        let mut scroll = egui::ScrollArea::vertical()
            .auto_shrink(false)
            .stick_to_bottom(self.follow_live);
        if self.follow_live && self.jump_to_bottom {
            // The exact bottom: show_rows overflows on an offset like f32::MAX.
            let row_step = ROW_H + ui.spacing().item_spacing.y;
            let content = self.rows.len() as f32 * row_step;
            scroll = scroll.vertical_scroll_offset((content - ui.available_height()).max(0.0));
            self.jump_to_bottom = false;
        }
        if let Some(seq) = self.reveal.take() {
            // The row on top, or as near the top as the list allows.
            if let Some(i) = self.rows.iter().position(|&s| s == seq) {
                let row_step = ROW_H + ui.spacing().item_spacing.y;
                scroll = scroll.vertical_scroll_offset(i as f32 * row_step);
            }
        }
        let origin = log.origin_us();
        let rows = std::mem::take(&mut self.rows);
        let output = scroll.show_rows(ui, ROW_H, rows.len(), |ui, range| {
            let mut clicked = None;
            for &seq in rows.get(range).unwrap_or_default() {
                if let Some(seq) = self.row_ui(ui, log, seq, origin) {
                    clicked = Some(seq);
                }
            }
            clicked
        });
        self.rows = rows;
        if let Some(seq) = output.inner {
            self.selected = if self.selected == Some(seq) {
                None
            } else {
                Some(seq)
            };
        }
        // Scrolling up while following pauses, so the rows stay put to read.
        let at_bottom = output.state.clamped_offset().y + output.inner_rect.height()
            >= output.content_size.y - ROW_H;
        let user_scrolled = ui.input(|i| i.smooth_scroll_delta.y > 0.0)
            && ui.rect_contains_pointer(output.inner_rect);
        if self.follow_live && user_scrolled && !at_bottom {
            self.follow_live = false;
        }
    }

    /// Draws one packet row; returns its sequence number when clicked.
    fn row_ui(&self, ui: &mut egui::Ui, log: &PacketLog, seq: Seq, origin: u64) -> Option<Seq> {
        let (rect, response) =
            ui.allocate_exact_size(vec2(ui.available_width(), ROW_H), Sense::click());
        let (client_x, broker_x) = lanes(rect);
        let painter = ui.painter();
        let lane_stroke = Stroke::new(1.0, ui.visuals().weak_text_color());
        let lane_span = [rect.top() - ui.spacing().item_spacing.y, rect.bottom()];
        for x in [client_x, broker_x] {
            painter.line_segment([pos2(x, lane_span[0]), pos2(x, lane_span[1])], lane_stroke);
        }
        let Some(entry) = log.get(seq) else {
            // Paused and since dropped from the log.
            painter.text(
                pos2((client_x + broker_x) / 2.0, rect.center().y),
                Align2::CENTER_CENTER,
                "(dropped)",
                FontId::proportional(11.0),
                ui.visuals().weak_text_color(),
            );
            return None;
        };
        let flow = log.flow(entry.flow);
        let selected_flow = self
            .selected
            .and_then(|s| log.get(s))
            .is_some_and(|sel| sel.flow == entry.flow);
        if self.selected == Some(seq) {
            painter.rect_filled(
                rect,
                2.0,
                ui.visuals().selection.bg_fill.gamma_multiply(0.6),
            );
        } else if selected_flow {
            painter.rect_filled(
                rect,
                2.0,
                ui.visuals().selection.bg_fill.gamma_multiply(0.25),
            );
        } else if response.hovered() {
            painter.rect_filled(rect, 2.0, ui.visuals().widgets.hovered.weak_bg_fill);
        }

        let r = &entry.record;
        let incomplete = flow.is_some_and(Flow::is_failed);
        let [red, green, blue] = flow_rgb(flow, entry.flow);
        let colour = Color32::from_rgb(red, green, blue);
        painter.text(
            pos2(rect.left() + TIME_W - 6.0, rect.center().y),
            Align2::RIGHT_CENTER,
            format_relative(r.t_us.saturating_sub(origin)),
            FontId::monospace(11.0),
            ui.visuals().weak_text_color(),
        );

        let y = rect.top() + ROW_H - 7.0;
        let (from, to) = match r.dir {
            Direction::Out => (client_x, broker_x),
            Direction::In => (broker_x, client_x),
        };
        let stroke = Stroke::new(if incomplete { 1.5 } else { 2.0 }, colour);
        let head = if to > from { -9.0 } else { 9.0 };
        if incomplete {
            painter.extend(Shape::dashed_line(
                &[pos2(from, y), pos2(to + head, y)],
                stroke,
                6.0,
                4.0,
            ));
        } else {
            painter.line_segment([pos2(from, y), pos2(to + head, y)], stroke);
        }
        painter.add(Shape::convex_polygon(
            vec![
                pos2(to, y),
                pos2(to + head, y - 4.5),
                pos2(to + head, y + 4.5),
            ],
            colour,
            Stroke::NONE,
        ));

        let label_rect = egui::Rect::from_x_y_ranges(
            (client_x + 8.0)..=(broker_x - 8.0),
            rect.top()..=(y - 3.0),
        );
        let label = ui.place(
            label_rect,
            Label::new(RichText::new(row_text(r)).color(colour).size(12.0))
                .selectable(false)
                .truncate()
                .sense(Sense::click()),
        );
        (response.clicked() || label.clicked()).then_some(seq)
    }

    /// The fields and flow of the selected packet. `paged_positions` maps
    /// a page's numbers to capture positions (an opened capture, whose
    /// flows were linked over the whole capture when `linked_whole`).
    fn detail_ui(
        &mut self,
        ui: &mut egui::Ui,
        log: &PacketLog,
        origin: u64,
        flow_filter: bool,
        paged_positions: Option<&dyn Fn(Seq) -> Option<usize>>,
        linked_whole: bool,
    ) {
        let Some(entry) = self.selected.and_then(|s| log.get(s)) else {
            ui.label("The selected packet is no longer in the log.");
            if ui.button("Close").clicked() {
                self.selected = None;
            }
            return;
        };
        let r = &entry.record;
        ui.horizontal(|ui| {
            ui.heading(r.kind.name());
            if ui.button("Close").clicked() {
                self.selected = None;
            }
        });
        egui::ScrollArea::vertical()
            .id_salt("timeline_detail_scroll")
            .show(ui, |ui| {
                egui::Grid::new("timeline_detail_fields")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for (name, value) in record_fields(r, origin) {
                            ui.label(name);
                            ui.label(value);
                            ui.end_row();
                        }
                    });
                let Some(flow) = log.flow(entry.flow) else {
                    return;
                };
                ui.separator();
                ui.strong(format!("Flow #{} · {}", flow.id, flow.kind.label()));
                let state = match flow.state {
                    FlowState::Complete => "complete".to_string(),
                    FlowState::Waiting(k) => format!("waiting for {}", k.name()),
                    FlowState::Incomplete { missing } => {
                        format!(
                            "not completed: the connection dropped before {}",
                            missing.name()
                        )
                    }
                    FlowState::Refused { kind, reason } => format!(
                        "refused: {} {}",
                        kind.name(),
                        crate::model::protocol::reason_text(reason, kind.reason_context())
                    ),
                };
                if flow.is_failed() {
                    ui.colored_label(ui.visuals().error_fg_color, state);
                } else {
                    ui.label(state);
                }
                let start = flow.started_us().unwrap_or(0);
                for step in &flow.steps {
                    let arrow = match step.dir {
                        Direction::Out => "->",
                        Direction::In => "<-",
                    };
                    let text = format!(
                        "+{}  {arrow} {}  {} B",
                        format_relative(step.t_us.saturating_sub(start)),
                        step.kind.name(),
                        step.bytes
                    );
                    match paged_positions.and_then(|f| f(step.seq)) {
                        // A capture: each step can be gone to, wherever it is.
                        Some(pos) if step.seq != entry.seq => {
                            if ui
                                .button(format!("{text} · packet {}", pos + 1))
                                .on_hover_text("Go to this packet of the flow")
                                .clicked()
                            {
                                self.paged.goto = Some(step.seq);
                            }
                        }
                        Some(pos) => {
                            ui.label(format!("{text} · packet {} (this one)", pos + 1));
                        }
                        None => {
                            ui.label(text);
                        }
                    }
                }
                let stats = flow.stats();
                ui.label(format!("{} packets · {} B", stats.packets, stats.bytes));
                if let Some(latency) = stats.latency_us {
                    ui.label(format!("round trip {}", format_relative(latency)));
                }
                if !flow_filter {
                    ui.weak(if linked_whole {
                        "Linked over the whole capture."
                    } else {
                        "Linked within the packets loaded around the rows shown (the capture is still loading)."
                    });
                } else if self.filter.flow == Some(flow.id) {
                    if ui.button("Show all flows").clicked() {
                        self.filter.flow = None;
                    }
                } else if ui.button("Only this flow").clicked() {
                    self.filter.flow = Some(flow.id);
                }
            });
    }
}

/// Adds `r` to `log`; returns the sequence number it has there.
fn push_seq(log: &mut PacketLog, mut r: PacketRecord) -> Seq {
    // Numbered in the order loaded: the log finds records by consecutive
    // numbers, and a sparse page (a filter's rows) has gaps.
    r.seq = log.pushed();
    log.push(r);
    log.entries().next_back().map_or(0, |e| e.seq)
}

/// x of the client and broker lanes within a row of the diagram.
fn lanes(rect: egui::Rect) -> (f32, f32) {
    let client_x = rect.left() + TIME_W + 30.0;
    let broker_x = (rect.right() - LANE_MARGIN).max(client_x + 120.0);
    (client_x, broker_x)
}

/// The arrow's label: `PUBLISH id=1 qos=2 14 B · a/b`.
fn row_text(r: &PacketRecord) -> String {
    let mut text = packet_label(r);
    if let Some(topic) = &r.detail.topic {
        text.push_str(" · ");
        text.push_str(topic);
    } else if let Some((filter, _)) = r.detail.filters.first() {
        text.push_str(" · ");
        text.push_str(filter);
        if r.detail.filters.len() > 1 {
            text.push_str(&format!(" +{}", r.detail.filters.len() - 1));
        }
    }
    if r.detail.topic_from_alias == Some(true) {
        text.push_str(" (from alias)");
    }
    // MQTT 5: the reason code when it is not plain success, and a compact
    // line of the properties (the whole set is in the detail pane).
    match (&r.detail.reason_text, r.detail.reason, r.detail.failure()) {
        (Some(words), Some(code), _) if code != 0 => text.push_str(&format!(" · {words}")),
        (_, _, Some(code)) => text.push_str(&format!(" · refused 0x{code:02X}")),
        _ => {}
    }
    if let Some(props) = &r.detail.props {
        let summary = props.summary();
        if !summary.is_empty() {
            text.push_str(&format!(" · {summary}"));
        }
    }
    text
}

/// Every field the record carries, as (name, value) for the detail pane.
fn record_fields(r: &PacketRecord, origin: u64) -> Vec<(&'static str, String)> {
    let d = &r.detail;
    let mut f: Vec<(&'static str, String)> = vec![
        ("time", format_relative(r.t_us.saturating_sub(origin))),
        ("t_us", r.t_us.to_string()),
        (
            "direction",
            match r.dir {
                Direction::Out => "client to broker".into(),
                Direction::In => "broker to client".into(),
            },
        ),
        ("bytes", r.bytes.to_string()),
    ];
    let mut opt = |name: &'static str, value: Option<String>| {
        if let Some(v) = value {
            f.push((name, v));
        }
    };
    opt("packet id", r.pkid.map(|p| p.to_string()));
    opt("QoS", r.qos.map(|q| q.to_string()));
    opt("topic", d.topic.clone());
    opt("retain", d.retain.map(|b| b.to_string()));
    opt("dup", d.dup.map(|b| b.to_string()));
    opt("payload bytes", d.payload_bytes.map(|b| b.to_string()));
    opt("client id", d.client_id.clone());
    opt("clean session", d.clean_session.map(|b| b.to_string()));
    opt("keep alive", d.keep_alive.map(|k| format!("{k} s")));
    opt("will topic", d.will_topic.clone());
    opt(
        "username",
        d.username
            .map(|b| if b { "set" } else { "none" }.to_string()),
    );
    opt("session present", d.session_present.map(|b| b.to_string()));
    opt("return code", d.return_code.clone());
    if !d.filters.is_empty() {
        let list: Vec<String> = d
            .filters
            .iter()
            .map(|(t, q)| format!("{t} (QoS {q})"))
            .collect();
        opt("filters", Some(list.join(", ")));
    }
    if !d.granted.is_empty() {
        let list: Vec<String> = d
            .granted
            .iter()
            .map(|&g| {
                if g >= 0x80 {
                    format!(
                        "refused: {}",
                        crate::model::protocol::reason_text(
                            g,
                            crate::model::protocol::ReasonContext::Suback
                        )
                    )
                } else {
                    format!("QoS {g}")
                }
            })
            .collect();
        opt("granted", Some(list.join(", ")));
    }
    if !d.reasons.is_empty() {
        let list: Vec<String> = d
            .reasons
            .iter()
            .map(|&c| {
                crate::model::protocol::reason_text(
                    c,
                    crate::model::protocol::ReasonContext::Unsuback,
                )
            })
            .collect();
        opt("reason codes", Some(list.join(", ")));
    }
    opt("protocol", d.protocol.map(|p| p.label().to_string()));
    opt("reason code", d.reason_text.clone());
    opt(
        "topic",
        (d.topic_from_alias == Some(true)).then(|| "resolved from a topic alias".to_string()),
    );
    if let Some(props) = &d.props {
        for (name, value) in props.rows() {
            f.push((name, value));
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::packet::{PacketDetail, PacketKind, publish_wire_size};
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    fn rec(
        t_us: u64,
        dir: Direction,
        kind: PacketKind,
        pkid: Option<u16>,
        bytes: usize,
    ) -> PacketRecord {
        PacketRecord::new(t_us, dir, kind, pkid, bytes)
    }

    /// Our QoS 2 publish of "hello" to a/b, as the worker records it.
    fn qos2_log() -> PacketLog {
        let mut log = PacketLog::default();
        log.push(PacketRecord {
            qos: Some(2),
            detail: PacketDetail {
                topic: Some("a/b".into()),
                retain: Some(false),
                dup: Some(false),
                payload_bytes: Some(5),
                ..PacketDetail::default()
            },
            ..rec(
                1_000,
                Direction::Out,
                PacketKind::Publish,
                Some(1),
                publish_wire_size(3, 2, 5),
            )
        });
        log.push(rec(1_850, Direction::In, PacketKind::Pubrec, Some(1), 4));
        log.push(rec(1_900, Direction::Out, PacketKind::Pubrel, Some(1), 4));
        log.push(rec(2_700, Direction::In, PacketKind::Pubcomp, Some(1), 4));
        log
    }

    #[test]
    fn qos2_exchange_shows_its_four_labelled_arrows() {
        let log = qos2_log();
        let mut view = TimelineView::new();
        let mut harness = Harness::builder()
            .with_size(vec2(720.0, 360.0))
            .build_ui(|ui| {
                view.ui(ui, &log);
            });
        harness.run();
        harness.get_by_label("PUBLISH id=1 qos=2 14 B · a/b");
        harness.get_by_label("PUBREC id=1 4 B");
        harness.get_by_label("PUBREL id=1 4 B");
        harness.get_by_label("PUBCOMP id=1 4 B");
        harness.get_by_label("showing 4 packets · 0 older packets dropped (limit 10000)");
    }

    #[test]
    fn clicking_a_packet_shows_its_flow_and_can_filter_to_it() {
        let mut log = qos2_log();
        log.push(rec(3_000, Direction::Out, PacketKind::Pingreq, None, 2));
        let mut harness = Harness::builder()
            .with_size(vec2(900.0, 400.0))
            .build_ui_state(
                |ui, view: &mut TimelineView| {
                    view.ui(ui, &log);
                },
                TimelineView::new(),
            );
        harness.run();
        harness.get_by_label("PUBREC id=1 4 B").click();
        harness.run();
        assert_eq!(harness.state().selected, Some(1));
        harness.get_by_label_contains("Flow #0");
        harness.get_by_label("complete");
        harness.get_by_label("Only this flow").click();
        harness.run();
        assert_eq!(harness.state().shown(), &[0, 1, 2, 3]);
        assert!(harness.query_by_label("PINGREQ 2 B").is_none());
        harness.get_by_label("Show all flows").click();
        harness.run();
        harness.get_by_label("PINGREQ 2 B");
    }

    #[test]
    fn export_buttons_return_the_packets_shown() {
        let log = qos2_log();
        let mut harness = Harness::builder()
            .with_size(vec2(900.0, 400.0))
            .build_ui_state(
                |ui, state: &mut (TimelineView, Vec<TimelineAction>)| {
                    if let Some(action) = state.0.ui(ui, &log) {
                        state.1.push(action);
                    }
                },
                (TimelineView::new(), Vec::new()),
            );
        harness.run();
        harness.get_by_label("Export JSONL").click();
        harness.run();
        harness.get_by_label("Export SVG").click();
        harness.run();
        let actions = &harness.state().1;
        assert_eq!(actions.len(), 2);
        let TimelineAction::ExportJsonl(jsonl) = &actions[0] else {
            panic!("expected JSONL, got {:?}", actions[0]);
        };
        assert_eq!(jsonl.lines().count(), 4);
        let TimelineAction::ExportSvg(svg) = &actions[1] else {
            panic!("expected SVG, got {:?}", actions[1]);
        };
        assert_eq!(svg.matches("class=\"arrow\"").count(), 4);
    }

    #[test]
    fn paused_view_keeps_its_rows_and_counts_new_packets() {
        let mut log = qos2_log();
        let mut view = TimelineView::new();
        view.follow_live = false;
        {
            let mut harness = Harness::new_ui(|ui| {
                view.ui(ui, &log);
            });
            harness.run();
        }
        log.push(rec(5_000, Direction::Out, PacketKind::Pingreq, None, 2));
        let mut harness = Harness::new_ui(|ui| {
            view.ui(ui, &log);
        });
        harness.run();
        harness.get_by_label("paused · 1 new packets not shown");
        assert!(harness.query_by_label("PINGREQ 2 B").is_none());
        drop(harness);
        assert_eq!(view.shown().len(), 4);
        view.follow_live = true;
        let mut harness = Harness::new_ui(|ui| {
            view.ui(ui, &log);
        });
        harness.run();
        harness.get_by_label("PINGREQ 2 B");
    }

    #[test]
    fn large_log_lays_out_only_visible_rows_and_follows_the_newest() {
        let mut log = PacketLog::default();
        for i in 0..20_000u64 {
            let topic = format!("t/{i}");
            log.push(PacketRecord {
                qos: Some(0),
                detail: PacketDetail {
                    topic: Some(topic.clone()),
                    ..PacketDetail::default()
                },
                ..rec(
                    i * 10,
                    Direction::In,
                    PacketKind::Publish,
                    None,
                    publish_wire_size(topic.len(), 0, 1),
                )
            });
        }
        let mut view = TimelineView::new();
        let mut harness = Harness::builder()
            .with_size(vec2(720.0, 400.0))
            .build_ui(|ui| {
                view.ui(ui, &log);
            });
        harness.run();
        harness.get_by_label("showing 10000 packets · 10000 older packets dropped (limit 10000)");
        let laid_out = harness.query_all_by_label_contains("PUBLISH qos=0").count();
        assert!(laid_out > 0 && laid_out < 40, "{laid_out} rows laid out");
        // Following live: the newest packet is on screen, the oldest kept is not.
        harness.get_by_label_contains("· t/19999");
        assert!(harness.query_by_label_contains("· t/10000").is_none());
    }

    #[test]
    fn timeline_qos2_snapshot() {
        let mut log = qos2_log();
        // A delivery to us that the connection drop left unfinished: red, dashed.
        log.push(PacketRecord {
            qos: Some(1),
            detail: PacketDetail {
                topic: Some("sensors/t".into()),
                retain: Some(false),
                dup: Some(false),
                payload_bytes: Some(4),
                ..PacketDetail::default()
            },
            ..rec(
                3_400,
                Direction::In,
                PacketKind::Publish,
                Some(9),
                publish_wire_size(9, 1, 4),
            )
        });
        log.push(rec(3_600, Direction::Out, PacketKind::Pingreq, None, 2));
        log.connection_dropped();
        let mut view = TimelineView::new();
        let mut harness = Harness::builder()
            .with_size(vec2(720.0, 320.0))
            .build_ui(|ui| {
                view.ui(ui, &log);
            });
        harness.run();
        harness.snapshot("timeline_qos2");
    }

    #[test]
    fn timeline_refused_v5_publish_snapshot() {
        let mut log = PacketLog::default();
        let publish = |pkid: u16, topic: &str| {
            let mut r = rec(
                100 * u64::from(pkid),
                Direction::Out,
                PacketKind::Publish,
                Some(pkid),
                21,
            );
            r.qos = Some(1);
            r.detail.topic = Some(topic.into());
            r.detail.props = crate::model::protocol::Properties {
                content_type: Some("text/plain".into()),
                user_property: vec![("unit".into(), "C".into())],
                ..crate::model::protocol::Properties::default()
            }
            .boxed();
            r
        };
        let ack = |pkid: u16, code: u8| {
            let mut r = rec(
                100 * u64::from(pkid) + 40,
                Direction::In,
                PacketKind::Puback,
                Some(pkid),
                5,
            );
            r.detail.set_reason(PacketKind::Puback, code);
            r
        };
        log.push(publish(1, "plant/ok"));
        log.push(ack(1, 0x10));
        log.push(publish(2, "secret/denied"));
        log.push(ack(2, 0x87));
        assert!(log.flows().any(|f| f.is_refused()));
        let mut view = TimelineView::new();
        let mut harness = Harness::builder()
            .with_size(vec2(760.0, 240.0))
            .build_ui(|ui| {
                view.ui(ui, &log);
            });
        harness.run();
        harness.get_by_label_contains("0x87 Not authorized");
        harness.get_by_label_contains("0x10 No matching subscribers");
        harness.snapshot("timeline_v5_refused");
    }
}
