//! The profiles as the window edits them: the list, the one selected, its
//! problems, renaming and deleting, and saving (debounced, retried after a
//! failure) through the [`ProfileStore`]. No egui here: the profile list
//! and form (`profile_editor`) draw it and return Actions.

use super::Notice;
use crate::mqtt::ConnectionId;
use crate::profile::{
    Field, FieldError, Profile, ProfileStore, SaveOutcome, generate_profile_id, name_errors,
    unique_name, validate_port,
};
use std::path::PathBuf;
use std::time::Instant;

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
    /// Set for a capture file opened in the window: its entry is not a
    /// saved profile (it names the broker the capture came from).
    pub(crate) capture: Option<PathBuf>,
}

impl Entry {
    pub(crate) fn new(profile: Profile) -> Entry {
        Entry {
            port_text: profile.port.to_string(),
            profile,
            errors: Vec::new(),
            conn: None,
            capture: None,
        }
    }
}

/// A path field of the TLS section that "Browse…" fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathField {
    CaFile,
    ClientCert,
    ClientKey,
}

/// The profiles, their editing state and their saving.
pub(crate) struct ProfileBook {
    /// `None` when no config directory could be found: nothing is saved,
    /// and `store_problem` says so.
    pub(crate) store: Option<ProfileStore>,
    pub(crate) entries: Vec<Entry>,
    /// Index into `entries`; may point past the end only when it is empty.
    pub(crate) selected: usize,
    /// Why the profile file could not be loaded (it is kept untouched).
    pub(crate) store_problem: Option<String>,
    /// Where changes go since the profile file could not be loaded.
    pub(crate) recovered_to: Option<PathBuf>,
    /// Time of the last unsaved edit (or of the last failed save).
    pub(crate) dirty_since: Option<Instant>,
    /// Why the last save failed; the edits stay unsaved (and are retried)
    /// until a save succeeds.
    pub(crate) save_failed: Option<String>,
    /// The name being typed while the selected profile is renamed in the list.
    pub(crate) renaming: Option<String>,
    /// Set when renaming starts: the name field takes the keyboard focus.
    pub(crate) focus_rename: bool,
    /// The profile index waiting for the user to confirm its deletion.
    pub(crate) confirm_delete: Option<usize>,
}

impl ProfileBook {
    pub(crate) fn new(
        store: Option<ProfileStore>,
        store_problem: Option<String>,
        profiles: Vec<Profile>,
        selected: usize,
    ) -> ProfileBook {
        ProfileBook {
            store,
            entries: profiles.into_iter().map(Entry::new).collect(),
            selected,
            store_problem,
            recovered_to: None,
            dirty_since: None,
            save_failed: None,
            renaming: None,
            focus_rename: false,
            confirm_delete: None,
        }
    }

    /// The profile selected.
    pub(crate) fn current(&self) -> Option<&Entry> {
        self.entries.get(self.selected)
    }

    /// The profiles as edited (saved or not).
    pub(crate) fn profiles(&self) -> Vec<Profile> {
        self.entries.iter().map(|e| e.profile.clone()).collect()
    }

    /// A name no profile has yet, from `base`.
    pub(crate) fn unique_name(&self, base: &str) -> String {
        unique_name(&self.profiles(), base)
    }

    /// Adds a profile, selects it and saves. A copy of another profile
    /// (duplicate, open again) gets an id of its own: a saved password is
    /// found by id.
    pub(crate) fn add(&mut self, mut profile: Profile) -> Option<Notice> {
        if profile.id.is_empty() || self.entries.iter().any(|e| e.profile.id == profile.id) {
            profile.id = generate_profile_id();
        }
        self.entries.push(Entry::new(profile));
        self.selected = self.entries.len() - 1;
        self.renaming = None;
        self.revalidate();
        self.save_now()
    }

    /// Recomputes every profile's problems: its own fields, the port as
    /// typed, and names used twice.
    pub(crate) fn revalidate(&mut self) {
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

    /// Writes the profiles now (atomically, through the store); returns
    /// what the window should say about it, if anything.
    pub(crate) fn save_now(&mut self) -> Option<Notice> {
        let Some(store) = self.store.as_mut() else {
            self.dirty_since = None;
            return None;
        };
        // Captures opened in the window are not profiles.
        let profiles: Vec<Profile> = self
            .entries
            .iter()
            .filter(|e| e.capture.is_none())
            .map(|e| e.profile.clone())
            .collect();
        if !name_errors(&profiles).is_empty() {
            // The store refuses clashing names (passwords are keyed by name);
            // the Name field shows the error and the save waits for the fix.
            return None;
        }
        let result = store.save(&profiles);
        // A password the system keyring refused went to the file: say so.
        let keyring_notice = store.take_keyring_notice().map(|text| Notice {
            text,
            is_error: true,
        });
        match result {
            Ok(outcome) => {
                self.dirty_since = None;
                if let SaveOutcome::Recovered(path) = outcome {
                    self.recovered_to = Some(path);
                }
                let saved_again = self.save_failed.take().map(|_| Notice {
                    text: "The profiles are saved again.".into(),
                    is_error: false,
                });
                keyring_notice.or(saved_again)
            }
            Err(e) => {
                // The edits stay unsaved: retried, and saved on quit if the
                // disk lets us by then.
                self.dirty_since = Some(Instant::now());
                let first = self.save_failed.is_none();
                self.save_failed = Some(e.to_string());
                first.then(|| Notice {
                    text: format!("Could not save the profiles: {e}"),
                    is_error: true,
                })
            }
        }
    }
}
