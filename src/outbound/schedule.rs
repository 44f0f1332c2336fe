//! When a job may be dialled: its calling window in the local time zone, `not_before`,
//! `deadline`, and the scheduler's clock, which tests may set ahead or behind.
use crate::store::{UtcMs, Window};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The scheduler's wall clock: the real time plus a fixed offset, so that a test can
/// start hotline a few seconds before a calling window opens instead of waiting for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// A clock that reads `start` now (RFC 3339), or the real time.
    pub fn starting_at(start: Option<&str>) -> Result<Clock, String> {
        let Some(s) = start else {
            return Ok(Clock::default());
        };
        let t: Timestamp = s
            .parse()
            .map_err(|e| format!("outbound.clock_start '{s}' is not an RFC 3339 time: {e}"))?;
        Ok(Clock {
            offset_ms: t.as_millisecond() - UtcMs::now().0,
        })
    }

    pub fn now(&self) -> UtcMs {
        UtcMs(UtcMs::now().0 + self.offset_ms)
    }
}

/// `HH:MM` as minutes from midnight; `24:00` is the end of the day.
pub fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// The window's problem, if any: bad times, or an end that is not after the start.
pub fn check_window(w: &Window) -> Result<(), String> {
    let s = minutes(&w.start).ok_or_else(|| format!("window.start '{}' is not HH:MM", w.start))?;
    let e = minutes(&w.end).ok_or_else(|| format!("window.end '{}' is not HH:MM", w.end))?;
    if s >= 1440 {
        return Err("window.start must be before 24:00".into());
    }
    if e <= s {
        return Err(format!(
            "window.end {} is not after window.start {}",
            w.end, w.start
        ));
    }
    Ok(())
}

/// The first instant at or after `t` inside the window, in `tz`.
pub fn next_slot(t: UtcMs, w: &Window, tz: &TimeZone) -> UtcMs {
    let (Some(s), Some(e)) = (minutes(&w.start), minutes(&w.end)) else {
        return t;
    };
    let Ok(ts) = Timestamp::from_millisecond(t.0) else {
        return t;
    };
    let z = ts.to_zoned_datetime(tz.clone());
    let now = u32::from(z.hour().unsigned_abs()) * 60 + u32::from(z.minute().unsigned_abs());
    if now >= s && now < e {
        return t;
    }
    let day = if now < s {
        Some(z.date())
    } else {
        z.date().tomorrow().ok()
    };
    let at = day.and_then(|d| {
        crate::flow::clock::in_zone(d.at((s / 60) as i8, (s % 60) as i8, 0, 0), tz).ok()
    });
    at.map_or(t, |ts| UtcMs(ts.as_millisecond()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str, e: &str) -> Window {
        Window {
            start: s.into(),
            end: e.into(),
        }
    }

    fn at(s: &str) -> UtcMs {
        UtcMs(s.parse::<Timestamp>().unwrap().as_millisecond())
    }

    #[test]
    fn windows_in_local_time() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let day = w("08:00", "21:00");
        // 10:00 local is inside.
        let t = at("2026-12-02T02:00:00Z");
        assert_eq!(next_slot(t, &day, &tz), t);
        // 06:00 local waits for 08:00 the same day.
        assert_eq!(
            next_slot(at("2026-12-01T22:00:00Z"), &day, &tz),
            at("2026-12-02T00:00:00Z")
        );
        // 21:00 local (the end is not inside) goes to 08:00 the next day.
        assert_eq!(
            next_slot(at("2026-12-02T13:00:00Z"), &day, &tz),
            at("2026-12-03T00:00:00Z")
        );
        assert_eq!(
            next_slot(at("2026-12-02T15:59:00Z"), &w("00:00", "24:00"), &tz),
            at("2026-12-02T15:59:00Z")
        );
    }

    #[test]
    fn bad_windows() {
        assert!(check_window(&w("08:00", "21:00")).is_ok());
        assert!(check_window(&w("00:00", "24:00")).is_ok());
        assert!(check_window(&w("21:00", "08:00")).is_err());
        assert!(check_window(&w("08:00", "08:00")).is_err());
        assert!(check_window(&w("8:00", "21:00")).is_err());
        assert!(check_window(&w("08:60", "21:00")).is_err());
        assert!(check_window(&w("24:00", "24:00")).is_err());
    }
}
