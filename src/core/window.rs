//! Roll windows: `hashroll.dev/roll-window: "Mon-Fri 02:00-05:00 Europe/Berlin"`. A change
//! outside every window of a workload waits and rolls once when the next one opens, with
//! the data then current (the record says it is pending; nothing is kept in memory).
//!
//! The syntax, small on purpose: one or more windows separated by `;` (at most
//! [`MAX_WINDOWS`]), each `[DAYS] HH:MM-HH:MM [ZONE]`:
//! - DAYS: `Mon`..`Sun`, ranges (`Mon-Fri`, `Fri-Mon` wraps) and lists (`Mon,Wed-Fri`);
//!   omitted or `*`: every day. The day is the day the window opens.
//! - HH:MM-HH:MM: opens at the first, closes at the second; a close at or before the open
//!   is on the next day (`22:00-02:00`); `00:00-24:00` is the whole day.
//! - ZONE: a name of the tz database (bundled, so a `scratch` image has it too); omitted:
//!   UTC. Days and hours are read on that zone's wall clock, so a window follows its
//!   daylight-saving changes (a time a change skips is read as the same time after it).
//!
//! Time zones come from jiff (the tz database and its arithmetic are a solved problem);
//! only the syntax is ours.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Windows read from one value.
pub(crate) const MAX_WINDOWS: usize = 8;

/// One window.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Monday = bit 0
    days: u8,
    open: Time,
    /// minutes from `open` to the close (1 ..= 1440)
    minutes: i64,
    tz: TimeZone,
}

/// The windows of one workload, and the text they were read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Windows(Vec<Window>, String);

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s.len() >= 3 && d.starts_with(&s[..3]) && s.len() <= 9)
        .map(|i| i as u8)
}

fn days(s: &str) -> Result<u8, String> {
    if s == "*" {
        return Ok(0x7f);
    }
    let mut set = 0u8;
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Some(a), Some(b)) = (day(a.trim()), day(b.trim())) else {
            return Err(format!(
                "{part:?} is not a day or a range of days (Mon-Fri)"
            ));
        };
        let mut d = a;
        loop {
            set |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(set)
}

fn hhmm(s: &str) -> Option<(i8, i8)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=24).contains(&h) && (0..60).contains(&m) && (h < 24 || m == 0)).then_some((h, m))
}

fn window(s: &str) -> Result<Window, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let hours = words
        .iter()
        .position(|w| w.contains(':'))
        .ok_or_else(|| format!("{s:?} has no HH:MM-HH:MM"))?;
    if hours > 1 || words.len() > hours + 2 {
        return Err(format!("{s:?} is not [DAYS] HH:MM-HH:MM [ZONE]"));
    }
    let set = match hours {
        1 => days(words[0])?,
        _ => 0x7f,
    };
    let (a, b) = words[hours]
        .split_once('-')
        .ok_or_else(|| format!("{:?} is not HH:MM-HH:MM", words[hours]))?;
    let (Some((ah, am)), Some((bh, bm))) = (hhmm(a), hhmm(b)) else {
        return Err(format!("{:?} is not HH:MM-HH:MM", words[hours]));
    };
    if ah == 24 {
        return Err(format!("{a:?}: a window opens before 24:00"));
    }
    let (from, to) = (ah as i64 * 60 + am as i64, bh as i64 * 60 + bm as i64);
    let minutes = if to > from {
        to - from
    } else {
        to + 1440 - from
    };
    let tz = match words.get(hours + 1) {
        Some(name) => TimeZone::get(name)
            .map_err(|_| format!("{name:?} is not a time zone of the tz database"))?,
        None => TimeZone::UTC,
    };
    Ok(Window {
        days: set,
        open: Time::constant(ah, am, 0, 0),
        minutes,
        tz,
    })
}

/// Reads a `roll-window` value.
pub(crate) fn parse(value: &str) -> Result<Windows, String> {
    let parts: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take(MAX_WINDOWS + 1)
        .collect();
    if parts.is_empty() {
        return Err("no window".into());
    }
    if parts.len() > MAX_WINDOWS {
        return Err(format!("more than {MAX_WINDOWS} windows"));
    }
    let parts: Vec<String> = parts
        .iter()
        .map(|p| p.chars().take(128).collect())
        .collect();
    let windows = parts.iter().map(|p| window(p)).collect::<Result<_, _>>()?;
    Ok(Windows(windows, parts.join("; ")))
}

fn weekday_bit(d: Weekday) -> u8 {
    1 << (d.to_monday_zero_offset() as u8)
}

impl Window {
    /// The opening and closing instants of this window on `date` (its zone's day), if it
    /// opens that day.
    fn on(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        if self.days & weekday_bit(date.weekday()) == 0 {
            return None;
        }
        let open = date.to_datetime(self.open).to_zoned(self.tz.clone()).ok()?;
        let close = open.checked_add(self.minutes.minutes()).ok()?;
        Some((open.timestamp(), close.timestamp()))
    }

    /// The (open, close) of this window holding `now` or opening next, within 8 days.
    fn around(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let today = now.to_zoned(self.tz.clone()).date();
        (-1..=8)
            .filter_map(|d| today.checked_add(d.days()).ok())
            .filter_map(|date| self.on(date))
            .find(|(_, close)| *close > now)
    }
}

impl Windows {
    /// The value as read (windows joined by `; `).
    pub(crate) fn text(&self) -> &str {
        &self.1
    }

    /// Whether a window is open at `now`.
    pub(crate) fn open_at(&self, now: Timestamp) -> bool {
        self.0
            .iter()
            .filter_map(|w| w.around(now))
            .any(|(open, _)| open <= now)
    }

    /// When a window next opens after `now` (`now` if one is open).
    pub(crate) fn next_opening(&self, now: Timestamp) -> Option<Timestamp> {
        self.0
            .iter()
            .filter_map(|w| w.around(now))
            .map(|(open, _)| open.max(now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_weekday_window_in_a_zone_opens_and_closes_on_its_wall_clock() {
        let w = parse("Mon-Fri 02:00-05:00 Europe/Berlin").unwrap();
        // Wednesday 2026-12-02, Berlin is UTC+1
        assert!(!w.open_at(at("2026-12-02T00:59:00Z")));
        assert!(w.open_at(at("2026-12-02T01:00:00Z")));
        assert!(w.open_at(at("2026-12-02T03:59:59Z")));
        assert!(!w.open_at(at("2026-12-02T04:00:00Z")));
        assert_eq!(
            w.next_opening(at("2026-12-02T04:00:00Z")),
            Some(at("2026-12-03T01:00:00Z"))
        );
        // Friday after the window: next is Monday
        assert_eq!(
            w.next_opening(at("2026-12-04T12:00:00Z")),
            Some(at("2026-12-07T01:00:00Z"))
        );
        // open now: now
        let now = at("2026-12-02T02:00:00Z");
        assert_eq!(w.next_opening(now), Some(now));
        // in summer Berlin is UTC+2
        assert!(w.open_at(at("2026-07-01T00:30:00Z")));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let w = parse("Fri 22:00-02:00").unwrap();
        assert!(w.open_at(at("2026-12-04T23:00:00Z")), "Friday night");
        assert!(
            w.open_at(at("2026-12-05T01:59:00Z")),
            "Saturday morning, Friday's window"
        );
        assert!(!w.open_at(at("2026-12-05T23:00:00Z")), "Saturday night");
        assert!(
            parse("00:00-24:00")
                .unwrap()
                .open_at(at("2026-12-05T23:59:59Z"))
        );
    }

    #[test]
    fn several_windows_and_day_lists() {
        let w = parse("Sat,Sun 10:00-11:00; Mon,Wed-Thu 01:00-01:30 America/New_York").unwrap();
        assert!(w.open_at(at("2026-12-05T10:30:00Z")), "Saturday");
        assert!(
            w.open_at(at("2026-12-03T06:10:00Z")),
            "Thursday 01:10 in New York"
        );
        assert!(!w.open_at(at("2026-12-01T06:10:00Z")), "Tuesday");
        assert_eq!(
            w.next_opening(at("2026-12-05T11:00:00Z")),
            Some(at("2026-12-06T10:00:00Z"))
        );
        assert!(
            parse("Fri-Mon 00:00-01:00")
                .unwrap()
                .open_at(at("2026-12-06T00:30:00Z"))
        );
    }

    #[test]
    fn a_day_daylight_saving_skips_is_still_a_window() {
        // 2027-03-28 02:00 does not exist in Berlin: the window opens at 03:00 local
        let w = parse("Sun 02:30-04:00 Europe/Berlin").unwrap();
        let next = w.next_opening(at("2027-03-27T12:00:00Z")).unwrap();
        assert!(
            next >= at("2027-03-28T00:30:00Z") && next <= at("2027-03-28T01:30:00Z"),
            "{next}"
        );
    }

    #[test]
    fn bad_values_are_errors_that_say_why() {
        for bad in [
            "",
            "Mon-Fri",
            "Mon-Fri 02:00",
            "Funday 02:00-03:00",
            "Mon 25:00-26:00",
            "Mon 24:00-01:00",
            "Mon 02:00-03:00 Mars/Olympus",
            "Mon 02:00-03:00 UTC extra",
            "a b 02:00-03:00",
            &"Mon 01:00-02:00;".repeat(9),
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&"x".repeat(100_000)).is_err());
    }
}
