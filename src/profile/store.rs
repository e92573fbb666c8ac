//! The profile file (`profiles.ron`) and the saved passwords in the config
//! directory: atomic writes, and a file that cannot be read is kept
//! untouched while changes go to a recovery file beside it.
//!
//! Saved passwords go to the system keyring when one answered the start-up
//! probe (entries keyed by the profile's id), else to the owner-only
//! `passwords.ron` (keyed by profile name). A password in the file moves to
//! the keyring once one is there; one the keyring refuses stays in (or goes
//! to) the file, and the editor says which holds it.

use super::keyring::{Keyring, PasswordHome};
use super::validate::{Field, FieldError};
use super::{Profile, generate_profile_id};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Environment variable that replaces the config directory (tests, portable setups).
pub const CONFIG_DIR_ENV: &str = "MQSCOPE_CONFIG_DIR";

/// The version this build writes; a file with a larger one came from a newer
/// mqscope and is not overwritten (its new fields would be lost).
const FORMAT_VERSION: u32 = 1;

const PROFILES_FILE: &str = "profiles.ron";
const PASSWORDS_FILE: &str = "passwords.ron";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot find a configuration directory for mqscope; set {CONFIG_DIR_ENV}")]
    NoConfigDir,
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not text (UTF-8); it was left as it is", path.display())]
    NotText { path: PathBuf },
    #[error("cannot parse {} at line {line}, column {column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{} was written by a newer mqscope (format version {version}, this one reads {FORMAT_VERSION}); it was left as it is",
        path.display()
    )]
    TooNew { path: PathBuf, version: u32 },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {message}", path.display())]
    Serialize { path: PathBuf, message: String },
    #[error("two profiles are named '{name}'; give each profile its own name before saving")]
    DuplicateName { name: String },
    #[error("profile '{name}' has the id of another profile (or none); it was not saved")]
    DuplicateId { name: String },
    /// The system keyring could not read or take a saved password.
    #[error("{0}")]
    Keyring(String),
}

/// Where `save` put the profiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written to the usual files.
    Saved,
    /// The usual file could not be loaded and was kept as it is; the changes
    /// went to this file instead. Tell the user.
    Recovered(PathBuf),
}

#[derive(Serialize, Deserialize)]
#[serde(default)]
struct ProfilesFile {
    profiles: Vec<Profile>,
    version: u32,
}

impl Default for ProfilesFile {
    fn default() -> Self {
        ProfilesFile {
            profiles: Vec::new(),
            version: FORMAT_VERSION,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default)]
struct PasswordsFile {
    /// Profile name → password.
    passwords: BTreeMap<String, String>,
    version: u32,
}

impl Default for PasswordsFile {
    fn default() -> Self {
        PasswordsFile {
            passwords: BTreeMap::new(),
            version: FORMAT_VERSION,
        }
    }
}

/// One profile shared as a file. `profile` has no default, so that importing
/// some other RON file fails instead of yielding a blank profile.
#[derive(Serialize, Deserialize)]
struct ExportFile {
    profile: Profile,
    #[serde(default = "format_version")]
    version: u32,
}

fn format_version() -> u32 {
    FORMAT_VERSION
}

/// The profiles in one config directory.
pub struct ProfileStore {
    dir: PathBuf,
    /// Files that exist but could not be loaded: never written over.
    protected: HashSet<PathBuf>,
    /// Recovery files chosen in this session (usual path → recovery path), so
    /// every save of a session goes to the same one.
    recovery: BTreeMap<PathBuf, PathBuf>,
    /// A problem with passwords.ron found by the last `load`.
    password_problem: Option<StoreError>,
    loaded: bool,
    /// The passwords as passwords.ron holds them (last load or save).
    on_disk: BTreeMap<String, String>,
    /// The system keyring, or why there is none.
    keyring: Keyring,
    /// The passwords the keyring holds as far as this store knows (read or
    /// written in this session): profile id → password.
    in_keyring: BTreeMap<String, String>,
    /// Profiles (by name) whose password is in the file because the keyring
    /// refused it, with the keyring's answer.
    refused: BTreeMap<String, String>,
    /// What went wrong with the keyring in the last save, to tell the user.
    keyring_notice: Option<String>,
}

impl std::fmt::Debug for ProfileStore {
    /// Without the passwords it holds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileStore")
            .field("dir", &self.dir)
            .field("keyring", &self.keyring)
            .field("passwords_in_file", &self.on_disk.len())
            .field("passwords_in_keyring", &self.in_keyring.len())
            .finish_non_exhaustive()
    }
}

impl ProfileStore {
    /// `$MQSCOPE_CONFIG_DIR` if set, else the platform's config directory
    /// (e.g. `~/.config/mqscope`). The directory is created by the first save.
    /// Saved passwords go to the system keyring if one answers a probe
    /// (waiting at most a few seconds; see [`Keyring::probe`]).
    pub fn open_default() -> Result<ProfileStore, StoreError> {
        ProfileStore::open_default_with(Keyring::probe())
    }

    /// [`ProfileStore::open_default`] with a keyring probed already (the
    /// window probes it on its own thread while it opens).
    pub fn open_default_with(keyring: Keyring) -> Result<ProfileStore, StoreError> {
        let dir = config_dir(std::env::var_os(CONFIG_DIR_ENV))?;
        Ok(ProfileStore::at(dir).with_keyring(keyring))
    }

    /// The store of `dir`, with saved passwords in its owner-only file only
    /// (tests, portable setups): see [`ProfileStore::with_keyring`].
    pub fn at(dir: impl Into<PathBuf>) -> ProfileStore {
        ProfileStore {
            dir: dir.into(),
            protected: HashSet::new(),
            recovery: BTreeMap::new(),
            password_problem: None,
            loaded: false,
            on_disk: BTreeMap::new(),
            keyring: Keyring::none("the system keyring is not used for this profile directory"),
            in_keyring: BTreeMap::new(),
            refused: BTreeMap::new(),
            keyring_notice: None,
        }
    }

    /// Saved passwords go to `keyring` when it is available. Call before
    /// `load`.
    pub fn with_keyring(mut self, keyring: Keyring) -> ProfileStore {
        self.keyring = keyring;
        self
    }

    /// The system keyring, or why there is none.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Where the password of `profile` is saved (or would be, once
    /// "save password" is ticked), for the editor.
    pub fn password_home(&self, profile: &Profile) -> PasswordHome {
        let path = self
            .recovery
            .get(&self.passwords_path())
            .cloned()
            .unwrap_or_else(|| self.passwords_path());
        match &self.keyring {
            Keyring::Available(k) => match self.refused.get(&profile.name) {
                Some(why) => PasswordHome::File {
                    path,
                    reason: format!("the {} refused it: {why}", k.name()),
                },
                None => PasswordHome::Keyring { name: k.name() },
            },
            Keyring::Unavailable(why) => PasswordHome::File {
                path,
                reason: format!("no system keyring available: {why}"),
            },
        }
    }

    /// What went wrong with the keyring in the last save (a password it
    /// refused went to the file instead; an old entry it did not remove),
    /// once.
    pub fn take_keyring_notice(&mut self) -> Option<String> {
        self.keyring_notice.take()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn profiles_path(&self) -> PathBuf {
        self.dir.join(PROFILES_FILE)
    }

    pub fn passwords_path(&self) -> PathBuf {
        self.dir.join(PASSWORDS_FILE)
    }

    /// Reads profiles.ron and fills in the saved passwords.
    ///
    /// A missing file gives an empty list. A file that cannot be read or
    /// parsed gives an error naming the file (with RON's line and column);
    /// the store then never overwrites it: see [`ProfileStore::save`].
    /// A broken passwords.ron does not stop the profiles from loading: they
    /// come without passwords and [`ProfileStore::password_problem`] says why.
    pub fn load(&mut self) -> Result<Vec<Profile>, StoreError> {
        self.loaded = true;
        self.protected.clear();
        self.password_problem = None;

        let profiles_path = self.profiles_path();
        let mut profiles = match read_ron::<ProfilesFile>(&profiles_path) {
            Ok(None) => Vec::new(),
            Ok(Some(file)) if file.version > FORMAT_VERSION => {
                self.protected.insert(profiles_path.clone());
                return Err(StoreError::TooNew {
                    path: profiles_path,
                    version: file.version,
                });
            }
            Ok(Some(file)) => file.profiles,
            Err(e) => {
                self.protected.insert(profiles_path);
                return Err(e);
            }
        };

        let passwords_path = self.passwords_path();
        let passwords = match read_ron::<PasswordsFile>(&passwords_path) {
            Ok(file) => file.map(|f| f.passwords).unwrap_or_default(),
            Err(e) => {
                self.protected.insert(passwords_path.clone());
                self.password_problem = Some(e);
                BTreeMap::new()
            }
        };
        self.on_disk = passwords.clone();
        // Every profile has an id of its own (a file written by hand or by
        // an older mqscope may have none or the same twice).
        let mut ids = HashSet::new();
        for profile in &mut profiles {
            if profile.id.is_empty() || !ids.insert(profile.id.clone()) {
                profile.id = generate_profile_id();
                ids.insert(profile.id.clone());
            }
        }
        self.in_keyring.clear();
        self.refused.clear();
        // A password in the file wins: the file holds one only when it was
        // saved before a keyring was there, or the keyring refused it; both
        // move to the keyring now.
        let mut to_move = false;
        let mut unreadable = Vec::new();
        for profile in &mut profiles {
            profile.password = String::new();
            if !profile.save_password {
                continue;
            }
            if let Some(password) = passwords.get(&profile.name) {
                profile.password = password.clone();
                to_move |= matches!(self.keyring, Keyring::Available(_));
                continue;
            }
            if let Keyring::Available(k) = &self.keyring {
                match k.get(&profile.id) {
                    Ok(Some(password)) => {
                        self.in_keyring.insert(profile.id.clone(), password.clone());
                        profile.password = password;
                    }
                    Ok(None) => {}
                    Err(e) => unreadable.push(format!("'{}' ({e})", profile.name)),
                }
            }
        }
        if !unreadable.is_empty()
            && let Keyring::Available(k) = &self.keyring
        {
            self.password_problem = Some(StoreError::Keyring(format!(
                "the {} did not give the saved password of {}",
                k.name(),
                unreadable.join(", ")
            )));
        }
        let passwords_readable = !self.protected.contains(&passwords_path);
        if to_move && passwords_readable {
            // Keyring first, then the profiles, then the file pruned: a
            // failure at any step leaves each password findable.
            let moved = self.save(&profiles);
            let notice = self.keyring_notice.take();
            if self.password_problem.is_none() {
                self.password_problem = match (moved, notice) {
                    (Err(e), _) => Some(StoreError::Keyring(format!(
                        "the saved passwords could not be moved to the system keyring: {e}"
                    ))),
                    (Ok(_), Some(notice)) => Some(StoreError::Keyring(notice)),
                    (Ok(_), None) => None,
                };
            }
        }
        Ok(profiles)
    }

    /// Why the saved passwords could not be loaded by the last `load`, if so.
    pub fn password_problem(&self) -> Option<&StoreError> {
        self.password_problem.as_ref()
    }

    /// Writes all profiles atomically (temp file in the same directory, fsync,
    /// rename). Passwords of profiles with `save_password` go to passwords.ron
    /// (mode 0600 on unix); profiles.ron never holds a password. Names must be
    /// unique (saved passwords are found by name): see [`unique_name`].
    ///
    /// If `load` could not read a file, that file is kept and the changes go
    /// to `profiles.recovered.ron` (or `passwords.recovered.ron`), reported as
    /// [`SaveOutcome::Recovered`].
    pub fn save(&mut self, profiles: &[Profile]) -> Result<SaveOutcome, StoreError> {
        if let Some(index) = name_errors(profiles).first().map(|(i, _)| *i) {
            return Err(StoreError::DuplicateName {
                name: profiles[index].name.clone(),
            });
        }
        if !self.loaded {
            // Saving without loading first must not clobber a file we never
            // looked at; load() records what is unreadable.
            let _ = self.load();
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| StoreError::Write {
            path: self.dir.clone(),
            source,
        })?;

        let mut ids = HashSet::new();
        if let Some(p) = profiles
            .iter()
            .find(|p| p.id.is_empty() || !ids.insert(p.id.as_str()))
        {
            return Err(StoreError::DuplicateId {
                name: p.name.clone(),
            });
        }

        // Passwords to the keyring first (found by profile id, which a
        // rename keeps); what it refuses goes to the file.
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        let mut in_keyring_now: HashSet<String> = HashSet::new();
        let mut refusals = Vec::new();
        for p in profiles
            .iter()
            .filter(|p| p.save_password && !p.password.is_empty())
        {
            let Keyring::Available(k) = &self.keyring else {
                wanted.insert(p.name.clone(), p.password.clone());
                continue;
            };
            if self.in_keyring.get(&p.id) == Some(&p.password) {
                in_keyring_now.insert(p.id.clone());
                continue;
            }
            match k.set(&p.id, &p.password) {
                Ok(()) => {
                    self.in_keyring.insert(p.id.clone(), p.password.clone());
                    in_keyring_now.insert(p.id.clone());
                }
                Err(e) => {
                    wanted.insert(p.name.clone(), p.password.clone());
                    self.refused.insert(p.name.clone(), e.clone());
                    refusals.push(format!("'{}' ({e})", p.name));
                }
            }
        }
        self.refused.retain(|name, _| wanted.contains_key(name));
        let passwords_target = self.target(&self.passwords_path());
        // Passwords are found by profile name. Written in this order — the
        // passwords of both the old and the new names, then the profiles,
        // then the passwords pruned — a failure or a crash at any step
        // leaves every profile on disk next to its password.
        let renamed_or_new = wanted
            .iter()
            .any(|(name, password)| self.on_disk.get(name) != Some(password));
        if renamed_or_new {
            let mut union = self.on_disk.clone();
            union.extend(wanted.clone());
            let file = PasswordsFile {
                passwords: union.clone(),
                version: FORMAT_VERSION,
            };
            write_ron(&passwords_target, &file, true)?;
            self.on_disk = union;
        }

        let file = ProfilesFile {
            profiles: profiles.to_vec(),
            version: FORMAT_VERSION,
        };
        let profiles_target = self.target(&self.profiles_path());
        write_ron(&profiles_target, &file, false)?;

        let passwords = PasswordsFile {
            passwords: wanted,
            version: FORMAT_VERSION,
        };
        let passwords_recovered = passwords_target != self.passwords_path();
        if !passwords.passwords.is_empty() {
            if passwords.passwords != self.on_disk {
                write_ron(&passwords_target, &passwords, true)?;
                self.on_disk = passwords.passwords.clone();
            }
        } else if !passwords_recovered {
            // Nothing to keep: remove the file so an unticked "save password"
            // leaves no trace on disk.
            match std::fs::remove_file(&passwords_target) {
                Ok(()) => self.on_disk.clear(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.on_disk.clear(),
                Err(source) => {
                    return Err(StoreError::Write {
                        path: passwords_target,
                        source,
                    });
                }
            }
        }

        // Last, the keyring entries no profile on disk uses any more
        // (deleted, "save password" unticked, or moved to the file).
        let mut not_removed = Vec::new();
        if let Keyring::Available(k) = &self.keyring {
            let stale: Vec<String> = self
                .in_keyring
                .keys()
                .filter(|id| !in_keyring_now.contains(*id))
                .cloned()
                .collect();
            for id in stale {
                match k.delete(&id) {
                    Ok(()) => {
                        self.in_keyring.remove(&id);
                    }
                    Err(e) => not_removed.push(e),
                }
            }
            let mut notice = Vec::new();
            if !refusals.is_empty() {
                notice.push(format!(
                    "The {} refused the password of {}; saved in the owner-only file {} instead.",
                    k.name(),
                    refusals.join(", "),
                    passwords_target.display()
                ));
            }
            if let Some(e) = not_removed.first() {
                notice.push(format!(
                    "An old password of a deleted or renamed profile could not be removed from \
                     the {}: {e}",
                    k.name()
                ));
            }
            if !notice.is_empty() {
                self.keyring_notice = Some(notice.join(" "));
            }
        }

        if profiles_target != self.profiles_path() {
            Ok(SaveOutcome::Recovered(profiles_target))
        } else if passwords_recovered && !passwords.passwords.is_empty() {
            Ok(SaveOutcome::Recovered(passwords_target))
        } else {
            Ok(SaveOutcome::Saved)
        }
    }

    /// The file to write instead of `path`: `path` itself unless it is protected.
    fn target(&mut self, path: &Path) -> PathBuf {
        if !self.protected.contains(path) {
            return path.to_path_buf();
        }
        if let Some(chosen) = self.recovery.get(path) {
            return chosen.clone();
        }
        // A recovery file left by an earlier session holds changes too: pick
        // a fresh name rather than overwrite it.
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let chosen = (1..)
            .map(|n| {
                let name = if n == 1 {
                    format!("{stem}.recovered.ron")
                } else {
                    format!("{stem}.recovered-{n}.ron")
                };
                self.dir.join(name)
            })
            .find(|candidate| !candidate.exists())
            .unwrap_or_else(|| self.dir.join(format!("{stem}.recovered.ron")));
        self.recovery.insert(path.to_path_buf(), chosen.clone());
        chosen
    }

    /// Writes one profile to `path` for sharing. The password is never
    /// written, and `save_password` is written as false.
    pub fn export(profile: &Profile, path: &Path) -> Result<(), StoreError> {
        let mut profile = profile.clone();
        profile.password.clear();
        profile.save_password = false;
        // The importer's copy is a profile of its own.
        profile.id.clear();
        let file = ExportFile {
            profile,
            version: FORMAT_VERSION,
        };
        write_ron(path, &file, false)
    }

    /// Reads a profile written by [`ProfileStore::export`]. It comes without a
    /// password; its name may clash with an existing one (see [`unique_name`]).
    pub fn import(path: &Path) -> Result<Profile, StoreError> {
        let file: ExportFile = read_ron(path)?.ok_or_else(|| StoreError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        if file.version > FORMAT_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                version: file.version,
            });
        }
        let mut profile = file.profile;
        profile.password.clear();
        profile.save_password = false;
        profile.id = generate_profile_id();
        Ok(profile)
    }
}

/// The override if it is set and not empty, else the platform's config dir.
fn config_dir(env_override: Option<std::ffi::OsString>) -> Result<PathBuf, StoreError> {
    if let Some(dir) = env_override.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "mqscope")
        .map(|dirs| dirs.config_dir().to_path_buf())
        .ok_or(StoreError::NoConfigDir)
}

/// `Ok(None)` when the file does not exist.
fn read_ron<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| StoreError::NotText {
        path: path.to_path_buf(),
    })?;
    ron::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Parse {
            path: path.to_path_buf(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })
}

/// Atomic write: a temp file beside `path`, fsync, rename over `path`.
/// `private`: readable by the owner only (0600 on unix), from creation on.
fn write_ron<T: Serialize>(path: &Path, value: &T, private: bool) -> Result<(), StoreError> {
    let text =
        ron::ser::to_string_pretty(value, ron::ser::PrettyConfig::default()).map_err(|e| {
            StoreError::Serialize {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mqscope".into());
    let tmp = dir.join(format!(
        ".{name}.{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let write_err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };

    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        // The temp file is ours and useless now; a failure to remove it
        // changes nothing for the user, who hears about the write error.
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(source));
    }
    // Make the rename itself durable. Some filesystems cannot fsync a
    // directory; the data is already written, so that is not an error.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `base` if no profile has that name, else "base (2)", "base (3)", ...
/// A base that already ends in " (n)" counts on from its stem, so
/// duplicating "localhost (2)" gives "localhost (3)". For a rename, pass the
/// other profiles only.
pub fn unique_name(existing: &[Profile], base: &str) -> String {
    let base = base.trim();
    let base = if base.is_empty() { "profile" } else { base };
    let taken = |name: &str| existing.iter().any(|p| p.name == name);
    if !taken(base) {
        return base.to_string();
    }
    let stem = strip_counter(base);
    (2u64..)
        .map(|n| format!("{stem} ({n})"))
        .find(|name| !taken(name))
        .unwrap_or_else(|| base.to_string())
}

fn strip_counter(name: &str) -> &str {
    let Some((stem, counter)) = name.strip_suffix(')').and_then(|s| s.rsplit_once(" (")) else {
        return name;
    };
    if !counter.is_empty() && counter.bytes().all(|b| b.is_ascii_digit()) {
        stem
    } else {
        name
    }
}

/// Names that clash: every profile whose name was already used by an earlier
/// one, as (index, error on [`Field::Name`]). Empty names are reported by
/// [`Profile::validate`].
pub fn name_errors(profiles: &[Profile]) -> Vec<(usize, FieldError)> {
    let mut seen = HashSet::new();
    profiles
        .iter()
        .enumerate()
        .filter(|(_, p)| !seen.insert(p.name.as_str()))
        .map(|(i, p)| {
            (
                i,
                FieldError::new(
                    Field::Name,
                    format!("another profile is already named '{}'", p.name),
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{
        ProtocolVersion, Qos, RetainHandling, SubscriptionSpec, TlsSettings, TransportKind,
        V5Settings, WillSettings,
    };

    const SECRET: &str = "s3cr3t-pässwörd";

    fn full_profile() -> Profile {
        Profile {
            id: "0123456789abcdef".into(),
            name: "factory floor".into(),
            host: "broker.example.com".into(),
            port: 8883,
            protocol: ProtocolVersion::V5,
            transport: TransportKind::Tls,
            client_id: "line-7-monitor".into(),
            username: "operator".into(),
            password: SECRET.into(),
            save_password: true,
            keep_alive_secs: 15,
            clean_session: false,
            will: WillSettings {
                enabled: true,
                topic: "factory/line7/monitor".into(),
                payload: "offline \"quoted\"\nnext line".into(),
                qos: Qos::ExactlyOnce,
                retain: true,
                delay_interval: Some(5),
                user_properties: vec![("reason".into(), "crash".into())],
                ..WillSettings::default()
            },
            tls: TlsSettings {
                ca_file: Some("/etc/ssl/ca.pem".into()),
                client_cert: Some("/home/op/client.crt".into()),
                client_key: Some("/home/op/client.key".into()),
                verify_server: false,
                alpn: "mqtt".into(),
                ca_path: Some("/etc/ssl/certs".into()),
                use_os_certs: true,
                version: crate::profile::TlsVersion::V13,
            },
            ws: crate::profile::WsSettings {
                path: "/gateway/mqtt".into(),
                headers: vec![("X-Site".into(), "plant 7".into())],
            },
            proxy: "http://gateway.plant7:3128".into(),
            max_packet_size: 1 << 20,
            subscriptions: vec![
                SubscriptionSpec::new("factory/#", Qos::AtLeastOnce),
                SubscriptionSpec {
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::Never,
                    subscription_identifier: Some(42),
                    user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
                    ..SubscriptionSpec::new("$SYS/broker/+", Qos::ExactlyOnce)
                },
            ],
            v5: V5Settings {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(50),
                topic_alias_maximum: Some(8),
                request_response_information: true,
                request_problem_information: false,
                user_properties: vec![("site".into(), "plant 7".into())],
            },
        }
    }

    fn no_saved_password() -> Profile {
        Profile {
            name: "guest".into(),
            username: "guest".into(),
            password: "typed-each-time".into(),
            save_password: false,
            ..Profile::default()
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn missing_file_loads_as_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path().join("not-yet"));
        assert_eq!(store.load().unwrap(), vec![]);
    }

    #[test]
    fn every_field_survives_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = vec![full_profile(), Profile::default()];
        let mut store = ProfileStore::at(dir.path());
        assert_eq!(store.save(&profiles).unwrap(), SaveOutcome::Saved);

        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded, profiles);
    }

    #[test]
    fn profile_file_never_contains_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile(), no_saved_password()]).unwrap();
        let text = read(&store.profiles_path());
        assert!(text.contains("factory floor"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("typed-each-time"), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("password:")),
            "{text}"
        );
    }

    #[test]
    fn passwords_file_holds_only_saved_passwords_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile(), no_saved_password()]).unwrap();
        let text = read(&store.passwords_path());
        assert!(text.contains(SECRET), "{text}");
        assert!(!text.contains("typed-each-time"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.passwords_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn unticking_save_password_removes_it_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        let mut p = full_profile();
        store.save(std::slice::from_ref(&p)).unwrap();
        p.save_password = false;
        store.save(&[p]).unwrap();
        assert!(!store.passwords_path().exists());
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded[0].password, "");
    }

    #[test]
    fn profile_without_save_password_loads_with_empty_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile(), no_saved_password()]).unwrap();
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded[0].password, SECRET);
        assert_eq!(loaded[1].name, "guest");
        assert_eq!(loaded[1].password, "");
    }

    #[test]
    fn save_leaves_no_temp_file_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile()]).unwrap();
        let renamed = Profile {
            name: "renamed".into(),
            ..full_profile()
        };
        store.save(&[renamed]).unwrap();

        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "left behind: {names:?}"
        );
        let text = read(&store.profiles_path());
        assert!(
            text.contains("renamed") && !text.contains("factory floor"),
            "{text}"
        );
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].password, SECRET, "password follows the new name");
    }

    #[test]
    fn unserializable_profile_is_refused_and_old_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile()]).unwrap();
        let before = std::fs::read(store.profiles_path()).unwrap();
        // A path that is not valid UTF-8 cannot be written as RON: the
        // serialization fails before the file is touched.
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            let mut bad = full_profile();
            bad.tls.ca_file = Some(std::ffi::OsStr::from_bytes(b"/tmp/\xff.pem").into());
            let err = store.save(&[bad]).unwrap_err();
            assert!(matches!(err, StoreError::Serialize { .. }), "{err}");
            assert_eq!(std::fs::read(store.profiles_path()).unwrap(), before);
        }
    }

    #[test]
    fn failed_rename_reports_the_file_and_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go: rename must fail.
        let target = dir.path().join("shared.ron");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), "x").unwrap();
        let err = ProfileStore::export(&full_profile(), &target).unwrap_err();
        assert!(matches!(err, StoreError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains("shared.ron"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("shared.ron")]);
        assert_eq!(read(&target.join("keep")), "x");
    }

    #[test]
    fn a_rename_whose_profile_write_fails_leaves_the_old_name_with_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        let mut profile = full_profile();
        store.save(std::slice::from_ref(&profile)).unwrap();
        let before = read(&store.profiles_path());
        // profiles.ron cannot be replaced (a non-empty directory in its way).
        std::fs::remove_file(store.profiles_path()).unwrap();
        std::fs::create_dir(store.profiles_path()).unwrap();
        std::fs::write(store.profiles_path().join("keep"), "x").unwrap();
        profile.name = "renamed floor".into();
        let err = store.save(std::slice::from_ref(&profile)).unwrap_err();
        assert!(err.to_string().contains("profiles.ron"), "{err}");
        // What is on disk after the failure: the old profiles file...
        std::fs::remove_dir_all(store.profiles_path()).unwrap();
        std::fs::write(store.profiles_path(), &before).unwrap();
        // ...still finds its password.
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded[0].name, "factory floor");
        assert_eq!(loaded[0].password, SECRET);
        // And once a save succeeds, the stale name's password is gone.
        store.save(std::slice::from_ref(&profile)).unwrap();
        let passwords = read(&store.passwords_path());
        assert!(!passwords.contains("factory floor"), "{passwords}");
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded[0].password, SECRET);
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let profile = full_profile();
        let text = format!("{profile:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(
            text.contains("factory floor") && text.contains("<hidden>"),
            "{text}"
        );
        let connect = crate::mqtt::Command::Connect {
            conn: 1,
            profile: Box::new(profile),
        };
        let text = format!("{connect:?}");
        assert!(!text.contains(SECRET), "{text}");
        let empty = Profile::default();
        assert!(format!("{empty:?}").contains("password: none"));
    }

    #[test]
    fn debug_output_of_the_store_never_shows_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile()]).unwrap();
        store.load().unwrap();
        let text = format!("{store:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("passwords_in_file: 1"), "{text}");
    }

    #[test]
    fn profiles_sharing_an_id_are_refused_and_a_loaded_file_gets_one_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        let first = full_profile();
        let copy = Profile {
            name: "copy".into(),
            ..first.clone()
        };
        let err = store.save(&[first.clone(), copy]).unwrap_err();
        assert!(matches!(err, StoreError::DuplicateId { ref name } if name == "copy"));
        assert!(!store.profiles_path().exists());

        // A file written by hand (or by an older mqscope) with no ids or the
        // same one twice: each profile gets its own on load.
        std::fs::write(
            store.profiles_path(),
            "(profiles: [(name: \"a\"), (name: \"b\", id: \"x\"), (name: \"c\", id: \"x\")])",
        )
        .unwrap();
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        let ids: HashSet<&str> = loaded.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{loaded:?}");
        assert!(ids.contains("x") && !ids.contains(""));
    }

    #[test]
    fn without_a_keyring_the_store_names_its_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ProfileStore::at(dir.path()).with_keyring(Keyring::none("no session bus (test)"));
        let home = store.password_home(&full_profile());
        assert_eq!(
            home.describe(true),
            format!(
                "Password saved in an owner-only file: {} (no system keyring available: \
                 no session bus (test))",
                store.passwords_path().display()
            )
        );
    }

    #[test]
    fn file_format_is_versioned_ron() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[Profile::default()]).unwrap();
        let text = read(&store.profiles_path());
        assert!(text.trim_start().starts_with('('), "{text}");
        assert!(text.contains("profiles: ["), "{text}");
        assert!(text.contains("version: 1"), "{text}");
    }

    #[test]
    fn a_file_written_before_mqtt_5_loads_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        // Exactly what the previous version wrote: no `v5`, no will or
        // subscription properties.
        std::fs::write(
            dir.path().join(PROFILES_FILE),
            r#"(
                version: 1,
                profiles: [
                    (
                        name: "plant",
                        host: "10.0.0.5",
                        port: 8883,
                        protocol: V311,
                        transport: Tls,
                        client_id: "line-7",
                        username: "op",
                        save_password: false,
                        keep_alive_secs: 30,
                        clean_session: false,
                        will: (enabled: true, topic: "plant/status", payload: "offline", qos: AtLeastOnce, retain: true),
                        tls: (ca_file: Some("/etc/ca.pem"), client_cert: None, client_key: None, verify_server: true, alpn: ""),
                        max_packet_size: 1048576,
                        subscriptions: [(filter: "plant/#", qos: ExactlyOnce)],
                    ),
                ],
            )"#,
        )
        .unwrap();
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        let p = &loaded[0];
        assert_eq!(p.protocol, ProtocolVersion::V311);
        assert_eq!(p.transport, TransportKind::Tls);
        assert_eq!(
            (p.port, p.keep_alive_secs, p.clean_session),
            (8883, 30, false)
        );
        assert_eq!(p.will.topic, "plant/status");
        assert!(p.will.retain && p.will.user_properties.is_empty());
        assert_eq!(
            p.subscriptions,
            vec![SubscriptionSpec::new("plant/#", Qos::ExactlyOnce)]
        );
        assert_eq!(p.v5, V5Settings::default());
        assert_eq!(p.max_packet_size, 1_048_576);
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_fields_get_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROFILES_FILE),
            r#"(
                version: 1,
                future_setting: "whatever",
                profiles: [
                    (name: "hand written", host: "h", colour: Some((1, 2, 3)),
                     subscriptions: [(filter: "a/#")]),
                ],
            )"#,
        )
        .unwrap();
        let loaded = ProfileStore::at(dir.path()).load().unwrap();
        assert_eq!(loaded.len(), 1);
        let p = &loaded[0];
        assert_eq!(p.name, "hand written");
        assert_eq!(p.host, "h");
        assert_eq!(p.port, 1883);
        assert!(p.tls.verify_server);
        assert_eq!(p.max_packet_size, crate::profile::MQTT_MAX_PACKET);
        assert_eq!(
            p.subscriptions,
            vec![SubscriptionSpec::new("a/#", Qos::AtMostOnce)]
        );
    }

    const CORRUPT: &str =
        "(\n    profiles: [\n        (name: \"a\", port: \"not a number\"),\n    ],\n)\n";

    #[test]
    fn corrupt_file_is_reported_and_kept_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROFILES_FILE);
        std::fs::write(&path, CORRUPT).unwrap();

        let mut store = ProfileStore::at(dir.path());
        let err = store.load().unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(matches!(err, StoreError::Parse { line: 3, .. }), "{err:?}");

        let outcome = store.save(&[full_profile()]).unwrap();
        let recovered = dir.path().join("profiles.recovered.ron");
        assert_eq!(outcome, SaveOutcome::Recovered(recovered.clone()));
        assert_eq!(std::fs::read(&path).unwrap(), CORRUPT.as_bytes());
        assert!(read(&recovered).contains("factory floor"));

        // A second save in the same session goes to the same recovery file.
        store.save(&[no_saved_password()]).unwrap();
        assert!(read(&recovered).contains("guest"));
        assert_eq!(std::fs::read(&path).unwrap(), CORRUPT.as_bytes());
    }

    #[test]
    fn later_session_does_not_overwrite_an_earlier_recovery_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROFILES_FILE), CORRUPT).unwrap();
        let mut first = ProfileStore::at(dir.path());
        assert!(first.load().is_err());
        first.save(&[full_profile()]).unwrap();

        let mut second = ProfileStore::at(dir.path());
        assert!(second.load().is_err());
        let outcome = second.save(&[no_saved_password()]).unwrap();
        let fresh = dir.path().join("profiles.recovered-2.ron");
        assert_eq!(outcome, SaveOutcome::Recovered(fresh.clone()));
        assert!(read(&dir.path().join("profiles.recovered.ron")).contains("factory floor"));
        assert!(read(&fresh).contains("guest"));
    }

    #[test]
    fn save_without_load_still_protects_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROFILES_FILE);
        std::fs::write(&path, CORRUPT).unwrap();
        let outcome = ProfileStore::at(dir.path())
            .save(&[full_profile()])
            .unwrap();
        assert!(matches!(outcome, SaveOutcome::Recovered(_)));
        assert_eq!(std::fs::read(&path).unwrap(), CORRUPT.as_bytes());
    }

    #[test]
    fn non_utf8_file_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROFILES_FILE);
        std::fs::write(&path, b"(profiles: [\xff])").unwrap();
        let mut store = ProfileStore::at(dir.path());
        assert!(matches!(store.load(), Err(StoreError::NotText { .. })));
        store.save(&[]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"(profiles: [\xff])");
    }

    #[test]
    fn file_from_a_newer_version_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROFILES_FILE);
        let newer = "(version: 2, profiles: [])";
        std::fs::write(&path, newer).unwrap();
        let mut store = ProfileStore::at(dir.path());
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("newer mqscope"), "{err}");
        assert!(matches!(
            store.save(&[]).unwrap(),
            SaveOutcome::Recovered(_)
        ));
        assert_eq!(read(&path), newer);
    }

    #[test]
    fn corrupt_passwords_file_still_loads_profiles_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile()]).unwrap();
        std::fs::write(store.passwords_path(), "(passwords: {").unwrap();

        let mut store = ProfileStore::at(dir.path());
        let loaded = store.load().unwrap();
        assert_eq!(loaded[0].name, "factory floor");
        assert_eq!(loaded[0].password, "");
        let problem = store.password_problem().unwrap().to_string();
        assert!(problem.contains("passwords.ron"), "{problem}");

        let outcome = store.save(&[full_profile()]).unwrap();
        let recovered = dir.path().join("passwords.recovered.ron");
        assert_eq!(outcome, SaveOutcome::Recovered(recovered.clone()));
        assert_eq!(read(&store.passwords_path()), "(passwords: {");
        assert!(read(&recovered).contains(SECRET));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        let err = store
            .save(&[Profile::default(), Profile::default()])
            .unwrap_err();
        assert!(matches!(err, StoreError::DuplicateName { ref name } if name == "localhost"));
        assert!(!store.profiles_path().exists());
    }

    #[test]
    fn export_never_contains_the_password_and_import_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.ron");
        let profile = full_profile();
        ProfileStore::export(&profile, &path).unwrap();
        let text = read(&path);
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("save_password: false"), "{text}");

        let imported = ProfileStore::import(&path).unwrap();
        assert!(!text.contains(&profile.id), "{text}");
        assert!(!imported.id.is_empty() && imported.id != profile.id);
        let expected = Profile {
            id: imported.id.clone(),
            password: String::new(),
            save_password: false,
            ..profile
        };
        assert_eq!(imported, expected);
    }

    #[test]
    fn import_reports_parse_errors_with_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.ron");
        std::fs::write(&path, "(\n  profile: (\n    port: -5,\n  ),\n)\n").unwrap();
        let err = ProfileStore::import(&path).unwrap_err();
        assert!(matches!(err, StoreError::Parse { line: 3, .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("broken.ron"), "{message}");
        assert!(message.contains("line 3, column"), "{message}");
    }

    #[test]
    fn importing_a_file_that_is_not_an_export_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ProfileStore::at(dir.path());
        store.save(&[full_profile()]).unwrap();
        assert!(ProfileStore::import(&store.profiles_path()).is_err());
        let missing = ProfileStore::import(&dir.path().join("none.ron")).unwrap_err();
        assert!(missing.to_string().contains("none.ron"), "{missing}");
    }

    #[test]
    fn env_variable_overrides_config_dir() {
        // Tested through config_dir(): changing the real environment would
        // race with other tests that open the default store.
        let dir = tempfile::tempdir().unwrap();
        let chosen = config_dir(Some(dir.path().as_os_str().to_owned())).unwrap();
        assert_eq!(
            ProfileStore::at(chosen).profiles_path(),
            dir.path().join("profiles.ron")
        );
        // Empty means unset: the platform directory, which ends in mqscope.
        if let Ok(platform) = config_dir(Some(std::ffi::OsString::new())) {
            assert_ne!(platform, PathBuf::new());
            assert!(
                platform.to_string_lossy().contains("mqscope"),
                "{platform:?}"
            );
        }
    }

    fn named(names: &[&str]) -> Vec<Profile> {
        names
            .iter()
            .map(|n| Profile {
                name: (*n).into(),
                ..Profile::default()
            })
            .collect()
    }

    #[test]
    fn unique_name_counts_up() {
        assert_eq!(unique_name(&[], "localhost"), "localhost");
        assert_eq!(
            unique_name(&named(&["localhost"]), "localhost"),
            "localhost (2)"
        );
        assert_eq!(
            unique_name(&named(&["localhost", "localhost (2)"]), "localhost"),
            "localhost (3)"
        );
        assert_eq!(
            unique_name(&named(&["localhost", "localhost (2)"]), "localhost (2)"),
            "localhost (3)"
        );
        assert_eq!(unique_name(&named(&["a (b)"]), "a (b)"), "a (b) (2)");
        assert_eq!(unique_name(&[], "  "), "profile");
    }

    #[test]
    fn name_errors_flag_later_duplicates() {
        let errors = name_errors(&named(&["a", "b", "a", "a"]));
        let indices: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![2, 3]);
        assert!(errors.iter().all(|(_, e)| e.field == Field::Name));
        assert!(name_errors(&named(&["a", "b"])).is_empty());
    }
}
