//! Time-of-day text for the views: local time once the real app has read
//! the local UTC offset, else UTC (tests and screenshots stay deterministic).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds east of UTC used for every clock text; 0 shows UTC.
static OFFSET_SECS: AtomicI64 = AtomicI64::new(0);

/// The offset the views use from now on (the real app passes
/// [`detect_local_offset`] at start-up).
pub fn set_offset(secs: i64) {
    OFFSET_SECS.store(secs, Ordering::Relaxed);
}

pub fn offset() -> i64 {
    OFFSET_SECS.load(Ordering::Relaxed)
}

/// This machine's current offset from UTC (0 when it cannot be read).
pub fn detect_local_offset() -> i64 {
    #[cfg(unix)]
    {
        // SAFETY: `time` with a null pointer only returns the time.
        let now = unsafe { libc::time(std::ptr::null_mut()) };
        // SAFETY: `tm` is plain data that `localtime_r` fills; both pointers
        // are to locals and `localtime_r` is the thread-safe variant.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let filled = unsafe { libc::localtime_r(&now, &mut tm) };
        if filled.is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// `HH:MM:SS` (with `.mmm` when `millis`) of `t` in the views' time zone.
pub fn time_of_day(t: SystemTime, millis: bool) -> String {
    format_time_of_day(t, offset(), millis)
}

/// `HH:MM:SS[.mmm]` of `t` shifted by `offset_secs` from UTC.
pub fn format_time_of_day(t: SystemTime, offset_secs: i64, millis: bool) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let day = (since.as_secs() as i64)
        .saturating_add(offset_secs)
        .rem_euclid(86_400);
    let mut text = format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60);
    if millis {
        text.push_str(&format!(".{:03}", since.subsec_millis()));
    }
    text
}

/// " UTC" while the views show UTC, else nothing (local time needs no tag).
pub fn zone_suffix() -> &'static str {
    if offset() == 0 { " UTC" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_of_day_follows_the_offset_across_midnight() {
        // 1970-01-04 23:30:05.250 UTC
        let t =
            UNIX_EPOCH + Duration::from_millis((3 * 86_400 + 23 * 3600 + 30 * 60 + 5) * 1000 + 250);
        assert_eq!(format_time_of_day(t, 0, false), "23:30:05");
        assert_eq!(format_time_of_day(t, 3600, true), "00:30:05.250");
        assert_eq!(format_time_of_day(t, -5 * 3600, false), "18:30:05");
    }

    #[test]
    fn detected_offset_is_within_a_day() {
        assert!(detect_local_offset().abs() <= 14 * 3600);
    }
}
