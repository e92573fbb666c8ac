//! The native window: the connection bar on top, the tabs (Explorer, Plots,
//! Timeline, QoS lab, Profiles) and the status bar with the counters.
//!
//! `App` owns the worker, the profiles and, per connection, its status, its
//! [`Store`] (topic tree and history) and its [`PacketLog`], and the embedded
//! sandbox broker that a first launch connects to. The panels (one file
//! each) read that state and queue [`Action`]s; the actions run after the
//! frame, so no view changes the state it is drawing mid-layout.

pub mod capture_ui;
pub mod clock;
mod connection;
mod connection_bar;
mod connection_log;
mod file_picker;
pub mod inspector;
mod layout;
pub mod plots;
mod profile_editor;
mod props_edit;
pub mod publish_panel;
pub mod qos_lab;
mod sandbox_panel;
mod settings;
mod subscriptions;
pub mod timeline;
pub mod tree_view;

pub use connection_bar::status_text;
pub use file_picker::{FilePicker, RfdPicker};
pub use sandbox_panel::{SANDBOX_PROFILE, mosquitto_sub_command};
pub use settings::Tab;

use crate::model::flows::PacketLog;
use crate::model::store::Store;
use crate::model::tree::NodeId;
use crate::mqtt::{
    Command, ConnStatus, ConnectionId, Event, EventKind, Message, PublishToken, Worker,
};
use crate::profile::{
    Field, FieldError, Profile, ProfileStore, Qos, SaveOutcome, SubscriptionSpec,
    generate_client_id, name_errors, unique_name, validate_port,
};
use crate::sandbox::SandboxConfig;
use connection::Connection;
use inspector::InspectorAction;
use plots::Plots;
use publish_panel::PublishRequest;
use qos_lab::{QosLab, QosLabAction};
use sandbox_panel::{SandboxAction, SandboxHost, is_sandbox_profile, sandbox_profile};
use settings::State;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use subscriptions::{SubState, SubscribeForm};
use timeline::{TimelineAction, TimelineView};
use tree_view::TreeAction;

/// Most events taken from the worker per frame, and the most time spent on
/// them, so a flood of messages cannot freeze the window; the rest waits
/// for the next frame (which is requested at once).
const DRAIN_BUDGET: usize = 20_000;
const DRAIN_TIME: Duration = Duration::from_millis(4);
/// Events taken per `Worker::drain` call inside the budget.
const DRAIN_CHUNK: usize = 1_000;

/// Form edits are written this long after the last keystroke.
const SAVE_DEBOUNCE: Duration = Duration::from_millis(800);

/// Set by `run`: when the process asked for the window, for the start-up probe.
static LAUNCHED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// With `MQSCOPE_STARTUP_PROBE=1` in the environment the app prints how long
/// the first frame took from `run()` and closes: the cold-start measurement.
const STARTUP_PROBE_ENV: &str = "MQSCOPE_STARTUP_PROBE";

/// Starts the window. `main` calls this when no subcommand is given.
pub fn run() -> eframe::Result {
    LAUNCHED.get_or_init(Instant::now);
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
    SelectTab(Tab),
    Subscribe {
        filter: String,
        qos: Qos,
    },
    /// Subscribe with MQTT 5 subscription options.
    SubscribeSpec(SubscriptionSpec),
    Unsubscribe(String),
    Tree(TreeAction),
    ConfirmClearRetained,
    CancelClearRetained,
    Timeline(TimelineAction),
    /// Cut the connection without DISCONNECT (the broker fires the will).
    DropConnection,
    /// Connect again keeping the tree and the timeline (session demos).
    Reconnect,
    OpenSettings,
    Publish(PublishRequest),
    Lab(QosLabAction),
    Inspector(InspectorAction),
    Sandbox(SandboxAction),
    OpenSandbox,
}

/// Retained messages the user is asked to confirm clearing.
pub(crate) struct ClearRetained {
    conn: ConnectionId,
    /// The subtree's topic, for the question.
    topic: String,
    topics: Vec<String>,
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
    sub_form: SubscribeForm,
    confirm_clear: Option<ClearRetained>,
    settings_open: bool,
    next_token: PublishToken,
    /// A fixed "now" for the ages and highlights (tests, screenshots).
    clock: Option<SystemTime>,
    log_open: bool,
    /// The embedded broker (see `sandbox_panel`).
    sandbox: SandboxHost,
}

impl App {
    /// The real app: profiles from the user's config directory, native file
    /// dialogs, UI state from eframe's storage.
    pub fn new(cc: &eframe::CreationContext<'_>) -> App {
        // Clocks in the views show local time (tests keep UTC).
        clock::set_offset(clock::detect_local_offset());
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
            Some(SandboxConfig::default()),
        )
    }

    /// The app with a given store and file picker (tests, other front ends).
    /// The sandbox broker starts only when the user asks for it.
    pub fn with_parts(ctx: egui::Context, store: ProfileStore, picker: Box<dyn FilePicker>) -> App {
        App::build(ctx, Some(store), None, picker, State::default(), None)
    }

    /// Like [`App::new`] with a given store, picker and sandbox: on a fresh
    /// config the "Sandbox" profile is created, its broker started with
    /// `sandbox` and connected to, as a new user sees it.
    pub fn with_sandbox(
        ctx: egui::Context,
        store: ProfileStore,
        picker: Box<dyn FilePicker>,
        sandbox: SandboxConfig,
    ) -> App {
        App::build(
            ctx,
            Some(store),
            None,
            picker,
            State::default(),
            Some(sandbox),
        )
    }

    /// `sandbox`: start the embedded broker at launch (with this config)
    /// when the Sandbox profile is selected or on a first run.
    fn build(
        ctx: egui::Context,
        mut store: Option<ProfileStore>,
        mut store_problem: Option<String>,
        picker: Box<dyn FilePicker>,
        state: State,
        sandbox: Option<SandboxConfig>,
    ) -> App {
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
        // A first run starts with the sandbox (when the app runs one):
        // connected to live demo traffic, next to a profile for a local
        // broker. Without a sandbox it starts with that local profile and the
        // Profiles tab, so the user sees what to fill in. Either is written
        // only once the user changes something.
        let mut state = state;
        let sandbox = SandboxHost::new(sandbox);
        if profiles.is_empty() {
            if sandbox.autostart {
                profiles.push(sandbox_profile());
                profiles.push(Profile::default());
                state.last_profile = Some(SANDBOX_PROFILE.into());
                state.tab = Tab::Explorer;
            } else {
                profiles.push(Profile::default());
                state.tab = Tab::Profiles;
            }
        }
        ctx.set_theme(if state.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
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
            sub_form: SubscribeForm::default(),
            confirm_clear: None,
            settings_open: false,
            next_token: 0,
            clock: None,
            log_open: false,
            sandbox,
        };
        app.revalidate();
        if app.sandbox.autostart
            && app
                .current()
                .is_some_and(|e| is_sandbox_profile(&e.profile))
        {
            app.connect();
        }
        app
    }

    /// The live plots of the selected profile's connection, once it has one.
    pub fn plots(&self) -> Option<&Plots> {
        self.current_connection().map(|c| &c.state.plots)
    }

    /// The port of the embedded sandbox broker, while it runs.
    pub fn sandbox_port(&self) -> Option<u16> {
        self.sandbox.port()
    }

    /// The connection `conn`, made on first use with its profile's saved
    /// plot layout.
    fn connection_mut(&mut self, conn: ConnectionId) -> &mut Connection {
        let limits = self.state.limits;
        let specs = self
            .entries
            .iter()
            .find(|e| e.conn == Some(conn))
            .and_then(|e| self.state.plot_layouts.get(&e.profile.name))
            .cloned()
            .unwrap_or_default();
        self.connections.entry(conn).or_insert_with(|| {
            let mut c = Connection::new(limits);
            c.state.plots.set_specs(specs);
            c.views.inspector.set_utc_offset(clock::offset());
            c
        })
    }

    /// The selected profile's connection, made on first use.
    fn selected_mut(&mut self) -> Option<&mut Connection> {
        let conn = self.conn_id_for_selected()?;
        Some(self.connection_mut(conn))
    }

    /// Writes a line to the selected profile's connection log (opening its
    /// connection record if needed).
    fn log_selected(&mut self, text: String, is_error: bool) {
        let Some(conn) = self.conn_id_for_selected() else {
            return;
        };
        self.connection_mut(conn).state.log(text, is_error);
    }

    /// The profiles as currently edited (saved or not).
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.entries.iter().map(|e| &e.profile)
    }

    /// The status of the selected profile's connection, if it was ever opened.
    pub fn selected_status(&self) -> Option<&ConnStatus> {
        self.current_connection().map(|c| &c.state.status)
    }

    /// The tab shown.
    pub fn tab(&self) -> Tab {
        self.state.tab
    }

    /// The selected profile's topic store, once it has been connected (or
    /// fed through [`App::inject_message`]).
    pub fn store(&self) -> Option<&Store> {
        self.current_connection().map(|c| &c.state.store)
    }

    /// The selected profile's packet log, once it has been connected.
    pub fn packet_log(&self) -> Option<&PacketLog> {
        self.current_connection().map(|c| &c.state.packets)
    }

    /// The topic selected in the tree.
    pub fn selected_topic(&self) -> Option<String> {
        let node = self.current_connection()?.views.tree.selected?;
        self.store().map(|s| s.path(node))
    }

    /// Feeds a message into the selected profile's store as if the broker
    /// had sent it, without a connection: for tests, screenshots and demos.
    pub fn inject_message(&mut self, msg: &Message) {
        let Some(conn) = self.conn_id_for_selected() else {
            return;
        };
        self.connection_mut(conn)
            .state
            .apply(EventKind::Message(msg.clone()));
    }

    /// Freezes the clock the tree's ages and highlights read (`None`: the
    /// system clock), so a screenshot does not change from run to run.
    pub fn set_clock(&mut self, now: Option<SystemTime>) {
        self.clock = now;
    }

    fn now(&self) -> SystemTime {
        self.clock.unwrap_or_else(SystemTime::now)
    }

    /// The selected profile's connection id, allocated on first use.
    fn conn_id_for_selected(&mut self) -> Option<ConnectionId> {
        let entry = self.entries.get_mut(self.selected)?;
        Some(match entry.conn {
            Some(conn) => conn,
            None => {
                self.next_conn += 1;
                entry.conn = Some(self.next_conn);
                self.next_conn
            }
        })
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
        let reaction = conn.state.apply(event.kind);
        if let Some((token, outcome)) = &reaction.published {
            conn.views.publish.record_outcome(*token, outcome);
        }
        if let Some((token, rtt, payload)) = &reaction.reply {
            conn.views.publish.record_reply(*token, *rtt, payload);
        }
        for cmd in reaction.commands {
            self.worker.send(cmd);
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
                    // The plot layout is kept by profile name.
                    if let Some(layout) = self.state.plot_layouts.remove(&entry.profile.name) {
                        self.state
                            .plot_layouts
                            .insert(name.trim().to_string(), layout);
                    }
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
                        .is_some_and(|c| c.state.is_active())
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
            Action::SelectTab(tab) => self.state.tab = tab,
            Action::Subscribe { filter, qos } => self.subscribe(SubscriptionSpec::new(filter, qos)),
            Action::SubscribeSpec(spec) => self.subscribe(spec),
            Action::Unsubscribe(filter) => self.unsubscribe(filter),
            Action::Tree(TreeAction::Select { topic, .. }) => {
                if let Some(c) = self.selected_mut() {
                    c.views.publish.set_topic(&topic);
                }
            }
            Action::Tree(TreeAction::ClearRetained(node)) => self.ask_clear_retained(node),
            Action::CancelClearRetained => self.confirm_clear = None,
            Action::ConfirmClearRetained => self.clear_retained(),
            Action::Timeline(action) => self.timeline_action(action),
            Action::DropConnection => {
                let Some(conn) = self.current().and_then(|e| e.conn) else {
                    return;
                };
                self.worker.send(Command::Drop { conn });
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.state.log(
                        "Connection dropped without DISCONNECT: the broker publishes the will"
                            .into(),
                        true,
                    );
                    c.state.packets.connection_dropped();
                    c.state.status = ConnStatus::Disconnected {
                        reason: Some("connection dropped without DISCONNECT".into()),
                    };
                    c.state.status_at = Instant::now();
                }
            }
            Action::Reconnect => {
                if self.revalidate_blocks_connect() {
                    return;
                }
                self.open_connection(false);
            }
            Action::OpenSettings => self.settings_open = true,
            Action::Publish(request) => {
                let Some(conn) = self.active_conn() else {
                    self.notice = Some(Notice {
                        text: "Connect first: there is no connection to publish on".into(),
                        is_error: true,
                    });
                    return;
                };
                let response = request
                    .props
                    .as_ref()
                    .and_then(|p| Some((p.response_topic.clone()?, p.correlation_data.clone()?)))
                    .filter(|_| request.request);
                if let Some((topic, _)) = &response {
                    // The reply's topic is subscribed to for this connection
                    // only; the profile's own subscriptions stay as they are.
                    self.worker.send(Command::Subscribe {
                        conn,
                        sub: SubscriptionSpec::new(topic.clone(), request.qos),
                    });
                }
                let token = self.publish_with(
                    conn,
                    request.topic.clone(),
                    request.payload.clone(),
                    request.qos,
                    request.retain,
                    request.props.clone(),
                );
                if let Some((response_topic, correlation)) = response {
                    self.connection_mut(conn)
                        .state
                        .expect_reply(connection::PendingRequest {
                            token,
                            response_topic,
                            correlation,
                            sent: Instant::now(),
                        });
                }
                self.connection_mut(conn)
                    .views
                    .publish
                    .record_sent(token, &request);
            }
            Action::Lab(QosLabAction::Run { n, payload_size }) => {
                let Some(conn) = self.active_conn() else {
                    return;
                };
                let mut lab = QosLab::new(conn);
                for cmd in lab.start(conn, n, payload_size, QosLab::fresh_topic()) {
                    self.worker.send(cmd);
                }
                self.connection_mut(conn).state.lab = Some(lab);
            }
            Action::Inspector(InspectorAction::SavePayload { topic, bytes }) => {
                let name = format!("{}.bin", topic.replace(['/', '\\'], "_"));
                self.save_bytes("Save the payload", &name, &bytes);
            }
            Action::Inspector(InspectorAction::DeleteRetained { topic }) => {
                let Some(conn) = self.active_conn() else {
                    self.notice = Some(Notice {
                        text: "Connect first: deleting a retained message publishes to the broker"
                            .into(),
                        is_error: true,
                    });
                    return;
                };
                self.publish(conn, topic, Vec::new(), Qos::AtLeastOnce, true);
            }
            Action::Inspector(InspectorAction::JumpToFlow { topic, packet_seq }) => {
                let Some(conn) = self.current().and_then(|e| e.conn) else {
                    return;
                };
                match self.find_flow(conn, packet_seq) {
                    Some(flow) => {
                        self.connection_mut(conn).views.timeline.filter.flow = Some(flow);
                        self.state.tab = Tab::Timeline;
                    }
                    None => {
                        self.notice = Some(Notice {
                            text: format!(
                                "The packets of this message on {topic} are no longer in the \
                                 timeline"
                            ),
                            is_error: false,
                        });
                    }
                }
            }
            Action::Sandbox(action) => self.sandbox_action(action),
            Action::OpenSandbox => self.sandbox.window_open = true,
            Action::Lab(QosLabAction::Stop) => {
                let Some(conn) = self.current().and_then(|e| e.conn) else {
                    return;
                };
                if let Some(lab) = self
                    .connections
                    .get_mut(&conn)
                    .and_then(|c| c.state.lab.as_mut())
                {
                    for cmd in lab.stop() {
                        self.worker.send(cmd);
                    }
                }
            }
        }
    }

    /// The selected profile's connection, if it is connected or connecting.
    fn active_conn(&self) -> Option<ConnectionId> {
        let conn = self.current()?.conn?;
        self.connections
            .get(&conn)
            .filter(|c| c.state.is_active())
            .map(|_| conn)
    }

    /// True (and the bar says why) when the selected profile cannot connect.
    fn revalidate_blocks_connect(&mut self) -> bool {
        self.revalidate();
        match self.current().and_then(|e| e.errors.first()) {
            Some(first) => {
                self.bar_error = Some(format!("Cannot connect: {}", first.message));
                true
            }
            None => false,
        }
    }

    /// Adds (or changes the QoS of) a filter of the selected profile; sends
    /// SUBSCRIBE when connected. The filter was validated by the form.
    fn subscribe(&mut self, spec: SubscriptionSpec) {
        let Some(entry) = self.entries.get_mut(self.selected) else {
            return;
        };
        let filter = spec.filter.clone();
        match entry
            .profile
            .subscriptions
            .iter_mut()
            .find(|s| s.filter == filter)
        {
            Some(existing) => *existing = spec.clone(),
            None => entry.profile.subscriptions.push(spec.clone()),
        }
        let conn = entry.conn;
        self.edited();
        if let Some(conn) = conn
            && let Some(c) = self.connections.get_mut(&conn)
            && c.state.is_active()
        {
            c.state.subs.insert(filter, SubState::Pending);
            self.worker.send(Command::Subscribe { conn, sub: spec });
        }
    }

    fn unsubscribe(&mut self, filter: String) {
        let Some(entry) = self.entries.get_mut(self.selected) else {
            return;
        };
        entry.profile.subscriptions.retain(|s| s.filter != filter);
        let conn = entry.conn;
        self.edited();
        if let Some(conn) = conn
            && let Some(c) = self.connections.get_mut(&conn)
        {
            if c.state.is_active() {
                c.state.subs.insert(filter.clone(), SubState::Leaving);
                self.worker.send(Command::Unsubscribe { conn, filter });
            } else {
                c.state.subs.remove(&filter);
            }
        }
    }

    fn ask_clear_retained(&mut self, node: NodeId) {
        let Some(conn) = self.current().and_then(|e| e.conn) else {
            return;
        };
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        let topics = c.state.store.retained_topics(node);
        if topics.is_empty() {
            return;
        }
        self.confirm_clear = Some(ClearRetained {
            conn,
            topic: c.state.store.path(node),
            topics,
        });
    }

    /// Deletes retained messages the MQTT way: an empty retained PUBLISH per
    /// topic (QoS 1, so each deletion is acknowledged in the timeline).
    fn clear_retained(&mut self) {
        let Some(clear) = self.confirm_clear.take() else {
            return;
        };
        for topic in &clear.topics {
            self.publish(
                clear.conn,
                topic.clone(),
                Vec::new(),
                Qos::AtLeastOnce,
                true,
            );
        }
        if let Some(c) = self.connections.get_mut(&clear.conn) {
            c.state.log(
                format!(
                    "Cleared {} retained messages under {}",
                    clear.topics.len(),
                    clear.topic
                ),
                false,
            );
        }
    }

    fn publish(
        &mut self,
        conn: ConnectionId,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
        retain: bool,
    ) -> PublishToken {
        self.publish_with(conn, topic, payload, qos, retain, None)
    }

    fn publish_with(
        &mut self,
        conn: ConnectionId,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
        retain: bool,
        props: Option<Box<crate::model::protocol::Properties>>,
    ) -> PublishToken {
        self.next_token += 1;
        let token = self.next_token;
        self.worker.send(Command::Publish {
            conn,
            token,
            topic,
            payload,
            qos,
            retain,
            props,
        });
        token
    }

    fn timeline_action(&mut self, action: TimelineAction) {
        let Some(conn) = self.current().and_then(|e| e.conn) else {
            return;
        };
        match action {
            TimelineAction::ExportJsonl(text) => {
                self.save_text("Export the packets as JSON Lines", "packets.jsonl", &text)
            }
            TimelineAction::ExportSvg(text) => {
                self.save_text("Export the sequence diagram", "packets.svg", &text)
            }
            TimelineAction::SetCapacity(n) => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.state.packets.set_capacity(n);
                }
            }
            TimelineAction::Clear => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.state.packets.clear();
                    c.views.timeline = TimelineView::default();
                }
            }
        }
    }

    /// Asks where to save and writes `bytes`; the outcome is shown as a notice.
    fn save_bytes(&mut self, title: &str, default_name: &str, bytes: &[u8]) {
        let Some(path) = self.picker.save_file(title, default_name) else {
            return;
        };
        self.notice = Some(match std::fs::write(&path, bytes) {
            Ok(()) => Notice {
                text: format!("Saved {} bytes to {}", bytes.len(), path.display()),
                is_error: false,
            },
            Err(e) => Notice {
                text: format!("Could not write {}: {e}", path.display()),
                is_error: true,
            },
        });
    }

    fn save_text(&mut self, title: &str, default_name: &str, text: &str) {
        self.save_bytes(title, default_name, text.as_bytes());
    }

    /// The flow of the PUBLISH record that carried a message: an exact
    /// link by sequence number, while the record is still in the log.
    fn find_flow(
        &self,
        conn: ConnectionId,
        packet_seq: Option<u64>,
    ) -> Option<crate::model::flows::FlowId> {
        let c = self.connections.get(&conn)?;
        c.state.packets.get(packet_seq?).map(|e| e.flow)
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
        // The Sandbox profile connects to the embedded broker: start it
        // first (its port may differ from last time).
        if self
            .current()
            .is_some_and(|e| is_sandbox_profile(&e.profile))
            && !self.ensure_sandbox()
        {
            return;
        }
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
        self.open_connection(true);
    }

    /// Sends Connect for the selected profile. `fresh`: start with an empty
    /// topic tree and packet timeline (a user's Connect); otherwise keep
    /// them (the session demos' Reconnect shows what the broker kept).
    fn open_connection(&mut self, fresh: bool) {
        let Some(conn) = self.conn_id_for_selected() else {
            return;
        };
        let Some(profile) = self.current().map(|e| e.profile.clone()) else {
            return;
        };
        self.state.last_profile = Some(profile.name.clone());
        let limits = self.state.limits;
        let connection = self.connection_mut(conn);
        if fresh
            && (connection.state.store.total_messages() > 0 || !connection.state.packets.is_empty())
        {
            connection.state.reset(limits);
            connection.state.log(
                "New connection: the topic tree and the packet timeline start empty".into(),
                false,
            );
            connection.views.tree.reset();
            connection.views.timeline = TimelineView::default();
        }
        connection.state.subs = profile
            .subscriptions
            .iter()
            .map(|s| (s.filter.clone(), SubState::Pending))
            .collect();
        connection.state.log(
            format!("Connecting to {}:{}", profile.host, profile.port),
            false,
        );
        connection.state.status = ConnStatus::Connecting;
        connection.state.status_at = Instant::now();
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
            .any(|c| matches!(c.state.status, ConnStatus::Reconnecting { .. }))
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let start = Instant::now();
        let mut taken = 0;
        loop {
            let events = self.worker.drain(DRAIN_CHUNK);
            let got = events.len();
            for event in events {
                self.apply_event(event);
            }
            taken += got;
            if got < DRAIN_CHUNK {
                break;
            }
            if taken >= DRAIN_BUDGET || start.elapsed() >= DRAIN_TIME {
                // More may be waiting; the worker only wakes us once per drain.
                ctx.request_repaint();
                break;
            }
        }
        let now = Instant::now();
        for c in self.connections.values_mut() {
            if let Some(lab) = c.state.lab.as_mut()
                && lab.is_running()
            {
                for cmd in lab.tick(now) {
                    self.worker.send(cmd);
                }
                // The step timeout is checked even when no event arrives.
                ctx.request_repaint_after(Duration::from_millis(500));
            }
        }
        self.save_if_due(ctx);
        if self.any_reconnecting() {
            // Keeps the "next try in S s" countdown moving.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if let Some(launched) = LAUNCHED.get()
            && std::env::var_os(STARTUP_PROBE_ENV).is_some()
        {
            // Measured at the start of the second frame: the first one has
            // been laid out and handed to the GPU by then.
            static PRINTED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            let frames = ui.ctx().cumulative_frame_nr();
            if frames >= 1 && !PRINTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                println!(
                    "first frame {:.0} ms after start",
                    launched.elapsed().as_secs_f64() * 1e3
                );
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            } else if frames == 0 {
                ui.ctx().request_repaint();
            }
        }
        let bar_frame =
            egui::Frame::side_top_panel(ui.style()).inner_margin(egui::Margin::symmetric(10, 8));
        egui::Panel::top("connection_bar")
            .frame(bar_frame)
            .show(ui, |ui| self.connection_bar_ui(ui));
        egui::Panel::top("tab_strip").show(ui, |ui| self.tab_strip_ui(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar_ui(ui));
        if self.log_open {
            egui::Panel::bottom("connection_log")
                .resizable(true)
                .default_size(150.0)
                .min_size(60.0)
                .show(ui, |ui| self.connection_log_ui(ui));
        }
        match self.state.tab {
            Tab::Explorer => self.explorer_ui(ui),
            Tab::Plots => self.plots_tab_ui(ui),
            Tab::Timeline => self.timeline_tab_ui(ui),
            Tab::QosLab => self.qos_lab_tab_ui(ui),
            Tab::Profiles => {
                egui::Panel::left("profile_list")
                    .resizable(true)
                    .default_size(290.0)
                    .min_size(160.0)
                    .show(ui, |ui| self.profile_list_ui(ui));
                egui::CentralPanel::default().show(ui, |ui| self.profile_form_ui(ui));
            }
        }
        self.delete_modal_ui(ui.ctx());
        self.clear_retained_modal_ui(ui.ctx());
        self.settings_window_ui(ui.ctx());
        self.sandbox_window_ui(ui.ctx());

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
