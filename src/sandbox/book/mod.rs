//! The devices of *Hands-On MQTT Programming with Python* (Gaston C.
//! Hillar), speaking its protocols exactly: the vehicle `vehiclepi01`
//! (chapters 4–5), the surfboards (chapter 6) and the surfboard monitor that
//! bridges them to a cloud broker. Each is a real MQTT client of the sandbox.

pub mod monitor;
pub mod surf;
pub mod vehicle;
