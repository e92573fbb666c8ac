//! `mqscope sandbox`: the sandbox broker and its devices without a window,
//! for classrooms, trains and tests.

use super::{
    AuthOptions, CertFolder, CloudBroker, DemoConfig, Limits, Sandbox, SandboxConfig, TlsOptions,
    demo_topics,
};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (default: 1883 if free, else a free port; 0: any free port).
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// Run the broker alone, without simulated devices.
    #[arg(long)]
    pub no_demo: bool,
    /// Number of the book's surfboards (surfboard01, surfboard02, ...).
    #[arg(long, default_value_t = 4)]
    pub surfboards: usize,
    /// Readings per second per surfboard (the book's: 1).
    #[arg(long, default_value_t = 1.0)]
    pub surf_rate: f64,
    /// Also run the older demo devices: JSON surfboards, vehicle-1, a flaky
    /// sensor and retained status topics.
    #[arg(long, conflicts_with = "no_demo")]
    pub extras: bool,
    /// Port of the cloud broker the surfboard monitor publishes to
    /// (default: 1884 if free, else a free port; 0: any free port).
    #[arg(long, conflicts_with = "no_cloud")]
    pub cloud_port: Option<u16>,
    /// Run no cloud broker (and so no surfboard monitor).
    #[arg(long)]
    pub no_cloud: bool,
    /// Open connections at most (Mosquitto's max_connections).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Bytes queued per client before its publishers are slowed down.
    #[arg(long, default_value_t = Limits::default().max_queued_bytes)]
    pub max_queued_bytes: usize,
    /// QoS 1/2 messages in flight per client (Mosquitto's max_inflight_messages).
    #[arg(long, default_value_t = Limits::default().max_inflight)]
    pub max_inflight: u16,
    /// Largest packet accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_packet_size)]
    pub max_packet_size: usize,
    /// Add a TLS listener (alone: 8883 if free, else a free port; 0: any free port).
    #[arg(long, value_name = "PORT", num_args = 0..=1)]
    pub tls_port: Option<Option<u16>>,
    /// Refuse TLS clients without a certificate signed by the sandbox CA (turns TLS on).
    #[arg(long)]
    pub require_certificate: bool,
    /// Where the sandbox's CA, server and client certificates live (turns TLS
    /// on; default: a folder in your data directory, kept across runs).
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Make a client certificate NAME.crt + NAME.key signed by the sandbox CA
    /// (repeatable; board001 and device001 are always there).
    #[arg(long, value_name = "NAME")]
    pub client_cert: Vec<String>,
    /// Add a websocket-over-TLS listener (wss://, the TLS certificates; turns TLS on; 0: any free port).
    #[arg(long, value_name = "PORT")]
    pub wss_port: Option<u16>,
    /// Add a websocket listener (MQTT over ws://HOST:PORT/mqtt; 0: any free port).
    #[arg(long, value_name = "PORT")]
    pub ws_port: Option<u16>,
    /// Users, as written by mosquitto_passwd: clients must log in as one of them.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Topic access per user, in Mosquitto's acl_file format.
    #[arg(long, value_name = "FILE")]
    pub acl_file: Option<PathBuf>,
    /// With --password-file: let clients without a user name in too.
    #[arg(long)]
    pub allow_anonymous: bool,
}

/// Runs `mqscope sandbox` until Ctrl-C; returns the process exit code.
pub fn run_sandbox(args: SandboxArgs) -> i32 {
    let demo = if args.no_demo {
        DemoConfig::off()
    } else {
        let base = if args.extras {
            DemoConfig::with_extras()
        } else {
            DemoConfig::default()
        };
        DemoConfig {
            surfboards: args.surfboards,
            surf_rate_hz: args.surf_rate,
            ..base
        }
    };
    let cloud = match (args.no_cloud, args.cloud_port) {
        (true, _) => CloudBroker::Off,
        (false, Some(p)) => CloudBroker::Port(p),
        (false, None) => CloudBroker::Auto,
    };
    if !(args.surf_rate.is_finite() && args.surf_rate > 0.0) {
        eprintln!("mqscope sandbox: --surf-rate must be a positive number");
        return 1;
    }
    let topics = demo_topics(&demo);
    let limits = Limits {
        max_connections: args.max_connections,
        max_queued_bytes: args.max_queued_bytes.max(1),
        max_inflight: args.max_inflight.max(1),
        max_packet_size: args.max_packet_size,
        ..Limits::default()
    };
    let tls_on = args.tls_port.is_some()
        || args.require_certificate
        || args.certs.is_some()
        || args.wss_port.is_some()
        || !args.client_cert.is_empty();
    let tls = tls_on.then(|| TlsOptions {
        port: args.tls_port.flatten(),
        require_certificate: args.require_certificate,
        certs: args.certs.clone(),
        wss_port: args.wss_port,
    });
    let mut sandbox = match Sandbox::start_with(
        SandboxConfig {
            port: args.port,
            demo,
            cloud,
            tls,
            ws_port: args.ws_port,
            auth: AuthOptions {
                password_file: args.password_file.clone(),
                acl_file: args.acl_file.clone(),
                allow_anonymous: args.allow_anonymous,
            },
        },
        limits,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mqscope sandbox: {e}");
            return 1;
        }
    };
    let port = sandbox.port();
    println!("sandbox broker listening on 127.0.0.1:{port}");
    if let Some(code) = print_secure_parts(&sandbox, &args.client_cert) {
        sandbox.stop();
        return code;
    }
    if topics.is_empty() {
        println!("no simulated devices (--no-demo)");
    } else {
        println!("demo topics:");
        for t in topics {
            println!("  {t}");
        }
    }
    if let Some(cloud) = sandbox.cloud_port() {
        println!(
            "cloud broker listening on 127.0.0.1:{cloud} (the surfboard monitor publishes \
             surfboard01, ... JSON summaries there)"
        );
    }
    println!("try:");
    for line in sandbox.example_command_lines() {
        println!("  {line}");
    }
    let broker = sandbox.broker().clone();
    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| {
            rt.block_on(async {
                // The broker's log (refused and closed connections) on stderr.
                let mut next = 0;
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
                let ctrl_c = tokio::signal::ctrl_c();
                tokio::pin!(ctrl_c);
                // Listen before saying so: a Ctrl-C right after the line
                // (a script, a test) must stop the sandbox, not be lost.
                tokio::select! {
                    biased;
                    r = &mut ctrl_c => return r,
                    () = std::future::ready(()) => {}
                }
                println!("press Ctrl-C to stop");
                loop {
                    tokio::select! {
                        r = &mut ctrl_c => return r,
                        _ = tick.tick() => {
                            let (lines, n) = broker.log_since(next);
                            next = n;
                            for l in lines {
                                eprintln!("sandbox: {l}");
                            }
                        }
                    }
                }
            })
        });
    sandbox.stop();
    match waited {
        Ok(Ok(())) => {
            println!("sandbox stopped");
            0
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("mqscope sandbox: cannot wait for Ctrl-C: {e}");
            1
        }
    }
}

/// Prints the TLS and websocket listeners, the certificate folder and the
/// users; makes the client certificates asked for. `Some(exit code)` when
/// one cannot be made.
fn print_secure_parts(sandbox: &Sandbox, client_certs: &[String]) -> Option<i32> {
    if let (Some(tls), Some(certs)) = (sandbox.tls_port(), sandbox.certs()) {
        let cert = if sandbox.requires_certificate() {
            "client certificate required"
        } else {
            "client certificate optional"
        };
        println!("TLS listening on 127.0.0.1:{tls} ({cert})");
        println!("certificates in {}", certs.dir.display());
        for name in client_certs {
            match certs.create_client(name) {
                Ok((crt, key)) => {
                    println!("  made {} + {}", crt.display(), key.display());
                }
                Err(e) => {
                    eprintln!("mqscope sandbox: {e}");
                    return Some(1);
                }
            }
        }
        let names = CertFolder::clients(certs);
        println!(
            "  ca.crt, server.crt, clients: {}",
            names
                .iter()
                .map(|n| format!("{n}.crt"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(ws) = sandbox.ws_port() {
        println!("websockets listening on ws://127.0.0.1:{ws}/mqtt");
    }
    if let Some(wss) = sandbox.wss_port() {
        println!("websockets over TLS listening on wss://localhost:{wss}/mqtt");
    }
    let security = sandbox.broker().security();
    if let Some(p) = &security.passwords {
        let anon = if security.allow_anonymous {
            "anonymous clients allowed"
        } else {
            "anonymous clients refused"
        };
        println!("{} users from the password file ({anon})", p.len());
    }
    if security.acl.is_some() {
        println!("topic access limited by the ACL file");
    }
    None
}
