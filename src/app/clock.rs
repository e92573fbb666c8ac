//! Time-of-day text for the views: local time once the real app has chosen
//! the system's time zone, else UTC (tests and screenshots stay
//! deterministic).
//!
//! The offset is looked up for each instant shown (through `jiff` and the
//! system's time-zone database), so a session that runs across a
//! daylight-saving change shows both sides of it right.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The time zone clock texts are written in.
#[derive(Clone, Debug, Default)]
pub enum Zone {
    /// UTC, tagged as such in the views.
    #[default]
    Utc,
    /// A fixed offset from UTC in seconds (tests).
    Fixed(i64),
    /// A time zone with its rules (daylight saving, history).
    Tz(TimeZone),
}

impl Zone {
    /// This machine's time zone (UTC when it cannot be determined).
    pub fn local() -> Zone {
        match TimeZone::try_system() {
            Ok(tz) => Zone::Tz(tz),
            Err(_) => Zone::Utc,
        }
    }

    /// A named zone of the time-zone database ("Europe/Paris").
    pub fn named(name: &str) -> Option<Zone> {
        TimeZone::get(name).ok().map(Zone::Tz)
    }

    /// Seconds east of UTC at the instant `t`.
    pub fn offset_at(&self, t: SystemTime) -> i64 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(secs) => *secs,
            Zone::Tz(tz) => match Timestamp::try_from(t) {
                Ok(ts) => i64::from(tz.to_offset(ts).seconds()),
                Err(_) => 0,
            },
        }
    }

    /// Whether the views show UTC (and say so).
    pub fn is_utc(&self) -> bool {
        match self {
            Zone::Utc => true,
            Zone::Fixed(secs) => *secs == 0,
            Zone::Tz(tz) => tz == &TimeZone::UTC,
        }
    }

    /// `HH:MM:SS` (with `.mmm` when `millis`) of `t` in this zone.
    pub fn time_of_day(&self, t: SystemTime, millis: bool) -> String {
        format_time_of_day(t, self.offset_at(t), millis)
    }

    /// " UTC" while this zone is UTC, else nothing (local time needs no tag).
    pub fn suffix(&self) -> &'static str {
        if self.is_utc() { " UTC" } else { "" }
    }
}

static ZONE: RwLock<Zone> = RwLock::new(Zone::Utc);

/// The zone the views use from now on (the real app passes
/// [`Zone::local`] at start-up).
pub fn set_zone(zone: Zone) {
    if let Ok(mut z) = ZONE.write() {
        *z = zone;
    }
}

/// The zone the views use.
pub fn zone() -> Zone {
    ZONE.read().map(|z| z.clone()).unwrap_or_default()
}

/// `HH:MM:SS` (with `.mmm` when `millis`) of `t` in the views' time zone.
pub fn time_of_day(t: SystemTime, millis: bool) -> String {
    zone().time_of_day(t, millis)
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
    zone().suffix()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn utc(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

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
    fn a_session_across_a_daylight_saving_change_shows_both_sides_right() {
        // Paris moved from UTC+1 to UTC+2 at 2026-03-29 01:00 UTC.
        let paris = Zone::named("Europe/Paris").expect("the tz database knows Paris");
        let before = utc(1_774_744_200); // 2026-03-29 00:30:00 UTC
        let after = utc(1_774_751_400); // 2026-03-29 02:30:00 UTC
        assert_eq!(paris.time_of_day(before, false), "01:30:00");
        assert_eq!(paris.time_of_day(after, false), "04:30:00");
        // And back in October (2026-10-25 01:00 UTC): 00:30 UTC is 02:30
        // summer time, 01:30 UTC is 02:30 winter time.
        assert_eq!(paris.time_of_day(utc(1_792_888_200), false), "02:30:00");
        assert_eq!(paris.time_of_day(utc(1_792_891_800), false), "02:30:00");
        assert!(!paris.is_utc());
        assert_eq!(paris.suffix(), "");
    }

    #[test]
    fn utc_is_tagged_and_unshifted() {
        let t = utc(3600 * 13 + 5);
        assert_eq!(Zone::Utc.time_of_day(t, false), "13:00:05");
        assert_eq!(Zone::Utc.suffix(), " UTC");
        assert_eq!(Zone::Fixed(-3600).time_of_day(t, false), "12:00:05");
        assert!(Zone::local().offset_at(t).abs() <= 14 * 3600);
    }
}
