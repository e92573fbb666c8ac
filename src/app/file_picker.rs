//! File dialogs behind a small trait, so the GUI tests can answer them
//! without a desktop portal.

use std::path::PathBuf;

/// Asks the user for a file. `None` means the user cancelled.
pub trait FilePicker {
    /// A file to read (CA certificate, client key, profile to import).
    fn pick_file(&mut self, title: &str) -> Option<PathBuf>;
    /// Where to write a file, suggesting `default_name`.
    fn save_file(&mut self, title: &str, default_name: &str) -> Option<PathBuf>;
}

/// The native dialogs (GTK / xdg portal on Linux) through rfd.
///
/// The dialogs block the GUI thread while open. That is acceptable for a
/// modal "choose a file" step; nothing is lost meanwhile because the worker
/// keeps queueing events and the next frame drains them.
#[derive(Debug, Default)]
pub struct RfdPicker;

impl FilePicker for RfdPicker {
    fn pick_file(&mut self, title: &str) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title(title).pick_file()
    }

    fn save_file(&mut self, title: &str, default_name: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .set_file_name(default_name)
            .save_file()
    }
}
