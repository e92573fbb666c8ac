//! The system keyring where saved passwords go when one answers: the
//! Secret Service on Linux and the BSDs (GNOME Keyring, KWallet, KeePassXC),
//! the macOS Keychain, the Windows Credential Manager — through the
//! `keyring` crate. The profile store falls back to its owner-only file when
//! there is none (see `store.rs`).
//!
//! A Secret Service call goes over D-Bus and can hang (a bus with no
//! daemon answering, an unlock prompt nobody sees): every call runs on a
//! thread of its own and is given up after a timeout, and a keyring that
//! timed out once is not asked again in this session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The service name of mqscope's entries; the account of an entry is the
/// profile's id (`secret-tool lookup service mqscope username <id>`).
pub const KEYRING_SERVICE: &str = "mqscope";

/// Set (to anything but empty) to keep saved passwords out of the system
/// keyring: they go to the owner-only file.
pub const NO_KEYRING_ENV: &str = "MQSCOPE_NO_KEYRING";

/// How long the start-up probe waits for the keyring to answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a read, write or delete waits for the keyring to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The account the start-up probe looks up (it never exists).
const PROBE_ACCOUNT: &str = "mqscope-probe";

/// Where the system keyring of this platform is, in words.
pub fn platform_keyring_name() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        Some("macOS Keychain")
    } else if cfg!(target_os = "windows") {
        Some("Windows Credential Manager")
    } else if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        Some("Secret Service")
    } else {
        // The keyring crate would fall back to an in-memory mock store
        // here, which would lose every password at exit.
        None
    }
}

/// A system keyring that answered the start-up probe.
#[derive(Clone)]
pub struct SystemKeyring {
    name: &'static str,
    service: String,
    /// Set when a call timed out: the keyring is not asked again.
    stuck: Arc<AtomicBool>,
    timeout: Duration,
}

impl std::fmt::Debug for SystemKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SystemKeyring({}, service {})", self.name, self.service)
    }
}

/// Whether saved passwords can go to a system keyring, and if not, why.
#[derive(Clone, Debug)]
pub enum Keyring {
    Available(SystemKeyring),
    Unavailable(String),
}

impl Keyring {
    /// The owner-only file only (tests, `ProfileStore::at`).
    pub fn none(reason: impl Into<String>) -> Keyring {
        Keyring::Unavailable(reason.into())
    }

    /// Asks the platform's keyring once whether it answers (a lookup of an
    /// entry that does not exist: no prompt, nothing written), waiting at
    /// most [`PROBE_TIMEOUT`]. `$MQSCOPE_NO_KEYRING` turns it off.
    pub fn probe() -> Keyring {
        if std::env::var_os(NO_KEYRING_ENV).is_some_and(|v| !v.is_empty()) {
            return Keyring::none(format!("{NO_KEYRING_ENV} is set"));
        }
        Keyring::probe_service(KEYRING_SERVICE, PROBE_TIMEOUT)
    }

    /// [`Keyring::probe`] for another service name and timeout.
    pub fn probe_service(service: &str, timeout: Duration) -> Keyring {
        let Some(name) = platform_keyring_name() else {
            return Keyring::none("this platform has no system keyring mqscope can use");
        };
        let keyring = SystemKeyring {
            name,
            service: service.to_string(),
            stuck: Arc::new(AtomicBool::new(false)),
            timeout,
        };
        match keyring.get(PROBE_ACCOUNT) {
            Ok(_) => Keyring::Available(SystemKeyring {
                timeout: CALL_TIMEOUT.max(timeout),
                ..keyring
            }),
            Err(e) => Keyring::Unavailable(e),
        }
    }
}

impl SystemKeyring {
    /// "Secret Service", "macOS Keychain" or "Windows Credential Manager".
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The password saved for `account`, `None` if there is none.
    pub fn get(&self, account: &str) -> Result<Option<String>, String> {
        let service = self.service.clone();
        let account = account.to_string();
        self.call(move || {
            let entry = ::keyring::Entry::new(&service, &account)?;
            match entry.get_password() {
                Ok(password) => Ok(Some(password)),
                Err(::keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Saves `password` for `account` (replacing what was there).
    pub fn set(&self, account: &str, password: &str) -> Result<(), String> {
        let service = self.service.clone();
        let account = account.to_string();
        let password = password.to_string();
        self.call(move || ::keyring::Entry::new(&service, &account)?.set_password(&password))
    }

    /// Removes the password of `account`; one that is not there is fine.
    pub fn delete(&self, account: &str) -> Result<(), String> {
        let service = self.service.clone();
        let account = account.to_string();
        self.call(
            move || match ::keyring::Entry::new(&service, &account)?.delete_credential() {
                Ok(()) | Err(::keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(e),
            },
        )
    }

    /// Runs `f` on its own thread and waits at most `self.timeout`.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> ::keyring::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        if self.stuck.load(Ordering::Relaxed) {
            return Err(format!(
                "the {} did not answer earlier in this session",
                self.name
            ));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("mqscope-keyring".into())
            .spawn(move || {
                // The receiver may be gone after a timeout: nobody to tell.
                let _ = tx.send(f());
            });
        if let Err(e) = spawned {
            return Err(format!(
                "cannot start a thread to ask the {}: {e}",
                self.name
            ));
        }
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(describe(&e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.stuck.store(true, Ordering::Relaxed);
                Err(format!(
                    "the {} did not answer within {} s",
                    self.name,
                    self.timeout.as_secs()
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(format!("the call to the {} failed", self.name))
            }
        }
    }
}

/// The keyring crate's error in words, with its cause.
fn describe(e: &::keyring::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Where the password of a profile is (or would be) saved, for the editor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordHome {
    /// In the system keyring of that name.
    Keyring { name: &'static str },
    /// In the owner-only file, with the reason the keyring is not used.
    File {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl PasswordHome {
    /// "the system keyring (Secret Service)", or "an owner-only file: <path>
    /// (<why not the keyring>)".
    pub fn place(&self) -> String {
        match self {
            PasswordHome::Keyring { name } => format!("the system keyring ({name})"),
            PasswordHome::File { path, reason } => {
                format!("an owner-only file: {} ({reason})", path.display())
            }
        }
    }

    /// "Password saved in the system keyring (Secret Service)", or in the
    /// file with the reason; `saved` false says where one would go.
    pub fn describe(&self, saved: bool) -> String {
        if saved {
            format!("Password saved in {}", self.place())
        } else {
            format!("A saved password goes to {}", self.place())
        }
    }
}
