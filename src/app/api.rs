//! What tests, benchmarks and other front ends read from the window and
//! feed into it: the selected connection's state, the profiles, a frozen
//! clock, messages injected without a broker.

use super::plots::Plots;
use super::{App, Tab};
use crate::model::flows::PacketLog;
use crate::model::store::Store;
use crate::mqtt::{ConnStatus, EventKind, Message};
use crate::profile::Profile;
use std::time::SystemTime;

impl App {
    /// The live plots of the selected profile's connection, once it has one.
    pub fn plots(&self) -> Option<&Plots> {
        self.current_connection().map(|c| &c.state.plots)
    }

    /// The port of the embedded sandbox broker, while it runs.
    pub fn sandbox_port(&self) -> Option<u16> {
        self.sandbox.port()
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
    pub fn inject_message_to(&mut self, profile: &str, msg: Message) -> bool {
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
            .apply(EventKind::Message(msg));
        true
    }

    /// Why the profiles could not be saved, while edits are unsaved.
    pub fn unsaved_because(&self) -> Option<&str> {
        self.book.save_failed.as_deref()
    }

    /// The lesson steps done so far ("lesson/step").
    pub fn lessons_done(&self) -> &std::collections::BTreeSet<String> {
        &self.state.lessons_done
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

    /// The labels (`PUBLISH id=1 qos=1 14 B`) of the rows the Timeline tab
    /// shows now, oldest first: the connection's own packets or, when
    /// chosen, those of its QoS lab publisher or subscriber.
    pub fn timeline_rows(&self) -> Vec<String> {
        self.timeline_entries()
            .map(|e| crate::model::flows::packet_label(&e.record))
            .collect()
    }

    fn timeline_entries(&self) -> impl Iterator<Item = &crate::model::flows::LogEntry> {
        let c = self.current_connection();
        let (view, log) = match c.map(|c| (c, c.views.timeline_source)) {
            Some((c, super::connection::TimelineSource::Lab(client))) => (
                Some(match client {
                    super::qos_fault::LabClient::Publisher => &c.views.lab_timelines.publisher,
                    super::qos_fault::LabClient::Subscriber => &c.views.lab_timelines.subscriber,
                }),
                c.state
                    .lab
                    .as_ref()
                    .and_then(|l| l.failure())
                    .map(|run| run.log(client)),
            ),
            Some((c, _)) => (Some(&c.views.timeline), Some(&c.state.packets)),
            None => (None, None),
        };
        view.into_iter()
            .flat_map(|v| v.shown().iter())
            .filter_map(move |&seq| log.and_then(|l| l.get(seq)))
    }

    /// The topic selected in the tree.
    pub fn selected_topic(&self) -> Option<String> {
        let node = self.current_connection()?.views.tree.selected?;
        self.store().map(|s| s.path(node))
    }

    /// Applies events as a frame applies the worker's (the same routing, the
    /// same per-connection order, several connections on two threads): for
    /// benchmarks and tests that feed the window without a broker.
    pub fn deliver_events(&mut self, events: Vec<crate::mqtt::Event>) {
        self.deliver(events);
    }

    /// The connection id of an open profile (see [`App::open_offline`]).
    pub fn connection_id(&self, profile: &str) -> Option<crate::mqtt::ConnectionId> {
        self.book
            .entries
            .iter()
            .find(|e| e.profile.name == profile)
            .and_then(|e| e.conn)
    }

    /// Feeds a message into the selected profile's store as if the broker
    /// had sent it, without a connection: for tests, screenshots and demos.
    pub fn inject_message(&mut self, msg: Message) {
        let Some(conn) = self.conn_id_for_selected() else {
            return;
        };
        self.connection_mut(conn)
            .state
            .apply(EventKind::Message(msg));
    }

    /// Freezes the clock the tree's ages and highlights read (`None`: the
    /// system clock), so a screenshot does not change from run to run.
    pub fn set_clock(&mut self, now: Option<SystemTime>) {
        self.clock = now;
    }

    /// Sets the history limits, as the Settings window does, for every
    /// connection's store and the ones opened later.
    pub fn set_history_limits(&mut self, limits: crate::model::store::HistoryLimits) {
        self.state.limits = limits;
        for conn in self.connections.values_mut() {
            conn.state.store.set_limits(limits);
        }
    }
}
