//! Opening and closing connections: Connect on the selected profile, the
//! strip of open connections (show, reconnect, close, a second connection
//! of an open profile), and reopening at start the ones left open.

use super::sandbox_panel::follows_sandbox;
use super::subscriptions::SubState;
use super::timeline::TimelineView;
use super::{Action, App, Notice, connection_list};
use crate::mqtt::{Command, ConnStatus, ConnectionId};
use std::time::Instant;

/// Time a frame spends feeding a loading capture to its connection.
const LOAD_SLICE: std::time::Duration = std::time::Duration::from_millis(12);

impl App {
    /// Connects the profiles that were open when the window was last
    /// closed, and shows the one that was shown.
    pub(super) fn reopen_remembered(&mut self) {
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
    pub(super) fn is_open(&self, i: usize) -> bool {
        self.book
            .entries
            .get(i)
            .and_then(|e| e.conn)
            .is_some_and(|c| self.open.contains(&c))
    }

    /// Remembers which profiles are open, for the next start.
    pub(super) fn sync_open_profiles(&mut self) {
        self.state.open_profiles = self
            .open
            .iter()
            .filter_map(|c| self.book.entries.iter().find(|e| e.conn == Some(*c)))
            .map(|e| e.profile.name.clone())
            .collect();
    }

    /// The profile index of a connection.
    pub(super) fn entry_of(&self, conn: ConnectionId) -> Option<usize> {
        self.book.entries.iter().position(|e| e.conn == Some(conn))
    }

    pub(super) fn list_action(&mut self, action: connection_list::ListAction) {
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
                if self.current().is_some_and(|e| follows_sandbox(&e.profile))
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
                // A pcap stream's temporary capture goes with its last handle.
                self.offline.remove(&conn);
                self.captures.remove(&conn);
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
            ListAction::OpenCapture => self.open_capture(),
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

    pub(super) fn connect(&mut self) {
        // The Sandbox profile connects to the embedded broker: start it
        // first (its port may differ from last time).
        if self.current().is_some_and(|e| follows_sandbox(&e.profile)) && !self.ensure_sandbox() {
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
    pub(super) fn open_connection(&mut self, fresh: bool) {
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

    /// True (and the bar says why) when the selected profile cannot connect.
    pub(super) fn revalidate_blocks_connect(&mut self) -> bool {
        self.revalidate();
        match self.current().and_then(|e| e.errors.first()) {
            Some(first) => {
                self.bar_error = Some(format!("Cannot connect: {}", first.message));
                true
            }
            None => false,
        }
    }

    pub(super) fn any_reconnecting(&self) -> bool {
        self.connections
            .values()
            .any(|c| matches!(c.state.status, ConnStatus::Reconnecting { .. }))
    }

    /// Asks for a capture file and opens it offline, as a connection of its
    /// own in the strip: it is read on its own thread, in batches fed to
    /// the connection like a live one's events.
    pub(super) fn open_capture(&mut self) {
        let Some(path) = self
            .picker
            .pick_file("Open a capture file (.mqcap, .pcap, .pcapng)")
        else {
            return;
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let profile = crate::profile::Profile {
            name: self.book.unique_name(&format!("capture {file_name}")),
            ..crate::profile::Profile::default()
        };
        self.book.entries.push(super::Entry {
            capture: Some(path.clone()),
            ..super::Entry::new(profile)
        });
        self.book.selected = self.book.entries.len() - 1;
        let Some(conn) = self.conn_id_for_selected() else {
            return;
        };
        let connection = self.connection_mut(conn);
        connection
            .state
            .log(format!("Opening the capture {}", path.display()), false);
        connection.state.status = ConnStatus::Disconnected {
            reason: Some("opening a capture file: reading its index…".into()),
        };
        let ctx = self.wake.clone();
        let loader = crate::capture::loader::Loader::start(
            path,
            Some(std::sync::Arc::new(move || ctx.request_repaint())),
        );
        self.loaders.push((conn, loader));
        if !self.open.contains(&conn) {
            self.open.push(conn);
        }
    }

    /// Feeds what the capture loaders read to their connections, within
    /// [`LOAD_SLICE`] of a frame.
    pub(super) fn drain_loaders(&mut self) {
        use crate::capture::loader::LoadEvent;
        let mut finished = Vec::new();
        let loaders = std::mem::take(&mut self.loaders);
        // A slice of the loading per frame, by time: the window stays
        // responsive however large the capture (a batch is a thousand
        // records at most).
        let started = std::time::Instant::now();
        let mut more = false;
        for (conn, loader) in &loaders {
            loop {
                if started.elapsed() >= LOAD_SLICE {
                    more = true;
                    break;
                }
                let Some(event) = loader.next() else {
                    break;
                };
                match event {
                    LoadEvent::Opened(file) => {
                        let h = file.header();
                        let text = format!(
                            "Capture written by mqscope {} from {} ({}, client id {}), started {}",
                            h.mqscope, h.broker, h.protocol, h.client_id, h.started
                        );
                        self.connection_mut(*conn).state.log(text, false);
                        self.offline
                            .insert(*conn, crate::capture::offline::Offline::File(file.clone()));
                        self.captures.insert(*conn, file);
                    }
                    LoadEvent::PcapOpened { streams, summary } => {
                        self.pcap_opened(*conn, streams, summary);
                    }
                    LoadEvent::StreamBatch { stream, events } => {
                        let Some(&target) = self.stream_conns.get(conn).and_then(|c| c.get(stream))
                        else {
                            continue;
                        };
                        let c = self.connection_mut(target);
                        for kind in events {
                            let _ = c.state.apply(kind);
                        }
                    }
                    LoadEvent::Batch(events) => {
                        let c = self.connection_mut(*conn);
                        for kind in events {
                            // A capture is history: nothing it holds is
                            // answered or sent again.
                            let _ = c.state.apply(kind);
                        }
                        // Offline: whatever status the recording ended with.
                        let (read, total) = loader.progress();
                        c.state.status = ConnStatus::Disconnected {
                            reason: Some(format!(
                                "a capture file, offline: loading, {read} of {total} records read"
                            )),
                        };
                    }
                    LoadEvent::Done { notice } => {
                        if self.captures.contains_key(conn) && !self.stream_conns.contains_key(conn)
                        {
                            self.connection_mut(*conn).state.status = ConnStatus::Disconnected {
                                reason: Some("a capture file, offline".into()),
                            };
                        }
                        for target in self.stream_conns.remove(conn).unwrap_or_default() {
                            let c = self.connection_mut(target);
                            let total = c.state.store.total_messages();
                            let packets = c.state.packets.pushed();
                            c.state.log(
                                format!("Stream read: {total} messages, {packets} packets"),
                                false,
                            );
                        }
                        let c = self.connection_mut(*conn);
                        let total = c.state.store.total_messages();
                        let packets = c.state.packets.pushed();
                        c.state.log(
                            format!("Capture read: {total} messages, {packets} packets"),
                            false,
                        );
                        if let Some(text) = notice {
                            c.state.log(text.clone(), true);
                            self.notice = Some(Notice {
                                text,
                                is_error: true,
                            });
                        }
                        finished.push(*conn);
                    }
                    LoadEvent::Failed(text) => {
                        self.stream_conns.remove(conn);
                        let c = self.connection_mut(*conn);
                        c.state.log(text.clone(), true);
                        c.state.status = ConnStatus::Disconnected {
                            reason: Some(format!("could not open: {text}")),
                        };
                        self.notice = Some(Notice {
                            text: format!("Could not open the capture: {text}"),
                            is_error: true,
                        });
                        finished.push(*conn);
                    }
                }
            }
            // A pcap file is read whole before its streams are shown: say
            // how far the reading is.
            let (read, _) = loader.progress();
            if read > 0
                && !finished.contains(conn)
                && !self.captures.contains_key(conn)
                && !self.stream_conns.contains_key(conn)
            {
                self.connection_mut(*conn).state.status = ConnStatus::Disconnected {
                    reason: Some(format!(
                        "reading a pcap file: {read} MQTT packets and messages decoded so far"
                    )),
                };
            }
        }
        self.loaders = loaders;
        self.loaders.retain(|(c, _)| !finished.contains(c));
        if more {
            self.wake.request_repaint();
        }
    }

    /// A pcap file was decoded: each stream becomes a connection of its
    /// own, named by its endpoints (the first one takes the entry made when
    /// the file was chosen); TLS streams are listed as encrypted.
    fn pcap_opened(
        &mut self,
        first: ConnectionId,
        streams: Vec<crate::capture::spool::SpooledStream>,
        summary: String,
    ) {
        use crate::capture::pcap::StreamKind;
        let Some(first_entry) = self.entry_of(first) else {
            return;
        };
        let path = self.book.entries[first_entry].capture.clone();
        self.connection_mut(first).state.log(summary.clone(), false);
        if streams.is_empty() {
            let text = format!("No MQTT connection found in {summary}");
            let c = self.connection_mut(first);
            c.state.log(text.clone(), true);
            c.state.status = ConnStatus::Disconnected {
                reason: Some("no MQTT connection in this file".into()),
            };
            self.notice = Some(Notice {
                text,
                is_error: true,
            });
            return;
        }
        let shown = self.book.selected;
        let mut conns = Vec::new();
        for (i, stream) in streams.into_iter().enumerate() {
            let info = &stream.info;
            let name = match info.kind {
                StreamKind::Mqtt(_) => format!("{} -> {}", info.client, info.broker),
                StreamKind::Encrypted => {
                    format!("encrypted {} -> {}", info.client, info.broker)
                }
                StreamKind::MqttLevel(_) => {
                    format!("undecoded {} -> {}", info.client, info.broker)
                }
            };
            let profile = crate::profile::Profile {
                name: self.book.unique_name(&name),
                host: info.broker.ip().to_string(),
                port: info.broker.port(),
                ..crate::profile::Profile::default()
            };
            let conn = if i == 0 {
                self.book.entries[first_entry].profile = profile;
                first
            } else {
                self.book.entries.push(super::Entry {
                    capture: path.clone(),
                    ..super::Entry::new(profile)
                });
                self.book.selected = self.book.entries.len() - 1;
                let Some(conn) = self.conn_id_for_selected() else {
                    continue;
                };
                conn
            };
            let reason = match info.kind {
                StreamKind::Mqtt(v) => format!("{} from a pcap file, offline", v.label()),
                kind => format!("{}: its MQTT is not shown", kind.label()),
            };
            let c = self.connection_mut(conn);
            let (packets, messages) = stream
                .file
                .as_ref()
                .map_or((0, 0), |f| (f.packet_count(), f.message_count()));
            c.state.log(
                format!(
                    "pcap stream {}: {}, client {} -> broker {}, {packets} packets, {messages} messages",
                    info.id + 1,
                    info.kind.label(),
                    info.client,
                    info.broker,
                ),
                info.kind == StreamKind::Encrypted,
            );
            for problem in &info.problems {
                c.state.log(problem.clone(), true);
            }
            c.state.status = ConnStatus::Disconnected {
                reason: Some(reason),
            };
            if let Some(file) = stream.file {
                // Paged like a recording, and replayable like one.
                self.offline
                    .insert(conn, crate::capture::offline::Offline::File(file.clone()));
                self.captures.insert(conn, file);
            }
            if !self.open.contains(&conn) {
                self.open.push(conn);
            }
            conns.push(conn);
        }
        self.book.selected = shown;
        self.stream_conns.insert(first, conns);
    }
}
