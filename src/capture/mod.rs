//! Data in and out of mqscope: mqscope's own capture files (`format`
//! writes them, `file` reopens them with an index, `replay` publishes them
//! again, `record`/`replay_cli` are their subcommands), pcap/pcapng files decoded into MQTT streams
//! (`pcap`, with TCP reassembly in `tcp` and MQTT frames in `decode`), and
//! messages exported to CSV or JSON Lines (`export`). `cli` holds the
//! `read` and `export` subcommands.
//!
//! Pure data and files: no egui, no tokio. The window opens a capture or
//! a [`pcap::Capture`] (streams → records + messages) on the `loader`
//! thread, as connections fed like live ones; `offline` is what their
//! timeline pages through and their inspector reads evicted payloads from.

pub mod cli;
pub mod decode;
pub mod export;
pub mod file;
pub mod file_cli;
pub mod flow_index;
pub mod format;
pub mod live_cli;
pub mod loader;
pub mod offline;
pub mod pcap;
pub mod record;
pub mod replay;
pub mod spool;
pub mod tcp;
