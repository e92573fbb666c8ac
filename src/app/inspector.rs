//! The message inspector: the selected topic's latest (or a chosen earlier)
//! message with its metadata, the payload as text, coloured JSON, hex dump or
//! base64, the topic's kept history with a diff of two messages, and a plot
//! of a numeric value over time.
//!
//! Self-contained: it reads a [`Store`] and returns [`InspectorAction`]s for
//! what it cannot do itself (save a file, publish, switch to the timeline).
//! Payloads can be many megabytes: every view lays out a bounded amount
//! (the hex dump only its visible rows) and says when it shows only part.

use crate::capture::offline::Offline;
use crate::model::decode::{
    self as decoders, Format, ProtoSchema, SparkplugAliases, auto_format, sparkplug,
};
use crate::model::diff::{Change, Diff, LineKind, diff};
use crate::model::payload::{
    self, PayloadKind, TextPrefix, TokenClass, base64, extract_number, hex_line, hex_rows,
    number_at, numeric_paths, numeric_paths_of, pretty_json, text_prefix,
};
use crate::model::protocol::Message;
use crate::model::store::{HistoryItem, MessageId, Store, TopicInfo};
use crate::model::tree::NodeId;
use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, Label, RichText, ScrollArea, TextStyle};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most payload bytes the Text view lays out (and the JSON view of its
/// formatted text): a bigger galley makes every frame slow.
const TEXT_LIMIT: usize = 64 * 1024;
/// Largest JSON payload pretty-printed; bigger ones are shown as raw text.
const PRETTY_LIMIT: usize = 1 << 20;
/// Most bytes the hex dump lists. 8 MiB is 524,288 rows: beyond that the
/// scroll offset (an f32 in pixels) can no longer address single rows.
const HEX_LIMIT: usize = 8 << 20;
/// Most payload bytes encoded for the Base64 view (a multiple of 3, so the
/// shown part is a prefix of the full encoding).
const BASE64_LIMIT: usize = 48 * 1024;
/// Payloads above this size are not diffed: the diff itself is fast
/// (`similar`, bounded by a deadline), but its rows are laid out as text.
const DIFF_LIMIT: usize = 4 << 20;
/// Characters of payload preview in a history row.
const PREVIEW_CHARS: usize = 60;

/// What the inspector asks its owner to do after the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InspectorAction {
    /// Ask where to save, then write `bytes` (the payload as kept).
    SavePayload { topic: String, bytes: Vec<u8> },
    /// Publish an empty retained payload to `topic`.
    DeleteRetained { topic: String },
    /// Show the packet flow of this message in the timeline.
    JumpToFlow {
        topic: String,
        /// The PUBLISH record that carried the message, when known.
        packet_seq: Option<u64>,
    },
}

/// A way of showing a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadView {
    Text,
    Json,
    Hex,
    Base64,
    /// Decoded by one of [`crate::model::decode`]'s decoders, shown as a
    /// JSON tree.
    Decoded(Format),
}

impl PayloadView {
    pub const ALL: [PayloadView; 8] = [
        PayloadView::Text,
        PayloadView::Json,
        PayloadView::Hex,
        PayloadView::Base64,
        PayloadView::Decoded(Format::Sparkplug),
        PayloadView::Decoded(Format::Protobuf),
        PayloadView::Decoded(Format::MsgPack),
        PayloadView::Decoded(Format::Cbor),
    ];

    pub fn label(self) -> &'static str {
        match self {
            PayloadView::Text => "Text",
            PayloadView::Json => "JSON",
            PayloadView::Hex => "Hex",
            PayloadView::Base64 => "Base64",
            PayloadView::Decoded(f) => f.label(),
        }
    }

    /// The best view of a message: a decoder where it is safe to assume
    /// one ([`auto_format`]: Sparkplug topics, MQTT 5 content types), else
    /// the best for the payload's kind.
    pub fn auto(kind: PayloadKind, topic: &str, content_type: Option<&str>) -> PayloadView {
        match auto_format(topic, content_type) {
            Some(f) => PayloadView::Decoded(f),
            None => PayloadView::best_for(kind),
        }
    }

    /// The best view for a payload of this kind.
    pub fn best_for(kind: PayloadKind) -> PayloadView {
        match kind {
            PayloadKind::Json => PayloadView::Json,
            PayloadKind::Binary => PayloadView::Hex,
            PayloadKind::Empty | PayloadKind::Number | PayloadKind::Text => PayloadView::Text,
        }
    }
}

/// Identifies one kept payload. The address and length guard against two
/// stores (connections) that happen to use the same node and message ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PayloadKey {
    node: NodeId,
    message: MessageId,
    addr: usize,
    len: usize,
}

impl PayloadKey {
    fn new(node: NodeId, message: MessageId, payload: &[u8]) -> PayloadKey {
        PayloadKey {
            node,
            message,
            addr: payload.as_ptr() as usize,
            len: payload.len(),
        }
    }
}

/// What is derived from the shown payload, computed once: `detect`
/// validates JSON in full, and a megabyte payload must not be re-read every
/// frame.
struct Decoded {
    key: PayloadKey,
    kind: PayloadKind,
    /// The view shown when the user chose none.
    auto: PayloadView,
    /// The decoded tree of a decoder view, its coloured layout (dark mode
    /// when built) and its numeric paths, for the view it was made for.
    tree: Option<DecodedTree>,
    text: Option<TextPrefix>,
    /// The coloured JSON (dark mode when built), its shown and total length.
    json: Option<(bool, LayoutJob, TextPrefixLen)>,
    base64: Option<String>,
    numeric_paths: Vec<String>,
}

/// Shown and total bytes of a view that may show only part.
#[derive(Clone, Copy, Debug)]
struct TextPrefixLen {
    shown: usize,
    total: usize,
}

/// A payload decoded for a decoder view.
struct DecodedTree {
    /// The view, and for Protobuf the schema's message, it was made for.
    made_for: (PayloadView, Option<String>),
    result: Result<(bool, LayoutJob, TextPrefixLen), String>,
    numeric_paths: Vec<String>,
}

impl Decoded {
    fn new(key: PayloadKey, payload: &[u8], topic: &str, content_type: Option<&str>) -> Decoded {
        let kind = payload::detect(payload);
        Decoded {
            key,
            kind,
            auto: PayloadView::auto(kind, topic, content_type),
            tree: None,
            text: None,
            json: None,
            base64: None,
            numeric_paths: if kind == PayloadKind::Json && payload.len() <= PRETTY_LIMIT {
                numeric_paths(payload)
            } else {
                Vec::new()
            },
        }
    }
}

/// The result of "Compare".
struct Comparison {
    old: (MessageId, SystemTime),
    new: (MessageId, SystemTime),
    result: Result<Diff, String>,
    /// MQTT 5 properties that differ, one line each.
    props: Vec<String>,
}

/// Plot points of a topic's history, with what they were computed from.
struct PlotData {
    key: (NodeId, MessageId, usize, Option<String>, Option<Format>),
    points: Vec<[f64; 2]>,
}

/// The inspector's view state; one for the whole window is enough (it
/// resets when another topic is selected).
#[derive(Default)]
pub struct InspectorView {
    /// Top of the panel's scrolled content and the panel's height, this
    /// frame: the payload view is sized from them.
    panel_top: f32,
    panel_height: f32,
    node: Option<NodeId>,
    /// An earlier message the user clicked in the history; `None` follows
    /// the latest message.
    pinned: Option<MessageId>,
    /// The view the user chose; `None` picks the best for each payload.
    view: Option<PayloadView>,
    decoded: Option<Decoded>,
    /// History messages ticked for "Compare" (at most two).
    compare: Vec<MessageId>,
    comparison: Option<Comparison>,
    /// The JSON field plotted; `None` plots the payload itself if numeric.
    plot_field: Option<String>,
    plot: Option<PlotData>,
    /// The time zone of the times shown; the app sets the local one.
    zone: super::clock::Zone,
    /// The connection's subscriptions with an MQTT 5 subscription
    /// identifier, to say which of them a message matched.
    subscription_ids: Vec<(u32, String)>,
    /// A fixed "now" for the expiry countdown (tests); `None`: the clock.
    now: Option<SystemTime>,
    /// The Protobuf view's schema: what the user typed and what loaded.
    proto: ProtoInput,
    /// The capture an offline connection was opened from: payloads the
    /// history budget evicted are read from it on demand.
    offline: Option<Offline>,
    /// The shown message's payload as read from the capture (by its
    /// PUBLISH sequence number), kept while it is shown.
    file_payload: Option<(u64, FileRead<Arc<[u8]>>)>,
    /// History rows' previews read from the capture, by sequence number
    /// (bounded: only the rows scrolled past).
    file_previews: VecDeque<(u64, String)>,
    /// The shown topic's messages in the capture (positions, oldest first).
    file_ids: Vec<u32>,
    file_ids_node: Option<NodeId>,
    /// Rows of the capture's earlier messages (time, size, preview), by
    /// position, read once (bounded like the previews).
    file_rows: VecDeque<(u32, String)>,
    /// An earlier message of the capture the user clicked (one the Store no
    /// longer keeps), and that message as read.
    pinned_file: Option<u32>,
    file_message: Option<(u32, FileRead<Arc<Message>>)>,
}

/// Something read from an offline connection's capture, or why it could not be.
type FileRead<T> = Result<T, String>;

/// Preview texts of evicted payloads kept at most.
const FILE_PREVIEWS: usize = 256;

/// The payload view a MIME content type asks for (MQTT 5's Content Type).
pub fn content_type_view(content_type: &str) -> Option<PayloadView> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct == "application/json" || ct.ends_with("+json") {
        Some(PayloadView::Json)
    } else if ct.starts_with("text/") || ct == "application/xml" || ct.ends_with("+xml") {
        Some(PayloadView::Text)
    } else if ct == "application/octet-stream" {
        Some(PayloadView::Hex)
    } else {
        None
    }
}

/// The Protobuf view's `.proto` file and message type; kept when another
/// topic is selected (one schema usually serves many topics).
#[derive(Default, Clone)]
struct ProtoInput {
    path: String,
    message: String,
    loaded: Option<Result<Arc<ProtoSchema>, String>>,
}

/// `HH:MM:SS.mmm` of `t` shifted by `offset_secs` from UTC.
pub fn clock(t: SystemTime, offset_secs: i64) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (since.as_secs() as i64).saturating_add(offset_secs);
    let day = secs.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        since.subsec_millis()
    )
}

/// Reduces a line sorted by x to at most two points (min and max) per
/// column of `columns` equal x ranges, keeping their order, so a plot never
/// draws more points than its pixels can show.
pub fn decimate(points: &[[f64; 2]], columns: usize) -> Vec<[f64; 2]> {
    let columns = columns.max(1);
    if points.len() <= 2 * columns {
        return points.to_vec();
    }
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Vec::new();
    };
    let (x0, span) = (first[0], (last[0] - first[0]).max(f64::MIN_POSITIVE));
    let column_of = |x: f64| (((x - x0) / span * columns as f64) as usize).min(columns - 1);
    let mut out = Vec::with_capacity(2 * columns);
    let flush = |min: usize, max: usize, out: &mut Vec<[f64; 2]>| {
        out.push(points[min.min(max)]);
        if min != max {
            out.push(points[min.max(max)]);
        }
    };
    let (mut column, mut min, mut max) = (column_of(first[0]), 0, 0);
    for (i, p) in points.iter().enumerate().skip(1) {
        let c = column_of(p[0]);
        if c != column {
            flush(min, max, &mut out);
            (column, min, max) = (c, i, i);
        } else {
            if p[1] < points[min][1] {
                min = i;
            }
            if p[1] > points[max][1] {
                max = i;
            }
        }
    }
    flush(min, max, &mut out);
    out
}

fn json_color(class: TokenClass, dark: bool, text: Color32) -> Color32 {
    let rgb = |d: (u8, u8, u8), l: (u8, u8, u8)| {
        let (r, g, b) = if dark { d } else { l };
        Color32::from_rgb(r, g, b)
    };
    match class {
        TokenClass::Key => rgb((156, 220, 254), (0, 80, 160)),
        TokenClass::String => rgb((206, 145, 120), (163, 21, 21)),
        TokenClass::Number => rgb((181, 206, 168), (9, 120, 80)),
        TokenClass::Literal => rgb((86, 156, 214), (0, 0, 220)),
        TokenClass::Punct | TokenClass::Whitespace => text,
    }
}

/// The coloured layout of a JSON payload's formatted text, cut at
/// [`TEXT_LIMIT`]; `None` if the payload is not valid JSON.
fn json_job(payload: &[u8], ui: &egui::Ui) -> Option<(LayoutJob, TextPrefixLen)> {
    let pretty = pretty_json(payload)?;
    let cut = text_prefix(pretty.text.as_bytes(), TEXT_LIMIT).shown;
    let font = TextStyle::Monospace.resolve(ui.style());
    let dark = ui.visuals().dark_mode;
    let text_color = ui.visuals().text_color();
    let mut job = LayoutJob::default();
    for span in &pretty.spans {
        if span.range.start >= cut {
            break;
        }
        let end = span.range.end.min(cut);
        job.append(
            &pretty.text[span.range.start..end],
            0.0,
            TextFormat::simple(font.clone(), json_color(span.class, dark, text_color)),
        );
    }
    Some((
        job,
        TextPrefixLen {
            shown: cut,
            total: pretty.text.len(),
        },
    ))
}

fn showing(shown: usize, total: usize) -> Option<String> {
    (shown < total).then(|| format!("showing {shown} of {total} bytes"))
}

fn ok_color(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode {
        Color32::from_rgb(120, 200, 120)
    } else {
        Color32::from_rgb(30, 120, 30)
    }
}

impl InspectorView {
    pub fn new() -> InspectorView {
        InspectorView::default()
    }

    /// The time zone of the times shown (the app passes the local one;
    /// tests keep UTC).
    pub fn set_zone(&mut self, zone: super::clock::Zone) {
        self.zone = zone;
    }

    /// The view the shown payload is displayed in, once a payload was shown.
    pub fn current_view(&self) -> Option<PayloadView> {
        self.view.or_else(|| self.decoded.as_ref().map(|d| d.auto))
    }

    /// Chooses the payload view (as clicking its button does).
    pub fn set_view(&mut self, view: PayloadView) {
        self.view = Some(view);
    }

    /// The subscriptions that carry an MQTT 5 subscription identifier
    /// (identifier, filter), so a message's identifiers can be named.
    pub fn set_subscription_ids(&mut self, ids: Vec<(u32, String)>) {
        self.subscription_ids = ids;
    }

    /// The capture the shown connection was opened from (`None` for a live
    /// connection): evicted or truncated payloads are read from it.
    pub fn set_offline(&mut self, offline: Option<Offline>) {
        let same = match (&self.offline, &offline) {
            (Some(Offline::File(a)), Some(Offline::File(b))) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.file_payload = None;
            self.file_previews.clear();
            self.file_rows.clear();
            self.file_ids.clear();
            self.file_ids_node = None;
            self.pinned_file = None;
            self.file_message = None;
        }
        self.offline = offline;
    }

    /// The whole payload of `item` from the capture, when the Store no
    /// longer holds it whole; read once while the message is shown.
    fn payload_from_file(&mut self, item: &HistoryItem<'_>) -> Option<Result<Arc<[u8]>, String>> {
        if item.payload.is_some() && item.truncated().is_none() {
            return None;
        }
        let seq = item.packet_seq?;
        let offline = self.offline.as_ref()?;
        if let Some((s, read)) = &self.file_payload
            && *s == seq
        {
            return Some(read.clone());
        }
        let read = offline.payload_by_packet_seq(seq)?.map(Arc::<[u8]>::from);
        self.file_payload = Some((seq, read.clone()));
        Some(read)
    }

    /// A history row's preview of an evicted payload, from the capture.
    fn preview_from_file(&mut self, seq: Option<u64>) -> Option<String> {
        let seq = seq?;
        if let Some((_, text)) = self.file_previews.iter().find(|(s, _)| *s == seq) {
            return Some(text.clone());
        }
        let read = self
            .offline
            .as_ref()?
            .payload_prefix_by_packet_seq(seq, 4 * PREVIEW_CHARS)?;
        let text = match read {
            Ok(p) => payload::preview(&p, PREVIEW_CHARS),
            Err(e) => format!("unreadable in the capture: {e}"),
        };
        if self.file_previews.len() == FILE_PREVIEWS {
            self.file_previews.pop_front();
        }
        self.file_previews.push_back((seq, text.clone()));
        Some(text)
    }

    /// The capture's earlier message `i`, read whole once while shown.
    fn file_message(&mut self, i: u32) -> Option<Result<Arc<Message>, String>> {
        if let Some((at, read)) = &self.file_message
            && *at == i
        {
            return Some(read.clone());
        }
        let read = self
            .offline
            .as_ref()?
            .message_head(i, usize::MAX)
            .map(|(m, _)| Arc::new(m));
        self.file_message = Some((i, read.clone()));
        Some(read)
    }

    /// The text of the history row of the capture's message `i`.
    fn file_row(&mut self, i: u32) -> String {
        if let Some((_, text)) = self.file_rows.iter().find(|(at, _)| *at == i) {
            return text.clone();
        }
        let Some(offline) = self.offline.as_ref() else {
            return String::new();
        };
        let text = match offline.message_head(i, 4 * PREVIEW_CHARS) {
            Ok((m, len)) => format!(
                "{} · {len} B · {}",
                self.clock(m.received),
                payload::preview(&m.payload, PREVIEW_CHARS)
            ),
            Err(e) => format!("unreadable in the capture: {e}"),
        };
        if self.file_rows.len() == FILE_PREVIEWS {
            self.file_rows.pop_front();
        }
        self.file_rows.push_back((i, text.clone()));
        text
    }

    /// Freezes the clock the expiry countdown reads (tests, screenshots).
    pub fn set_now(&mut self, now: Option<SystemTime>) {
        self.now = now;
    }

    fn reset(&mut self, node: Option<NodeId>) {
        *self = InspectorView {
            node,
            zone: self.zone.clone(),
            subscription_ids: std::mem::take(&mut self.subscription_ids),
            now: self.now,
            proto: std::mem::take(&mut self.proto),
            offline: self.offline.take(),
            file_previews: std::mem::take(&mut self.file_previews),
            file_rows: std::mem::take(&mut self.file_rows),
            ..InspectorView::default()
        };
    }

    /// The MQTT 5 properties of the shown message, as a table.
    fn properties_ui(&self, ui: &mut egui::Ui, item: &HistoryItem<'_>) {
        let Some(props) = item.props else {
            return;
        };
        egui::CollapsingHeader::new("MQTT 5 properties")
            .id_salt("inspector properties")
            .default_open(true)
            .show(ui, |ui| {
                egui::Grid::new("inspector properties grid")
                    .num_columns(2)
                    .striped(true)
                    .spacing([16.0, 2.0])
                    .show(ui, |ui| {
                        for (name, value) in props.rows() {
                            ui.weak(name);
                            let value = match name {
                                "Message Expiry Interval" => {
                                    let left = props.message_expiry_interval.map(|e| {
                                        let now = self.now.unwrap_or_else(SystemTime::now);
                                        let age = now
                                            .duration_since(item.received)
                                            .unwrap_or_default()
                                            .as_secs();
                                        if age >= u64::from(e) {
                                            format!("expired {} s ago", age - u64::from(e))
                                        } else {
                                            format!("{} s left", u64::from(e) - age)
                                        }
                                    });
                                    format!("{value} ({})", left.unwrap_or_default())
                                }
                                "Subscription Identifier" => props
                                    .subscription_identifier
                                    .iter()
                                    .map(|id| {
                                        match self
                                            .subscription_ids
                                            .iter()
                                            .find(|(i, _)| *i as usize == *id)
                                        {
                                            Some((_, filter)) => format!("{id} ({filter})"),
                                            None => id.to_string(),
                                        }
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                "Topic Alias" => {
                                    format!("{value} (the topic shown is the resolved one)")
                                }
                                _ => value,
                            };
                            ui.add(Label::new(RichText::new(value).monospace()).wrap());
                            ui.end_row();
                        }
                    });
            });
    }

    fn clock(&self, t: SystemTime) -> String {
        clock(t, self.zone.offset_at(t))
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &Store,
        selected: Option<NodeId>,
    ) -> Option<InspectorAction> {
        if selected != self.node {
            self.reset(selected);
        }
        let Some(node) = selected else {
            ui.weak("Select a topic in the tree to see its messages.");
            return None;
        };
        let topic = store.path(node);
        let Some(info) = store.topic_info(node) else {
            ui.label(RichText::new(&topic).monospace().strong());
            ui.weak(format!(
                "No message was received on this topic itself ({} below it).",
                store.tree().subtree_messages(node)
            ));
            return None;
        };
        // An earlier message only the capture file still holds.
        let mut file_error = None;
        let file_message = match self.pinned_file.and_then(|i| self.file_message(i)) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                file_error = Some(e);
                self.pinned_file = None;
                None
            }
            None => None,
        };
        let item = match (
            &file_message,
            self.pinned.and_then(|m| store.message(node, m)),
        ) {
            (Some(m), _) => HistoryItem {
                id: MessageId(u64::MAX - u64::from(self.pinned_file.unwrap_or(0))),
                received: m.received,
                qos: m.qos,
                retain: m.retain,
                dup: m.dup,
                pkid: m.pkid,
                size: m.payload.len(),
                payload: Some(&m.payload),
                packet_seq: m.packet_seq,
                props: m.props.as_deref(),
            },
            (None, Some(item)) => item,
            (None, None) => {
                // The pinned message was evicted (or none was pinned).
                self.pinned = None;
                info.last
            }
        };
        if let Some(e) = file_error {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("That message could not be read from the capture: {e}"),
            );
        }

        // Evicted or cut short in memory, whole in the capture file.
        let from_file = self.payload_from_file(&item);
        let mut item = item;
        let mut file_note = None;
        match &from_file {
            Some(Ok(p)) => {
                item.payload = Some(p);
                file_note = Some(Ok(()));
            }
            Some(Err(e)) => file_note = Some(Err(e.clone())),
            None => {}
        }
        let item = item;

        // The whole panel scrolls: at a small window height the history
        // and the plot are below the fold. Sizes below are taken from the
        // panel's height, not from the scrolled content's (unbounded).
        let view_height = ui.available_height();
        ScrollArea::vertical()
            .id_salt("inspector panel")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.panel_top = ui.cursor().top();
                self.panel_height = view_height;
                self.scrolled_ui(
                    ui,
                    store,
                    node,
                    &topic,
                    &info,
                    &item,
                    file_message.is_some(),
                    file_note,
                )
            })
            .inner
    }

    /// The inspector's content, inside the panel's scroll area.
    #[allow(clippy::too_many_arguments)]
    fn scrolled_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &Store,
        node: NodeId,
        topic: &str,
        info: &TopicInfo<'_>,
        item: &HistoryItem<'_>,
        from_file_message: bool,
        file_note: Option<Result<(), String>>,
    ) -> Option<InspectorAction> {
        let (topic, info, item) = (topic.to_string(), info, item);
        let mut action = None;
        self.header_ui(ui, &topic, info, item);
        self.properties_ui(ui, item);
        self.buttons_ui(ui, &topic, info, item, &mut action);
        ui.separator();
        if from_file_message {
            ui.weak("An earlier message read from the capture file (no longer kept in memory).");
        }
        match file_note {
            Some(Ok(())) => {
                ui.weak(
                    "Payload read from the capture file: the history budget no longer holds \
                     it in memory.",
                );
            }
            Some(Err(e)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The payload could not be read from the capture: {e}"),
                );
            }
            None => {}
        }
        self.payload_ui(ui, store, node, &topic, item);
        ui.separator();
        self.history_ui(ui, store, node, info);
        self.plot_ui(ui, store, node, info, item);
        action
    }

    fn header_ui(
        &self,
        ui: &mut egui::Ui,
        topic: &str,
        info: &TopicInfo<'_>,
        item: &HistoryItem<'_>,
    ) {
        ui.add(Label::new(RichText::new(topic).monospace().strong()).wrap());
        let zone = self.zone.suffix();
        let which = if item.id == info.last.id {
            "latest message"
        } else {
            "earlier message"
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        egui::Grid::new("inspector header")
            .num_columns(2)
            .spacing([16.0, 2.0])
            .show(ui, |ui| {
                ui.weak("Received");
                ui.label(format!("{}{zone} ({which})", self.clock(item.received)));
                ui.end_row();
                ui.weak("QoS");
                ui.label(item.qos.as_u8().to_string());
                ui.end_row();
                ui.weak("Retain / dup");
                ui.label(format!(
                    "retain: {} · dup: {}",
                    yes_no(item.retain),
                    yes_no(item.dup)
                ));
                ui.end_row();
                ui.weak("Size");
                ui.label(format!("{} bytes", item.size));
                ui.end_row();
                ui.weak("Messages");
                ui.label(format!("{} received on this topic", info.messages));
                ui.end_row();
            });
    }

    fn buttons_ui(
        &self,
        ui: &mut egui::Ui,
        topic: &str,
        info: &TopicInfo<'_>,
        item: &HistoryItem<'_>,
        action: &mut Option<InspectorAction>,
    ) {
        ui.horizontal_wrapped(|ui| {
            if ui.button("Copy topic").clicked() {
                ui.ctx().copy_text(topic.to_string());
            }
            let kept = item.payload;
            if ui
                .add_enabled(kept.is_some(), egui::Button::new("Copy payload"))
                .clicked()
                && let Some(payload) = kept
            {
                ui.ctx().copy_text(self.copy_text(payload));
            }
            if ui
                .add_enabled(kept.is_some(), egui::Button::new("Save payload…"))
                .clicked()
                && let Some(payload) = kept
            {
                *action = Some(InspectorAction::SavePayload {
                    topic: topic.to_string(),
                    bytes: payload.to_vec(),
                });
            }
            if ui.button("Jump to flow").clicked() {
                *action = Some(InspectorAction::JumpToFlow {
                    topic: topic.to_string(),
                    packet_seq: item.packet_seq,
                });
            }
            if info.retained && ui.button("Delete retained").clicked() {
                *action = Some(InspectorAction::DeleteRetained {
                    topic: topic.to_string(),
                });
            }
        });
    }

    /// The payload as the current view spells it (binary never as text).
    fn copy_text(&self, payload: &[u8]) -> String {
        let kind = self
            .decoded
            .as_ref()
            .map_or_else(|| payload::detect(payload), |d| d.kind);
        let view = self.current_view().unwrap_or(PayloadView::best_for(kind));
        match view {
            PayloadView::Decoded(_) => match self.decoded.as_ref().and_then(|d| d.tree.as_ref()) {
                Some(DecodedTree {
                    result: Ok((_, job, _)),
                    ..
                }) => job.text.clone(),
                _ => base64(payload),
            },
            PayloadView::Base64 => base64(payload),
            PayloadView::Text | PayloadView::Json if kind != PayloadKind::Binary => {
                String::from_utf8_lossy(payload).into_owned()
            }
            _ => {
                let mut out = String::with_capacity(payload.len() * 3);
                for (i, b) in payload.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }

    fn payload_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &Store,
        node: NodeId,
        topic: &str,
        item: &HistoryItem<'_>,
    ) {
        let Some(payload) = item.payload else {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "payload evicted by the history budget ({} bytes received)",
                    item.size
                ),
            );
            return;
        };
        let key = PayloadKey::new(node, item.id, payload);
        if self.decoded.as_ref().is_none_or(|d| d.key != key) {
            let content_type = item.props.and_then(|p| p.content_type.as_deref());
            self.decoded = Some(Decoded::new(key, payload, topic, content_type));
        }
        let Some(decoded) = self.decoded.as_mut() else {
            return;
        };
        let kind = decoded.kind;
        let by_content_type = item
            .props
            .and_then(|p| p.content_type.as_deref())
            .and_then(content_type_view);
        // A decoder the topic or content type asks for wins; otherwise the
        // content type chooses among the plain views.
        let view = self
            .view
            .unwrap_or(if decoded.auto == PayloadView::best_for(kind) {
                by_content_type.unwrap_or(decoded.auto)
            } else {
                decoded.auto
            });

        ui.horizontal_wrapped(|ui| {
            for v in PayloadView::ALL {
                if ui.selectable_label(view == v, v.label()).clicked() {
                    self.view = Some(v);
                }
            }
            ui.weak(format!("detected: {}", kind.label()));
        });
        if let Some(total) = item.truncated() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("truncated: kept {} of {total} bytes", payload.len()),
            );
        }
        // Leave room for the history and the plot below: what is left of
        // the panel's height under the content so far, as if not scrolled.
        let used = ui.cursor().top() - self.panel_top;
        let height = ((self.panel_height - used) * 0.45).max(120.0);
        match view {
            PayloadView::Text => match kind {
                PayloadKind::Binary => {
                    ui.label(format!(
                        "This payload is binary ({} bytes): it is not shown as text.",
                        payload.len()
                    ));
                    if ui.button("Show hex").clicked() {
                        self.view = Some(PayloadView::Hex);
                    }
                }
                PayloadKind::Empty => {
                    ui.weak("(empty payload)");
                }
                _ => {
                    let text = decoded
                        .text
                        .get_or_insert_with(|| text_prefix(payload, TEXT_LIMIT));
                    text_ui(ui, text, height);
                }
            },
            PayloadView::Json => {
                if kind != PayloadKind::Json {
                    ui.label(format!(
                        "This payload is not JSON (it is {}).",
                        kind.label()
                    ));
                } else if payload.len() > PRETTY_LIMIT {
                    ui.weak("Too large to format: shown as received.");
                    let text = decoded
                        .text
                        .get_or_insert_with(|| text_prefix(payload, TEXT_LIMIT));
                    text_ui(ui, text, height);
                } else {
                    let dark = ui.visuals().dark_mode;
                    if decoded.json.as_ref().is_none_or(|(d, _, _)| *d != dark) {
                        decoded.json = json_job(payload, ui).map(|(job, len)| (dark, job, len));
                    }
                    if let Some((_, job, len)) = &decoded.json {
                        if let Some(notice) = showing(len.shown, len.total) {
                            ui.weak(format!("{notice} of the formatted JSON"));
                        }
                        ScrollArea::both()
                            .id_salt("inspector json")
                            .max_height(height)
                            .auto_shrink([false, true])
                            .show(ui, |ui| {
                                ui.add(Label::new(job.clone()).extend());
                            });
                    }
                }
            }
            PayloadView::Hex => {
                let shown = payload.len().min(HEX_LIMIT);
                if let Some(notice) = showing(shown, payload.len()) {
                    ui.weak(format!("{notice} (save the payload to see all of it)"));
                }
                let row_height = ui.text_style_height(&TextStyle::Monospace);
                ScrollArea::both()
                    .id_salt("inspector hex")
                    .max_height(height)
                    .auto_shrink([false, true])
                    .show_rows(ui, row_height, hex_rows(shown), |ui, rows| {
                        for row in rows {
                            ui.add(
                                Label::new(RichText::new(hex_line(payload, row)).monospace())
                                    .extend(),
                            );
                        }
                    });
            }
            PayloadView::Decoded(format) => {
                if format == Format::Protobuf {
                    proto_input_ui(ui, &mut self.proto);
                }
                let schema = self.proto.loaded.as_ref().and_then(|r| r.as_ref().ok());
                let made_for = (view, schema.map(|s| s.message_name().to_string()));
                let dark = ui.visuals().dark_mode;
                let stale = decoded.tree.as_ref().is_none_or(|t| {
                    t.made_for != made_for || t.result.as_ref().is_ok_and(|(d, _, _)| *d != dark)
                });
                if stale {
                    let tree = decode_tree(format, store, topic, item.id, payload, schema);
                    decoded.tree = Some(tree_layout(tree, made_for, ui));
                }
                if let Some(tree) = &decoded.tree {
                    tree_ui(ui, tree, height);
                }
            }
            PayloadView::Base64 => {
                let shown = payload.len().min(BASE64_LIMIT);
                if let Some(notice) = showing(shown, payload.len()) {
                    ui.weak(notice);
                }
                let encoded = decoded
                    .base64
                    .get_or_insert_with(|| base64(&payload[..shown]));
                ScrollArea::vertical()
                    .id_salt("inspector base64")
                    .max_height(height)
                    .auto_shrink([false, true])
                    .show(ui, |ui| {
                        ui.add(Label::new(RichText::new(encoded.as_str()).monospace()).wrap());
                    });
            }
        }
    }

    fn history_ui(&mut self, ui: &mut egui::Ui, store: &Store, node: NodeId, info: &TopicInfo<'_>) {
        egui::CollapsingHeader::new(format!("History ({} kept)", info.kept))
            .id_salt("inspector history")
            .default_open(true)
            .show(ui, |ui| {
                let evicted = info.messages.saturating_sub(info.kept as u64);
                match evicted {
                    0 => {}
                    1 => {
                        ui.weak("1 earlier message evicted");
                    }
                    n => {
                        ui.weak(format!("{n} earlier messages evicted"));
                    }
                }
                let row_height = ui.spacing().interact_size.y;
                let latest = info.last.id;
                let mut toggled = None;
                let mut pin = None;
                ScrollArea::vertical()
                    .id_salt("inspector history rows")
                    .max_height(140.0)
                    .auto_shrink([false, true])
                    .show_rows(ui, row_height, info.kept, |ui, rows| {
                        for item in store.history(node).skip(rows.start).take(rows.len()) {
                            ui.horizontal(|ui| {
                                let mut ticked = self.compare.contains(&item.id);
                                if ui
                                    .checkbox(&mut ticked, self.clock(item.received))
                                    .changed()
                                {
                                    toggled = Some(item.id);
                                }
                                let preview = match item.payload {
                                    Some(p) => payload::preview(p, PREVIEW_CHARS),
                                    None => match self.preview_from_file(item.packet_seq) {
                                        Some(text) => format!("{text} (from the capture)"),
                                        None => "payload evicted".to_string(),
                                    },
                                };
                                let shown = self.pinned_file.is_none()
                                    && self.pinned.unwrap_or(latest) == item.id;
                                let text = format!("{} B · {preview}", item.size);
                                if ui
                                    .add(egui::Button::selectable(shown, text).truncate())
                                    .clicked()
                                {
                                    pin = Some(item.id);
                                }
                            });
                        }
                    });
                if let Some(id) = toggled {
                    if let Some(i) = self.compare.iter().position(|m| *m == id) {
                        self.compare.remove(i);
                    } else {
                        if self.compare.len() == 2 {
                            self.compare.remove(0);
                        }
                        self.compare.push(id);
                    }
                }
                if let Some(id) = pin {
                    self.pinned = (id != latest).then_some(id);
                    self.pinned_file = None;
                }
                self.file_history_ui(ui, store, node, info, row_height);
                ui.horizontal(|ui| {
                    let ready = self.compare.len() == 2;
                    if ui
                        .add_enabled(ready, egui::Button::new("Compare"))
                        .on_disabled_hover_text("Tick two messages to compare them")
                        .clicked()
                    {
                        self.comparison = self.compare_ticked(store, node);
                    }
                    if (self.pinned.is_some() || self.pinned_file.is_some())
                        && ui.button("Show latest").clicked()
                    {
                        self.pinned = None;
                        self.pinned_file = None;
                    }
                    if !ready {
                        ui.weak("Tick two messages to compare them.");
                    }
                });
                self.comparison_ui(ui);
            });
    }

    /// The topic's messages the Store no longer keeps, newest first, read
    /// from the capture an offline connection was opened from (only the
    /// rows on screen are read).
    fn file_history_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &Store,
        node: NodeId,
        info: &TopicInfo<'_>,
        row_height: f32,
    ) {
        let Some(offline) = self.offline.as_ref() else {
            return;
        };
        let evicted = info.messages.saturating_sub(info.kept as u64);
        if evicted == 0 {
            return;
        }
        if self.file_ids_node != Some(node) {
            self.file_ids = offline.message_ids_of(&store.path(node));
            self.file_ids_node = Some(node);
        }
        let earlier = (evicted as usize).min(self.file_ids.len());
        if earlier == 0 {
            return;
        }
        ui.weak(format!(
            "{earlier} earlier messages, read from the capture file on demand:"
        ));
        let ids = std::mem::take(&mut self.file_ids);
        let mut pin = None;
        ScrollArea::vertical()
            .id_salt("inspector file history rows")
            .max_height(140.0)
            .auto_shrink([false, true])
            .show_rows(ui, row_height, earlier, |ui, rows| {
                for r in rows {
                    let i = ids[earlier - 1 - r];
                    let text = self.file_row(i);
                    let shown = self.pinned_file == Some(i);
                    if ui
                        .add(egui::Button::selectable(shown, text).truncate())
                        .clicked()
                    {
                        pin = Some(i);
                    }
                }
            });
        self.file_ids = ids;
        if let Some(i) = pin {
            self.pinned_file = Some(i);
            self.pinned = None;
            // The message above is drawn before this list: show the new one.
            ui.ctx().request_repaint();
        }
    }

    fn compare_ticked(&self, store: &Store, node: NodeId) -> Option<Comparison> {
        let (&a, &b) = (self.compare.first()?, self.compare.get(1)?);
        let (old, new) = (a.min(b), a.max(b));
        let old_item = store.message(node, old)?;
        let new_item = store.message(node, new)?;
        let result = match (old_item.payload, new_item.payload) {
            (Some(o), Some(n)) if o.len().max(n.len()) > DIFF_LIMIT => Err(format!(
                "Payloads over {} MiB are not compared; save them and use a diff tool.",
                DIFF_LIMIT >> 20
            )),
            (Some(o), Some(n)) => Ok(diff(o, n)),
            _ => Err("A payload was evicted by the history budget: nothing to compare.".into()),
        };
        Some(Comparison {
            old: (old, old_item.received),
            new: (new, new_item.received),
            result,
            props: crate::model::protocol::property_changes(old_item.props, new_item.props),
        })
    }

    fn comparison_ui(&self, ui: &mut egui::Ui) {
        let Some(cmp) = &self.comparison else {
            return;
        };
        ui.label(
            RichText::new(format!(
                "Changes from {} to {}",
                self.clock(cmp.old.1),
                self.clock(cmp.new.1)
            ))
            .strong(),
        );
        if !cmp.props.is_empty() {
            ui.weak("MQTT 5 properties:");
            for line in &cmp.props {
                ui.label(RichText::new(line).monospace());
            }
        }
        let diff = match &cmp.result {
            Err(e) => {
                ui.colored_label(ui.visuals().warn_fg_color, e);
                return;
            }
            Ok(d) => d,
        };
        if diff.is_empty() && !cmp.props.is_empty() {
            ui.weak("The payloads are the same.");
            return;
        }
        if diff.is_empty() {
            ui.weak("No differences.");
            return;
        }
        let added = ok_color(ui);
        let removed = ui.visuals().error_fg_color;
        let plain = ui.visuals().text_color();
        let rows: Vec<(String, Color32)> = match diff {
            Diff::Json(changes) => changes
                .iter()
                .map(|c| {
                    let path = if c.path.is_empty() {
                        "(document)"
                    } else {
                        c.path.as_str()
                    };
                    let old = c.old.as_deref().unwrap_or("");
                    let new = c.new.as_deref().unwrap_or("");
                    match c.change {
                        Change::Changed => (format!("~ {path}: {old} -> {new}"), plain),
                        Change::Added => (format!("+ {path}: {new}"), added),
                        Change::Removed => (format!("- {path}: {old}"), removed),
                    }
                })
                .collect(),
            Diff::Lines(lines) => lines
                .iter()
                .map(|l| match l.kind {
                    LineKind::Same => (format!("  {}", l.text), plain),
                    LineKind::Added => (format!("+ {}", l.text), added),
                    LineKind::Removed => (format!("- {}", l.text), removed),
                })
                .collect(),
        };
        let row_height = ui.text_style_height(&TextStyle::Monospace);
        ScrollArea::both()
            .id_salt("inspector diff")
            .max_height(160.0)
            .auto_shrink([false, true])
            .show_rows(ui, row_height, rows.len(), |ui, range| {
                for (text, color) in &rows[range] {
                    ui.add(Label::new(RichText::new(text).monospace().color(*color)).extend());
                }
            });
    }

    fn plot_ui(
        &mut self,
        ui: &mut egui::Ui,
        store: &Store,
        node: NodeId,
        info: &TopicInfo<'_>,
        item: &HistoryItem<'_>,
    ) {
        // In a decoder view the fields of the decoded tree are plotted.
        let decoder = match self.current_view() {
            Some(PayloadView::Decoded(f)) => Some(f),
            _ => None,
        };
        let numeric =
            decoder.is_none() && item.payload.and_then(|p| extract_number(p, None)).is_some();
        let paths = self
            .decoded
            .as_ref()
            .map(|d| match (decoder, &d.tree) {
                (Some(_), Some(tree)) => tree.numeric_paths.as_slice(),
                (Some(_), None) => &[],
                (None, _) => d.numeric_paths.as_slice(),
            })
            .unwrap_or_default();
        if !numeric && paths.is_empty() {
            return;
        }
        ui.separator();
        if !numeric {
            let selected = self.plot_field.as_deref().unwrap_or("(choose a field)");
            let mut field = self.plot_field.clone();
            egui::ComboBox::from_label("Plot field")
                .selected_text(selected)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut field, None, "(none)");
                    for path in paths {
                        ui.selectable_value(&mut field, Some(path.clone()), path);
                    }
                });
            self.plot_field = field;
            if self.plot_field.is_none() {
                return;
            }
        }
        let field = if numeric {
            None
        } else {
            self.plot_field.clone()
        };
        let key = (node, info.last.id, info.kept, field.clone(), decoder);
        if self.plot.as_ref().is_none_or(|p| p.key != key) {
            let topic = store.path(node);
            let schema = self.proto.loaded.as_ref().and_then(|r| r.as_ref().ok());
            let mut values: Vec<(SystemTime, f64)> = store
                .history(node)
                .filter_map(|m| {
                    // Parsing megabyte payloads on every new message would
                    // stall the frame; numbers to plot live in small ones.
                    let payload = m.payload.filter(|p| p.len() <= PRETTY_LIMIT)?;
                    let value = match (decoder, field.as_deref()) {
                        (Some(format), Some(path)) => {
                            let tree = decode_tree(format, store, &topic, m.id, payload, schema);
                            number_at(&tree.ok()?, path)?
                        }
                        _ => extract_number(payload, field.as_deref())?,
                    };
                    Some((m.received, value))
                })
                .collect();
            values.reverse();
            let start = values.first().map_or(UNIX_EPOCH, |v| v.0);
            let points = values
                .iter()
                .map(|(t, v)| {
                    let x = t.duration_since(start).unwrap_or_default().as_secs_f64();
                    [x, *v]
                })
                .collect();
            self.plot = Some(PlotData { key, points });
        }
        let Some(plot) = &self.plot else {
            return;
        };
        let name = field.as_deref().unwrap_or("value");
        ui.label(format!(
            "Plot of {name} over time: {} points",
            plot.points.len()
        ));
        if plot.points.is_empty() {
            return;
        }
        let columns = ui.available_width().max(1.0) as usize;
        let points = decimate(&plot.points, columns);
        egui_plot::Plot::new("inspector plot")
            .height(140.0)
            .x_axis_label("seconds")
            .allow_scroll(false)
            .show(ui, |plot_ui| {
                plot_ui.line(egui_plot::Line::new("value", points));
            });
    }
}

/// Decodes a kept payload for a decoder view. Sparkplug data messages are
/// read with the alias tables of the births the store still holds.
fn decode_tree(
    format: Format,
    store: &Store,
    topic: &str,
    id: MessageId,
    payload: &[u8],
    schema: Option<&Arc<ProtoSchema>>,
) -> Result<serde_json::Value, String> {
    if payload.len() > PRETTY_LIMIT {
        return Err(format!(
            "Too large to decode here ({} bytes): save the payload, or use `mqscope sub --decode`.",
            payload.len()
        ));
    }
    let result = match format {
        Format::Sparkplug => {
            let aliases = decoders::sparkplug_aliases_in_store(store, topic, id);
            sparkplug::decode_with(topic, payload, &aliases)
        }
        Format::Protobuf => match schema {
            Some(schema) => schema.decode(payload),
            None => return Err("Choose a .proto file and a message type, then Load.".into()),
        },
        other => decoders::decode_format(other, topic, payload, &mut SparkplugAliases::default()),
    };
    result.map_err(|e| e.0)
}

fn tree_layout(
    tree: Result<serde_json::Value, String>,
    made_for: (PayloadView, Option<String>),
    ui: &egui::Ui,
) -> DecodedTree {
    let (result, numeric_paths) = match tree {
        Ok(value) => {
            let paths = numeric_paths_of(&value);
            let laid = serde_json::to_vec(&value)
                .ok()
                .and_then(|bytes| json_job(&bytes, ui))
                .map(|(job, len)| (ui.visuals().dark_mode, job, len))
                .ok_or_else(|| "The decoded tree cannot be shown.".to_string());
            (laid, paths)
        }
        Err(e) => (Err(e), Vec::new()),
    };
    DecodedTree {
        made_for,
        result,
        numeric_paths,
    }
}

fn tree_ui(ui: &mut egui::Ui, tree: &DecodedTree, height: f32) {
    match &tree.result {
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Ok((_, job, len)) => {
            if let Some(notice) = showing(len.shown, len.total) {
                ui.weak(format!("{notice} of the decoded tree"));
            }
            ScrollArea::both()
                .id_salt("inspector decoded")
                .max_height(height)
                .auto_shrink([false, true])
                .show(ui, |ui| {
                    ui.add(Label::new(job.clone()).extend());
                });
        }
    }
}

/// The Protobuf view's schema fields: a `.proto` path, a message type and
/// Load (compiling a small file takes milliseconds; it happens only on the
/// click).
fn proto_input_ui(ui: &mut egui::Ui, proto: &mut ProtoInput) {
    let mut load = false;
    ui.horizontal_wrapped(|ui| {
        let label = ui.label(".proto file");
        ui.add(
            egui::TextEdit::singleline(&mut proto.path)
                .hint_text("/path/to/schema.proto")
                .desired_width(220.0),
        )
        .labelled_by(label.id);
        let label = ui.label("Message type");
        let message = ui
            .add(
                egui::TextEdit::singleline(&mut proto.message)
                    .hint_text("package.Message")
                    .desired_width(140.0),
            )
            .labelled_by(label.id);
        load = ui.button("Load").clicked()
            || (message.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)));
    });
    if load {
        proto.loaded = Some(
            ProtoSchema::load(std::path::Path::new(proto.path.trim()), &proto.message)
                .map(Arc::new)
                .map_err(|e| e.0),
        );
    }
    match &proto.loaded {
        Some(Ok(schema)) => {
            ui.weak(format!(
                "decoding as {} from {}",
                schema.message_name(),
                schema.file().display()
            ));
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
}

fn text_ui(ui: &mut egui::Ui, text: &TextPrefix, height: f32) {
    if let Some(notice) = text.notice() {
        ui.weak(notice);
    }
    ScrollArea::vertical()
        .id_salt("inspector text")
        .max_height(height)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            ui.add(Label::new(RichText::new(text.text.as_str()).monospace()).wrap());
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::store::HistoryLimits;
    use crate::profile::Qos;
    use egui::accesskit::Role;
    use egui::vec2;
    use egui_kittest::Harness;
    use egui_kittest::kittest::{NodeT as _, Queryable as _};
    use std::time::Duration;

    /// 2023-11-14 22:13:20 UTC plus `ms`.
    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    struct Fixture {
        view: InspectorView,
        store: Store,
        topic: String,
        actions: Vec<InspectorAction>,
    }

    fn harness(store: Store, topic: &str) -> Harness<'static, Fixture> {
        let mut harness = Harness::builder()
            .with_size(vec2(760.0, 720.0))
            .build_ui_state(
                |ui, f: &mut Fixture| {
                    let node = f.store.find(&f.topic);
                    if let Some(action) = f.view.ui(ui, &f.store, node) {
                        f.actions.push(action);
                    }
                },
                Fixture {
                    view: InspectorView::new(),
                    store,
                    topic: topic.to_string(),
                    actions: Vec::new(),
                },
            );
        harness.run();
        harness
    }

    fn click(harness: &mut Harness<'_, Fixture>, label: &str) {
        harness.get_by_label(label).click();
        harness.run();
    }

    /// Labels that are hex dump rows (`00000010  ...`).
    fn hex_rows_laid_out(harness: &Harness<'_, Fixture>) -> usize {
        harness
            .query_all_by(|n| {
                n.role() == Role::Label
                    && n.value().is_some_and(|v| {
                        v.len() > 10
                            && v[..8].bytes().all(|b| b.is_ascii_hexdigit())
                            && &v[8..10] == "  "
                    })
            })
            .count()
    }

    const SENSOR: &[u8] = br#"{"temp":21.5,"unit":"C"}"#;

    #[test]
    fn json_topic_shown_pretty_then_as_hex_dump() {
        let mut store = Store::default();
        store.ingest(
            "home/sensor",
            SENSOR,
            Qos::AtLeastOnce,
            true,
            false,
            3,
            at(1_500),
        );
        let mut h = harness(store, "home/sensor");
        h.get_by_label("home/sensor");
        h.get_by_label_contains("\"temp\": 21.5,\n  \"unit\": \"C\"");
        h.get_by_label("22:13:21.500 UTC (latest message)");
        h.get_by_label("retain: yes · dup: no");
        h.get_by_label("24 bytes");
        h.get_by_label("1 received on this topic");
        assert_eq!(h.state().view.current_view(), Some(PayloadView::Json));
        click(&mut h, "Hex");
        h.get_by_label(
            "00000000  7b 22 74 65 6d 70 22 3a  32 31 2e 35 2c 22 75 6e  |{\"temp\":21.5,\"un|",
        );
        h.get_by_label_contains("00000010  69 74 22 3a 22 43 22 7d");
        click(&mut h, "Base64");
        h.get_by_label("eyJ0ZW1wIjoyMS41LCJ1bml0IjoiQyJ9");
    }

    #[test]
    fn binary_payload_defaults_to_hex_and_text_view_says_binary() {
        let mut store = Store::default();
        let payload = [0x00, 0x01, 0xff, b'A', b'B', 0x00, 0xc3];
        store.ingest("dev/raw", &payload, Qos::AtMostOnce, false, false, 0, at(0));
        let mut h = harness(store, "dev/raw");
        assert_eq!(h.state().view.current_view(), Some(PayloadView::Hex));
        h.get_by_label_contains("00000000  00 01 ff 41 42 00 c3");
        click(&mut h, "Text");
        h.get_by_label("This payload is binary (7 bytes): it is not shown as text.");
        assert!(h.query_by_label_contains("AB").is_none(), "no garbage text");
        click(&mut h, "Show hex");
        assert_eq!(hex_rows_laid_out(&h), 1);
    }

    #[test]
    fn sixteen_mib_payload_lays_out_only_visible_rows() {
        let mut store = Store::default();
        let payload: Vec<u8> = (0..16usize << 20).map(|i| (i % 251) as u8).collect();
        store.ingest(
            "big/blob",
            &payload,
            Qos::AtMostOnce,
            false,
            false,
            0,
            at(0),
        );
        let start = std::time::Instant::now();
        let mut h = harness(store, "big/blob");
        let laid_out = hex_rows_laid_out(&h);
        assert!(
            laid_out > 0 && laid_out < 100,
            "{laid_out} hex rows laid out"
        );
        h.get_by_label("showing 8388608 of 16777216 bytes (save the payload to see all of it)");
        click(&mut h, "Base64");
        h.get_by_label("showing 49152 of 16777216 bytes");
        // Generous: debug build on a slow CI machine; a frame that laid out
        // the whole payload would take minutes.
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn large_text_payload_shows_a_bounded_prefix_with_notice() {
        let mut store = Store::default();
        let payload = "line of text\n".repeat(200_000);
        store.ingest(
            "log",
            payload.as_bytes(),
            Qos::AtMostOnce,
            false,
            false,
            0,
            at(0),
        );
        let h = harness(store, "log");
        h.get_by_label("showing 65536 of 2600000 bytes");
    }

    #[test]
    fn truncated_and_evicted_payloads_say_so() {
        let mut store = Store::new(HistoryLimits {
            max_payload: 10,
            ..HistoryLimits::default()
        });
        store.ingest("big", &[b'x'; 25], Qos::AtMostOnce, false, false, 0, at(0));
        let h = harness(store, "big");
        h.get_by_label("truncated: kept 10 of 25 bytes");
        h.get_by_label("25 bytes");

        let mut store = Store::new(HistoryLimits {
            total_bytes: 250,
            ..HistoryLimits::default()
        });
        for (i, topic) in ["a", "b", "c"].iter().enumerate() {
            store.ingest(
                topic,
                &[1; 100],
                Qos::AtMostOnce,
                false,
                false,
                0,
                at(i as u64),
            );
        }
        let h = harness(store, "a");
        h.get_by_label("payload evicted by the history budget (100 bytes received)");
        assert!(
            h.get_by_label("Copy payload")
                .accesskit_node()
                .is_disabled()
        );
    }

    #[test]
    fn history_diff_of_two_json_messages_lists_the_changed_field() {
        let mut store = Store::new(HistoryLimits {
            per_topic_count: 3,
            ..HistoryLimits::default()
        });
        let payloads: [&[u8]; 4] = [
            br#"{"temp":20,"unit":"C"}"#,
            br#"{"temp":21.5,"unit":"C"}"#,
            br#"{"temp":21.5,"unit":"C","ok":true}"#,
            br#"{"temp":22,"unit":"C","ok":true}"#,
        ];
        for (i, p) in payloads.iter().enumerate() {
            store.ingest(
                "s",
                p,
                Qos::AtMostOnce,
                false,
                false,
                0,
                at(i as u64 * 1000),
            );
        }
        let mut h = harness(store, "s");
        h.get_by_label("History (3 kept)");
        h.get_by_label("1 earlier message evicted");
        assert!(h.get_by_label("Compare").accesskit_node().is_disabled());
        h.get_by_role_and_label(Role::CheckBox, "22:13:21.000")
            .click();
        h.run();
        h.get_by_role_and_label(Role::CheckBox, "22:13:23.000")
            .click();
        h.run();
        click(&mut h, "Compare");
        h.get_by_label("Changes from 22:13:21.000 to 22:13:23.000");
        h.get_by_label("~ temp: 21.5 -> 22");
        h.get_by_label("+ ok: true");
        assert!(
            h.query_by_label_contains("~ unit").is_none(),
            "unchanged field listed"
        );
    }

    #[test]
    fn clicking_an_earlier_message_shows_it() {
        let mut store = Store::default();
        store.ingest("t", b"first", Qos::AtMostOnce, false, false, 0, at(0));
        store.ingest("t", b"second", Qos::ExactlyOnce, false, true, 9, at(250));
        let mut h = harness(store, "t");
        h.get_by_label("22:13:20.250 UTC (latest message)");
        click(&mut h, "5 B · first");
        h.get_by_label("22:13:20.000 UTC (earlier message)");
        h.get_by_label("first");
        click(&mut h, "Show latest");
        h.get_by_label("second");
    }

    #[test]
    fn numeric_payload_plotted_over_time() {
        let mut store = Store::default();
        for i in 0..5u64 {
            let v = format!("{}", 20 + i);
            store.ingest(
                "temp",
                v.as_bytes(),
                Qos::AtMostOnce,
                false,
                false,
                0,
                at(i * 1000),
            );
        }
        let h = harness(store, "temp");
        h.get_by_label("Plot of value over time: 5 points");
        let plot = h.state().view.plot.as_ref().map(|p| p.points.clone());
        assert_eq!(
            plot,
            Some(vec![
                [0.0, 20.0],
                [1.0, 21.0],
                [2.0, 22.0],
                [3.0, 23.0],
                [4.0, 24.0]
            ])
        );
    }

    #[test]
    fn json_field_picked_for_the_plot() {
        let mut store = Store::default();
        for i in 0..3u64 {
            let v = format!(r#"{{"name":"x","temp":{}}}"#, 20 + i);
            store.ingest(
                "s",
                v.as_bytes(),
                Qos::AtMostOnce,
                false,
                false,
                0,
                at(i * 500),
            );
        }
        let mut h = harness(store, "s");
        assert!(
            h.query_by_label_contains("Plot of").is_none(),
            "no field chosen yet"
        );
        click(&mut h, "Plot field");
        click(&mut h, "temp");
        h.get_by_label("Plot of temp over time: 3 points");
    }

    fn sparkplug_store() -> Store {
        use crate::model::decode::sparkplug::build::{metric, payload};
        use crate::model::decode::sparkplug::datatype::{FLOAT, INT32};
        use crate::model::decode::sparkplug::schema::MetricValue;
        let mut store = Store::default();
        let nbirth = payload(
            1,
            0,
            vec![
                metric(
                    Some("Temperature"),
                    Some(7),
                    Some(FLOAT),
                    MetricValue::FloatValue(20.0),
                ),
                metric(
                    Some("Pressure"),
                    Some(8),
                    Some(INT32),
                    MetricValue::IntValue(3),
                ),
            ],
        );
        store.ingest(
            "spBv1.0/plant/NBIRTH/edge1",
            &nbirth,
            Qos::AtMostOnce,
            false,
            false,
            0,
            at(0),
        );
        for (i, t) in [21.5f32, 22.0].iter().enumerate() {
            let ndata = payload(
                2 + i as u64,
                1 + i as u64,
                vec![metric(None, Some(7), None, MetricValue::FloatValue(*t))],
            );
            store.ingest(
                "spBv1.0/plant/NDATA/edge1",
                &ndata,
                Qos::AtMostOnce,
                false,
                false,
                0,
                at(1000 * (i as u64 + 1)),
            );
        }
        store
    }

    #[test]
    fn sparkplug_data_shows_metric_names_from_the_birth_and_plots_them() {
        let mut h = harness(sparkplug_store(), "spBv1.0/plant/NDATA/edge1");
        assert_eq!(
            h.state().view.current_view(),
            Some(PayloadView::Decoded(Format::Sparkplug))
        );
        h.get_by_label_contains("\"name\": \"Temperature\"");
        h.get_by_label_contains("\"value\": 22.0");
        assert!(h.query_by_label_contains("$unnamed_aliases").is_none());
        click(&mut h, "Plot field");
        click(&mut h, "metrics[name=Temperature].value");
        h.get_by_label("Plot of metrics[name=Temperature].value over time: 2 points");
        let plot = h.state().view.plot.as_ref().map(|p| p.points.clone());
        assert_eq!(plot, Some(vec![[0.0, 21.5], [1.0, 22.0]]));
        // The raw bytes are still one click away.
        click(&mut h, "Hex");
        h.get_by_label_contains("00000000  08 03 12");
    }

    #[test]
    fn text_on_a_sparkplug_topic_is_said_not_to_be_sparkplug() {
        let mut store = Store::default();
        store.ingest(
            "spBv1.0/plant/NDATA/edge1",
            b"ONLINE",
            Qos::AtMostOnce,
            false,
            false,
            0,
            at(0),
        );
        let mut h = harness(store, "spBv1.0/plant/NDATA/edge1");
        h.get_by_label("not a Sparkplug B payload (it is text)");
        click(&mut h, "Text");
        h.get_by_label("ONLINE");
    }

    #[test]
    fn msgpack_content_type_picks_the_messagepack_view() {
        let mut store = Store::default();
        let mut bytes = Vec::new();
        let value = rmpv::Value::Map(vec![("rpm".into(), rmpv::Value::from(1200))]);
        rmpv::encode::write_value(&mut bytes, &value).expect("encode to a Vec");
        let props = crate::model::protocol::Properties {
            content_type: Some("application/msgpack".into()),
            ..Default::default()
        };
        store.ingest_linked(
            "motor/1",
            &bytes,
            Qos::AtMostOnce,
            false,
            false,
            0,
            at(0),
            None,
            Some(Box::new(props)),
        );
        let mut h = harness(store, "motor/1");
        assert_eq!(
            h.state().view.current_view(),
            Some(PayloadView::Decoded(Format::MsgPack))
        );
        h.get_by_label_contains("\"rpm\": 1200");
        // Chosen by hand, CBOR says why it cannot read these bytes.
        click(&mut h, "CBOR");
        h.get_by_label_contains("not CBOR");
    }

    #[test]
    fn protobuf_view_loads_a_proto_and_reports_a_wrong_type() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.proto");
        std::fs::write(
            &path,
            "syntax = \"proto3\";\nmessage M { int32 speed = 1; }\n",
        )
        .expect("write proto");
        let mut store = Store::default();
        // Field 1, varint 42.
        store.ingest("pb", &[0x08, 0x2a], Qos::AtMostOnce, false, false, 0, at(0));
        let mut h = harness(store, "pb");
        click(&mut h, "Protobuf");
        h.get_by_label("Choose a .proto file and a message type, then Load.");
        h.state_mut().view.proto.path = path.display().to_string();
        h.state_mut().view.proto.message = "Nope".into();
        click(&mut h, "Load");
        h.get_by_label_contains("no message type 'Nope'; the file declares M");
        h.state_mut().view.proto.message = "M".into();
        click(&mut h, "Load");
        h.get_by_label_contains("\"speed\": 42");
    }

    #[test]
    fn buttons_return_actions_for_the_app() {
        let mut store = Store::default();
        store.ingest(
            "dev/1/state",
            b"online",
            Qos::AtLeastOnce,
            true,
            false,
            42,
            at(7),
        );
        let mut h = harness(store, "dev/1/state");
        click(&mut h, "Save payload…");
        click(&mut h, "Delete retained");
        click(&mut h, "Jump to flow");
        assert_eq!(
            h.state().actions,
            [
                InspectorAction::SavePayload {
                    topic: "dev/1/state".into(),
                    bytes: b"online".to_vec(),
                },
                InspectorAction::DeleteRetained {
                    topic: "dev/1/state".into(),
                },
                InspectorAction::JumpToFlow {
                    topic: "dev/1/state".into(),
                    packet_seq: None,
                },
            ]
        );
    }

    /// What the frame after clicking `label` put on the clipboard.
    fn copied_after_clicking(h: &mut Harness<'_, Fixture>, label: &str) -> Vec<String> {
        h.get_by_label(label).click();
        h.step();
        let copied = h
            .output()
            .platform_output
            .commands
            .iter()
            .filter_map(|c| match c {
                egui::OutputCommand::CopyText(text) => Some(text.clone()),
                _ => None,
            })
            .collect();
        h.run();
        copied
    }

    #[test]
    fn copy_buttons_copy_topic_and_payload_as_the_view_spells_it() {
        let mut store = Store::default();
        store.ingest(
            "home/sensor",
            SENSOR,
            Qos::AtMostOnce,
            false,
            false,
            0,
            at(0),
        );
        let mut h = harness(store, "home/sensor");
        assert_eq!(copied_after_clicking(&mut h, "Copy topic"), ["home/sensor"]);
        assert_eq!(
            copied_after_clicking(&mut h, "Copy payload"),
            [String::from_utf8_lossy(SENSOR).into_owned()]
        );
        click(&mut h, "Hex");
        let hex = copied_after_clicking(&mut h, "Copy payload");
        assert!(hex[0].starts_with("7b 22 74 65 6d 70"), "{hex:?}");
    }

    #[test]
    fn delete_retained_offered_only_for_retained_topics() {
        let mut store = Store::default();
        store.ingest("live", b"1", Qos::AtMostOnce, false, false, 0, at(0));
        let h = harness(store, "live");
        assert!(h.query_by_label("Delete retained").is_none());
    }

    #[test]
    fn level_without_own_message_and_no_selection_explained() {
        let mut store = Store::default();
        store.ingest("home/temp", b"1", Qos::AtMostOnce, false, false, 0, at(0));
        let h = harness(store, "home");
        h.get_by_label("No message was received on this topic itself (1 below it).");
        let h = harness(Store::default(), "nothing");
        h.get_by_label("Select a topic in the tree to see its messages.");
    }

    #[test]
    fn clock_formats_time_of_day_with_offset() {
        let t = UNIX_EPOCH
            + Duration::from_millis(((3 * 86_400 + 13 * 3600 + 5 * 60 + 9) * 1000) + 250);
        assert_eq!(clock(t, 0), "13:05:09.250");
        assert_eq!(clock(t, 2 * 3600), "15:05:09.250");
        assert_eq!(clock(t, -14 * 3600), "23:05:09.250");
    }

    #[test]
    fn decimate_keeps_min_and_max_per_column() {
        let points: Vec<[f64; 2]> = (0..10_000)
            .map(|i| {
                [
                    i as f64,
                    if i == 4_321 {
                        99.0
                    } else if i == 777 {
                        -5.0
                    } else {
                        (i % 7) as f64
                    },
                ]
            })
            .collect();
        let out = decimate(&points, 100);
        assert!(out.len() <= 200, "{}", out.len());
        assert!(out.contains(&[4_321.0, 99.0]) && out.contains(&[777.0, -5.0]));
        assert!(out.windows(2).all(|w| w[0][0] < w[1][0]), "x order kept");
        assert_eq!(
            decimate(&points[..50], 100).len(),
            50,
            "few points kept as they are"
        );
    }

    #[test]
    fn inspector_json_snapshot() {
        let mut store = Store::default();
        store.ingest(
            "home/livingroom/sensor",
            br#"{"temp":21.5,"humidity":40,"ok":true,"tags":["a","b"],"fw":null}"#,
            Qos::AtLeastOnce,
            true,
            false,
            3,
            at(1_500),
        );
        store.ingest(
            "home/livingroom/sensor",
            br#"{"temp":22,"humidity":41,"ok":true,"tags":["a","b"],"fw":null}"#,
            Qos::AtLeastOnce,
            false,
            false,
            4,
            at(61_250),
        );
        let mut h = harness(store, "home/livingroom/sensor");
        h.run();
        h.snapshot("inspector_json");
    }

    #[test]
    fn v5_properties_table_with_expiry_left_and_named_subscription() {
        use crate::model::protocol::Properties;
        let props = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("application/json".into()),
            response_topic: Some("vehicles/vehiclepi01/replies".into()),
            correlation_data: Some(bytes::Bytes::from_static(&[0xde, 0xad, 0x01])),
            user_property: vec![
                ("unit".into(), "km/h".into()),
                ("unit".into(), "mph".into()),
            ],
            subscription_identifier: vec![7],
            ..Properties::default()
        };
        let mut store = Store::default();
        store.ingest_linked(
            "vehicles/vehiclepi01/speed",
            br#"{"speed":42}"#,
            Qos::AtLeastOnce,
            false,
            false,
            5,
            at(10_000),
            Some(12),
            props.boxed(),
        );
        let mut h = harness(store, "vehicles/vehiclepi01/speed");
        h.state_mut().view.set_now(Some(at(25_000)));
        h.state_mut()
            .view
            .set_subscription_ids(vec![(7, "vehicles/#".into())]);
        h.run();
        h.get_by_label("60 s (45 s left)");
        h.get_by_label("7 (vehicles/#)");
        h.get_by_label("application/json");
        h.get_by_label("0xdead01");
        h.get_by_label("unit = km/h");
        h.get_by_label("unit = mph");
        assert_eq!(
            h.state().view.current_view(),
            Some(PayloadView::Json),
            "the content type picks the JSON view"
        );
        h.snapshot("inspector_v5");
    }
}
