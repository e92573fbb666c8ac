//! Live plots: numbers taken from incoming messages (the whole payload or a
//! JSON field of it) of chosen topics or topic filters, drawn over time.
//!
//! The app feeds every message of the selected connection to
//! [`Plots::on_message`] while it drains the worker; each matching topic
//! gets its own series (a filter such as `surfboards/+/speedmph` makes
//! one per board). Series are bounded rings with a visible dropped-points
//! counter, and drawing reduces each line to a minimum and a maximum per
//! pixel column of the visible range, so a million points stay smooth.
//!
//! "Surfing competition" sets up the book's chapter 6 view in one click:
//! every board's speed, altitude and status, from the sandbox's readings
//! (`surfboards/+/…`) or from the cloud broker's JSON summaries.

use crate::model::decode::{Format, SparkplugAliases, auto_format, decode_format, sparkplug};
use crate::model::payload::{extract_number, number_at, value_at};
use crate::model::topic::matches;
use crate::mqtt::Message;
use crate::profile::validate_topic_filter;
use crate::sandbox::book::surf::STATUS_NAMES;
use egui::{RichText, TextEdit};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

/// Points kept per series; older ones are dropped (and counted).
pub const MAX_POINTS_PER_SERIES: usize = 1_000_000;
/// Series over all specs: a filter matching thousands of topics must not
/// make thousands of lines (nor thousands of million-point rings).
pub const MAX_SERIES: usize = 64;
/// Payloads larger than this are not parsed for a value: numbers worth
/// plotting live in small messages, and parsing megabytes would stall the
/// drain.
const MAX_PAYLOAD: usize = 64 * 1024;

/// One line of the plot layout: what the user asked to plot. Saved per
/// profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesSpec {
    /// A topic name or a filter with `+` / `#`.
    pub filter: String,
    /// A JSON field path (`speed_kmh`, `a.b[0]`); `None`: the whole payload
    /// is the number.
    pub field: Option<String>,
    /// Text values of the field plotted as their position in this list
    /// (`"Riding"` → 2 for the book's surfboard statuses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
}

impl SeriesSpec {
    pub fn label(&self) -> String {
        match &self.field {
            Some(field) => format!("{} · {field}", self.filter),
            None => self.filter.clone(),
        }
    }

    /// What the levels mean, for a person: `0 Idle, 1 Paddling, …`.
    pub fn levels_text(&self) -> Option<String> {
        if self.levels.is_empty() {
            return None;
        }
        let spelled: Vec<String> = self
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{i} {l}"))
            .collect();
        Some(spelled.join(", "))
    }
}

/// The values of one topic for one spec.
pub struct Series {
    /// Index into the specs.
    pub spec: usize,
    pub topic: String,
    /// `[seconds since the plot's origin, value]`, sorted by time.
    points: Ring,
}

impl Series {
    pub fn len(&self) -> usize {
        self.points.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.points.is_empty()
    }

    /// The newest value.
    pub fn last(&self) -> Option<[f64; 2]> {
        self.points.points.back().copied()
    }

    /// Oldest points dropped to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.points.dropped as u64
    }
}

/// The x range drawn in the last frame, when the user chose it (zoom, drag).
#[derive(Clone, Copy, Debug)]
struct View {
    x: (f64, f64),
}

/// The plots of the selected connection: layout, collected values, and the
/// view's state.
pub struct Plots {
    specs: Vec<SeriesSpec>,
    /// Sorted by (spec, topic) so the legend keeps its order.
    series: Vec<Series>,
    /// Per spec: topic → index into `series`.
    lookup: Vec<HashMap<String, usize>>,
    capacity: usize,
    /// Time zero of the x axis: the first value collected.
    origin: Option<SystemTime>,
    /// Topics that matched but got no series (over [`MAX_SERIES`]).
    unplotted: u64,
    /// Set while paused: the x up to which the view shows data.
    paused_at: Option<f64>,
    /// The x range the user zoomed or dragged to; `None` while the plot
    /// fits the data itself.
    view: Option<View>,
    /// Set by "Fit": forget the user's zoom on the next frame.
    fit: bool,
    form_filter: String,
    form_field: String,
    form_error: Option<String>,
    /// Sparkplug births seen, so data messages sent by alias can be
    /// plotted by metric name (`metrics[name=Temperature].value`).
    aliases: SparkplugAliases,
    /// Surfboard traffic seen on this connection, so "Surfing
    /// competition" plots what is there.
    surf_seen: SurfSeen,
    /// An export asked for by the buttons, for the window to carry out.
    export: Option<PlotExport>,
    /// Where the plot was drawn in the last frame (points), for the PNG.
    plot_rect: Option<egui::Rect>,
}

/// The plot's exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotExport {
    /// Every point of every series: time, series, topic, value.
    Csv,
    /// The plot as drawn, legend included.
    Png,
}

/// Which form of the book's surfboard data a connection carries.
#[derive(Clone, Copy, Debug, Default)]
struct SurfSeen {
    /// `surfboards/<board>/<reading>` plain numbers (the sandbox).
    readings: bool,
    /// `surfboardNN` JSON summaries (the cloud broker).
    summaries: bool,
}

/// The series of the "Surfing competition" view from the boards' own
/// readings (the sandbox, the book's Mosquitto).
pub fn surfing_readings_specs() -> Vec<SeriesSpec> {
    ["speedmph", "altitudefeet", "status"]
        .into_iter()
        .map(|reading| SeriesSpec {
            filter: format!("surfboards/+/{reading}"),
            // The status is already a number; the levels say what it means.
            levels: if reading == "status" {
                status_levels()
            } else {
                Vec::new()
            },
            ..SeriesSpec::default()
        })
        .collect()
}

fn status_levels() -> Vec<String> {
    STATUS_NAMES.iter().map(|s| s.to_string()).collect()
}

/// The series of the "Surfing competition" view from the monitor's JSON
/// summaries (the cloud broker: one topic per board).
pub fn surfing_summary_specs() -> Vec<SeriesSpec> {
    let field = |f: &str| SeriesSpec {
        filter: "+".into(),
        field: Some(f.into()),
        ..SeriesSpec::default()
    };
    vec![
        field("Speed MPH"),
        field("Altitude Feet"),
        SeriesSpec {
            levels: status_levels(),
            ..field("Status")
        },
    ]
}

/// Largest Sparkplug birth learnt (births list every metric, so they are
/// larger than the data messages plotted).
const MAX_BIRTH: usize = 1 << 20;

impl Default for Plots {
    fn default() -> Self {
        Plots::with_capacity(MAX_POINTS_PER_SERIES)
    }
}

/// What the plot tab knows about the topic selected in the tree, for the
/// field picker.
pub struct SelectedTopic {
    pub topic: String,
    pub numeric_paths: Vec<String>,
}

impl Plots {
    /// Plots keeping at most `capacity` points per series.
    pub fn with_capacity(capacity: usize) -> Plots {
        Plots {
            specs: Vec::new(),
            series: Vec::new(),
            lookup: Vec::new(),
            capacity: capacity.max(1),
            origin: None,
            export: None,
            plot_rect: None,
            unplotted: 0,
            paused_at: None,
            view: None,
            fit: false,
            form_filter: String::new(),
            form_field: String::new(),
            form_error: None,
            aliases: SparkplugAliases::default(),
            surf_seen: SurfSeen::default(),
        }
    }

    pub fn specs(&self) -> &[SeriesSpec] {
        &self.specs
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Replaces the layout (another profile's); collected values are dropped.
    pub fn set_specs(&mut self, specs: Vec<SeriesSpec>) {
        self.lookup = vec![HashMap::new(); specs.len()];
        self.specs = specs;
        self.clear_data();
    }

    /// Adds a line to the layout; the filter must be valid and new.
    pub fn add_spec(&mut self, spec: SeriesSpec) -> Result<(), String> {
        validate_topic_filter(&spec.filter)?;
        if self.specs.contains(&spec) {
            return Err(format!("{} is already plotted", spec.label()));
        }
        self.specs.push(spec);
        self.lookup.push(HashMap::new());
        Ok(())
    }

    /// Removes spec `i` and its series.
    pub fn remove_spec(&mut self, i: usize) {
        if i >= self.specs.len() {
            return;
        }
        self.specs.remove(i);
        self.lookup.remove(i);
        self.series.retain(|s| s.spec != i);
        for s in &mut self.series {
            if s.spec > i {
                s.spec -= 1;
            }
        }
        self.rebuild_lookup();
    }

    /// Forgets the collected values, keeps the layout.
    pub fn clear_data(&mut self) {
        self.series.clear();
        for map in &mut self.lookup {
            map.clear();
        }
        self.origin = None;
        self.unplotted = 0;
        self.paused_at = None;
        self.view = None;
        self.fit = true;
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Points held over all series.
    pub fn point_count(&self) -> usize {
        self.series.iter().map(Series::len).sum()
    }

    /// Points dropped over all series to stay within the capacity.
    pub fn dropped_points(&self) -> u64 {
        self.series.iter().map(Series::dropped).sum()
    }

    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Freezes the view (values are still collected) or lets it follow again.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused_at = if paused {
            Some(
                self.series
                    .iter()
                    .filter_map(Series::last)
                    .map(|p| p[0])
                    .fold(0.0, f64::max),
            )
        } else {
            None
        };
    }

    /// Takes the values `msg` carries for the plotted specs. Payloads in a
    /// format that is safe to assume (Sparkplug B on its topics, MessagePack
    /// or CBOR by MQTT 5 content type) are decoded, and the field is looked
    /// up in the decoded tree.
    pub fn on_message(&mut self, msg: &Message) {
        let content_type = msg.props.as_ref().and_then(|p| p.content_type.as_deref());
        let format = auto_format(&msg.topic, content_type);
        if format == Some(Format::Sparkplug) && msg.payload.len() <= MAX_BIRTH {
            self.aliases.learn(&msg.topic, &msg.payload);
        }
        if msg.topic.starts_with("surfboards/") {
            self.surf_seen.readings = true;
        } else if msg.topic.starts_with("surfboard") && !msg.topic.contains('/') {
            self.surf_seen.summaries = true;
        }
        if self.specs.is_empty() || msg.payload.len() > MAX_PAYLOAD {
            return;
        }
        // Decoded once per message, when a spec with a field wants it.
        let mut tree: Option<Option<serde_json::Value>> = None;
        for spec_i in 0..self.specs.len() {
            let spec = &self.specs[spec_i];
            if !matches(&spec.filter, &msg.topic) {
                continue;
            }
            let value = match (format, spec.field.as_deref()) {
                (Some(format), Some(field)) => tree
                    .get_or_insert_with(|| {
                        match format {
                            Format::Sparkplug => {
                                sparkplug::decode_with(&msg.topic, &msg.payload, &self.aliases)
                            }
                            other => decode_format(
                                other,
                                &msg.topic,
                                &msg.payload,
                                &mut SparkplugAliases::default(),
                            ),
                        }
                        .ok()
                    })
                    .as_ref()
                    .and_then(|t| number_at(t, field)),
                _ => extract_number(&msg.payload, spec.field.as_deref()),
            };
            let value = match (value, spec.field.as_deref()) {
                (None, Some(field)) if !spec.levels.is_empty() => {
                    level_of(&spec.levels, &msg.payload, field)
                }
                (value, _) => value,
            };
            let Some(value) = value else {
                continue;
            };
            let index = match self.lookup[spec_i].get(msg.topic.as_str()) {
                Some(&i) => i,
                None => match self.new_series(spec_i, &msg.topic) {
                    Some(i) => i,
                    None => continue,
                },
            };
            let origin = *self.origin.get_or_insert(msg.received);
            let x = msg
                .received
                .duration_since(origin)
                .map_or(0.0, |d| d.as_secs_f64());
            let series = &mut self.series[index];
            // Kept sorted for the binary searches of the view: a clock that
            // steps back must not break them.
            let x = series.last().map_or(x, |last| x.max(last[0]));
            if series.len() >= self.capacity {
                series.points.pop_front();
            }
            series.points.push([x, value]);
        }
    }

    /// Adds the "Surfing competition" series for what this connection
    /// carries: the boards' readings, the cloud summaries, or both when
    /// nothing was seen yet. Returns how many series specs were added
    /// (those already plotted are kept).
    pub fn add_surfing_competition(&mut self) -> usize {
        let seen = self.surf_seen;
        let mut specs = Vec::new();
        if seen.readings || !seen.summaries {
            specs.extend(surfing_readings_specs());
        }
        if seen.summaries || !seen.readings {
            specs.extend(surfing_summary_specs());
        }
        let mut added = 0;
        for spec in specs {
            if self.add_spec(spec).is_ok() {
                added += 1;
            }
        }
        self.form_error = None;
        self.fit = true;
        added
    }

    fn new_series(&mut self, spec: usize, topic: &str) -> Option<usize> {
        if self.series.len() >= MAX_SERIES {
            self.unplotted += 1;
            return None;
        }
        let at = self
            .series
            .partition_point(|s| (s.spec, s.topic.as_str()) < (spec, topic));
        self.series.insert(
            at,
            Series {
                spec,
                topic: topic.to_string(),
                points: Ring::default(),
            },
        );
        self.rebuild_lookup();
        Some(at)
    }

    fn rebuild_lookup(&mut self) {
        for map in &mut self.lookup {
            map.clear();
        }
        for (i, s) in self.series.iter().enumerate() {
            if let Some(map) = self.lookup.get_mut(s.spec) {
                map.insert(s.topic.clone(), i);
            }
        }
    }

    /// The legend's name of series `s`: the topic, and the field if any.
    fn series_name(&self, s: &Series) -> String {
        match self
            .specs
            .get(s.spec)
            .and_then(|spec| spec.field.as_deref())
        {
            Some(field) => format!("{} · {field}", s.topic),
            None => s.topic.clone(),
        }
    }

    /// The Plots tab. Returns true when the layout changed (to be saved).
    pub fn ui(&mut self, ui: &mut egui::Ui, selected: Option<&SelectedTopic>) -> bool {
        let mut changed = false;
        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            ui.strong("Add a series");
            let label = ui.label("Topic");
            ui.add(
                TextEdit::singleline(&mut self.form_filter)
                    .hint_text("topic or filter, e.g. surfboards/+/speedmph")
                    .desired_width(300.0),
            )
            .labelled_by(label.id);
            let label = ui.label("Field");
            ui.add(
                TextEdit::singleline(&mut self.form_field)
                    .hint_text("JSON field, e.g. Speed MPH")
                    .desired_width(180.0),
            )
            .labelled_by(label.id);
            if ui.button("Add series").clicked() {
                changed |= self.add_from_form();
            }
            ui.separator();
            if ui
                .button("Surfing competition")
                .on_hover_text(
                    "Plot every surfboard's speed, altitude and status: from the boards' \
                     readings (surfboards/+/…) or from the cloud monitor's JSON summaries",
                )
                .clicked()
                && self.add_surfing_competition() > 0
            {
                changed = true;
            }
        });
        if let Some(selected) = selected {
            ui.horizontal_wrapped(|ui| {
                ui.weak("Selected topic:");
                ui.label(RichText::new(&selected.topic).monospace());
                if ui.button("Use this topic").clicked() {
                    self.form_filter = selected.topic.clone();
                    self.form_error = None;
                }
                if !selected.numeric_paths.is_empty() {
                    let mut field = None;
                    egui::ComboBox::from_label("Numeric fields")
                        .selected_text("choose…")
                        .show_ui(ui, |ui| {
                            for path in &selected.numeric_paths {
                                if ui.selectable_label(false, path).clicked() {
                                    field = Some(path.clone());
                                }
                            }
                        });
                    if let Some(field) = field {
                        self.form_field = field;
                    }
                }
            });
        }
        if let Some(error) = &self.form_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }

        let mut remove = None;
        for (i, spec) in self.specs.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.label(RichText::new(spec.label()).monospace());
                if let Some(levels) = spec.levels_text() {
                    ui.weak(format!("({levels})"));
                }
                let n = self.series.iter().filter(|s| s.spec == i).count();
                ui.weak(match n {
                    0 => "no values yet".to_string(),
                    1 => "1 topic".to_string(),
                    n => format!("{n} topics"),
                });
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this line from the plot")
                    .clicked()
                {
                    remove = Some(i);
                }
            });
        }
        if let Some(i) = remove {
            self.remove_spec(i);
            changed = true;
        }

        ui.horizontal(|ui| {
            let paused = self.is_paused();
            let text = if paused { "Resume" } else { "Pause" };
            if ui
                .selectable_label(paused, text)
                .on_hover_text("Freeze the view; values are still collected")
                .clicked()
            {
                self.set_paused(!paused);
            }
            if ui
                .button("Fit")
                .on_hover_text("Show all the data again after zooming or dragging")
                .clicked()
            {
                self.fit = true;
            }
            if ui.button("Clear").clicked() {
                self.clear_data();
            }
            ui.separator();
            if ui
                .button("Export CSV…")
                .on_hover_text("Every point of every series: time (UTC), series, topic, value")
                .clicked()
            {
                self.export = Some(PlotExport::Csv);
            }
            if ui
                .button("Export PNG…")
                .on_hover_text("The plot as it is drawn, legend included")
                .clicked()
            {
                self.export = Some(PlotExport::Png);
            }
            ui.separator();
            ui.label(format!(
                "{} series · {} points",
                self.series_count(),
                self.point_count()
            ));
            let dropped = self.dropped_points();
            if dropped > 0 {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{dropped} old points dropped"),
                )
                .on_hover_text(format!(
                    "Each series keeps its newest {} points",
                    self.capacity
                ));
            }
            if self.unplotted > 0 {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} values of further topics not plotted", self.unplotted),
                )
                .on_hover_text(format!("At most {MAX_SERIES} series are drawn"));
            }
            if paused {
                ui.weak("paused: zoom and drag to look around");
            }
        });
        ui.separator();

        if self.specs.is_empty() {
            ui.add_space(12.0);
            ui.vertical_centered(|ui| {
                ui.weak(
                    "Add a topic (or a filter with +) and optionally a JSON field to plot \
                     its values over time.",
                );
            });
            return changed;
        }
        self.plot_ui(ui);
        changed
    }

    fn add_from_form(&mut self) -> bool {
        let filter = self.form_filter.trim().to_string();
        let field = self.form_field.trim();
        let spec = SeriesSpec {
            filter,
            field: (!field.is_empty()).then(|| field.to_string()),
            ..SeriesSpec::default()
        };
        match self.add_spec(spec) {
            Ok(()) => {
                self.form_error = None;
                true
            }
            Err(e) => {
                self.form_error = Some(e);
                false
            }
        }
    }

    fn plot_ui(&mut self, ui: &mut egui::Ui) {
        // The plot with its axes and their labels (the PNG export's frame).
        self.plot_rect = Some(ui.available_rect_before_wrap());
        let columns = ui.available_width().max(1.0) as usize;
        let data_range = self.data_x_range();
        let range = match (self.view, self.fit) {
            (Some(view), false) => Some(view.x),
            _ => data_range,
        };
        let lines: Vec<(String, Vec<[f64; 2]>)> = match range {
            Some((x0, x1)) => self
                .series
                .iter()
                .map(|s| {
                    let x1 = self.paused_at.map_or(x1, |p| x1.min(p));
                    let mut points = s.points.decimate(x0, x1, columns);
                    if let Some(p) = self.paused_at {
                        points.retain(|pt| pt[0] <= p);
                    }
                    (self.series_name(s), points)
                })
                .collect(),
            None => Vec::new(),
        };
        let mut plot = egui_plot::Plot::new("live_plot")
            .legend(egui_plot::Legend::default())
            .x_axis_label("seconds")
            .allow_double_click_reset(true);
        if std::mem::take(&mut self.fit) {
            plot = plot.reset();
        }
        let response = plot.show(ui, move |plot_ui| {
            for (name, points) in lines {
                plot_ui.line(egui_plot::Line::new(name, points));
            }
            let bounds = plot_ui.plot_bounds();
            (plot_ui.auto_bounds().x, bounds.min()[0], bounds.max()[0])
        });
        let (auto_x, x0, x1) = response.inner;
        self.view = (!auto_x && x1 > x0).then_some(View { x: (x0, x1) });
    }

    /// The export the buttons asked for, once.
    pub fn take_export(&mut self) -> Option<PlotExport> {
        self.export.take()
    }

    /// Where the plot was drawn in the last frame, in points.
    pub fn plot_rect(&self) -> Option<egui::Rect> {
        self.plot_rect
    }

    /// Every point of every series as CSV: `time` (UTC, RFC 3339 with
    /// microseconds), `seconds` (the plot's x), `series`, `topic`, `value`.
    pub fn to_csv(&self) -> String {
        let mut out = csv::Writer::from_writer(Vec::new());
        let _ = out.write_record(["time", "seconds", "series", "topic", "value"]);
        let format = time::format_description::well_known::Rfc3339;
        for s in &self.series {
            let name = self
                .specs
                .get(s.spec)
                .map(SeriesSpec::label)
                .unwrap_or_default();
            for [x, y] in s.points.points.iter().copied() {
                let at = self
                    .origin
                    .map(|o| o + std::time::Duration::from_secs_f64(x.max(0.0)))
                    .map(time::OffsetDateTime::from)
                    .and_then(|t| t.format(&format).ok())
                    .unwrap_or_default();
                let _ = out.write_record([
                    at,
                    format!("{x:.6}"),
                    name.clone(),
                    s.topic.clone(),
                    y.to_string(),
                ]);
            }
        }
        out.into_inner()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// First and last x over all series (up to the pause).
    fn data_x_range(&self) -> Option<(f64, f64)> {
        let first = self
            .series
            .iter()
            .filter_map(|s| s.points.points.front())
            .map(|p| p[0])
            .reduce(f64::min)?;
        let last = self
            .series
            .iter()
            .filter_map(Series::last)
            .map(|p| p[0])
            .reduce(f64::max)?;
        let last = self.paused_at.map_or(last, |p| last.min(p));
        Some((first, last.max(first)))
    }
}

/// The position in `levels` of the text at `field` of a JSON payload.
fn level_of(levels: &[String], payload: &[u8], field: &str) -> Option<f64> {
    let tree: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let text = value_at(&tree, field)?.as_str()?;
    levels.iter().position(|l| l == text).map(|i| i as f64)
}

/// The first index in `lo..hi` where `pred` turns false (`points` sorted so
/// that it holds on a prefix of the range).
fn partition_in(
    points: &VecDeque<[f64; 2]>,
    mut lo: usize,
    mut hi: usize,
    pred: impl Fn(&[f64; 2]) -> bool,
) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(&points[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Points per block of a [`Ring`]'s min/max summary.
const BLOCK: usize = 32;

/// The extremes of one block of [`BLOCK`] points, by absolute index (counted
/// from the first point ever pushed).
#[derive(Clone, Copy, Debug)]
struct Block {
    start: usize,
    min: usize,
    max: usize,
}

/// A line's points, sorted by x, with the index of the minimum and maximum
/// of every aligned block of [`BLOCK`] points, so the extremes of a column
/// of a million points cost a few dozen comparisons instead of a scan.
#[derive(Default)]
pub struct Ring {
    points: VecDeque<[f64; 2]>,
    blocks: VecDeque<Block>,
    /// Points dropped from the front: the absolute index of `points[0]`.
    dropped: usize,
}

impl Ring {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn value_at(&self, abs: usize) -> Option<f64> {
        self.points
            .get(abs.checked_sub(self.dropped)?)
            .map(|p| p[1])
    }

    pub fn push(&mut self, point: [f64; 2]) {
        let abs = self.dropped + self.points.len();
        self.points.push_back(point);
        if abs.is_multiple_of(BLOCK) {
            self.blocks.push_back(Block {
                start: abs,
                min: abs,
                max: abs,
            });
            return;
        }
        let Some(block) = self.blocks.back().copied() else {
            return;
        };
        let min = self.value_at(block.min);
        let max = self.value_at(block.max);
        let mut block = block;
        // A dropped extreme (the partly dropped first block) is replaced.
        if min.is_none_or(|m| point[1] < m) {
            block.min = abs;
        }
        if max.is_none_or(|m| point[1] > m) {
            block.max = abs;
        }
        if let Some(last) = self.blocks.back_mut() {
            *last = block;
        }
    }

    pub fn pop_front(&mut self) {
        if self.points.pop_front().is_some() {
            self.dropped += 1;
        }
        while self
            .blocks
            .front()
            .is_some_and(|b| b.start + BLOCK <= self.dropped)
        {
            self.blocks.pop_front();
        }
    }

    /// Indices (into `points`) of the minimum and the maximum of the
    /// non-empty range `a..b`, using the summaries of the whole blocks
    /// inside it.
    fn extremes(&self, a: usize, b: usize) -> (usize, usize) {
        let (mut min, mut max) = (a, a);
        let take = |i: usize, min: &mut usize, max: &mut usize| {
            let v = self.points[i][1];
            if v < self.points[*min][1] {
                *min = i;
            }
            if v > self.points[*max][1] {
                *max = i;
            }
        };
        let off = self.dropped;
        let first_full = (a + off).div_ceil(BLOCK) * BLOCK;
        let end_full = (b + off) / BLOCK * BLOCK;
        let first_block = self.blocks.front().map_or(0, |b| b.start);
        if first_full >= end_full || first_full < first_block {
            for i in a + 1..b {
                take(i, &mut min, &mut max);
            }
            return (min, max);
        }
        for i in a + 1..first_full - off {
            take(i, &mut min, &mut max);
        }
        for start in (first_full..end_full).step_by(BLOCK) {
            if let Some(block) = self.blocks.get((start - first_block) / BLOCK) {
                // Ties keep the earlier point, as a scan would.
                let (lo, hi) = (block.min - off, block.max - off);
                if self.points[lo][1] < self.points[min][1] {
                    min = lo;
                }
                if self.points[hi][1] > self.points[max][1] {
                    max = hi;
                }
            }
        }
        for i in end_full - off..b {
            take(i, &mut min, &mut max);
        }
        (min, max)
    }

    /// The points that draw the range `x0..=x1` (plus one neighbour on each
    /// side, so the line reaches the edges), reduced to at most a minimum
    /// and a maximum per column of `columns` equal x ranges, in order.
    pub fn decimate(&self, x0: f64, x1: f64, columns: usize) -> Vec<[f64; 2]> {
        let points = &self.points;
        let columns = columns.max(1);
        let lo = points.partition_point(|p| p[0] < x0);
        let hi = points.partition_point(|p| p[0] <= x1);
        let before = lo.checked_sub(1).map(|i| points[i]);
        let after = points.get(hi).copied();
        let mut out = Vec::with_capacity(2 * columns + 2);
        out.extend(before);
        if hi - lo <= 2 * columns {
            out.extend(points.range(lo..hi).copied());
        } else {
            let width = (x1 - x0) / columns as f64;
            let mut a = lo;
            for c in 1..=columns {
                let b = if c == columns {
                    hi
                } else {
                    let edge = x0 + width * c as f64;
                    partition_in(points, a, hi, |p| p[0] < edge)
                };
                if b > a {
                    let (min, max) = self.extremes(a, b);
                    out.push(points[min.min(max)]);
                    if min != max {
                        out.push(points[min.max(max)]);
                    }
                }
                a = b;
            }
        }
        out.extend(after);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Qos;
    use std::time::{Duration, UNIX_EPOCH};

    fn msg(topic: &str, payload: &str, secs: f64) -> Message {
        Message {
            topic: topic.into(),
            payload: bytes::Bytes::from(payload.to_string()),
            qos: Qos::AtMostOnce,
            retain: false,
            dup: false,
            pkid: 0,
            received: UNIX_EPOCH + Duration::from_secs(1_000) + Duration::from_secs_f64(secs),
            ..Default::default()
        }
    }

    fn speed_of_every_board() -> Plots {
        let mut plots = Plots::default();
        plots
            .add_spec(SeriesSpec {
                filter: "surfing/board/+/telemetry".into(),
                field: Some("speed_kmh".into()),
                ..SeriesSpec::default()
            })
            .expect("a valid filter");
        plots
    }

    #[test]
    fn surfing_competition_from_the_sandbox_plots_each_boards_readings() {
        let mut plots = Plots::default();
        plots.on_message(&msg("surfboards/surfboard01/status", "1", 0.0));
        assert_eq!(plots.add_surfing_competition(), 3);
        for board in ["surfboard01", "surfboard02"] {
            for (reading, value) in [
                ("speedmph", "15.0"),
                ("altitudefeet", "3.0"),
                ("status", "2"),
            ] {
                let topic = format!("surfboards/{board}/{reading}");
                plots.on_message(&msg(&topic, value, 1.0));
            }
        }
        let names: Vec<String> = plots
            .series()
            .iter()
            .map(|s| plots.series_name(s))
            .collect();
        assert_eq!(
            names,
            [
                "surfboards/surfboard01/speedmph",
                "surfboards/surfboard02/speedmph",
                "surfboards/surfboard01/altitudefeet",
                "surfboards/surfboard02/altitudefeet",
                "surfboards/surfboard01/status",
                "surfboards/surfboard02/status",
            ]
        );
        assert_eq!(
            plots.add_surfing_competition(),
            0,
            "a second click adds nothing"
        );
    }

    #[test]
    fn surfing_competition_from_the_cloud_plots_summary_fields_and_status_names() {
        let mut plots = Plots::default();
        let summary = r#"{"Status": "Wiped out", "Speed MPH": 1.5, "Altitude Feet": 0.5, "Water Temperature F": 56.0}"#;
        plots.on_message(&msg("surfboard01", summary, 0.0));
        assert_eq!(plots.add_surfing_competition(), 3);
        plots.on_message(&msg("surfboard01", summary, 1.0));
        plots.on_message(&msg("other", r#"{"Status": "Sleeping"}"#, 1.0));
        let got: Vec<(String, f64)> = plots
            .series()
            .iter()
            .map(|s| (plots.series_name(s), s.last().map_or(-1.0, |p| p[1])))
            .collect();
        assert_eq!(
            got,
            [
                ("surfboard01 · Speed MPH".to_string(), 1.5),
                ("surfboard01 · Altitude Feet".to_string(), 0.5),
                ("surfboard01 · Status".to_string(), 4.0),
            ]
        );
        let status = &plots.specs()[plots.series()[2].spec];
        assert_eq!(
            status.levels_text().as_deref(),
            Some("0 Idle, 1 Paddling, 2 Riding, 3 Ride finished, 4 Wiped out")
        );
    }

    #[test]
    fn surfing_competition_before_any_traffic_covers_both_brokers() {
        let mut plots = Plots::default();
        assert_eq!(plots.add_surfing_competition(), 6);
    }

    #[test]
    fn a_filter_makes_one_series_per_matching_topic() {
        let mut plots = speed_of_every_board();
        for i in 0..3 {
            for board in 1..=4 {
                let topic = format!("surfing/board/{board}/telemetry");
                let payload = format!(r#"{{"speed_kmh": {}}}"#, board * 10 + i);
                plots.on_message(&msg(&topic, &payload, f64::from(i)));
            }
        }
        plots.on_message(&msg("vehicles/vehicle-1/state", r#"{"speed_kmh":5}"#, 1.0));
        assert_eq!(plots.series_count(), 4);
        assert_eq!(plots.point_count(), 12);
        assert_eq!(plots.series()[1].topic, "surfing/board/2/telemetry");
        assert_eq!(plots.series()[1].last(), Some([2.0, 22.0]));
    }

    fn bin(topic: &str, payload: Vec<u8>, secs: f64) -> Message {
        Message {
            payload: bytes::Bytes::from(payload),
            ..msg(topic, "", secs)
        }
    }

    #[test]
    fn sparkplug_metric_sent_by_alias_plotted_by_its_birth_name() {
        use crate::model::decode::sparkplug::build::{metric, payload};
        use crate::model::decode::sparkplug::schema::MetricValue;
        let mut plots = Plots::default();
        // The birth arrives before the plot exists: it is remembered anyway.
        plots.on_message(&bin(
            "spBv1.0/plant/NBIRTH/edge1",
            payload(
                1,
                0,
                vec![metric(
                    Some("Temperature"),
                    Some(5),
                    Some(9),
                    MetricValue::FloatValue(20.0),
                )],
            ),
            0.0,
        ));
        plots
            .add_spec(SeriesSpec {
                filter: "spBv1.0/plant/NDATA/+".into(),
                field: Some("metrics[name=Temperature].value".into()),
                ..SeriesSpec::default()
            })
            .expect("a valid filter");
        for (i, t) in [21.5f32, 23.0].iter().enumerate() {
            let data = payload(
                2,
                1,
                vec![metric(None, Some(5), None, MetricValue::FloatValue(*t))],
            );
            plots.on_message(&bin("spBv1.0/plant/NDATA/edge1", data, i as f64 + 1.0));
        }
        assert_eq!(plots.point_count(), 2);
        assert_eq!(
            plots.series()[0].last(),
            Some([1.0, 23.0]),
            "x from the first point"
        );
    }

    #[test]
    fn msgpack_field_plotted_when_the_content_type_says_msgpack() {
        let mut plots = Plots::default();
        plots
            .add_spec(SeriesSpec {
                filter: "motor/+".into(),
                field: Some("rpm".into()),
                ..SeriesSpec::default()
            })
            .expect("a valid filter");
        let mut bytes = Vec::new();
        let value = rmpv::Value::Map(vec![("rpm".into(), rmpv::Value::from(1200))]);
        rmpv::encode::write_value(&mut bytes, &value).expect("encode to a Vec");
        let mut typed = bin("motor/1", bytes.clone(), 0.0);
        typed.props = Some(Box::new(crate::model::protocol::Properties {
            content_type: Some("application/msgpack".into()),
            ..Default::default()
        }));
        plots.on_message(&typed);
        // Without the content type the bytes are not guessed.
        plots.on_message(&bin("motor/1", bytes, 1.0));
        assert_eq!(plots.point_count(), 1);
        assert_eq!(plots.series()[0].last(), Some([0.0, 1200.0]));
    }

    #[test]
    fn payloads_without_the_field_are_skipped() {
        let mut plots = speed_of_every_board();
        plots.on_message(&msg("surfing/board/1/telemetry", "not json", 0.0));
        plots.on_message(&msg("surfing/board/1/telemetry", r#"{"other":1}"#, 0.0));
        assert_eq!(plots.series_count(), 0);
    }

    #[test]
    fn full_series_drops_oldest_and_counts_them() {
        let mut plots = Plots::with_capacity(10);
        plots
            .add_spec(SeriesSpec {
                filter: "t".into(),
                field: None,
                ..SeriesSpec::default()
            })
            .expect("valid");
        for i in 0..25 {
            plots.on_message(&msg("t", &i.to_string(), f64::from(i)));
        }
        assert_eq!(plots.point_count(), 10);
        assert_eq!(plots.dropped_points(), 15);
        assert_eq!(plots.series()[0].points.points.front(), Some(&[15.0, 15.0]));
    }

    #[test]
    fn invalid_or_repeated_specs_are_refused() {
        let mut plots = speed_of_every_board();
        assert!(
            plots
                .add_spec(SeriesSpec {
                    filter: "a/#/b".into(),
                    field: None,
                    ..SeriesSpec::default()
                })
                .is_err()
        );
        let again = plots.add_spec(SeriesSpec {
            filter: "surfing/board/+/telemetry".into(),
            field: Some("speed_kmh".into()),
            ..SeriesSpec::default()
        });
        assert!(again.is_err_and(|e| e.contains("already plotted")));
    }

    #[test]
    fn removing_a_spec_removes_its_series_only() {
        let mut plots = speed_of_every_board();
        plots
            .add_spec(SeriesSpec {
                filter: "t".into(),
                field: None,
                ..SeriesSpec::default()
            })
            .expect("valid");
        plots.on_message(&msg("surfing/board/1/telemetry", r#"{"speed_kmh":3}"#, 0.0));
        plots.on_message(&msg("t", "7", 1.0));
        plots.remove_spec(0);
        assert_eq!(plots.series_count(), 1);
        assert_eq!(plots.series()[0].topic, "t");
        plots.on_message(&msg("t", "8", 2.0));
        assert_eq!(plots.point_count(), 2);
    }

    #[test]
    fn a_clock_stepping_back_keeps_the_series_sorted() {
        let mut plots = Plots::default();
        plots
            .add_spec(SeriesSpec {
                filter: "t".into(),
                field: None,
                ..SeriesSpec::default()
            })
            .expect("valid");
        plots.on_message(&msg("t", "1", 5.0));
        plots.on_message(&msg("t", "2", 3.0));
        let xs: Vec<f64> = plots.series()[0]
            .points
            .points
            .iter()
            .map(|p| p[0])
            .collect();
        assert_eq!(xs, vec![0.0, 0.0]);
    }

    #[test]
    fn pause_freezes_the_view_while_values_keep_coming() {
        let mut plots = Plots::default();
        plots
            .add_spec(SeriesSpec {
                filter: "t".into(),
                field: None,
                ..SeriesSpec::default()
            })
            .expect("valid");
        plots.on_message(&msg("t", "1", 0.0));
        plots.on_message(&msg("t", "2", 1.0));
        plots.set_paused(true);
        plots.on_message(&msg("t", "3", 2.0));
        assert_eq!(plots.point_count(), 3);
        assert_eq!(plots.data_x_range(), Some((0.0, 1.0)));
        plots.set_paused(false);
        assert_eq!(plots.data_x_range(), Some((0.0, 2.0)));
    }

    fn ring_of(n: u32, drop: usize) -> Ring {
        let mut ring = Ring::default();
        for i in 0..n {
            if ring.len() >= n as usize - drop {
                ring.pop_front();
            }
            ring.push([
                f64::from(i) / 1000.0,
                f64::from(i % 97) + f64::from(i % 13) / 100.0,
            ]);
        }
        ring
    }

    /// The plain scan the block summaries must agree with.
    fn scan_decimate(ring: &Ring, x0: f64, x1: f64, columns: usize) -> Vec<[f64; 2]> {
        let pts: Vec<[f64; 2]> = ring.points.iter().copied().collect();
        let lo = pts.partition_point(|p| p[0] < x0);
        let hi = pts.partition_point(|p| p[0] <= x1);
        let mut out: Vec<[f64; 2]> = lo.checked_sub(1).map(|i| pts[i]).into_iter().collect();
        if hi - lo <= 2 * columns {
            out.extend(&pts[lo..hi]);
        } else {
            let width = (x1 - x0) / columns as f64;
            let mut a = lo;
            for c in 1..=columns {
                let b = if c == columns {
                    hi
                } else {
                    a + pts[a..hi].partition_point(|p| p[0] < x0 + width * c as f64)
                };
                if b > a {
                    let (mut min, mut max) = (a, a);
                    for i in a + 1..b {
                        if pts[i][1] < pts[min][1] {
                            min = i;
                        }
                        if pts[i][1] > pts[max][1] {
                            max = i;
                        }
                    }
                    out.push(pts[min.min(max)]);
                    if min != max {
                        out.push(pts[min.max(max)]);
                    }
                }
                a = b;
            }
        }
        out.extend(pts.get(hi));
        out
    }

    #[test]
    fn block_summaries_give_what_a_full_scan_gives() {
        for drop in [0, 1, 31, 33, 1000] {
            let ring = ring_of(100_000, drop);
            for (x0, x1, columns) in [
                (0.0, 100.0, 800),
                (3.3, 7.77, 1000),
                (50.0, 50.4, 700),
                (-5.0, 200.0, 333),
                (99.9, 100.0, 20),
            ] {
                assert_eq!(
                    ring.decimate(x0, x1, columns),
                    scan_decimate(&ring, x0, x1, columns),
                    "drop {drop}, range {x0}..{x1}, {columns} columns"
                );
            }
        }
    }

    #[test]
    fn a_million_points_decimate_to_two_per_column_quickly() {
        let ring = ring_of(1_000_000, 0);
        let start = std::time::Instant::now();
        let out = ring.decimate(0.0, 1000.0, 800);
        let took = start.elapsed();
        assert!(out.len() <= 2 * 800 + 2, "{} points", out.len());
        assert!(out.iter().any(|p| p[1] == 96.12) && out.iter().any(|p| p[1] == 0.0));
        // Far below a scan of the million points.
        let start = std::time::Instant::now();
        let scanned = scan_decimate(&ring, 0.0, 1000.0, 800);
        let scan_took = start.elapsed();
        assert_eq!(out, scanned);
        assert!(
            took * 3 < scan_took,
            "{took:?} with the block summaries, {scan_took:?} scanning"
        );
        // Zoomed in: only the visible part (and one neighbour each side).
        let zoomed = ring.decimate(10.0, 10.5, 800);
        assert_eq!(zoomed.len(), 503);
        assert_eq!(zoomed.first().map(|p| p[0]), Some(9.999));
    }
}
