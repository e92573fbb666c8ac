//! The model: plain Rust data that decides what is true (packet records,
//! topic tree, history, payload decoding). No egui, no tokio.

pub mod decode;
pub mod diff;
pub mod flows;
pub mod packet;
pub mod payload;
pub mod protocol;
pub mod store;
pub mod topic;
pub mod tree;
