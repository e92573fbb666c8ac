//! The native window: connection bar, profile list and profile editor.
//!
//! `App` owns the worker, the profiles and the per-connection status. The
//! panels (one file each) read that state and queue [`Action`]s; the actions
//! run after the frame, so no view changes the profile list mid-layout.

mod connection_bar;
mod connection_log;
mod file_picker;
mod profile_editor;
pub mod timeline;

pub use connection_bar::status_text;
pub use file_picker::{FilePicker, RfdPicker};

use crate::mqtt::{Command, ConnStatus, ConnectionId, Event, EventKind, Worker};
use crate::profile::{
    Field, FieldError, Profile, ProfileStore, SaveOutcome, generate_client_id, name_errors,
    unique_name, validate_port,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Most events taken from the worker per frame, so a flood of messages
/// cannot freeze the window; the rest waits for the next frame.
const DRAIN_BUDGET: usize = 10_000;

/// Form edits are written this long after the last keystroke.
const SAVE_DEBOUNCE: Duration = Duration::from_millis(800);

/// Lines of the connection log kept per connection.
const LOG_LINES: usize = 200;

/// Starts the window. `main` calls this when no subcommand is given.
pub fn run() -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("mqscope")
            .with_app_id("mqscope")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([760.0, 480.0]),
        ..Default::default()
    };
    eframe::run_native(
        "mqscope",
        options,
        Box::new(|cc| Ok(Box::new(App::new(cc)))),
    )
}

/// What is remembered between runs that is not a profile.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct State {
    /// The profile selected when the app was closed.
    last_profile: Option<String>,
}

/// A profile as the editor holds it.
pub(crate) struct Entry {
    pub(crate) profile: Profile,
    /// The port as typed: "99999" must stay visible with its error, and a
    /// `u16` cannot hold it.
    pub(crate) port_text: String,
    /// Problems of this profile in form order; recomputed on every edit (not
    /// every frame: validation reads the TLS files).
    pub(crate) errors: Vec<FieldError>,
    /// The connection opened from this profile, once it has been connected.
    pub(crate) conn: Option<ConnectionId>,
}

impl Entry {
    fn new(profile: Profile) -> Entry {
        Entry {
            port_text: profile.port.to_string(),
            profile,
            errors: Vec::new(),
            conn: None,
        }
    }
}

/// One line of a connection's log.
pub(crate) struct LogLine {
    pub(crate) at: SystemTime,
    pub(crate) text: String,
    pub(crate) is_error: bool,
}

/// What the app knows about one connection.
pub(crate) struct Connection {
    pub(crate) status: ConnStatus,
    /// When `status` arrived: the reconnect countdown runs from here.
    pub(crate) status_at: Instant,
    pub(crate) log: VecDeque<LogLine>,
    pub(crate) messages: u64,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            status: ConnStatus::Disconnected { reason: None },
            status_at: Instant::now(),
            log: VecDeque::new(),
            messages: 0,
        }
    }

    fn log(&mut self, text: String, is_error: bool) {
        if self.log.len() >= LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine {
            at: SystemTime::now(),
            text,
            is_error,
        });
    }

    /// Connecting, connected or waiting to retry: the user can disconnect.
    pub(crate) fn is_active(&self) -> bool {
        !matches!(self.status, ConnStatus::Disconnected { .. })
    }
}

/// A message shown above the form until dismissed.
pub(crate) struct Notice {
    pub(crate) text: String,
    pub(crate) is_error: bool,
}

/// A path field of the TLS section that "Browse…" fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathField {
    CaFile,
    ClientCert,
    ClientKey,
}

/// What the views ask for; applied after the frame by [`App::apply`].
#[derive(Debug)]
pub(crate) enum Action {
    Select(usize),
    Connect,
    Disconnect,
    Add,
    Duplicate,
    StartRename,
    FinishRename {
        commit: bool,
    },
    RequestDelete,
    ConfirmDelete,
    CancelDelete,
    Import,
    Export,
    /// A form field of the selected profile changed.
    Edited,
    Browse(PathField),
    GenerateClientId,
    DismissNotice,
}

/// The mqscope window.
pub struct App {
    state: State,
    worker: Worker,
    /// `None` when no config directory could be found: nothing is saved,
    /// and `store_problem` says so.
    store: Option<ProfileStore>,
    picker: Box<dyn FilePicker>,
    entries: Vec<Entry>,
    /// Index into `entries`; may point past the end only when it is empty.
    selected: usize,
    connections: HashMap<ConnectionId, Connection>,
    next_conn: ConnectionId,
    /// Why the profile file could not be loaded (it is kept untouched).
    store_problem: Option<String>,
    /// Where changes go since the profile file could not be loaded.
    recovered_to: Option<PathBuf>,
    notice: Option<Notice>,
    /// Why the last Connect was refused; cleared by the next edit.
    bar_error: Option<String>,
    /// Time of the last unsaved edit.
    dirty_since: Option<Instant>,
    /// The name being typed while the selected profile is renamed in the list.
    renaming: Option<String>,
    /// Set when renaming starts: the name field takes the keyboard focus.
    focus_rename: bool,
    /// The profile index waiting for the user to confirm its deletion.
    confirm_delete: Option<usize>,
    actions: Vec<Action>,
}

impl App {
    /// The real app: profiles from the user's config directory, native file
    /// dialogs, UI state from eframe's storage.
    pub fn new(cc: &eframe::CreationContext<'_>) -> App {
        let state: State = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let (store, problem) = match ProfileStore::open_default() {
            Ok(store) => (Some(store), None),
            Err(e) => (None, Some(format!("{e}. Profiles will not be saved."))),
        };
        App::build(
            cc.egui_ctx.clone(),
            store,
            problem,
            Box::new(RfdPicker),
            state,
        )
    }

    /// The app with a given store and file picker (tests, other front ends).
    pub fn with_parts(ctx: egui::Context, store: ProfileStore, picker: Box<dyn FilePicker>) -> App {
        App::build(ctx, Some(store), None, picker, State::default())
    }

    fn build(
        ctx: egui::Context,
        mut store: Option<ProfileStore>,
        mut store_problem: Option<String>,
        picker: Box<dyn FilePicker>,
        state: State,
    ) -> App {
        ctx.set_theme(egui::Theme::Dark);
        let wake_ctx = ctx.clone();
        let worker = Worker::spawn(Some(Arc::new(move || wake_ctx.request_repaint())));

        let mut profiles = Vec::new();
        let mut notice = None;
        if let Some(store) = store.as_mut() {
            match store.load() {
                Ok(loaded) => profiles = loaded,
                Err(e) => {
                    store_problem = Some(format!(
                        "{e}. The file is kept as it is; changes are saved to a separate \
                         recovery file until you repair it."
                    ));
                }
            }
            if let Some(problem) = store.password_problem() {
                notice = Some(Notice {
                    text: format!("Saved passwords could not be loaded: {problem}"),
                    is_error: true,
                });
            }
        }
        // A first run starts with a profile for a local broker, not an empty
        // form; it is written only once the user changes something.
        if profiles.is_empty() {
            profiles.push(Profile::default());
        }
        let selected = state
            .last_profile
            .as_ref()
            .and_then(|name| profiles.iter().position(|p| &p.name == name))
            .unwrap_or(0);

        let mut app = App {
            state,
            worker,
            store,
            picker,
            entries: profiles.into_iter().map(Entry::new).collect(),
            selected,
            connections: HashMap::new(),
            next_conn: 0,
            store_problem,
            recovered_to: None,
            notice,
            bar_error: None,
            dirty_since: None,
            renaming: None,
            focus_rename: false,
            confirm_delete: None,
            actions: Vec::new(),
        };
        app.revalidate();
        app
    }

    /// The profiles as currently edited (saved or not).
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.entries.iter().map(|e| &e.profile)
    }

    /// The status of the selected profile's connection, if it was ever opened.
    pub fn selected_status(&self) -> Option<&ConnStatus> {
        self.current_connection().map(|c| &c.status)
    }

    pub(crate) fn current(&self) -> Option<&Entry> {
        self.entries.get(self.selected)
    }

    pub(crate) fn connection_of(&self, entry: &Entry) -> Option<&Connection> {
        entry.conn.and_then(|c| self.connections.get(&c))
    }

    fn current_connection(&self) -> Option<&Connection> {
        self.current().and_then(|e| self.connection_of(e))
    }

    fn apply_event(&mut self, event: Event) {
        let Some(conn) = self.connections.get_mut(&event.conn) else {
            if let EventKind::Error(text) = event.kind {
                // Not tied to a connection we know (e.g. the worker's runtime
                // failed to start): the user must still see it.
                self.notice = Some(Notice {
                    text,
                    is_error: true,
                });
            }
            return;
        };
        match event.kind {
            EventKind::Status(status) => {
                let is_error = matches!(
                    status,
                    ConnStatus::Reconnecting { .. } | ConnStatus::Disconnected { reason: Some(_) }
                );
                conn.log(status_text(&status, Duration::ZERO), is_error);
                conn.status = status;
                conn.status_at = Instant::now();
            }
            EventKind::Message(_) => conn.messages += 1,
            EventKind::Subscribed { filter, granted } => match granted {
                Some(qos) => conn.log(format!("Subscribed to {filter} ({qos} granted)"), false),
                None => conn.log(
                    format!("The broker refused the subscription to {filter}"),
                    true,
                ),
            },
            EventKind::Unsubscribed { filter } => {
                conn.log(format!("Unsubscribed from {filter}"), false)
            }
            EventKind::Error(text) => conn.log(text, true),
            // Publishing and the packet timeline have their own views.
            EventKind::Published { .. } | EventKind::Packet(_) => {}
        }
    }

    /// Recomputes every profile's problems: its own fields, the port as
    /// typed, and names used twice.
    fn revalidate(&mut self) {
        let profiles: Vec<Profile> = self.entries.iter().map(|e| e.profile.clone()).collect();
        let clashes = name_errors(&profiles);
        for (i, entry) in self.entries.iter_mut().enumerate() {
            let mut errors = entry.profile.validate();
            if let Err(message) = validate_port(&entry.port_text) {
                errors.retain(|e| e.field != Field::Port);
                errors.push(FieldError::new(Field::Port, message));
            }
            errors.extend(
                clashes
                    .iter()
                    .filter(|(j, _)| *j == i)
                    .map(|(_, e)| e.clone()),
            );
            // `Field` is declared in form order.
            errors.sort_by_key(|e| e.field as u8);
            entry.errors = errors;
        }
    }

    fn mark_dirty(&mut self) {
        self.dirty_since = Some(Instant::now());
    }

    fn save_if_due(&mut self, ctx: &egui::Context) {
        let Some(since) = self.dirty_since else {
            return;
        };
        let elapsed = since.elapsed();
        if elapsed >= SAVE_DEBOUNCE {
            self.save_now();
        } else {
            ctx.request_repaint_after(SAVE_DEBOUNCE - elapsed);
        }
    }

    /// Writes the profiles now (atomically, through the store).
    fn save_now(&mut self) {
        let Some(store) = self.store.as_mut() else {
            self.dirty_since = None;
            return;
        };
        let profiles: Vec<Profile> = self.entries.iter().map(|e| e.profile.clone()).collect();
        if !name_errors(&profiles).is_empty() {
            // The store refuses clashing names (passwords are keyed by name);
            // the Name field shows the error and the save waits for the fix.
            return;
        }
        self.dirty_since = None;
        match store.save(&profiles) {
            Ok(SaveOutcome::Saved) => {}
            Ok(SaveOutcome::Recovered(path)) => self.recovered_to = Some(path),
            Err(e) => {
                self.notice = Some(Notice {
                    text: format!("Could not save the profiles: {e}"),
                    is_error: true,
                });
            }
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Select(i) => {
                if i < self.entries.len() {
                    self.selected = i;
                    self.renaming = None;
                    self.bar_error = None;
                    self.state.last_profile = Some(self.entries[i].profile.name.clone());
                }
            }
            Action::Connect => self.connect(),
            Action::Disconnect => {
                if let Some(conn) = self.current().and_then(|e| e.conn) {
                    self.worker.send(Command::Disconnect { conn });
                }
            }
            Action::Add => {
                let profiles: Vec<Profile> =
                    self.entries.iter().map(|e| e.profile.clone()).collect();
                let profile = Profile {
                    name: unique_name(&profiles, "new profile"),
                    ..Profile::default()
                };
                self.add_entry(profile);
            }
            Action::Duplicate => {
                let Some(entry) = self.current() else {
                    return;
                };
                let profiles: Vec<Profile> =
                    self.entries.iter().map(|e| e.profile.clone()).collect();
                let profile = Profile {
                    name: unique_name(&profiles, &entry.profile.name),
                    // Two sessions with one client id kick each other off the broker.
                    client_id: generate_client_id(),
                    ..entry.profile.clone()
                };
                self.add_entry(profile);
            }
            Action::StartRename => {
                self.renaming = self.current().map(|e| e.profile.name.clone());
            }
            Action::FinishRename { commit } => {
                let Some(name) = self.renaming.take() else {
                    return;
                };
                if commit && let Some(entry) = self.entries.get_mut(self.selected) {
                    entry.profile.name = name.trim().to_string();
                    self.state.last_profile = Some(entry.profile.name.clone());
                    self.edited();
                }
            }
            Action::RequestDelete => {
                if self.selected < self.entries.len() {
                    self.confirm_delete = Some(self.selected);
                }
            }
            Action::CancelDelete => self.confirm_delete = None,
            Action::ConfirmDelete => {
                let Some(i) = self.confirm_delete.take() else {
                    return;
                };
                if i >= self.entries.len() {
                    return;
                }
                let entry = self.entries.remove(i);
                if let Some(conn) = entry.conn {
                    if self
                        .connections
                        .get(&conn)
                        .is_some_and(Connection::is_active)
                    {
                        self.worker.send(Command::Disconnect { conn });
                    }
                    self.connections.remove(&conn);
                }
                self.selected = self.selected.min(self.entries.len().saturating_sub(1));
                self.renaming = None;
                self.revalidate();
                self.save_now();
            }
            Action::Import => self.import(),
            Action::Export => self.export(),
            Action::Edited => self.edited(),
            Action::Browse(field) => self.browse(field),
            Action::GenerateClientId => {
                if let Some(entry) = self.entries.get_mut(self.selected) {
                    entry.profile.client_id = generate_client_id();
                    self.edited();
                }
            }
            Action::DismissNotice => self.notice = None,
        }
    }

    fn edited(&mut self) {
        self.bar_error = None;
        self.revalidate();
        self.mark_dirty();
    }

    fn add_entry(&mut self, profile: Profile) {
        self.state.last_profile = Some(profile.name.clone());
        self.entries.push(Entry::new(profile));
        self.selected = self.entries.len() - 1;
        self.renaming = None;
        self.bar_error = None;
        self.revalidate();
        self.save_now();
    }

    fn connect(&mut self) {
        self.revalidate();
        let Some(entry) = self.entries.get(self.selected) else {
            return;
        };
        if let Some(first) = entry.errors.first() {
            self.bar_error = Some(format!("Cannot connect: {}", first.message));
            return;
        }
        self.bar_error = None;
        if self.dirty_since.is_some() {
            self.save_now();
        }
        let Some(entry) = self.entries.get_mut(self.selected) else {
            return;
        };
        let conn = match entry.conn {
            Some(conn) => conn,
            None => {
                self.next_conn += 1;
                entry.conn = Some(self.next_conn);
                self.next_conn
            }
        };
        let profile = entry.profile.clone();
        self.state.last_profile = Some(profile.name.clone());
        let connection = self.connections.entry(conn).or_insert_with(Connection::new);
        connection.log(
            format!("Connecting to {}:{}", profile.host, profile.port),
            false,
        );
        connection.status = ConnStatus::Connecting;
        connection.status_at = Instant::now();
        self.worker.send(Command::Connect {
            conn,
            profile: Box::new(profile),
        });
    }

    fn import(&mut self) {
        let Some(path) = self.picker.pick_file("Import profile") else {
            return;
        };
        match ProfileStore::import(&path) {
            Ok(mut profile) => {
                let profiles: Vec<Profile> =
                    self.entries.iter().map(|e| e.profile.clone()).collect();
                profile.name = unique_name(&profiles, &profile.name);
                self.notice = Some(Notice {
                    text: format!("Imported '{}' from {}", profile.name, path.display()),
                    is_error: false,
                });
                self.add_entry(profile);
            }
            Err(e) => {
                self.notice = Some(Notice {
                    text: format!("Could not import the profile: {e}"),
                    is_error: true,
                });
            }
        }
    }

    fn export(&mut self) {
        let Some(entry) = self.current() else {
            return;
        };
        let profile = entry.profile.clone();
        let default_name = format!("{}.ron", profile.name);
        let Some(path) = self.picker.save_file("Export profile", &default_name) else {
            return;
        };
        self.notice = Some(match ProfileStore::export(&profile, &path) {
            Ok(()) => Notice {
                text: format!(
                    "Exported '{}' to {} (without its password)",
                    profile.name,
                    path.display()
                ),
                is_error: false,
            },
            Err(e) => Notice {
                text: format!("Could not export the profile: {e}"),
                is_error: true,
            },
        });
    }

    fn browse(&mut self, field: PathField) {
        let title = match field {
            PathField::CaFile => "Choose the CA certificate (PEM)",
            PathField::ClientCert => "Choose the client certificate (PEM)",
            PathField::ClientKey => "Choose the client private key (PEM)",
        };
        let Some(path) = self.picker.pick_file(title) else {
            return;
        };
        let Some(entry) = self.entries.get_mut(self.selected) else {
            return;
        };
        let tls = &mut entry.profile.tls;
        match field {
            PathField::CaFile => tls.ca_file = Some(path),
            PathField::ClientCert => tls.client_cert = Some(path),
            PathField::ClientKey => tls.client_key = Some(path),
        }
        self.edited();
    }

    fn any_reconnecting(&self) -> bool {
        self.connections
            .values()
            .any(|c| matches!(c.status, ConnStatus::Reconnecting { .. }))
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let events = self.worker.drain(DRAIN_BUDGET);
        if events.len() == DRAIN_BUDGET {
            // More may be waiting; the worker only wakes us once per drain.
            ctx.request_repaint();
        }
        for event in events {
            self.apply_event(event);
        }
        self.save_if_due(ctx);
        if self.any_reconnecting() {
            // Keeps the "next try in S s" countdown moving.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let bar_frame =
            egui::Frame::side_top_panel(ui.style()).inner_margin(egui::Margin::symmetric(10, 8));
        egui::Panel::top("connection_bar")
            .frame(bar_frame)
            .show(ui, |ui| self.connection_bar_ui(ui));
        egui::Panel::bottom("connection_log")
            .resizable(true)
            .default_size(150.0)
            .min_size(60.0)
            .show(ui, |ui| self.connection_log_ui(ui));
        egui::Panel::left("profile_list")
            .resizable(true)
            .default_size(290.0)
            .min_size(160.0)
            .show(ui, |ui| self.profile_list_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.profile_form_ui(ui));
        self.delete_modal_ui(ui.ctx());

        for action in std::mem::take(&mut self.actions) {
            self.apply(action);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
        if self.dirty_since.is_some() {
            self.save_now();
        }
    }
}
