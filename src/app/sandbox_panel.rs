//! The sandbox inside the window: the embedded broker's lifecycle (start at
//! launch for the "Sandbox" profile, Start / Stop), its port for other
//! clients, the simulated devices' switches and rates, and its counters.
//!
//! The "Sandbox" profile is recognised by its name: its port follows the
//! port the broker got at each start (1883 when free, else another). So
//! does "Sandbox (TLS)", made by the panel's button, with the TLS port, the
//! sandbox CA and a client certificate from the sandbox's folder. The
//! "Sandbox cloud" profile follows the sandbox's cloud broker the same way
//! (1884 when free), where the book's surfboard monitor publishes.

use super::publish_panel::PublishRequest;
use super::{Action, App};
use crate::mqtt::Command;
use crate::mqtt::fault::CutStep;
use crate::profile::{Profile, Qos, TlsSettings, TransportKind};
use crate::sandbox::devices::BOOK_VEHICLE_COMMANDS;
use crate::sandbox::{DemoConfig, Fault, Sandbox, SandboxConfig, SandboxError, example_commands};
use egui::RichText;

/// The name of the profile that connects to the embedded broker.
pub const SANDBOX_PROFILE: &str = "Sandbox";
/// The name of the profile that connects to its TLS listener.
pub const SANDBOX_TLS_PROFILE: &str = "Sandbox (TLS)";

/// The name of the profile that connects to the sandbox's cloud broker.
pub const SANDBOX_CLOUD_PROFILE: &str = "Sandbox cloud";

/// Whether `profile` connects to the embedded broker (plain or TLS): it
/// starts the broker first and follows its ports.
pub(crate) fn is_sandbox_profile(profile: &Profile) -> bool {
    profile.name == SANDBOX_PROFILE || profile.name == SANDBOX_TLS_PROFILE
}

/// Whether `profile` is the one that follows the cloud broker.
pub(crate) fn is_sandbox_cloud_profile(profile: &Profile) -> bool {
    profile.name == SANDBOX_CLOUD_PROFILE
}

/// Whether connecting with `profile` needs the sandbox running (and its
/// port followed): the Sandbox and Sandbox cloud profiles.
pub(crate) fn follows_sandbox(profile: &Profile) -> bool {
    is_sandbox_profile(profile) || is_sandbox_cloud_profile(profile)
}

/// A new "Sandbox cloud" profile (its port is set when the broker starts).
pub(crate) fn sandbox_cloud_profile() -> Profile {
    Profile {
        name: SANDBOX_CLOUD_PROFILE.into(),
        host: "127.0.0.1".into(),
        ..Profile::default()
    }
}

/// A new "Sandbox" profile (its port is set when the broker starts).
pub(crate) fn sandbox_profile() -> Profile {
    Profile {
        name: SANDBOX_PROFILE.into(),
        host: "127.0.0.1".into(),
        ..Profile::default()
    }
}

/// The command a user can paste to watch the sandbox with Mosquitto's client.
pub fn mosquitto_sub_command(port: u16) -> String {
    format!("mosquitto_sub -h 127.0.0.1 -p {port} -t '#' -v")
}

/// The app's embedded broker, running or not, and what the panel edits.
pub(crate) struct SandboxHost {
    /// Start it at launch when the Sandbox profile is selected (the real app;
    /// tests opt in).
    pub(crate) autostart: bool,
    /// Port wish and devices for the next start; `config.demo` follows the
    /// panel's switches.
    pub(crate) config: SandboxConfig,
    pub(crate) running: Option<Sandbox>,
    /// Why the last start failed.
    pub(crate) error: Option<String>,
    /// The port of the last run: a restart asks for it first, so clients
    /// that joined on it can come back.
    pub(crate) last_port: Option<u16>,
    pub(crate) examples_added: bool,
    /// The "Sandbox" window (from the tab strip).
    pub(crate) window_open: bool,
    /// The surfboard count to restore when "Surfboards" is switched on again.
    surfboards: usize,
    /// The client certificate the "Sandbox (TLS)" profile gets.
    pub(crate) tls_client: String,
    /// The name typed for a new client certificate.
    pub(crate) new_cert: String,
    /// The outcome of the last certificate action: (is an error, text).
    pub(crate) cert_note: Option<(bool, String)>,
    /// The fault control: the client to cut and the step to cut it at.
    pub(crate) fault_client: String,
    pub(crate) fault_step: CutStep,
}

impl SandboxHost {
    pub(crate) fn new(config: Option<SandboxConfig>) -> SandboxHost {
        let autostart = config.is_some();
        let config = config.unwrap_or_default();
        SandboxHost {
            autostart,
            surfboards: config.demo.surfboards.max(1),
            config,
            running: None,
            error: None,
            last_port: None,
            examples_added: false,
            window_open: false,
            tls_client: "board001".into(),
            new_cert: String::new(),
            cert_note: None,
            fault_client: String::new(),
            fault_step: CutStep::AfterAck,
        }
    }

    /// The port clients connect to, while running.
    pub(crate) fn port(&self) -> Option<u16> {
        self.running
            .as_ref()
            .filter(|s| s.is_running())
            .map(Sandbox::port)
    }

    /// The cloud broker's port, while it runs.
    pub(crate) fn cloud_port(&self) -> Option<u16> {
        self.running
            .as_ref()
            .filter(|s| s.is_running())
            .and_then(Sandbox::cloud_port)
    }
}

/// What the panel asks the app to do.
#[derive(Debug)]
pub(crate) enum SandboxAction {
    Start,
    Stop,
    /// Select (or create) the Sandbox profile and connect to it.
    Explore,
    /// Select (or create) the "Sandbox cloud" profile and connect to it.
    ExploreCloud,
    SetDemo(DemoConfig),
    /// Create (or refresh) the "Sandbox (TLS)" profile, select it and
    /// connect.
    TlsProfile,
    /// Make a client certificate with this name in the sandbox's folder.
    CreateClientCert(String),
    /// Show the certificate folder in the file manager.
    OpenCertFolder,
    /// Arm (or with `None` disarm) a one-shot fault on a client's connection.
    SetFault(Option<Fault>),
}

impl App {
    /// The port of the sandbox's cloud broker, while it runs.
    pub fn sandbox_cloud_port(&self) -> Option<u16> {
        self.sandbox.cloud_port()
    }

    /// Starts the broker unless it runs; points every Sandbox profile at its
    /// port. On failure the connection bar and the log say why.
    pub(super) fn ensure_sandbox(&mut self) -> bool {
        if self.sandbox.port().is_none() {
            // A broker whose thread ended by itself: let it go.
            self.sandbox.running = None;
            let wished = self.sandbox.config.clone();
            let start = |config: SandboxConfig| match self.sandbox.last_port {
                Some(port) => Sandbox::start(SandboxConfig {
                    port: Some(port),
                    ..config.clone()
                })
                .or_else(|_| Sandbox::start(config)),
                None => Sandbox::start(config),
            };
            let mut tls_problem = None;
            let started = match start(wished.clone()) {
                // No certificates (no data folder, a broken CA key): the
                // plain listener still serves; the panel says why TLS is off.
                Err(e @ SandboxError::Tls(_)) => {
                    tls_problem = Some(format!("The TLS listener is off: {e}"));
                    start(SandboxConfig {
                        tls: None,
                        ..wished
                    })
                }
                other => other,
            };
            match started {
                Ok(sandbox) => {
                    let port = sandbox.port();
                    self.sandbox.running = Some(sandbox);
                    self.sandbox.last_port = Some(port);
                    self.sandbox.error = tls_problem.clone();
                    self.log_selected(format!("Sandbox broker started on 127.0.0.1:{port}"), false);
                    if let Some(problem) = tls_problem {
                        self.log_selected(problem, true);
                    }
                }
                Err(e) => {
                    let text = format!("The sandbox broker could not start: {e}");
                    self.sandbox.error = Some(text.clone());
                    self.bar_error = Some(text.clone());
                    self.log_selected(text, true);
                    return false;
                }
            }
        }
        let Some(port) = self.sandbox.port() else {
            return false;
        };
        let tls_port = self.sandbox.running.as_ref().and_then(Sandbox::tls_port);
        let cloud_port = self.sandbox.cloud_port();
        let mut changed = false;
        for entry in &mut self.book.entries {
            let follows = match entry.profile.name.as_str() {
                SANDBOX_PROFILE => Some(port),
                SANDBOX_TLS_PROFILE => tls_port,
                SANDBOX_CLOUD_PROFILE => cloud_port,
                _ => None,
            };
            if let Some(port) = follows
                && entry.profile.port != port
            {
                entry.profile.port = port;
                entry.port_text = port.to_string();
                changed = true;
            }
        }
        if changed {
            self.revalidate();
            self.mark_dirty();
        }
        if !self.sandbox.examples_added
            && let Some(c) = self.selected_mut()
        {
            let publish = &mut c.views.publish;
            // A new user's publish panel starts on the vehicle's command
            // topic, ready for one of the examples.
            if publish.topic().is_empty() {
                publish.set_topic(BOOK_VEHICLE_COMMANDS);
            }
            // QoS 2, as the book's remote control publishes its commands.
            for (label, topic, payload) in example_commands() {
                publish.add_example(
                    label,
                    PublishRequest::new(topic, payload.into_bytes(), Qos::ExactlyOnce, false),
                );
            }
            self.sandbox.examples_added = true;
        }
        true
    }

    /// Disconnects the Sandbox (and Sandbox cloud) profiles, then stops the
    /// brokers.
    pub(super) fn stop_sandbox(&mut self) {
        for entry in &self.book.entries {
            if !is_sandbox_profile(&entry.profile) && !is_sandbox_cloud_profile(&entry.profile) {
                continue;
            }
            if let Some(conn) = entry.conn
                && self
                    .connections
                    .get(&conn)
                    .is_some_and(|c| c.state.is_active())
            {
                self.worker.send(Command::Disconnect { conn });
            }
        }
        if let Some(mut sandbox) = self.sandbox.running.take() {
            sandbox.stop();
            self.log_selected("Sandbox broker stopped".into(), false);
        }
    }

    pub(super) fn sandbox_action(&mut self, action: SandboxAction) {
        match action {
            SandboxAction::Start => {
                if self.ensure_sandbox()
                    && self
                        .current()
                        .is_some_and(|e| is_sandbox_profile(&e.profile))
                {
                    self.connect();
                }
            }
            SandboxAction::Stop => self.stop_sandbox(),
            SandboxAction::Explore => {
                let i = match self
                    .book
                    .entries
                    .iter()
                    .position(|e| e.profile.name == SANDBOX_PROFILE)
                {
                    Some(i) => i,
                    None => {
                        self.add_entry(sandbox_profile());
                        self.book.entries.len() - 1
                    }
                };
                self.apply(Action::Select(i));
                self.state.tab = super::Tab::Explorer;
                self.connect();
            }
            SandboxAction::ExploreCloud => {
                let i = match self
                    .book
                    .entries
                    .iter()
                    .position(|e| is_sandbox_cloud_profile(&e.profile))
                {
                    Some(i) => i,
                    None => {
                        self.add_entry(sandbox_cloud_profile());
                        self.book.entries.len() - 1
                    }
                };
                // Its port is set by `ensure_sandbox` (run by the next
                // connect): select first, so the profile's port is current.
                self.apply(Action::Select(i));
                if self.ensure_sandbox() {
                    self.state.tab = super::Tab::Explorer;
                    self.connect();
                }
            }
            SandboxAction::SetDemo(demo) => {
                if let Some(sandbox) = &self.sandbox.running {
                    sandbox.set_demo(demo.clone());
                }
                self.sandbox.config.demo = demo;
            }
            SandboxAction::TlsProfile => self.tls_profile(),
            SandboxAction::CreateClientCert(name) => {
                let Some(certs) = self.sandbox.running.as_ref().and_then(Sandbox::certs) else {
                    return;
                };
                self.sandbox.cert_note = Some(match certs.create_client(name.trim()) {
                    Ok((crt, key)) => {
                        self.sandbox.tls_client = name.trim().to_string();
                        self.sandbox.new_cert.clear();
                        (
                            false,
                            format!("Made {} and {}", crt.display(), key.display()),
                        )
                    }
                    Err(e) => (true, e.to_string()),
                });
            }
            SandboxAction::SetFault(fault) => {
                if let Some(sandbox) = &self.sandbox.running {
                    sandbox.broker().set_fault(fault);
                }
            }
            SandboxAction::OpenCertFolder => {
                let Some(certs) = self.sandbox.running.as_ref().and_then(Sandbox::certs) else {
                    return;
                };
                if let Err(e) = open_folder(&certs.dir) {
                    self.sandbox.cert_note =
                        Some((true, format!("Cannot open {}: {e}", certs.dir.display())));
                }
            }
        }
    }

    /// Creates or refreshes the "Sandbox (TLS)" profile (TLS port, the
    /// sandbox CA, the chosen client certificate), selects it, connects.
    fn tls_profile(&mut self) {
        let Some(sandbox) = self.sandbox.running.as_ref() else {
            return;
        };
        let (Some(port), Some(certs)) = (sandbox.tls_port(), sandbox.certs()) else {
            return;
        };
        let (cert, key) = certs.client(&self.sandbox.tls_client);
        let tls = TlsSettings {
            ca_file: Some(certs.ca_cert()),
            client_cert: Some(cert),
            client_key: Some(key),
            ..TlsSettings::default()
        };
        let i = match self
            .book
            .entries
            .iter()
            .position(|e| e.profile.name == SANDBOX_TLS_PROFILE)
        {
            Some(i) => {
                let entry = &mut self.book.entries[i];
                entry.profile.host = "localhost".into();
                entry.profile.port = port;
                entry.port_text = port.to_string();
                entry.profile.transport = TransportKind::Tls;
                entry.profile.tls = tls;
                self.revalidate();
                self.mark_dirty();
                i
            }
            None => {
                self.add_entry(Profile {
                    name: SANDBOX_TLS_PROFILE.into(),
                    // The name the server certificate is made for.
                    host: "localhost".into(),
                    port,
                    transport: TransportKind::Tls,
                    tls,
                    ..Profile::default()
                });
                self.book.entries.len() - 1
            }
        };
        self.apply(Action::Select(i));
        self.state.tab = super::Tab::Explorer;
        self.connect();
    }
}

impl SandboxHost {
    /// The panel: where the broker listens, Start / Stop, the devices and
    /// the counters.
    /// `selected` is the profile selected in the window (the panel offers
    /// to explore the sandbox or its cloud when it is another one).
    pub(crate) fn panel_ui(
        &mut self,
        ui: &mut egui::Ui,
        selected: Option<&Profile>,
    ) -> Vec<SandboxAction> {
        let mut actions = Vec::new();
        let port = self.port();
        ui.horizontal_wrapped(|ui| {
            match port {
                Some(port) => {
                    ui.label(
                        RichText::new(format!("Sandbox broker: running on 127.0.0.1:{port}"))
                            .strong(),
                    );
                    if ui.button("Stop").clicked() {
                        actions.push(SandboxAction::Stop);
                    }
                }
                None => {
                    ui.label(RichText::new("Sandbox broker: stopped").strong());
                    if ui.button("Start").clicked() {
                        actions.push(SandboxAction::Start);
                    }
                }
            }
            let selected_is_sandbox = selected.is_some_and(is_sandbox_profile);
            if !selected_is_sandbox
                && ui
                    .button("Explore it")
                    .on_hover_text("Select the Sandbox profile and connect to it")
                    .clicked()
            {
                actions.push(SandboxAction::Explore);
            }
        });
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if let Some(cloud) = self.cloud_port() {
            ui.horizontal_wrapped(|ui| {
                ui.label(format!("Cloud broker: 127.0.0.1:{cloud}"))
                    .on_hover_text(
                        "A second broker playing the book's cloud MQTT provider: the surfboard \
                         monitor publishes one JSON summary per board there (topic surfboard01, …)",
                    );
                if let Some(stats) = self
                    .running
                    .as_ref()
                    .and_then(Sandbox::cloud_broker)
                    .map(|b| b.stats())
                {
                    ui.weak(format!(
                        "{} clients · {} received",
                        stats.clients, stats.received
                    ));
                }
                let selected_is_cloud = selected.is_some_and(is_sandbox_cloud_profile);
                if !selected_is_cloud
                    && ui
                        .button("Explore the cloud")
                        .on_hover_text(format!(
                            "Select (or create) the \"{SANDBOX_CLOUD_PROFILE}\" profile and connect to it"
                        ))
                        .clicked()
                {
                    actions.push(SandboxAction::ExploreCloud);
                }
            });
        }
        if let Some(port) = port {
            let command = mosquitto_sub_command(port);
            ui.horizontal(|ui| {
                ui.label(RichText::new(&command).monospace());
                if ui
                    .small_button("Copy")
                    .on_hover_text("Copy this command: any MQTT client can join the sandbox")
                    .clicked()
                {
                    ui.ctx().copy_text(command.clone());
                }
            });
        }
        self.secure_listeners_ui(ui, &mut actions);

        let mut demo = self.config.demo.clone();
        ui.horizontal_wrapped(|ui| {
            let mut surf = demo.surfboards > 0;
            if ui.checkbox(&mut surf, "Surfboards").changed() {
                demo.surfboards = if surf { self.surfboards } else { 0 };
            }
            if surf {
                let label = ui.label("count");
                let mut n = demo.surfboards;
                if ui
                    .add(egui::DragValue::new(&mut n).range(1..=50).speed(0.1))
                    .labelled_by(label.id)
                    .changed()
                {
                    demo.surfboards = n;
                    self.surfboards = n;
                }
                let label = ui.label("Hz");
                ui.add(
                    egui::DragValue::new(&mut demo.surf_rate_hz)
                        .range(0.1..=100.0)
                        .speed(0.1)
                        .max_decimals(1),
                )
                .labelled_by(label.id);
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.checkbox(&mut demo.vehicle, "Vehicle vehiclepi01")
                .on_hover_text(format!(
                    "The book's vehicle: obeys {{\"CMD\": \"TURN_ON_ENGINE\"}} and the other \
                     commands on {BOOK_VEHICLE_COMMANDS}"
                ));
            ui.checkbox(&mut demo.cloud_monitor, "Cloud monitor")
                .on_hover_text(
                    "The book's surfboard monitor: publishes each board's JSON summary to the \
                 cloud broker every second",
                );
        });
        ui.horizontal_wrapped(|ui| {
            ui.weak("Extras:");
            let mut json_boards = demo.json_surfboards > 0;
            if ui
                .checkbox(&mut json_boards, "JSON surfboards")
                .on_hover_text("Boards sending JSON telemetry on surfing/board/<n>/telemetry")
                .changed()
            {
                demo.json_surfboards = if json_boards { 4 } else { 0 };
            }
            ui.checkbox(&mut demo.demo_vehicle, "Demo vehicle")
                .on_hover_text(
                    "Obeys {\"cmd\":\"engine_on\"} and others on vehicles/vehicle-1/commands",
                );
            ui.checkbox(&mut demo.flaky, "Flaky sensor")
                .on_hover_text("Drops its connection now and then; its will says offline");
            ui.checkbox(&mut demo.retained_status, "Retained status");
        });
        if demo.vehicle && port.is_some() {
            ui.weak("Command the vehicle with the publish panel's Examples.");
        }
        if demo != self.config.demo {
            actions.push(SandboxAction::SetDemo(demo));
        }

        self.fault_ui(ui, &mut actions);

        if let Some(sandbox) = &self.running {
            // The counters move even when no message reaches this window.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_secs(1));
            let stats = sandbox.stats();
            ui.horizontal_wrapped(|ui| {
                ui.weak(format!(
                    "{} clients · {} received · {} delivered · {} retained",
                    stats.clients, stats.received, stats.sent, stats.retained
                ));
                if stats.dropped > 0 {
                    let mut who: Vec<String> = sandbox
                        .broker()
                        .drops_by_client()
                        .iter()
                        .take(10)
                        .map(|(id, n)| format!("{id}: {n}"))
                        .collect();
                    who.insert(
                        0,
                        "Messages not delivered because a client's queue was full \
                         (an offline session over its limit, or a client cut off)"
                            .into(),
                    );
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!("{} dropped", stats.dropped),
                    )
                    .on_hover_text(who.join("\n"));
                }
            });
        }
        actions
    }

    /// Fault injection: cut one client's connection once, at a step of its
    /// next publish handshake (the sandbox's log says when it fired).
    fn fault_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<SandboxAction>) {
        let Some(sandbox) = self.running.as_ref().filter(|s| s.is_running()) else {
            return;
        };
        let broker = sandbox.broker();
        let armed = broker.fault();
        let cut = broker.faults_injected();
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("Cut client");
            ui.add(
                egui::TextEdit::singleline(&mut self.fault_client)
                    .hint_text("client id")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            let combo = egui::ComboBox::from_id_salt("sandbox_fault_step")
                .selected_text(format!("cut {}", self.fault_step.label()))
                .show_ui(ui, |ui| {
                    for step in &CutStep::ALL[1..] {
                        ui.selectable_value(&mut self.fault_step, *step, step.label());
                    }
                });
            combo.response.accessible_name("Step of the cut");
            let client = self.fault_client.trim().to_string();
            if ui
                .add_enabled(!client.is_empty(), egui::Button::new("Arm cut"))
                .on_hover_text(
                    "Once: at this step of the client's next publish handshake the sandbox \
                     drops the packet (its PUBLISH, its PUBACK/PUBREC, or the PUBCOMP after its \
                     PUBREL) and closes the connection",
                )
                .clicked()
            {
                actions.push(SandboxAction::SetFault(Some(Fault {
                    client_id: client,
                    step: self.fault_step,
                })));
            }
            if armed.is_some() && ui.button("Disarm").clicked() {
                actions.push(SandboxAction::SetFault(None));
            }
        });
        let state = match &armed {
            Some(f) => format!(
                "armed: client '{}' is cut {} · {cut} connections cut so far",
                f.client_id,
                f.step.label()
            ),
            None => format!("no cut armed · {cut} connections cut so far"),
        };
        ui.weak(state);
    }

    /// The TLS and websocket listeners, the certificate folder, the
    /// "Sandbox (TLS)" profile button and the command lines with real paths.
    fn secure_listeners_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<SandboxAction>) {
        let Some(sandbox) = self.running.as_ref().filter(|s| s.is_running()) else {
            return;
        };
        if let Some(ws) = sandbox.ws_port() {
            ui.label(format!("Websockets: ws://127.0.0.1:{ws}/mqtt"));
        }
        let (Some(tls_port), Some(certs)) = (sandbox.tls_port(), sandbox.certs()) else {
            return;
        };
        let cert = if sandbox.requires_certificate() {
            "client certificate required"
        } else {
            "client certificate optional"
        };
        ui.label(format!("TLS: localhost:{tls_port} ({cert})"));
        if let Some(wss) = sandbox.wss_port() {
            ui.label(format!("Websockets over TLS: wss://localhost:{wss}/mqtt"));
        }
        let dir = certs.dir.display().to_string();
        let clients = certs.clients();
        let lines = sandbox.example_command_lines();
        ui.horizontal_wrapped(|ui| {
            ui.label("Certificates:");
            ui.label(RichText::new(&dir).monospace());
            if ui
                .small_button("Copy path")
                .on_hover_text("ca.crt, server.crt, and the client certificates are here")
                .clicked()
            {
                ui.ctx().copy_text(dir.clone());
            }
            if ui.small_button("Open folder").clicked() {
                actions.push(SandboxAction::OpenCertFolder);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("Client certificate");
            egui::ComboBox::from_id_salt("sandbox-tls-client")
                .selected_text(&self.tls_client)
                .show_ui(ui, |ui| {
                    for name in &clients {
                        ui.selectable_value(&mut self.tls_client, name.clone(), name);
                    }
                })
                .response
                .labelled_by(label.id);
            if ui
                .button("Connect with TLS")
                .on_hover_text(format!(
                    "Create the \"{SANDBOX_TLS_PROFILE}\" profile (sandbox CA and this client certificate) and connect"
                ))
                .clicked()
            {
                actions.push(SandboxAction::TlsProfile);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("New client certificate");
            ui.add(
                egui::TextEdit::singleline(&mut self.new_cert)
                    .hint_text("e.g. surfboard01")
                    .desired_width(120.0),
            )
            .labelled_by(label.id);
            let name = self.new_cert.trim().to_string();
            if ui
                .add_enabled(!name.is_empty(), egui::Button::new("Create certificate"))
                .clicked()
            {
                actions.push(SandboxAction::CreateClientCert(name));
            }
        });
        if let Some((is_error, note)) = &self.cert_note {
            if *is_error {
                ui.colored_label(ui.visuals().error_fg_color, note);
            } else {
                ui.weak(note);
            }
        }
        egui::CollapsingHeader::new("Command lines for other clients")
            .id_salt("sandbox-command-lines")
            .show(ui, |ui| {
                for line in &lines {
                    ui.label(RichText::new(line).monospace());
                }
                if ui.small_button("Copy command lines").clicked() {
                    ui.ctx().copy_text(lines.join("\n"));
                }
            });
    }

    /// The "Sandbox" window opened from the tab strip.
    pub(crate) fn window_ui(
        &mut self,
        ctx: &egui::Context,
        selected: Option<&Profile>,
    ) -> Vec<SandboxAction> {
        if !self.window_open {
            return Vec::new();
        }
        let mut open = true;
        let mut actions = Vec::new();
        egui::Window::new("Sandbox")
            .open(&mut open)
            .resizable(false)
            .collapsible(false)
            .show(ctx, |ui| {
                ui.weak("An MQTT broker inside mqscope, with simulated devices.");
                actions = self.panel_ui(ui, selected);
            });
        self.window_open = open;
        actions
    }
}

/// Opens `dir` in the desktop's file manager (without waiting for it).
fn open_folder(dir: &std::path::Path) -> std::io::Result<()> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let mut child = std::process::Command::new(program)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Reap it in the background so no zombie is left.
    std::thread::spawn(move || child.wait().ok());
    Ok(())
}
