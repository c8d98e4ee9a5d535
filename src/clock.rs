//! Time: the current time and the three formats Zoha writes.
//!
//! Exports [`now_secs`]; [`rfc5322_date`] for Received headers
//! (`Fri, 4 Dec 2026 20:16:24 +0000`); [`syslog_stamp`] for RFC 3164 syslog
//! lines (`Dec  4 20:16:24`, the day padded with a space); and
//! [`log_stamp`] for standard error (`2026-12-04 20:16:24`). All use local
//! time.
//!
//! Failures: none; when the local time cannot be computed, the formats fall
//! back to the epoch (or, for [`log_stamp`], to the seconds since it).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sys::{local_time, LocalTime};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Returns the seconds since the epoch (0 if the clock is before it).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn month_name(t: &LocalTime) -> &'static str {
    MONTHS[(t.month.clamp(1, 12) - 1) as usize]
}

/// Formats `secs` as an RFC 5322 date: `Fri, 4 Dec 2026 20:16:24 +0000`.
pub fn rfc5322_date(secs: i64) -> String {
    let Ok(t) = local_time(secs) else {
        return "Thu, 1 Jan 1970 00:00:00 +0000".to_string();
    };
    let sign = if t.utc_offset < 0 { '-' } else { '+' };
    let offset = t.utc_offset.abs();
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[(t.weekday % 7) as usize],
        t.day,
        month_name(&t),
        t.year,
        t.hour,
        t.minute,
        t.second,
        offset / 3600,
        (offset % 3600) / 60
    )
}

/// Formats `secs` as an RFC 3164 timestamp: `Dec  4 20:16:24`.
pub fn syslog_stamp(secs: i64) -> String {
    match local_time(secs) {
        Ok(t) => format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            month_name(&t),
            t.day,
            t.hour,
            t.minute,
            t.second
        ),
        Err(_) => "Jan  1 00:00:00".to_string(),
    }
}

/// Formats `secs` as `2026-12-04 20:16:24`.
pub fn log_stamp(secs: i64) -> String {
    match local_time(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        Err(_) => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5322_shape() {
        let d = rfc5322_date(0);
        // The local zone of the test machine decides the day; the shape is fixed.
        let parts: Vec<&str> = d.split(' ').collect();
        assert_eq!(parts.len(), 6, "{d}");
        assert!(parts[0].ends_with(','), "{d}");
        assert_eq!(parts[5].len(), 5, "{d}");
        assert!(
            parts[5].starts_with('+') || parts[5].starts_with('-'),
            "{d}"
        );
    }

    #[test]
    fn syslog_day_padded_with_space() {
        // 1970-01-05 12:00 UTC is day 4, 5 or 6 in any zone: one digit.
        let stamp = syslog_stamp(4 * 86400 + 12 * 3600);
        assert_eq!(stamp.len(), 15, "{stamp}");
        assert_eq!(&stamp[3..5], "  ", "{stamp}");
    }

    #[test]
    fn log_stamp_shape() {
        let stamp = log_stamp(0);
        assert_eq!(stamp.len(), 19, "{stamp}");
    }
}
