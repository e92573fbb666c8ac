//! What the views' Actions do, applied after the frame: profile list
//! edits, subscriptions, publishing, clearing retained messages, exports,
//! the inspector's and the QoS lab's requests.

use super::connection::TimelineSource;
use super::*;

impl App {
    pub(super) fn apply(&mut self, action: Action) {
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
            Action::Settings(chosen) => {
                if chosen.max_fps != self.state.max_fps {
                    self.pace.set(chosen.max_fps);
                }
                if chosen.limits != self.state.limits {
                    for conn in self.connections.values_mut() {
                        conn.state.store.set_limits(chosen.limits);
                    }
                }
                self.state.limits = chosen.limits;
                self.state.dark = chosen.dark;
                self.state.max_fps = chosen.max_fps;
            }
            Action::List(action) => self.list_action(action),
            Action::Record(action) => self.record(action),
            Action::StartReplay(options) => self.start_replay(options),
            Action::Replay(action) => {
                if let Some(replay) = &self.replay {
                    match action {
                        capture_ui::ReplayAction::Pause => replay.pause(),
                        capture_ui::ReplayAction::Resume => replay.resume(),
                        capture_ui::ReplayAction::Stop => replay.stop(),
                    }
                }
            }
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
            Action::Lab(QosLabAction::RunFailure {
                step,
                side,
                payload_size,
            }) => {
                let Some(conn) = self.active_conn() else {
                    return;
                };
                let Some(profile) = self.current().map(|e| e.profile.clone()) else {
                    return;
                };
                let sandbox = self
                    .sandbox
                    .running
                    .as_ref()
                    .filter(|_| sandbox_panel::is_sandbox_profile(&profile))
                    .map(|s| s.broker().clone());
                let mut lab = QosLab::new(conn);
                // A failure that keeps it from starting is shown in the lab.
                if let Ok(cmds) =
                    lab.start_failure(conn, &profile, step, side, sandbox, payload_size)
                {
                    for cmd in cmds {
                        self.worker.send(cmd);
                    }
                }
                let c = self.connection_mut(conn);
                c.state.lab = Some(lab);
                // The last run's packets are gone with it.
                c.views.lab_timelines = Default::default();
            }
            Action::Lab(QosLabAction::ShowInTimeline { client, seq }) => {
                let Some(conn) = self.current().and_then(|e| e.conn) else {
                    return;
                };
                let views = &mut self.connection_mut(conn).views;
                views.timeline_source = TimelineSource::Lab(client);
                if let Some(seq) = seq {
                    views.lab_timelines.get_mut(client).reveal(seq);
                }
                self.state.tab = Tab::Timeline;
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

    /// Adds (or changes the QoS of) a filter of the selected profile; sends
    /// SUBSCRIBE when connected. The filter was validated by the form.
    pub(super) fn subscribe(&mut self, spec: SubscriptionSpec) {
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

    pub(super) fn unsubscribe(&mut self, filter: String) {
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

    pub(super) fn tree_action(&mut self, conn: ConnectionId, action: TreeAction) {
        match action {
            TreeAction::Select { topic, .. } => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.views.publish.set_topic(&topic);
                }
            }
            TreeAction::ClearRetained(node) => self.ask_clear_retained(conn, node),
        }
    }

    pub(super) fn ask_clear_retained(&mut self, conn: ConnectionId, node: NodeId) {
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
    pub(super) fn clear_retained(&mut self) {
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

    pub(super) fn publish(
        &mut self,
        conn: ConnectionId,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
        retain: bool,
    ) -> PublishToken {
        self.publish_with(conn, topic, payload, qos, retain, None)
    }

    pub(super) fn publish_with(
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

    pub(super) fn timeline_action(&mut self, action: TimelineAction) {
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
                    match c.views.timeline_source {
                        TimelineSource::Own => c.state.packets.set_capacity(n),
                        TimelineSource::Lab(client) => {
                            if let Some(run) = c.state.lab.as_mut().and_then(|l| l.failure_mut()) {
                                run.log_mut(client).set_capacity(n);
                            }
                        }
                    }
                }
            }
            TimelineAction::Clear => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    match c.views.timeline_source {
                        TimelineSource::Own => {
                            c.state.packets.clear();
                            c.views.timeline = TimelineView::default();
                        }
                        TimelineSource::Lab(client) => {
                            if let Some(run) = c.state.lab.as_mut().and_then(|l| l.failure_mut()) {
                                run.log_mut(client).clear();
                            }
                            *c.views.lab_timelines.get_mut(client) = TimelineView::default();
                        }
                    }
                }
            }
        }
    }

    /// Asks where to save and writes `bytes`; the outcome is shown as a notice.
    pub(super) fn save_bytes(&mut self, title: &str, default_name: &str, bytes: &[u8]) {
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

    pub(super) fn save_text(&mut self, title: &str, default_name: &str, text: &str) {
        self.save_bytes(title, default_name, text.as_bytes());
    }

    /// The flow of the PUBLISH record that carried a message: an exact
    /// link by sequence number, while the record is still in the log.
    pub(super) fn find_flow(
        &self,
        conn: ConnectionId,
        packet_seq: Option<u64>,
    ) -> Option<crate::model::flows::FlowId> {
        let c = self.connections.get(&conn)?;
        c.state.packets.get(packet_seq?).map(|e| e.flow)
    }

    pub(super) fn import(&mut self) {
        let Some(path) = self
            .picker
            .pick_file("Import profiles (mqscope, MQTT Explorer or MQTTX)")
        else {
            return;
        };
        // MQTT Explorer's settings.json and MQTTX's export are JSON,
        // recognised by content; mqscope's own export is RON.
        let json = std::fs::read(&path)
            .ok()
            .is_some_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok());
        if json {
            self.import_foreign(&path);
            return;
        }
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

    /// Imports MQTT Explorer or MQTTX connections (certificates written
    /// next to the profiles, passwords left out) and says what was
    /// imported and what could not be carried over.
    fn import_foreign(&mut self, path: &std::path::Path) {
        // The importer adds to the profiles on disk: they must be current.
        self.save_now();
        let Some(store) = self.book.store.as_mut() else {
            self.notice = Some(Notice {
                text: "Profiles cannot be saved here, so nothing can be imported".into(),
                is_error: true,
            });
            return;
        };
        match crate::profile::import::import_file(path, store, false) {
            Ok(report) => {
                let text = crate::profile::import::report_text(path, store, &report);
                for c in &report.imported {
                    self.book.entries.push(Entry::new(c.profile.clone()));
                }
                self.book.selected = self.book.entries.len().saturating_sub(1);
                self.revalidate();
                self.notice = Some(Notice {
                    text: text.trim_end().to_string(),
                    is_error: false,
                });
            }
            Err(e) => {
                self.notice = Some(Notice {
                    text: format!("Could not import {}: {e}", path.display()),
                    is_error: true,
                });
            }
        }
    }

    pub(super) fn export(&mut self) {
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

    pub(super) fn browse(&mut self, field: PathField) {
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

    /// Asks where to write the plot as PNG, then asks the window for a
    /// screenshot: the plot's rectangle of it is written when it arrives
    /// and [`App::take_screenshot`] says how that went.
    pub(super) fn ask_plot_png(&mut self, ctx: &egui::Context, rect: Option<egui::Rect>) {
        let Some(rect) = rect else {
            self.notice = Some(Notice {
                text: "Nothing is plotted yet: add a series first".into(),
                is_error: true,
            });
            return;
        };
        let Some(path) = self.picker.save_file("Export the plot as PNG", "plot.png") else {
            return;
        };
        let slot: PngSlot = Default::default();
        self.pending_png = Some(slot.clone());
        let ppp = ctx.pixels_per_point();
        let wake = ctx.clone();
        ctx.request_screenshot(move |image| {
            let cropped = image.region(&rect, Some(ppp));
            let outcome = write_png(&path, &cropped)
                .map(|bytes| {
                    format!(
                        "Saved the plot ({}×{} px, {bytes} bytes) to {}",
                        cropped.width(),
                        cropped.height(),
                        path.display()
                    )
                })
                .map_err(|e| format!("Could not write {}: {e}", path.display()));
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(outcome);
            }
            wake.request_repaint();
        });
    }

    /// Says how the plot's PNG went, once its screenshot was written.
    pub(super) fn take_screenshot(&mut self) {
        let Some(slot) = &self.pending_png else {
            return;
        };
        let outcome = slot.lock().ok().and_then(|mut s| s.take());
        if let Some(outcome) = outcome {
            self.pending_png = None;
            self.notice = Some(match outcome {
                Ok(text) => Notice {
                    text,
                    is_error: false,
                },
                Err(text) => Notice {
                    text,
                    is_error: true,
                },
            });
        }
    }
}

/// Where a screenshot's callback leaves the outcome of writing the PNG.
pub(crate) type PngSlot = std::sync::Arc<std::sync::Mutex<Option<Result<String, String>>>>;

/// Encodes `image` as PNG into `path`; returns the file's size.
pub(crate) fn write_png(path: &std::path::Path, image: &egui::ColorImage) -> Result<usize, String> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| "the screenshot has no pixels".to_string())?;
    let mut bytes = Vec::new();
    buffer
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| e.to_string())?;
    std::fs::write(path, &bytes).map_err(|e| e.to_string())?;
    Ok(bytes.len())
}

impl App {
    /// Starts or stops recording the shown connection to a capture file
    /// (written by the worker, so a slow window loses nothing of it).
    pub(super) fn record(&mut self, action: capture_ui::RecordAction) {
        let Some(conn) = self
            .active_conn()
            .or_else(|| self.current().and_then(|e| e.conn))
        else {
            return;
        };
        match action {
            capture_ui::RecordAction::Start => {
                let name = self
                    .current()
                    .map(|e| e.profile.name.replace(['/', '\\', ' '], "_"))
                    .unwrap_or_else(|| "capture".into());
                let Some(path) = self.picker.save_file(
                    "Record this connection to a capture file",
                    &format!("{name}.mqcap"),
                ) else {
                    return;
                };
                let status = crate::capture::record::RecordingStatus::new();
                self.worker.send(Command::Record {
                    conn,
                    path: path.clone(),
                    status: status.clone(),
                });
                let c = self.connection_mut(conn);
                c.state.recording = Some(status);
                c.state
                    .log(format!("Recording to {}", path.display()), false);
            }
            capture_ui::RecordAction::Stop => {
                self.worker.send(Command::StopRecording { conn });
                if let Some(c) = self.connections.get_mut(&conn) {
                    let summary = c.state.recording.as_ref().map(|r| r.summary());
                    c.state.log(
                        format!("Recording stopped: {}", summary.unwrap_or_default()),
                        false,
                    );
                }
            }
        }
    }
}

impl App {
    /// The live connections a capture can be replayed into: (id, name).
    pub(super) fn replay_targets(&self) -> Vec<(ConnectionId, String)> {
        self.open
            .iter()
            .filter_map(|c| {
                let e = self.book.entries.iter().find(|e| e.conn == Some(*c))?;
                let live = self
                    .connections
                    .get(c)
                    .is_some_and(|x| matches!(x.state.status, ConnStatus::Connected { .. }));
                (e.capture.is_none() && live).then(|| (*c, e.profile.name.clone()))
            })
            .collect()
    }

    /// Publishes the shown capture (as the form chose) into the live
    /// connection chosen, through the worker.
    pub(super) fn start_replay(&mut self, options: crate::capture::replay::ReplayOptions) {
        let source = self.current().and_then(|e| e.conn);
        let Some(file) = source.and_then(|c| self.captures.get(&c)).cloned() else {
            return;
        };
        let Some(target) = self.replay_target.filter(|t| {
            self.connections
                .get(t)
                .is_some_and(|c| matches!(c.state.status, ConnStatus::Connected { .. }))
        }) else {
            self.notice = Some(Notice {
                text: "Choose a connected connection to replay into".into(),
                is_error: true,
            });
            return;
        };
        if let Some(old) = self.replay.take() {
            old.stop();
        }
        let sender = self.worker.sender();
        let replay = crate::capture::replay::Replay::start(
            file,
            target,
            options,
            Box::new(move |cmd| sender.send(cmd)),
        );
        let name = self
            .book
            .entries
            .iter()
            .find(|e| e.conn == Some(target))
            .map(|e| e.profile.name.clone())
            .unwrap_or_default();
        self.connection_mut(target).state.log(
            format!("Replaying a capture into this connection ({name})"),
            false,
        );
        self.replay = Some(replay);
    }
}
