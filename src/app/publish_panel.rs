//! The publish panel: topic, payload (text, JSON or hex), QoS and retain,
//! validated inline, plus the outcome of recent publishes with "Re-send".
//!
//! Self-contained: `ui` returns a [`PublishRequest`] when the user asks to
//! publish; the app turns it into `Command::Publish` and reports back with
//! [`PublishPanel::record_sent`] and [`PublishPanel::record_outcome`].

use super::props_edit;
use crate::model::protocol::{Properties, bytes_in_words};
use crate::mqtt::{PublishOutcome, PublishToken};
use crate::profile::{Qos, check_user_properties, validate_topic_name};
use egui::{Color32, RichText, TextEdit};
use std::collections::VecDeque;

/// Rows kept in "Recent publishes"; older ones scroll away.
const RECENT_LIMIT: usize = 50;

/// What the user asked to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 PUBLISH properties (none for 3.1.1).
    pub props: Option<Box<Properties>>,
    /// Request / response: wait for a reply on the response topic that
    /// carries the same correlation data.
    pub request: bool,
}

impl PublishRequest {
    /// A plain publish: no properties, no reply awaited.
    pub fn new(topic: impl Into<String>, payload: Vec<u8>, qos: Qos, retain: bool) -> Self {
        PublishRequest {
            topic: topic.into(),
            payload,
            qos,
            retain,
            props: None,
            request: false,
        }
    }
}

/// The MQTT 5 part of the form.
#[derive(Clone, Debug, Default)]
struct V5Form {
    utf8: bool,
    expiry: Option<u32>,
    content_type: String,
    response_topic: String,
    correlation: String,
    /// The correlation data is typed as hex digits.
    correlation_hex: bool,
    user: Vec<(String, String)>,
    /// Request / response mode.
    request: bool,
}

/// How the payload editor's text is turned into bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadFormat {
    /// The text as UTF-8.
    #[default]
    Text,
    /// The text as UTF-8, checked to be valid JSON.
    Json,
    /// Hex digits, whitespace ignored: `de ad be ef`.
    Hex,
}

impl PayloadFormat {
    const ALL: [PayloadFormat; 3] = [PayloadFormat::Text, PayloadFormat::Json, PayloadFormat::Hex];

    fn label(self) -> &'static str {
        match self {
            PayloadFormat::Text => "Text",
            PayloadFormat::Json => "JSON",
            PayloadFormat::Hex => "Hex",
        }
    }
}

/// Where one publish stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendState {
    Sending,
    /// QoS 0: written to the socket.
    Sent,
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) received.
    Acknowledged,
    /// Acknowledged with an MQTT 5 reason code other than success.
    AcknowledgedWith(String),
    Failed(String),
    /// Request / response: the reply arrived after this many microseconds.
    Replied {
        rtt_us: u64,
        payload: String,
    },
}

impl SendState {
    fn text(&self) -> String {
        match self {
            // ASCII dots: kittest's default font has no ellipsis glyph, and
            // the row must read the same in tests and in the app.
            SendState::Sending => "sending...".to_string(),
            SendState::Sent => "sent".to_string(),
            SendState::Acknowledged => "acknowledged".to_string(),
            SendState::AcknowledgedWith(why) => format!("acknowledged: {why}"),
            SendState::Failed(reason) => format!("failed: {reason}"),
            SendState::Replied { rtt_us, payload } => {
                format!("reply after {:.1} ms: {payload}", *rtt_us as f64 / 1000.0)
            }
        }
    }
}

#[derive(Debug)]
struct Recent {
    token: PublishToken,
    request: PublishRequest,
    state: SendState,
}

/// The publish panel's state.
#[derive(Debug, Default)]
pub struct PublishPanel {
    topic: String,
    payload: String,
    format: PayloadFormat,
    qos: Qos,
    retain: bool,
    /// Newest first.
    recent: VecDeque<Recent>,
    examples: Vec<(String, PublishRequest)>,
    /// The connection speaks MQTT 5: properties and requests are offered.
    v5: bool,
    v5_form: V5Form,
}

/// Parses hex digits into bytes; whitespace between digits is ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut digits = Vec::with_capacity(text.len());
    for (pos, c) in text.chars().enumerate() {
        if c.is_whitespace() {
            continue;
        }
        let Some(d) = c.to_digit(16) else {
            return Err(format!("invalid hex digit '{c}' at character {}", pos + 1));
        };
        digits.push(d as u8);
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "odd number of hex digits ({}): each byte needs two",
            digits.len()
        ));
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Spaced lowercase hex, the form [`parse_hex`] reads back.
fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The bytes of `text` in `format`, or the error shown under the editor.
pub fn encode_payload(text: &str, format: PayloadFormat) -> Result<Vec<u8>, String> {
    match format {
        PayloadFormat::Text => Ok(text.as_bytes().to_vec()),
        PayloadFormat::Json => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Ok(text.as_bytes().to_vec()),
            Err(e) => Err(format!(
                "invalid JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                json_reason(&e)
            )),
        },
        PayloadFormat::Hex => parse_hex(text),
    }
}

/// serde_json's message without its own " at line L column C" suffix, which
/// the caller spells out.
fn json_reason(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

impl PublishPanel {
    pub fn new() -> PublishPanel {
        PublishPanel::default()
    }

    /// Offers MQTT 5 properties and request / response (the connection's
    /// profile speaks MQTT 5).
    pub fn set_v5(&mut self, on: bool) {
        self.v5 = on;
    }

    /// A reply to request `token` arrived.
    pub fn record_reply(&mut self, token: PublishToken, rtt_us: u64, payload: &[u8]) {
        if let Some(row) = self.recent.iter_mut().find(|r| r.token == token) {
            row.state = SendState::Replied {
                rtt_us,
                payload: crate::model::payload::preview(payload, 60),
            };
        }
    }

    /// Pre-fills the topic (the topic selected in the tree).
    pub fn set_topic(&mut self, topic: &str) {
        self.topic = topic.to_string();
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// A ready-made message offered in the "Examples" menu.
    pub fn add_example(&mut self, label: impl Into<String>, request: PublishRequest) {
        self.examples.push((label.into(), request));
    }

    /// The app handed `request` to the worker as `token`.
    pub fn record_sent(&mut self, token: PublishToken, request: &PublishRequest) {
        if self.recent.len() >= RECENT_LIMIT {
            self.recent.pop_back();
        }
        self.recent.push_front(Recent {
            token,
            request: request.clone(),
            state: SendState::Sending,
        });
    }

    /// The worker reported the outcome of publish `token`.
    pub fn record_outcome(&mut self, token: PublishToken, outcome: &PublishOutcome) {
        if let Some(row) = self.recent.iter_mut().find(|r| r.token == token) {
            if matches!(row.state, SendState::Replied { .. })
                && !matches!(outcome, PublishOutcome::Failed(_))
            {
                // The reply came before the acknowledgement: keep it.
                return;
            }
            row.state = match outcome {
                PublishOutcome::Sent => SendState::Sent,
                PublishOutcome::Acknowledged => SendState::Acknowledged,
                PublishOutcome::AcknowledgedWith(why) => SendState::AcknowledgedWith(why.clone()),
                PublishOutcome::Failed(reason) => SendState::Failed(reason.clone()),
            };
        }
    }

    /// The state of publish `token`, if it is still listed.
    pub fn state_of(&self, token: PublishToken) -> Option<&SendState> {
        self.recent
            .iter()
            .find(|r| r.token == token)
            .map(|r| &r.state)
    }

    /// The request the form describes, or the first problem with it.
    pub fn request(&self) -> Result<PublishRequest, String> {
        validate_topic_name(&self.topic)?;
        let payload = encode_payload(&self.payload, self.format)?;
        let (props, request) = if self.v5 {
            (self.properties()?.boxed(), self.v5_form.request)
        } else {
            (None, false)
        };
        Ok(PublishRequest {
            topic: self.topic.clone(),
            payload,
            qos: self.qos,
            retain: self.retain,
            props,
            request,
        })
    }

    /// The MQTT 5 properties the form describes, or the first problem.
    fn properties(&self) -> Result<Properties, String> {
        let f = &self.v5_form;
        let mut p = Properties {
            payload_format_indicator: f.utf8.then_some(1),
            message_expiry_interval: f.expiry,
            content_type: (!f.content_type.is_empty()).then(|| f.content_type.clone()),
            response_topic: (!f.response_topic.is_empty()).then(|| f.response_topic.clone()),
            user_property: f.user.clone(),
            ..Properties::default()
        };
        if let Some(t) = &p.response_topic {
            validate_topic_name(t).map_err(|e| format!("response topic: {e}"))?;
        }
        if !f.correlation.is_empty() {
            let bytes = if f.correlation_hex {
                parse_hex(&f.correlation).map_err(|e| format!("correlation data: {e}"))?
            } else {
                f.correlation.as_bytes().to_vec()
            };
            p.correlation_data = Some(bytes.into());
        }
        if let Some(e) = check_user_properties(&f.user) {
            return Err(e);
        }
        if f.request {
            if p.response_topic.is_none() {
                return Err("a request needs a response topic".into());
            }
            if p.correlation_data.is_none() {
                return Err("a request needs correlation data to match its reply".into());
            }
        }
        if f.utf8 && std::str::from_utf8(&encode_payload(&self.payload, self.format)?).is_err() {
            return Err("the payload format says UTF-8 but the payload is not".into());
        }
        Ok(p)
    }

    /// The MQTT 5 part of the form.
    fn v5_ui(&mut self, ui: &mut egui::Ui) {
        let topic = self.topic.clone();
        let f = &mut self.v5_form;
        egui::CollapsingHeader::new("MQTT 5 properties")
            .id_salt("publish v5")
            .show(ui, |ui| {
                if ui
                    .checkbox(&mut f.request, "Request (wait for a reply)")
                    .on_hover_text(
                        "Sends Response Topic and Correlation Data, subscribes to the \
                         response topic and shows the reply with its round-trip time",
                    )
                    .changed()
                    && f.request
                {
                    if f.response_topic.is_empty() {
                        f.response_topic = format!("{topic}/response");
                    }
                    if f.correlation.is_empty() {
                        f.correlation = format!("req-{}", crate::profile::generate_client_id());
                        f.correlation_hex = false;
                    }
                }
                ui.checkbox(&mut f.utf8, "UTF-8 payload (payload format indicator 1)");
                props_edit::optional_u32(ui, "Message expiry interval", &mut f.expiry, 60, " s");
                egui::Grid::new("publish v5 grid")
                    .num_columns(2)
                    .show(ui, |ui| {
                        let l = ui.label("Content type");
                        ui.add(
                            TextEdit::singleline(&mut f.content_type).hint_text("application/json"),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                        let l = ui.label("Response topic");
                        ui.add(TextEdit::singleline(&mut f.response_topic))
                            .labelled_by(l.id);
                        ui.end_row();
                        let l = ui.label("Correlation data");
                        ui.horizontal(|ui| {
                            ui.add(TextEdit::singleline(&mut f.correlation).desired_width(160.0))
                                .labelled_by(l.id);
                            ui.checkbox(&mut f.correlation_hex, "hex");
                        });
                        ui.end_row();
                    });
                props_edit::user_properties(ui, "user property", &mut f.user);
            });
    }

    fn load(&mut self, request: &PublishRequest) {
        if let Some(p) = request.props.as_deref() {
            self.v5_form = V5Form {
                utf8: p.payload_format_indicator == Some(1),
                expiry: p.message_expiry_interval,
                content_type: p.content_type.clone().unwrap_or_default(),
                response_topic: p.response_topic.clone().unwrap_or_default(),
                correlation: p
                    .correlation_data
                    .as_ref()
                    .map(|d| match std::str::from_utf8(d) {
                        Ok(t) => t.to_string(),
                        Err(_) => to_hex(d),
                    })
                    .unwrap_or_default(),
                correlation_hex: p
                    .correlation_data
                    .as_ref()
                    .is_some_and(|d| std::str::from_utf8(d).is_err()),
                user: p.user_property.clone(),
                request: request.request,
            };
        }
        self.topic = request.topic.clone();
        self.qos = request.qos;
        self.retain = request.retain;
        match std::str::from_utf8(&request.payload) {
            Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => {
                self.payload = text.to_string();
                self.format = if crate::model::payload::detect(&request.payload)
                    == crate::model::payload::PayloadKind::Json
                {
                    PayloadFormat::Json
                } else {
                    PayloadFormat::Text
                };
            }
            _ => {
                self.payload = to_hex(&request.payload);
                self.format = PayloadFormat::Hex;
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) -> Option<PublishRequest> {
        let mut out = None;
        let error_color = ui.visuals().error_fg_color;

        ui.horizontal(|ui| {
            ui.heading("Publish a message");
            if !self.examples.is_empty() {
                let mut chosen = None;
                ui.menu_button("Examples", |ui| {
                    for (i, (label, _)) in self.examples.iter().enumerate() {
                        if ui.button(label).clicked() {
                            chosen = Some(i);
                            ui.close();
                        }
                    }
                });
                if let Some(example) = chosen.and_then(|i| self.examples.get(i)).cloned() {
                    self.load(&example.1);
                }
            }
        });

        let label = ui.label("Topic");
        ui.add(
            TextEdit::singleline(&mut self.topic)
                .hint_text("e.g. home/livingroom/lamp/set")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        let topic_error = validate_topic_name(&self.topic).err();
        if self.topic.is_empty() {
            // Not a mistake yet: nothing was typed.
            ui.weak("enter a topic to publish to");
        } else if let Some(error) = &topic_error {
            ui.colored_label(error_color, error);
        }

        ui.horizontal(|ui| {
            ui.label("Payload format:");
            for format in PayloadFormat::ALL {
                ui.selectable_value(&mut self.format, format, format.label());
            }
        });
        let label = ui.label("Payload");
        let hint = match self.format {
            PayloadFormat::Text => "text sent as UTF-8",
            PayloadFormat::Json => r#"{"state": "on"}"#,
            PayloadFormat::Hex => "de ad be ef",
        };
        ui.add(
            TextEdit::multiline(&mut self.payload)
                .hint_text(hint)
                .code_editor()
                .desired_rows(4)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        let payload = encode_payload(&self.payload, self.format);
        match &payload {
            Err(error) => {
                ui.colored_label(error_color, error);
            }
            Ok(bytes) => {
                ui.weak(format!("{} bytes", bytes.len()));
            }
        }

        ui.horizontal(|ui| {
            ui.label("QoS");
            for qos in Qos::ALL {
                ui.selectable_value(&mut self.qos, qos, qos.to_string());
            }
            ui.checkbox(&mut self.retain, "Retain");
        });
        let props_error = if self.v5 {
            self.v5_ui(ui);
            self.properties().err()
        } else {
            None
        };
        if let Some(e) = &props_error {
            ui.colored_label(error_color, e);
        }
        let ready = topic_error.is_none() && payload.is_ok() && props_error.is_none();
        let publish = ui.add_enabled(ready, egui::Button::new("Publish"));
        if publish.clicked()
            && let Ok(request) = self.request()
        {
            out = Some(request);
        }

        if !self.recent.is_empty() {
            ui.separator();
            ui.label(RichText::new("Recent publishes").strong());
            if let Some(request) = self.recent_ui(ui) {
                out = Some(request);
            }
        }
        out
    }

    fn recent_ui(&self, ui: &mut egui::Ui) -> Option<PublishRequest> {
        let mut out = None;
        let error_color = ui.visuals().error_fg_color;
        let ok_color = if ui.visuals().dark_mode {
            Color32::from_rgb(120, 200, 120)
        } else {
            Color32::from_rgb(30, 120, 30)
        };
        egui::ScrollArea::vertical()
            .id_salt("recent publishes")
            .max_height(200.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for row in &self.recent {
                    ui.horizontal(|ui| {
                        if ui.small_button("Re-send").clicked() {
                            out = Some(row.request.clone());
                        }
                        let retain = if row.request.retain { " · retain" } else { "" };
                        let kind = if row.request.request { "request " } else { "" };
                        let correlation = row
                            .request
                            .props
                            .as_ref()
                            .and_then(|p| p.correlation_data.as_ref())
                            .map(|d| format!(" · corr. {}", bytes_in_words(d)))
                            .unwrap_or_default();
                        ui.label(format!(
                            "{kind}{} · {}{} · {} B{correlation}",
                            row.request.topic,
                            row.request.qos,
                            retain,
                            row.request.payload.len()
                        ));
                        let state = RichText::new(row.state.text());
                        match row.state {
                            SendState::Failed(_) => ui.label(state.color(error_color)),
                            SendState::Sending => ui.label(state.weak()),
                            SendState::Sent
                            | SendState::Acknowledged
                            | SendState::AcknowledgedWith(_)
                            | SendState::Replied { .. } => ui.label(state.color(ok_color)),
                        };
                    });
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::vec2;
    use egui_kittest::Harness;
    use egui_kittest::kittest::{NodeT as _, Queryable as _};

    /// A panel in a harness that keeps what `ui` returned.
    struct Fixture {
        panel: PublishPanel,
        returned: Vec<PublishRequest>,
    }

    fn harness(panel: PublishPanel) -> Harness<'static, Fixture> {
        let mut harness = Harness::builder()
            .with_size(vec2(520.0, 560.0))
            .build_ui_state(
                |ui, f: &mut Fixture| {
                    if let Some(request) = f.panel.ui(ui) {
                        f.returned.push(request);
                    }
                },
                Fixture {
                    panel,
                    returned: Vec::new(),
                },
            );
        harness.run();
        harness
    }

    fn type_into(harness: &mut Harness<'_, Fixture>, label: &str, text: &str) {
        harness.get_by_label(label).focus();
        harness.run();
        harness.get_by_label(label).type_text(text);
        harness.run();
    }

    fn click(harness: &mut Harness<'_, Fixture>, label: &str) {
        harness.get_by_label(label).click();
        harness.run();
    }

    #[test]
    fn wildcard_topic_shows_error_and_disables_publish() {
        let mut h = harness(PublishPanel::new());
        type_into(&mut h, "Topic", "home/#");
        h.get_by_label_contains("wildcards '+' and '#' are only allowed in subscriptions");
        assert!(h.get_by_label("Publish").accesskit_node().is_disabled());
        click(&mut h, "Publish");
        assert!(h.state().returned.is_empty());
    }

    #[test]
    fn empty_topic_disables_publish() {
        let h = harness(PublishPanel::new());
        assert!(h.get_by_label("Publish").accesskit_node().is_disabled());
        assert!(
            h.query_by_label("enter a topic to publish to").is_some(),
            "an untouched field is a hint, not an error"
        );
    }

    #[test]
    fn text_payload_with_qos2_is_published_as_exactly_once() {
        let mut h = harness(PublishPanel::new());
        type_into(&mut h, "Topic", "home/lamp/set");
        type_into(&mut h, "Payload", "on");
        click(&mut h, "QoS 2");
        click(&mut h, "Retain");
        assert!(!h.get_by_label("Publish").accesskit_node().is_disabled());
        click(&mut h, "Publish");
        assert_eq!(
            h.state().returned,
            [PublishRequest::new(
                "home/lamp/set",
                b"on".to_vec(),
                Qos::ExactlyOnce,
                true,
            )]
        );
    }

    #[test]
    fn invalid_json_shows_line_and_column_and_blocks_publish() {
        let mut h = harness(PublishPanel::new());
        type_into(&mut h, "Topic", "a/b");
        click(&mut h, "JSON");
        type_into(&mut h, "Payload", "{\"on\" true}");
        h.get_by_label_contains("invalid JSON at line 1, column 7: expected `:`");
        assert!(h.get_by_label("Publish").accesskit_node().is_disabled());
    }

    #[test]
    fn hex_payload_is_parsed_with_spaces() {
        let mut h = harness(PublishPanel::new());
        type_into(&mut h, "Topic", "raw");
        click(&mut h, "Hex");
        type_into(&mut h, "Payload", "de ad be ef");
        h.get_by_label("4 bytes");
        click(&mut h, "Publish");
        assert_eq!(h.state().returned[0].payload, [0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn hex_errors_name_the_problem() {
        assert_eq!(
            parse_hex("de a"),
            Err("odd number of hex digits (3): each byte needs two".into())
        );
        assert_eq!(
            parse_hex("de zz"),
            Err("invalid hex digit 'z' at character 4".into())
        );
        assert_eq!(parse_hex(" 00ff \n10 "), Ok(vec![0x00, 0xff, 0x10]));
        let mut h = harness(PublishPanel::new());
        type_into(&mut h, "Topic", "raw");
        click(&mut h, "Hex");
        type_into(&mut h, "Payload", "abc");
        h.get_by_label_contains("odd number of hex digits (3)");
        assert!(h.get_by_label("Publish").accesskit_node().is_disabled());
    }

    fn request() -> PublishRequest {
        PublishRequest::new("dev/1/cmd", b"reboot".to_vec(), Qos::AtLeastOnce, false)
    }

    #[test]
    fn outcomes_update_the_recent_list() {
        let mut panel = PublishPanel::new();
        panel.record_sent(1, &request());
        panel.record_sent(
            2,
            &PublishRequest {
                topic: "dev/2/cmd".into(),
                qos: Qos::AtMostOnce,
                ..request()
            },
        );
        panel.record_sent(
            3,
            &PublishRequest {
                topic: "dev/3/cmd".into(),
                ..request()
            },
        );
        let mut h = harness(panel);
        h.get_by_label("Recent publishes");
        h.get_by_label("dev/1/cmd · QoS 1 · 6 B");
        assert_eq!(h.query_all_by_label("sending...").count(), 3);
        h.state_mut()
            .panel
            .record_outcome(1, &PublishOutcome::Acknowledged);
        h.state_mut().panel.record_outcome(2, &PublishOutcome::Sent);
        h.state_mut()
            .panel
            .record_outcome(3, &PublishOutcome::Failed("not connected".into()));
        h.run();
        h.get_by_label("acknowledged");
        h.get_by_label("sent");
        h.get_by_label("failed: not connected");
        assert!(h.query_by_label("sending...").is_none());
    }

    #[test]
    fn resend_returns_the_same_request() {
        let mut panel = PublishPanel::new();
        panel.record_sent(7, &request());
        panel.record_outcome(7, &PublishOutcome::Acknowledged);
        let mut h = harness(panel);
        click(&mut h, "Re-send");
        assert_eq!(h.state().returned, [request()]);
    }

    #[test]
    fn set_topic_prefills_and_examples_fill_the_form() {
        let mut panel = PublishPanel::new();
        panel.set_topic("sensors/t1");
        panel.add_example(
            "Binary frame",
            PublishRequest::new("raw/frame", vec![0, 1, 0xfe], Qos::AtLeastOnce, true),
        );
        let mut h = harness(panel);
        assert_eq!(
            h.get_by_label("Topic").value().as_deref(),
            Some("sensors/t1")
        );
        click(&mut h, "Examples");
        click(&mut h, "Binary frame");
        assert_eq!(h.state().panel.topic(), "raw/frame");
        click(&mut h, "Publish");
        assert_eq!(
            h.state().returned[0],
            PublishRequest::new("raw/frame", vec![0, 1, 0xfe], Qos::AtLeastOnce, true,)
        );
    }

    #[test]
    fn publish_panel_snapshot() {
        let mut panel = PublishPanel::new();
        panel.set_topic("home/livingroom/lamp/set");
        panel.payload = r#"{"state": "on", "brightness": 80}"#.into();
        panel.format = PayloadFormat::Json;
        panel.qos = Qos::AtLeastOnce;
        panel.record_sent(1, &request());
        panel.record_outcome(1, &PublishOutcome::Acknowledged);
        panel.record_sent(
            2,
            &PublishRequest {
                topic: "dev/2/cmd".into(),
                qos: Qos::AtMostOnce,
                ..request()
            },
        );
        panel.record_outcome(2, &PublishOutcome::Failed("not connected".into()));
        let mut h = harness(panel);
        h.run();
        h.snapshot("publish_panel");
    }
}
