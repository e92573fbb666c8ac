//! Opening and closing connections: Connect on the selected profile, the
//! strip of open connections (show, reconnect, close, a second connection
//! of an open profile), and reopening at start the ones left open.

use super::sandbox_panel::follows_sandbox;
use super::subscriptions::SubState;
use super::timeline::TimelineView;
use super::{Action, App, Notice, connection_list};
use crate::mqtt::{Command, ConnStatus, ConnectionId};
use std::time::Instant;

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
}
