//! mqscope: a native desktop MQTT explorer that makes the protocol visible.
//!
//! The crate is split the way DESIGN.md describes: `app` (egui views) reads
//! `model` (plain data: what is true), and talks to `mqtt` (the background
//! worker) only through `Command`s and `Event`s.

pub mod app;
pub mod capture;
pub mod cli;
pub mod cli_debug;
pub mod model;
pub mod mqtt;
pub mod profile;
pub mod rr;
pub mod sandbox;
pub mod sub_format;
