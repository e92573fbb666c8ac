//! The native window: the connection bar on top, the tabs (Explorer, Plots,
//! Timeline, QoS lab, Profiles) and the status bar with the counters.
//!
//! `App` owns the worker, the profiles and, per connection, its status, its
//! [`Store`] (topic tree and history) and its [`PacketLog`], and the embedded
//! sandbox broker that a first launch connects to. The panels (one file
//! each) read that state and queue [`Action`]s; the actions run after the
//! frame, so no view changes the state it is drawing mid-layout.

mod actions;
mod api;
pub mod capture_ui;
pub mod clock;
mod connection;
mod connection_bar;
mod connection_list;
mod connection_log;
mod file_picker;
pub mod inspector;
mod layout;
mod learn;
mod lifecycle;
mod pacing;
pub mod plots;
mod profile_editor;
mod profiles;
mod props_edit;
pub mod publish_panel;
pub mod qos_fault;
pub mod qos_lab;
mod replay_panel;
mod sandbox_panel;
mod settings;
mod side_by_side;
mod subscriptions;
pub mod timeline;
pub mod tree_view;

pub use connection_bar::status_text;
pub use file_picker::{FilePicker, RfdPicker};
pub use sandbox_panel::{SANDBOX_CLOUD_PROFILE, SANDBOX_PROFILE, mosquitto_sub_command};
pub use settings::Tab;

use crate::model::tree::NodeId;
use crate::mqtt::{Command, ConnStatus, ConnectionId, Event, EventKind, PublishToken, Worker};
use crate::profile::{Profile, ProfileStore, Qos, SubscriptionSpec, generate_client_id};
use crate::sandbox::SandboxConfig;
use connection::{ConnItem, Connection};
use inspector::InspectorAction;
use pacing::{FrameCost, Pace};
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
/// A batch of at least this many events, spread over two connections or
/// more, is applied on two threads (see [`App::deliver`]).
const PARALLEL_MIN: usize = 256;
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
    // The keyring answers over D-Bus (up to its probe's 3 s bound): ask it
    // while the window and its GL context are made, not after.
    let keyring = std::thread::Builder::new()
        .name("mqscope-keyring-probe".into())
        .spawn(crate::profile::Keyring::probe)
        .ok();
    eframe::run_native(
        "mqscope",
        options,
        Box::new(|cc| Ok(Box::new(App::new(cc, keyring)))),
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
    Record(capture_ui::RecordAction),
    /// Replay the shown capture into a live connection.
    StartReplay(crate::capture::replay::ReplayOptions),
    Replay(capture_ui::ReplayAction),
    Learn(learn::LearnAction),
    /// The Settings window changed limits, theme or redraw cap.
    Settings(settings::Chosen),
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
    /// How often live data is redrawn (Settings' cap and the CPU budget).
    pace: Pace,
    /// What a frame costs the process, measured as it runs.
    frame_cost: FrameCost,
    /// The Learn tab's choice of lesson.
    learn: learn::LearnView,
    /// Something happened since the lessons were last checked (an event or
    /// an action): the checks run then, not on every frame.
    lessons_stale: bool,
    /// A PNG of the plot being written from a screenshot.
    pending_png: Option<actions::PngSlot>,
    /// Capture files being read into their connections.
    loaders: Vec<(ConnectionId, crate::capture::loader::Loader)>,
    /// Captures opened in the window, for reads on demand.
    captures: HashMap<ConnectionId, Arc<crate::capture::file::CaptureFile>>,
    /// Offline connections (captures, pcap streams): what their timeline
    /// pages through and their inspector reads evicted payloads from.
    offline: HashMap<ConnectionId, crate::capture::offline::Offline>,
    /// A pcap file's loader (keyed by its first connection): the
    /// connection of each of its streams.
    stream_conns: HashMap<ConnectionId, Vec<ConnectionId>>,
    /// The window's context, for threads that wake it.
    wake: egui::Context,
    /// The replay form's fields, the live connection chosen, and the
    /// replay running (into that connection).
    replay_form: capture_ui::ReplayForm,
    replay_target: Option<ConnectionId>,
    replay: Option<crate::capture::replay::Replay>,
}

impl App {
    /// The real app: profiles from the user's config directory, native file
    /// dialogs, UI state from eframe's storage.
    /// `keyring`: the system keyring's probe, started before the window (a
    /// probe is made here when there is none).
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        keyring: Option<std::thread::JoinHandle<crate::profile::Keyring>>,
    ) -> App {
        // Clocks in the views show local time (tests keep UTC).
        clock::set_zone(clock::Zone::local());
        let state: State = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let keyring = keyring
            .and_then(|probe| probe.join().ok())
            .unwrap_or_else(crate::profile::Keyring::probe);
        let (store, problem) = match ProfileStore::open_default_with(keyring) {
            Ok(store) => (Some(store), None),
            Err(e) => (None, Some(format!("{e}. Profiles will not be saved."))),
        };
        App::build(
            cc.egui_ctx.clone(),
            store,
            problem,
            Box::new(RfdPicker),
            state,
            Some(SandboxConfig::gui_default()),
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
            frame_cost: FrameCost::default(),
            learn: learn::LearnView::default(),
            lessons_stale: true,
            pending_png: None,
            loaders: Vec::new(),
            captures: HashMap::new(),
            offline: HashMap::new(),
            stream_conns: HashMap::new(),
            wake: ctx.clone(),
            replay_form: capture_ui::ReplayForm::default(),
            replay_target: None,
            replay: None,
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

    /// The connection `conn`, made on first use with its profile's saved
    /// plot layout.
    fn connection_mut(&mut self, conn: ConnectionId) -> &mut Connection {
        let (book, state) = (&self.book, &self.state);
        self.connections.entry(conn).or_insert_with(|| {
            let specs = book
                .entries
                .iter()
                .find(|e| e.conn == Some(conn))
                .and_then(|e| state.plot_layouts.get(&e.profile.name))
                .cloned()
                .unwrap_or_default();
            let mut c = Connection::new(state.limits);
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

    fn connection_named(&self, profile: &str) -> Option<&Connection> {
        let entry = self
            .book
            .entries
            .iter()
            .find(|e| e.profile.name == profile)?;
        self.connection_of(entry)
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

    /// Applies a batch of the worker's events: the app's own routing first
    /// (a replay's publishes, the QoS lab's connections, errors of no
    /// connection), then each connection's events in order — on two threads
    /// when several busy connections share the batch, since their states are
    /// independent (a Store's intake is what a frame spends most on).
    pub(crate) fn deliver(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.lessons_stale = true;
        let mut batches: HashMap<ConnectionId, Vec<ConnItem>> = HashMap::new();
        for event in events {
            // A replay's publishes are its own: counted by it, not by the panel.
            if let EventKind::Published { token, outcome } = &event.kind
                && let Some(replay) = &self.replay
                && replay.on_published(*token, outcome)
            {
                continue;
            }
            // The QoS lab's own publisher and subscriber (a failure run) go
            // to the connection whose lab runs them.
            let (conn, item) = match qos_fault::owner_of(event.conn) {
                Some(owner) => (owner, ConnItem::Lab(event.conn, event.kind)),
                None => (event.conn, ConnItem::Own(event.kind)),
            };
            if !self.connections.contains_key(&conn) {
                if let ConnItem::Own(EventKind::Error(text)) = item {
                    // Not tied to a connection we know (e.g. the worker's
                    // runtime failed to start): the user must still see it.
                    self.notice = Some(Notice {
                        text,
                        is_error: true,
                    });
                }
                continue;
            }
            batches.entry(conn).or_default().push(item);
        }
        let total: usize = batches.values().map(Vec::len).sum();
        let mut work: Vec<(&mut Connection, Vec<ConnItem>)> = self
            .connections
            .iter_mut()
            .filter_map(|(id, c)| batches.remove(id).map(|items| (c, items)))
            .collect();
        let commands = if work.len() >= 2 && total >= PARALLEL_MIN {
            // Two shares of about equal size, largest batches first.
            work.sort_by_key(|(_, items)| std::cmp::Reverse(items.len()));
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            let (mut a, mut b) = (0, 0);
            for w in work {
                if a <= b {
                    a += w.1.len();
                    mine.push(w);
                } else {
                    b += w.1.len();
                    theirs.push(w);
                }
            }
            std::thread::scope(|s| {
                let helper = s.spawn(move || apply_batches(theirs));
                let mut commands = apply_batches(mine);
                match helper.join() {
                    Ok(more) => commands.extend(more),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
                commands
            })
        } else {
            apply_batches(work)
        };
        for cmd in commands {
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

    /// The selected profile's connection, if it is connected or connecting.
    fn active_conn(&self) -> Option<ConnectionId> {
        let conn = self.current()?.conn?;
        self.connections
            .get(&conn)
            .filter(|c| c.state.is_active())
            .map(|_| conn)
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
}

/// Applies each connection's events in order; returns the commands they
/// ask the worker for.
fn apply_batches(work: Vec<(&mut Connection, Vec<ConnItem>)>) -> Vec<Command> {
    let mut commands = Vec::new();
    for (connection, items) in work {
        for item in items {
            commands.extend(connection.apply(item));
        }
    }
    commands
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
            self.deliver(events);
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
                // A run steps on the events it gets: it is not paced like
                // live data (a run lasts seconds), and the step timeout is
                // checked even when no event arrives.
                ctx.request_repaint();
            }
        }
        self.drain_loaders();
        if self.loaders.iter().any(|_| true)
            || self
                .connections
                .values()
                .any(|c| c.state.recording.as_ref().is_some_and(|r| r.is_active()))
        {
            // Keeps the loading progress and the recording's counts moving.
            ctx.request_repaint_after(Duration::from_millis(500));
        }
        if std::mem::take(&mut self.lessons_stale) {
            self.check_lessons();
        }
        self.save_if_due(ctx);
        if self.any_reconnecting() {
            // Keeps the "next try in S s" countdown moving.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        frame_stats();
        if let Some(cost) = self.frame_cost.frame(Instant::now(), pacing::process_cpu()) {
            self.pace.update(cost);
        }
        self.take_screenshot();
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
            .show(ui, |ui| {
                let connection = self.current_connection().map(|c| &c.state);
                let asked = connection_bar::connection_bar_ui(
                    ui,
                    &self.book,
                    connection,
                    self.bar_error.as_deref(),
                );
                self.actions.extend(asked);
            });
        // Always there: "+ Open…" is how a capture is opened on a fresh start.
        egui::Panel::top("connection_list").show(ui, |ui| self.connection_list_ui(ui));
        egui::Panel::top("tab_strip").show(ui, |ui| {
            let asked = layout::tab_strip_ui(ui, self.state.tab, self.sandbox.port());
            self.actions.extend(asked);
        });
        egui::Panel::bottom("status_bar").show(ui, |ui| {
            let shown = self
                .book
                .current()
                .and_then(|e| e.conn)
                .and_then(|c| self.connections.get(&c))
                .map(|c| &c.state);
            let asked = layout::status_bar_ui(
                ui,
                &mut self.log_open,
                shown,
                self.notice.as_ref(),
                self.state.tab,
            );
            self.actions.extend(asked);
        });
        if self.log_open {
            egui::Panel::bottom("connection_log")
                .resizable(true)
                .default_size(150.0)
                .min_size(60.0)
                .show(ui, |ui| {
                    connection_log::connection_log_ui(
                        ui,
                        self.current_connection().map(|c| &c.state),
                    )
                });
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
                    .show(ui, |ui| {
                        let connections = &self.connections;
                        self.book.list_ui(
                            ui,
                            |c| connections.get(&c).map(|c| &c.state.status),
                            &mut self.actions,
                        );
                    });
                egui::CentralPanel::default().show(ui, |ui| {
                    self.book
                        .form_ui(ui, self.notice.as_ref(), &mut self.actions)
                });
            }
        }
        let connections = &self.connections;
        self.book.delete_modal_ui(
            ui.ctx(),
            |e| {
                e.conn
                    .and_then(|c| connections.get(&c))
                    .is_some_and(|c| c.state.is_active())
            },
            &mut self.actions,
        );
        self.clear_retained_modal_ui(ui.ctx());
        if let Some(chosen) =
            settings::settings_window_ui(ui.ctx(), &mut self.settings_open, &self.state)
        {
            self.apply(Action::Settings(chosen));
        }
        let selected = self.book.current().map(|e| &e.profile);
        let asked = self.sandbox.window_ui(ui.ctx(), selected);
        self.actions.extend(asked.into_iter().map(Action::Sandbox));

        let actions = std::mem::take(&mut self.actions);
        // Views change their own state on input too (a packet selected on
        // the timeline): any input counts.
        self.lessons_stale |= !actions.is_empty() || ui.input(|i| !i.events.is_empty());
        for action in actions {
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
