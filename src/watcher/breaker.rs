//! The flap breaker, pure: the minimum interval between two rolls of one workload (the
//! `--min-roll-interval` flag, or the workload's `hashroll.dev/min-roll-interval`, at most
//! [`MAX_INTERVAL`]), and how long a roll must still wait after the last one (the
//! `hashroll.dev/last-roll` time hashroll writes in each roll patch while an interval
//! applies, so a restart or a new leader keeps counting). A tenant's values are bounded: a
//! malformed interval is a problem (a Warning Event) and the flag applies; a last-roll time
//! in the future counts as now, so no value holds a roll longer than one interval.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::core::syntax::parse_go_duration;

/// The longest minimum interval a workload may ask for.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The interval that applies (`flag`, or the annotation's value, bounded), and the
/// problem with a bad annotation value.
pub(crate) fn interval(flag: Duration, annotation: Option<&str>) -> (Duration, Option<String>) {
    let Some(v) = annotation else {
        return (flag.min(MAX_INTERVAL), None);
    };
    let shown = || v.chars().take(64).collect::<String>();
    match parse_go_duration(v) {
        None => (
            flag.min(MAX_INTERVAL),
            Some(format!(
                "{}: {:?} is not a duration such as 10m; the default applies",
                crate::core::names::MIN_ROLL_INTERVAL,
                shown()
            )),
        ),
        Some(d) if d > MAX_INTERVAL => (
            MAX_INTERVAL,
            Some(format!(
                "{}: {:?} is longer than 24h; taken as 24h",
                crate::core::names::MIN_ROLL_INTERVAL,
                shown()
            )),
        ),
        Some(d) => (d, None),
    }
}

/// How long a roll must still wait: `None` when it may happen now.
pub(crate) fn wait_left(
    interval: Duration,
    last_roll: Option<&str>,
    now: Timestamp,
) -> Option<Duration> {
    if interval.is_zero() {
        return None;
    }
    let last: Timestamp = last_roll?.parse().ok()?;
    // a time in the future (a tenant's, or a skewed clock) counts as now
    let last = last.min(now);
    let since = Duration::try_from(now.duration_since(last)).unwrap_or_default();
    interval.checked_sub(since).filter(|d| !d.is_zero())
}

/// When the next roll may happen, for `explain`.
pub(crate) fn next_roll(
    interval: Duration,
    last_roll: Option<&str>,
    now: Timestamp,
) -> Option<Timestamp> {
    let left = wait_left(interval, last_roll, now)?;
    let span = k8s_openapi::jiff::SignedDuration::try_from(left).ok()?;
    now.checked_add(span).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Duration = Duration::from_secs(60);

    #[test]
    fn the_interval_is_the_flag_or_a_bounded_annotation() {
        assert_eq!(interval(M, None), (M, None));
        assert_eq!(interval(M, Some("10m")).0, 10 * M);
        assert_eq!(
            interval(M, Some("0s")),
            (Duration::ZERO, None),
            "a workload turns it off"
        );
        let (d, p) = interval(M, Some("3000000000000h"));
        assert_eq!(d, MAX_INTERVAL);
        assert!(p.unwrap().contains("24h"));
        let (d, p) = interval(M, Some("soon"));
        assert_eq!(d, M);
        assert!(p.unwrap().contains("not a duration"));
        assert_eq!(interval(Duration::MAX, None).0, MAX_INTERVAL);
    }

    #[test]
    fn a_roll_waits_out_the_rest_of_the_interval() {
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        assert_eq!(wait_left(M, None, now), None, "never rolled: rolls now");
        assert_eq!(
            wait_left(M, Some("2026-11-27T09:59:40Z"), now),
            Some(Duration::from_secs(40))
        );
        assert_eq!(wait_left(M, Some("2026-11-27T09:58:00Z"), now), None);
        assert_eq!(
            wait_left(Duration::ZERO, Some("2026-11-27T09:59:59Z"), now),
            None
        );
        // a forged future time holds one interval at most; garbage holds nothing
        assert_eq!(wait_left(M, Some("2999-01-01T00:00:00Z"), now), Some(M));
        assert_eq!(wait_left(M, Some("yesterday"), now), None);
        assert_eq!(
            next_roll(M, Some("2026-11-27T09:59:40Z"), now).map(|t| t.to_string()),
            Some("2026-11-27T10:00:40Z".to_string())
        );
    }
}
