//! A real Secret Service for the keyring tests: a private D-Bus session bus
//! (`dbus-daemon` with a config of our own, no service activation) and
//! GNOME Keyring's daemon on it with its login keyring created and unlocked
//! (the password piped on stdin), in a temporary home; both killed on drop.
//!
//! Processes under test get the bus through their environment
//! ([`SecretService::env`]): the test process's own environment is never
//! changed. A test that needs the keyring inside a test process (the GUI
//! tests, the store driven step by step) runs itself again as a child with
//! that environment: see [`run_child`].

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set in a child started by [`run_child`]: the name of the test to run.
pub const CHILD_ENV: &str = "MQSCOPE_KEYRING_TEST_CHILD";

const MISSING: &str = "the keyring tests need dbus-daemon, gnome-keyring-daemon and secret-tool: \
                       apt-get install -y dbus gnome-keyring libsecret-tools";

pub struct SecretService {
    dir: tempfile::TempDir,
    bus: Child,
    daemon: Child,
    pub address: String,
}

impl SecretService {
    /// Starts the bus and the keyring daemon; returns once the daemon owns
    /// `org.freedesktop.secrets` on the bus.
    pub fn start() -> SecretService {
        let dir = tempfile::Builder::new()
            .prefix("mqscope-keyring-")
            .tempdir()
            .expect("temp dir");
        for sub in ["home", "run", "data", "config"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("dirs");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                dir.path().join("run"),
                std::fs::Permissions::from_mode(0o700),
            )
            .expect("chmod");
        }
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#
            ),
        )
        .expect("bus config");
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon ({e}); {MISSING}"));
        // The daemon prints its address once it listens.
        let mut line = String::new();
        BufReader::new(bus.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("bus address");
        assert!(
            line.starts_with("unix:"),
            "dbus-daemon did not start: {line:?}"
        );

        let mut service = SecretService {
            bus,
            daemon: Command::new("true").spawn().expect("true"),
            address,
            dir,
        };
        let mut daemon = service
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gnome-keyring-daemon ({e}); {MISSING}"));
        {
            // The login keyring's password; closing stdin ends it.
            let mut stdin = daemon.stdin.take().expect("stdin");
            stdin.write_all(b"keyring-test").expect("unlock password");
        }
        service.daemon.wait().ok();
        service.daemon = daemon;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !service.has_owner("org.freedesktop.secrets") {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not take org.freedesktop.secrets on the bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    /// The variables a process needs to use this Secret Service (and no
    /// other: its own home and runtime directory).
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let d = self.dir.path();
        vec![
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                self.address.clone().into(),
            ),
            ("XDG_RUNTIME_DIR".into(), d.join("run").into()),
            ("HOME".into(), d.join("home").into()),
            ("XDG_DATA_HOME".into(), d.join("data").into()),
            ("XDG_CONFIG_HOME".into(), d.join("config").into()),
        ]
    }

    /// `program` with this Secret Service's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd.env_remove(mqscope::profile::NO_KEYRING_ENV);
        cmd
    }

    fn has_owner(&self, name: &str) -> bool {
        self.command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
            ])
            .arg(format!("string:{name}"))
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
    }

    /// The password mqscope saved for the profile `id`, read with
    /// `secret-tool` (libsecret), as another program would see it.
    pub fn lookup(&self, id: &str) -> Option<String> {
        let out = self
            .command("secret-tool")
            .args(["lookup", "service", "mqscope", "username", id])
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run secret-tool ({e}); {MISSING}"));
        if out.status.success() {
            Some(String::from_utf8(out.stdout).expect("utf-8 password"))
        } else {
            // Not found: exit status 1 with nothing on stderr.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.trim().is_empty(), "secret-tool lookup failed: {err}");
            None
        }
    }

    /// Every entry of service `mqscope`, as `secret-tool search` lists them.
    pub fn search_all(&self) -> String {
        let out = self
            .command("secret-tool")
            .args(["search", "--all", "service", "mqscope"])
            .output()
            .expect("secret-tool search");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Locks the login keyring, as a user's screen lock or "Lock" in
    /// Seahorse does: writes then need an unlock prompt, which nobody on
    /// this bus can show.
    pub fn lock(&self) {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .output()
            .expect("dbus-send");
        assert!(
            out.status.success(),
            "lock failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        self.daemon.kill().ok();
        self.daemon.wait().ok();
        self.bus.kill().ok();
        self.bus.wait().ok();
    }
}

/// The environment of a process with no session bus at all: the address
/// names a socket nobody listens on.
pub fn no_bus_env(dir: &Path) -> Vec<(OsString, OsString)> {
    vec![
        (
            "DBUS_SESSION_BUS_ADDRESS".into(),
            format!("unix:path={}", dir.join("no-bus").display()).into(),
        ),
        ("XDG_RUNTIME_DIR".into(), dir.into()),
    ]
}

/// Runs the test `name` of this test binary again in a child process with
/// `env` (and `CHILD_ENV` set to `name`); returns its output once it ends
/// (killed after `limit`). The child's test does the work only when
/// [`is_child`] says so.
pub fn run_child(name: &str, env: &[(OsString, OsString)], limit: Duration) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .envs(env.iter().cloned())
        .env(CHILD_ENV, name)
        .env_remove(mqscope::profile::NO_KEYRING_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child test");
    let pipe = |p: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = p {
                p.read_to_end(&mut bytes).ok();
            }
            bytes
        })
    };
    let stdout = pipe(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = pipe(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "child test {name} did not end within {limit:?}:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    let out = Output {
        status,
        stdout,
        stderr,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child test {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// True in the child started by [`run_child`] for the test `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// A fresh config directory under the target's scratch space.
pub fn config_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("mqscope-config-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("config dir")
        .keep()
}
