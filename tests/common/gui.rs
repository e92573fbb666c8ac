//! Driving the real `App` in egui_kittest like a user: by the labels on
//! screen, with file dialogs answered by the test.

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use mqscope::app::{App, FilePicker};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// File dialogs are never answered.
pub struct NoPicker;

impl FilePicker for NoPicker {
    fn pick_file(&mut self, _title: &str) -> Option<PathBuf> {
        None
    }
    fn save_file(&mut self, _title: &str, _default_name: &str) -> Option<PathBuf> {
        None
    }
}

/// Answers file dialogs with paths the test queued, and records the titles.
#[derive(Clone, Default)]
pub struct FakePicker {
    pub answers: Rc<RefCell<VecDeque<PathBuf>>>,
    pub asked: Rc<RefCell<Vec<String>>>,
}

impl FilePicker for FakePicker {
    fn pick_file(&mut self, title: &str) -> Option<PathBuf> {
        self.asked.borrow_mut().push(title.to_string());
        self.answers.borrow_mut().pop_front()
    }

    fn save_file(&mut self, title: &str, _default_name: &str) -> Option<PathBuf> {
        self.asked.borrow_mut().push(title.to_string());
        self.answers.borrow_mut().pop_front()
    }
}

/// Replaces the text of the field labelled `label`, as a user would: focus,
/// select all, type.
pub fn set_text(harness: &mut Harness<'_, App>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run_ok();
    harness.key_combination_modifiers(Modifiers::COMMAND, &[Key::A]);
    harness.run_ok();
    harness.get_by_label(label).type_text(text);
    harness.run_ok();
}

/// Clicks the widget labelled `label`. The worker keeps waking the window
/// while traffic flows, so the frames after it run without waiting to settle.
pub fn click(harness: &mut Harness<'_, App>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_ok();
}

pub fn has_label(harness: &Harness<'_, App>, label: &str) -> bool {
    harness.query_all_by_label(label).next().is_some()
}

pub fn has_label_containing(harness: &Harness<'_, App>, part: &str) -> bool {
    harness.query_all_by_label_contains(part).next().is_some()
}

/// Steps the app (the broker and the worker run in real time) until `done`
/// holds; fails with the connection status after `limit`.
pub fn step_until(
    harness: &mut Harness<'_, App>,
    what: &str,
    limit: Duration,
    done: impl Fn(&Harness<'_, App>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; status: {:?}",
            harness.state().selected_status()
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
}

/// A few frames, for apps with live traffic (`run()` would never settle).
pub fn steps(harness: &mut Harness<'_, App>, n: usize) {
    for _ in 0..n {
        harness.step();
    }
}

/// The real window (1280×800) on the profiles saved in `config_dir`, no
/// sandbox started, file dialogs never answered.
pub fn app(config_dir: &std::path::Path) -> Harness<'static, App> {
    app_with(config_dir, NoPicker)
}

/// Like [`app`], with file dialogs answered by `picker`.
pub fn app_with(
    config_dir: &std::path::Path,
    picker: impl FilePicker + 'static,
) -> Harness<'static, App> {
    let dir = config_dir.to_path_buf();
    let mut picker = Some(picker);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            let picker: Box<dyn FilePicker> = match picker.take() {
                Some(p) => Box::new(p),
                None => Box::new(NoPicker),
            };
            App::with_parts(
                cc.egui_ctx.clone(),
                mqscope::profile::ProfileStore::at(dir.clone()),
                picker,
            )
        });
    harness.run_ok();
    harness
}

/// The window with the embedded sandbox started with `config` (its own
/// ports, certificates, devices), as a first launch shows it.
pub fn sandbox_app(
    config_dir: &std::path::Path,
    config: mqscope::sandbox::SandboxConfig,
    size: egui::Vec2,
) -> Harness<'static, App> {
    let dir = config_dir.to_path_buf();
    let mut config = Some(config);
    let mut harness = Harness::builder().with_size(size).build_eframe(move |cc| {
        App::with_sandbox(
            cc.egui_ctx.clone(),
            mqscope::profile::ProfileStore::at(dir.clone()),
            Box::new(NoPicker),
            config.take().unwrap_or_default(),
        )
    });
    steps(&mut harness, 3);
    harness
}

/// Clicks `label` in a window with live traffic: a few frames after it
/// (`run()` would never settle).
pub fn click_live(harness: &mut Harness<'_, App>, label: &str) {
    harness.get_by_label(label).click();
    steps(harness, 3);
}

/// Whether the connection shown is connected.
pub fn shown_connected(harness: &Harness<'_, App>) -> bool {
    matches!(
        harness.state().selected_status(),
        Some(mqscope::mqtt::ConnStatus::Connected { .. })
    )
}
