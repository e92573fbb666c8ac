//! The native window: the connection bar on top, the tabs (Explorer, Plots,
//! Timeline, QoS lab, Profiles) and the status bar with the counters.
//!
//! `App` owns the worker, the profiles and, per connection, its status, its
//! [`Store`] (topic tree and history) and its [`PacketLog`], and the embedded
//! sandbox broker that a first launch connects to. The panels (one file
//! each) read that state and queue [`Action`]s; the actions run after the
//! frame, so no view changes the state it is drawing mid-layout.

pub mod clock;
mod connection;
mod connection_bar;
mod connection_list;
mod connection_log;
mod file_picker;
pub mod inspector;
mod layout;
mod learn;
pub mod plots;
mod profile_editor;
mod profiles;
mod props_edit;
pub mod publish_panel;
pub mod qos_lab;
mod sandbox_panel;
mod settings;
mod side_by_side;
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
use crate::profile::{Profile, ProfileStore, Qos, SubscriptionSpec, generate_client_id};
use crate::sandbox::SandboxConfig;
use connection::Connection;
use inspector::InspectorAction;
use plots::Plots;
pub(crate) use profiles::{Entry, PathField, ProfileBook};
use publish_panel::PublishRequest;
use qos_lab::{QosLab, QosLabAction};
use sandbox_panel::{SandboxAction, SandboxHost, is_sandbox_profile, sandbox_profile};
use settings::State;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use subscriptions::{SubState, SubscribeForm};
use timeline::{TimelineAction, TimelineView};
use tree_view::TreeAction;

/// Most events taken from the worker per frame, and the most time spent on
/// them, so a flood of messages cannot freeze the window; the rest waits
/// for the next frame. Both grow with the wait between frames (the cap of
/// live redraws), so the window keeps up with a busy broker at any cap.
const DRAIN_BUDGET: usize = 20_000;
const DRAIN_TIME: Duration = Duration::from_millis(4);
/// The drain's share of the wait between two capped frames.
const DRAIN_SHARE: u32 = 8;
const DRAIN_TIME_MAX: Duration = Duration::from_millis(30);
/// Events taken per `Worker::drain` call inside the budget.
const DRAIN_CHUNK: usize = 1_000;

/// Form edits are written this long after the last keystroke.
const SAVE_DEBOUNCE: Duration = Duration::from_millis(800);
/// A failed save is tried again this often while the edits stay unsaved.
const SAVE_RETRY: Duration = Duration::from_secs(5);

/// The window's icon.
pub const ICON_PNG: &[u8] = include_bytes!("../../assets/mqscope.png");

/// Set by `run`: when the process asked for the window, for the start-up probe.
static LAUNCHED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// With `MQSCOPE_STARTUP_PROBE=1` in the environment the app prints how long
/// the first frame took from `run()` and closes: the cold-start measurement.
const STARTUP_PROBE_ENV: &str = "MQSCOPE_STARTUP_PROBE";

/// With `MQSCOPE_FRAME_STATS=1` the app prints on stderr how many frames it
/// drew in each 5 s (benches/calm.sh reads it).
const FRAME_STATS_ENV: &str = "MQSCOPE_FRAME_STATS";

/// Counts frames and prints the count every 5 s, when asked by the env.
fn frame_stats() {
    use std::sync::Mutex;
    static STATS: Mutex<Option<(Instant, u32)>> = Mutex::new(None);
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os(FRAME_STATS_ENV).is_some()) {
        return;
    }
    let Ok(mut stats) = STATS.lock() else {
        return;
    };
    let (since, frames) = stats.get_or_insert((Instant::now(), 0));
    *frames += 1;
    if since.elapsed() >= Duration::from_secs(5) {
        eprintln!(
            "frames: {} in {:.1} s",
            frames,
            since.elapsed().as_secs_f64()
        );
        *stats = Some((Instant::now(), 0));
    }
}

/// Starts the window. `main` calls this when no subcommand is given.
pub fn run() -> eframe::Result {
    LAUNCHED.get_or_init(Instant::now);
    let mut viewport = egui::ViewportBuilder::default();
    // The icon in assets/ (also installed with the .desktop entry).
    if let Ok(icon) = eframe::icon_data::from_png_bytes(ICON_PNG) {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport: viewport
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

/// A message shown above the form until dismissed.
pub(crate) struct Notice {
    pub(crate) text: String,
    pub(crate) is_error: bool,
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
    /// A tree action of a given connection (the side-by-side trees).
    TreeOf(ConnectionId, TreeAction),
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
    /// From the strip of open connections.
    List(connection_list::ListAction),
    Learn(learn::LearnAction),
}

/// Retained messages the user is asked to confirm clearing.
pub(crate) struct ClearRetained {
    conn: ConnectionId,
    /// The subtree's topic, for the question.
    topic: String,
    topics: Vec<String>,
}

/// The cap of live redraws, shared with the worker's wake-up call.
#[derive(Clone)]
pub(crate) struct Pace(Arc<std::sync::atomic::AtomicU32>);

impl Pace {
    fn new(fps: u32) -> Pace {
        Pace(Arc::new(std::sync::atomic::AtomicU32::new(fps)))
    }

    pub(crate) fn set(&self, fps: u32) {
        self.0.store(fps, std::sync::atomic::Ordering::Relaxed);
    }

    /// The wait between two live redraws.
    pub(crate) fn interval(&self) -> Duration {
        settings::frame_interval(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The mqscope window.
pub struct App {
    state: State,
    worker: Worker,
    /// The profiles, their editing and saving.
    book: ProfileBook,
    picker: Box<dyn FilePicker>,
    connections: HashMap<ConnectionId, Connection>,
    /// The connections in the strip, in the order they were opened.
    open: Vec<ConnectionId>,
    /// The "Side by side" tab's choice of connections and topic.
    side: side_by_side::SideBySide,
    next_conn: ConnectionId,
    notice: Option<Notice>,
    /// Why the last Connect was refused; cleared by the next edit.
    bar_error: Option<String>,
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
    /// The cap of live redraws (Settings).
    pace: Pace,
    /// The Learn tab's choice of lesson.
    learn: learn::LearnView,
}

impl App {
    /// The real app: profiles from the user's config directory, native file
    /// dialogs, UI state from eframe's storage.
    pub fn new(cc: &eframe::CreationContext<'_>) -> App {
        // Clocks in the views show local time (tests keep UTC).
        clock::set_zone(clock::Zone::local());
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
        let pace = Pace::new(state.max_fps);
        let wake_pace = pace.clone();
        // New events are drawn within one capped frame, never sooner: a busy
        // broker wakes the window at the cap, not at its message rate.
        let worker = Worker::spawn(Some(Arc::new(move || {
            wake_ctx.request_repaint_after(wake_pace.interval())
        })));

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
            book: ProfileBook::new(store, store_problem, profiles, selected),
            picker,
            connections: HashMap::new(),
            open: Vec::new(),
            side: side_by_side::SideBySide::default(),
            next_conn: 0,
            notice,
            bar_error: None,
            actions: Vec::new(),
            sub_form: SubscribeForm::default(),
            confirm_clear: None,
            settings_open: false,
            next_token: 0,
            clock: None,
            log_open: false,
            sandbox,
            pace,
            learn: learn::LearnView::default(),
        };
        app.revalidate();
        if app.sandbox.autostart
            && app
                .current()
                .is_some_and(|e| is_sandbox_profile(&e.profile))
        {
            app.connect();
        }
        app.reopen_remembered();
        app
    }

    /// Connects the profiles that were open when the window was last
    /// closed, and shows the one that was shown.
    fn reopen_remembered(&mut self) {
        let shown = self.book.selected;
        for name in self.state.open_profiles.clone() {
            let Some(i) = self
                .book
                .entries
                .iter()
                .position(|e| e.profile.name == name)
            else {
                continue;
            };
            if self.is_open(i) {
                continue;
            }
            self.book.selected = i;
            self.connect();
        }
        self.book.selected = shown;
        self.sync_open_profiles();
    }

    /// Whether the profile at `i` has a connection in the strip.
    fn is_open(&self, i: usize) -> bool {
        self.book
            .entries
            .get(i)
            .and_then(|e| e.conn)
            .is_some_and(|c| self.open.contains(&c))
    }

    /// Remembers which profiles are open, for the next start.
    fn sync_open_profiles(&mut self) {
        self.state.open_profiles = self
            .open
            .iter()
            .filter_map(|c| self.book.entries.iter().find(|e| e.conn == Some(*c)))
            .map(|e| e.profile.name.clone())
            .collect();
    }

    /// The profile index of a connection.
    fn entry_of(&self, conn: ConnectionId) -> Option<usize> {
        self.book.entries.iter().position(|e| e.conn == Some(conn))
    }

    fn list_action(&mut self, action: connection_list::ListAction) {
        use connection_list::ListAction;
        match action {
            ListAction::Show(conn) => {
                if let Some(i) = self.entry_of(conn) {
                    self.apply(Action::Select(i));
                }
            }
            ListAction::Reconnect(conn) => {
                let Some(i) = self.entry_of(conn) else {
                    return;
                };
                let shown = self.book.selected;
                self.book.selected = i;
                if self
                    .current()
                    .is_some_and(|e| is_sandbox_profile(&e.profile))
                    && !self.ensure_sandbox()
                {
                    self.book.selected = shown;
                    return;
                }
                if !self.revalidate_blocks_connect() {
                    self.open_connection(true);
                }
                self.book.selected = shown;
            }
            ListAction::Close(conn) => {
                if self
                    .connections
                    .get(&conn)
                    .is_some_and(|c| c.state.is_active())
                {
                    self.worker.send(Command::Disconnect { conn });
                }
                let at = self.open.iter().position(|c| *c == conn);
                self.open.retain(|c| *c != conn);
                // Closing the connection shown shows its neighbour.
                if self.current().and_then(|e| e.conn) == Some(conn)
                    && let Some(at) = at
                    && let Some(next) = self
                        .open
                        .get(at.min(self.open.len().saturating_sub(1)))
                        .copied()
                    && let Some(i) = self.entry_of(next)
                {
                    self.apply(Action::Select(i));
                }
                self.sync_open_profiles();
            }
            ListAction::Open(i) => {
                if i < self.book.entries.len() {
                    self.apply(Action::Select(i));
                    self.connect();
                }
            }
            ListAction::OpenAgain(i) => {
                let Some(original) = self.book.entries.get(i).map(|e| e.profile.clone()) else {
                    return;
                };
                self.book.selected = i;
                self.apply(Action::Duplicate);
                let copy = self.current().map(|e| e.profile.clone());
                self.connect();
                if let Some(copy) = copy {
                    self.notice = Some(Notice {
                        text: format!(
                            "'{}' is already open: a second connection opened as '{}' with \
                             client id {} (one client id per session, or each would take the \
                             other's session over)",
                            original.name, copy.name, copy.client_id
                        ),
                        is_error: false,
                    });
                }
            }
        }
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
            .book
            .entries
            .iter()
            .find(|e| e.conn == Some(conn))
            .and_then(|e| self.state.plot_layouts.get(&e.profile.name))
            .cloned()
            .unwrap_or_default();
        self.connections.entry(conn).or_insert_with(|| {
            let mut c = Connection::new(limits);
            c.state.plots.set_specs(specs);
            c.views.inspector.set_zone(clock::zone());
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

    /// The status of the connection of the profile named `profile`.
    pub fn status_of(&self, profile: &str) -> Option<&ConnStatus> {
        self.connection_named(profile).map(|c| &c.state.status)
    }

    /// The topic store of the connection of the profile named `profile`.
    pub fn store_of(&self, profile: &str) -> Option<&Store> {
        self.connection_named(profile).map(|c| &c.state.store)
    }

    /// The profiles whose connections are in the strip, in its order.
    pub fn open_connections(&self) -> Vec<String> {
        self.open
            .iter()
            .filter_map(|c| self.book.entries.iter().find(|e| e.conn == Some(*c)))
            .map(|e| e.profile.name.clone())
            .collect()
    }

    /// Puts the profile named `profile` in the strip of connections without
    /// connecting it and shows it: its tree is filled by
    /// [`App::inject_message`] (tests, screenshots, demos). False when no
    /// profile has that name.
    pub fn open_offline(&mut self, profile: &str) -> bool {
        let Some(i) = self
            .book
            .entries
            .iter()
            .position(|e| e.profile.name == profile)
        else {
            return false;
        };
        self.book.selected = i;
        let Some(conn) = self.conn_id_for_selected() else {
            return false;
        };
        self.connection_mut(conn);
        if !self.open.contains(&conn) {
            self.open.push(conn);
        }
        true
    }

    /// Like [`App::inject_message`], into the connection of the profile
    /// named `profile` (opened offline first if needed); false when no
    /// profile has that name.
    pub fn inject_message_to(&mut self, profile: &str, msg: &Message) -> bool {
        let Some(conn) = self
            .book
            .entries
            .iter()
            .find(|e| e.profile.name == profile)
            .and_then(|e| e.conn)
        else {
            return false;
        };
        self.connection_mut(conn)
            .state
            .apply(EventKind::Message(msg.clone()));
        true
    }

    fn connection_named(&self, profile: &str) -> Option<&Connection> {
        let entry = self
            .book
            .entries
            .iter()
            .find(|e| e.profile.name == profile)?;
        self.connection_of(entry)
    }

    /// Why the profiles could not be saved, while edits are unsaved.
    pub fn unsaved_because(&self) -> Option<&str> {
        self.book.save_failed.as_deref()
    }

    /// The lesson steps done so far ("lesson/step").
    pub fn lessons_done(&self) -> &std::collections::BTreeSet<String> {
        &self.state.lessons_done
    }

    /// Turns green the steps of the chosen lesson that happened.
    fn check_lessons(&mut self) {
        let shown = self.current().and_then(|e| e.conn);
        let seen = learn::seen(
            self.book.entries.iter().map(|e| (&e.profile, e.conn)),
            &self.connections,
        );
        let shown = seen.iter().find(|(c, _)| Some(*c) == shown).map(|(_, s)| s);
        let all: Vec<learn::Seen<'_>> = seen.iter().map(|(_, s)| *s).collect();
        learn::update(&mut self.state.lessons_done, shown, &all);
    }

    /// The profiles as currently edited (saved or not).
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.book.entries.iter().map(|e| &e.profile)
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
        let entry = self.book.entries.get_mut(self.book.selected)?;
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
        self.book.current()
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

    fn revalidate(&mut self) {
        self.book.revalidate();
    }

    fn mark_dirty(&mut self) {
        self.book.dirty_since = Some(Instant::now());
    }

    /// Writes the profiles now; a failure (or a recovery) is said in a notice.
    fn save_now(&mut self) {
        if let Some(notice) = self.book.save_now() {
            self.notice = Some(notice);
        }
    }

    fn save_if_due(&mut self, ctx: &egui::Context) {
        let Some(since) = self.book.dirty_since else {
            return;
        };
        let elapsed = since.elapsed();
        // After a failure, retry less often than the user types.
        let wait = if self.book.save_failed.is_some() {
            SAVE_RETRY
        } else {
            SAVE_DEBOUNCE
        };
        if elapsed >= wait {
            self.save_now();
        } else {
            ctx.request_repaint_after(wait - elapsed);
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Select(i) => {
                if i < self.book.entries.len() {
                    self.book.selected = i;
                    self.book.renaming = None;
                    self.bar_error = None;
                    self.state.last_profile = Some(self.book.entries[i].profile.name.clone());
                }
            }
            Action::Connect => self.connect(),
            Action::Disconnect => {
                if let Some(conn) = self.current().and_then(|e| e.conn) {
                    self.worker.send(Command::Disconnect { conn });
                }
            }
            Action::Add => {
                let profile = Profile {
                    name: self.book.unique_name("new profile"),
                    ..Profile::default()
                };
                self.add_entry(profile);
            }
            Action::Duplicate => {
                let Some(entry) = self.current() else {
                    return;
                };
                let profile = Profile {
                    name: self.book.unique_name(&entry.profile.name),
                    // Two sessions with one client id kick each other off the broker.
                    client_id: generate_client_id(),
                    ..entry.profile.clone()
                };
                self.add_entry(profile);
            }
            Action::StartRename => {
                self.book.renaming = self.current().map(|e| e.profile.name.clone());
            }
            Action::FinishRename { commit } => {
                let Some(name) = self.book.renaming.take() else {
                    return;
                };
                if commit && let Some(entry) = self.book.entries.get_mut(self.book.selected) {
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
                if self.book.selected < self.book.entries.len() {
                    self.book.confirm_delete = Some(self.book.selected);
                }
            }
            Action::CancelDelete => self.book.confirm_delete = None,
            Action::ConfirmDelete => {
                let Some(i) = self.book.confirm_delete.take() else {
                    return;
                };
                if i >= self.book.entries.len() {
                    return;
                }
                let entry = self.book.entries.remove(i);
                if let Some(conn) = entry.conn {
                    if self
                        .connections
                        .get(&conn)
                        .is_some_and(|c| c.state.is_active())
                    {
                        self.worker.send(Command::Disconnect { conn });
                    }
                    self.connections.remove(&conn);
                    self.open.retain(|c| *c != conn);
                }
                self.book.selected = self
                    .book
                    .selected
                    .min(self.book.entries.len().saturating_sub(1));
                self.sync_open_profiles();
                self.book.renaming = None;
                self.revalidate();
                self.save_now();
            }
            Action::Import => self.import(),
            Action::Export => self.export(),
            Action::Edited => self.edited(),
            Action::Browse(field) => self.browse(field),
            Action::GenerateClientId => {
                if let Some(entry) = self.book.entries.get_mut(self.book.selected) {
                    entry.profile.client_id = generate_client_id();
                    self.edited();
                }
            }
            Action::DismissNotice => self.notice = None,
            Action::SelectTab(tab) => self.state.tab = tab,
            Action::Subscribe { filter, qos } => self.subscribe(SubscriptionSpec::new(filter, qos)),
            Action::SubscribeSpec(spec) => self.subscribe(spec),
            Action::Unsubscribe(filter) => self.unsubscribe(filter),
            Action::Tree(action) => {
                if let Some(conn) = self.current().and_then(|e| e.conn) {
                    self.tree_action(conn, action);
                }
            }
            Action::TreeOf(conn, action) => self.tree_action(conn, action),
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
            Action::List(action) => self.list_action(action),
            Action::Learn(learn::LearnAction::Go(tab)) => self.state.tab = tab,
            Action::Learn(learn::LearnAction::Reset(i)) => {
                if let Some(lesson) = learn::LESSONS.get(i) {
                    self.state
                        .lessons_done
                        .retain(|k| !k.starts_with(&format!("{}/", lesson.id)));
                }
            }
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
        let Some(entry) = self.book.entries.get_mut(self.book.selected) else {
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
        let Some(entry) = self.book.entries.get_mut(self.book.selected) else {
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

    fn tree_action(&mut self, conn: ConnectionId, action: TreeAction) {
        match action {
            TreeAction::Select { topic, .. } => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.views.publish.set_topic(&topic);
                }
            }
            TreeAction::ClearRetained(node) => self.ask_clear_retained(conn, node),
        }
    }

    fn ask_clear_retained(&mut self, conn: ConnectionId, node: NodeId) {
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
        self.bar_error = None;
        if let Some(notice) = self.book.add(profile) {
            self.notice = Some(notice);
        }
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
        let Some(entry) = self.book.entries.get(self.book.selected) else {
            return;
        };
        if let Some(first) = entry.errors.first() {
            self.bar_error = Some(format!("Cannot connect: {}", first.message));
            return;
        }
        self.bar_error = None;
        if self.book.dirty_since.is_some() {
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
        if !self.open.contains(&conn) {
            self.open.push(conn);
            self.sync_open_profiles();
        }
    }

    fn import(&mut self) {
        let Some(path) = self.picker.pick_file("Import profile") else {
            return;
        };
        match ProfileStore::import(&path) {
            Ok(mut profile) => {
                profile.name = self.book.unique_name(&profile.name);
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
        let Some(entry) = self.book.entries.get_mut(self.book.selected) else {
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
        let interval = self.pace.interval();
        let time_budget = (interval / DRAIN_SHARE).clamp(DRAIN_TIME, DRAIN_TIME_MAX);
        let budget =
            DRAIN_BUDGET * (time_budget.as_millis() / DRAIN_TIME.as_millis()).max(1) as usize;
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
            if taken >= budget || start.elapsed() >= time_budget {
                // More may be waiting; the worker only wakes us once per
                // drain. The next capped frame takes the next share.
                ctx.request_repaint_after(interval);
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
        self.check_lessons();
        self.save_if_due(ctx);
        if self.any_reconnecting() {
            // Keeps the "next try in S s" countdown moving.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        frame_stats();
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
        if !self.open.is_empty() {
            egui::Panel::top("connection_list").show(ui, |ui| self.connection_list_ui(ui));
        }
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
            Tab::SideBySide => self.side_by_side_tab_ui(ui),
            Tab::Learn => {
                for action in self.learn.ui(ui, &self.state.lessons_done) {
                    self.actions.push(Action::Learn(action));
                }
            }
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
        if self.book.dirty_since.is_some() {
            self.save_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_icon_and_the_desktop_entry_go_together() {
        let icon = eframe::icon_data::from_png_bytes(ICON_PNG).expect("the icon is a PNG");
        assert_eq!((icon.width, icon.height), (256, 256));
        let entry = include_str!("../../assets/mqscope.desktop");
        for line in [
            "Exec=mqscope",
            "Icon=mqscope",
            "StartupWMClass=mqscope",
            "Type=Application",
        ] {
            assert!(
                entry.lines().any(|l| l == line),
                "{line} in the .desktop entry"
            );
        }
    }
}
