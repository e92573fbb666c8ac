//! Widgets for captures, taking plain arguments (no App): the record button
//! with the file size and message count growing, the replay form, and the
//! replay's progress with pause / resume / stop. Each returns what the user
//! asked for; the caller sends the worker command or calls the [`Replay`].
//!
//! [`Replay`]: crate::capture::replay::Replay

use crate::capture::record::RecordingStatus;
use crate::capture::replay::{ReplayOptions, ReplayProgress, Speed, TopicMap};
use crate::model::protocol::Qos;
use egui::{RichText, TextEdit};

/// What the record widget asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordAction {
    /// Pick a file and send `Command::Record`.
    Start,
    /// Send `Command::StopRecording`.
    Stop,
}

/// The record button of a connection; beside it, while recording, the
/// messages and bytes written so far, and any write error in red.
/// `status` is the connection's current (or last) recording, if any.
pub fn record_ui(
    ui: &mut egui::Ui,
    connected: bool,
    status: Option<&RecordingStatus>,
) -> Option<RecordAction> {
    let mut action = None;
    let recording = status.is_some_and(|s| s.is_active());
    ui.horizontal(|ui| {
        if recording {
            if ui
                .button("⏹ Stop recording")
                .on_hover_text("Close the capture file")
                .clicked()
            {
                action = Some(RecordAction::Stop);
            }
        } else if ui
            .add_enabled(connected, egui::Button::new("⏺ Record…"))
            .on_hover_text("Record every packet and message of this connection to a capture file")
            .on_disabled_hover_text("Connect first")
            .clicked()
        {
            action = Some(RecordAction::Start);
        }
        if let Some(s) = status {
            let text = if s.is_active() {
                format!("⏺ REC {}", s.summary())
            } else {
                format!("Recorded {}", s.summary())
            };
            let color = if s.is_active() {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().weak_text_color()
            };
            ui.label(RichText::new(text).color(color));
            if let Some(e) = s.error() {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
    });
    action
}

/// The replay dialog's fields, kept between frames.
#[derive(Clone, Debug)]
pub struct ReplayForm {
    pub speed: String,
    /// One `FROM=TO` per line.
    pub maps: String,
    /// Topic filters, comma or space separated (all topics when empty).
    pub topics: String,
    pub from_secs: String,
    pub to_secs: String,
    pub qos: Option<Qos>,
    pub retain: Option<bool>,
    pub properties: bool,
    pub error: Option<String>,
}

impl Default for ReplayForm {
    fn default() -> Self {
        ReplayForm {
            speed: "1".into(),
            maps: String::new(),
            topics: String::new(),
            from_secs: String::new(),
            to_secs: String::new(),
            qos: None,
            retain: None,
            properties: true,
            error: None,
        }
    }
}

fn seconds(text: &str, what: &str) -> Result<Option<f64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(format!("{what}: '{t}' is not a number of seconds")),
    }
}

impl ReplayForm {
    /// The options the fields describe, or what is wrong with them.
    pub fn options(&self) -> Result<ReplayOptions, String> {
        let speed: Speed = self.speed.parse()?;
        let maps = self
            .maps
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::parse::<TopicMap>)
            .collect::<Result<Vec<_>, _>>()?;
        let topics: Vec<String> = self
            .topics
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        for t in &topics {
            crate::model::topic::validate_topic_filter(t)
                .map_err(|why| format!("topic filter '{t}': {why}"))?;
        }
        let from_secs = seconds(&self.from_secs, "From")?;
        let to_secs = seconds(&self.to_secs, "To")?;
        if let (Some(f), Some(t)) = (from_secs, to_secs)
            && t <= f
        {
            return Err(format!("To ({t} s) must be after From ({f} s)"));
        }
        Ok(ReplayOptions {
            speed,
            from_secs,
            to_secs,
            topics,
            maps,
            qos: self.qos,
            retain: self.retain,
            properties: self.properties,
            ..ReplayOptions::default()
        })
    }

    /// The form; returns the options when the user starts a valid replay.
    /// `selected` counts the messages the current fields select (the caller
    /// computes it with `Replay::select`), shown on the button.
    pub fn ui(&mut self, ui: &mut egui::Ui, selected: Option<usize>) -> Option<ReplayOptions> {
        let mut start = None;
        egui::Grid::new("replay_form")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Speed");
                ui.add(
                    TextEdit::singleline(&mut self.speed)
                        .hint_text("1, 10, 0.5 or max")
                        .desired_width(80.0),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Topic map");
                ui.add(
                    TextEdit::multiline(&mut self.maps)
                        .hint_text("plant/#=test/plant/#")
                        .desired_rows(2),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Only topics");
                ui.add(
                    TextEdit::singleline(&mut self.topics)
                        .hint_text("all; or filters, e.g. plant/+/temp"),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("From (s)");
                ui.add(
                    TextEdit::singleline(&mut self.from_secs)
                        .hint_text("start")
                        .desired_width(80.0),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("To (s)");
                ui.add(
                    TextEdit::singleline(&mut self.to_secs)
                        .hint_text("end")
                        .desired_width(80.0),
                )
                .labelled_by(l.id);
                ui.end_row();
                ui.label("QoS");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.qos, None, "as recorded");
                    for q in Qos::ALL {
                        ui.radio_value(&mut self.qos, Some(q), q.as_u8().to_string());
                    }
                });
                ui.end_row();
                ui.label("Retain");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.retain, None, "as recorded");
                    ui.radio_value(&mut self.retain, Some(true), "on");
                    ui.radio_value(&mut self.retain, Some(false), "off");
                });
                ui.end_row();
            });
        ui.checkbox(&mut self.properties, "Send the recorded MQTT 5 properties");
        let label = match selected {
            Some(n) => format!("▶ Replay {n} messages"),
            None => "▶ Replay".into(),
        };
        if ui.button(label).clicked() {
            match self.options() {
                Ok(o) => {
                    self.error = None;
                    start = Some(o);
                }
                Err(e) => self.error = Some(e),
            }
        }
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        start
    }
}

/// What the progress widget asks of the replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayAction {
    Pause,
    Resume,
    Stop,
}

/// A replay's progress bar, counts and failures, with pause/resume/stop.
pub fn replay_progress_ui(ui: &mut egui::Ui, p: &ReplayProgress) -> Option<ReplayAction> {
    let mut action = None;
    let fraction = if p.total == 0 {
        1.0
    } else {
        (p.done + p.failed) as f32 / p.total as f32
    };
    ui.add(egui::ProgressBar::new(fraction).text(format!(
        "{} of {} published, {} failed{}",
        p.done,
        p.total,
        p.failed,
        if p.finished {
            if p.stopped {
                " — stopped"
            } else {
                " — done"
            }
        } else if p.paused {
            " — paused"
        } else {
            ""
        }
    )));
    if !p.finished {
        ui.horizontal(|ui| {
            if p.paused {
                if ui.button("▶ Resume").clicked() {
                    action = Some(ReplayAction::Resume);
                }
            } else if ui.button("⏸ Pause").clicked() {
                action = Some(ReplayAction::Pause);
            }
            if !p.stopped && ui.button("⏹ Stop").clicked() {
                action = Some(ReplayAction::Stop);
            }
        });
    }
    if let Some(e) = &p.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    for f in &p.failures {
        ui.colored_label(ui.visuals().error_fg_color, format!("Failed: {f}"));
    }
    if p.failed as usize > p.failures.len() {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!(
                "… and {} more failures",
                p.failed as usize - p.failures.len()
            ),
        );
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;

    #[test]
    fn replay_form_turns_its_fields_into_options() {
        let form = ReplayForm {
            speed: "max".into(),
            maps: "plant/#=test/plant/#\n\n".into(),
            topics: "plant/+/temp, plant/raw".into(),
            from_secs: "2.5".into(),
            qos: Some(Qos::AtLeastOnce),
            retain: Some(false),
            ..ReplayForm::default()
        };
        let o = form.options().expect("valid");
        assert_eq!(o.speed, Speed::Max);
        assert_eq!(o.maps.len(), 1);
        assert_eq!(o.topics, vec!["plant/+/temp", "plant/raw"]);
        assert_eq!((o.from_secs, o.to_secs), (Some(2.5), None));
        assert_eq!((o.qos, o.retain), (Some(Qos::AtLeastOnce), Some(false)));
    }

    #[test]
    fn replay_form_says_what_is_wrong() {
        let bad = |f: ReplayForm| f.options().expect_err("invalid");
        assert!(
            bad(ReplayForm {
                speed: "fast".into(),
                ..Default::default()
            })
            .contains("speed")
        );
        assert!(
            bad(ReplayForm {
                maps: "plant/#=x".into(),
                ..Default::default()
            })
            .contains("wildcards")
        );
        assert!(
            bad(ReplayForm {
                topics: "a/#/b".into(),
                ..Default::default()
            })
            .contains("a/#/b")
        );
        assert!(
            bad(ReplayForm {
                from_secs: "5".into(),
                to_secs: "1".into(),
                ..Default::default()
            })
            .contains("after")
        );
    }

    #[test]
    fn an_invalid_replay_is_not_started_and_the_error_is_shown() {
        let mut form = ReplayForm {
            speed: "0".into(),
            ..ReplayForm::default()
        };
        let mut started = None;
        let mut harness = Harness::new_ui(|ui| {
            if let Some(o) = form.ui(ui, Some(12)) {
                started = Some(o);
            }
        });
        harness.get_by_label("▶ Replay 12 messages").click();
        harness.run();
        harness.get_by_label_contains("is not a positive number");
        drop(harness);
        assert!(started.is_none());
    }

    #[test]
    fn record_button_starts_and_the_status_shows_counts_and_errors() {
        let status = RecordingStatus::new();
        let mut asked = None;
        let mut harness = Harness::new_ui(|ui| {
            if let Some(a) = record_ui(ui, true, None) {
                asked = Some(a);
            }
        });
        harness.get_by_label("⏺ Record…").click();
        harness.run();
        drop(harness);
        assert_eq!(asked, Some(RecordAction::Start));

        status.failed_to_start("cannot record to /x: denied".into());
        let harness = Harness::new_ui(|ui| {
            record_ui(ui, true, Some(&status));
        });
        harness.get_by_label("cannot record to /x: denied");
        harness.get_by_label_contains("Recorded 0 messages");
    }

    #[test]
    fn replay_progress_offers_pause_then_resume_and_stop() {
        let mut p = ReplayProgress {
            total: 10,
            sent: 4,
            done: 3,
            failed: 1,
            failures: vec!["PUBACK 0x87 Not authorized".into()],
            ..ReplayProgress::default()
        };
        let mut asked = None;
        let mut harness = Harness::new_ui(|ui| {
            if let Some(a) = replay_progress_ui(ui, &p) {
                asked = Some(a);
            }
        });
        harness.get_by_label("Failed: PUBACK 0x87 Not authorized");
        harness.get_by_label("⏸ Pause").click();
        harness.run();
        drop(harness);
        assert_eq!(asked, Some(ReplayAction::Pause));
        p.paused = true;
        let mut asked = None;
        let mut harness = Harness::new_ui(|ui| {
            if let Some(a) = replay_progress_ui(ui, &p) {
                asked = Some(a);
            }
        });
        harness.get_by_label("▶ Resume").click();
        harness.run();
        drop(harness);
        assert_eq!(asked, Some(ReplayAction::Resume));
    }
}
