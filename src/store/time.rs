//! Wall-clock instants as UTC milliseconds since the Unix epoch.
//!
//! Stored as plain integers so that SQL can sort and compare them and no date crate is
//! needed; shown and exchanged as RFC 3339 text (`2026-05-01T08:30:00.250Z`), which a
//! person and `jq` both read.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcMs(pub i64);

impl UtcMs {
    pub fn now() -> UtcMs {
        UtcMs::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> UtcMs {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UtcMs(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => UtcMs(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    pub fn plus(self, d: Duration) -> UtcMs {
        UtcMs(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: UtcMs) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Parses what `Display` writes; seconds' fraction and the `Z` may be left out.
    pub fn parse(s: &str) -> Option<UtcMs> {
        let s = s.strip_suffix('Z').unwrap_or(s);
        let (date, clock) = s.split_once(['T', ' '])?;
        let mut d = date.splitn(3, '-');
        let y: i64 = d.next()?.parse().ok()?;
        let m: u32 = d.next()?.parse().ok()?;
        let day: u32 = d.next()?.parse().ok()?;
        let (hms, frac) = match clock.split_once('.') {
            Some((a, b)) => (a, b),
            None => (clock, "0"),
        };
        let mut c = hms.splitn(3, ':');
        let hh: i64 = c.next()?.parse().ok()?;
        let mm: i64 = c.next()?.parse().ok()?;
        let ss: i64 = c.next()?.parse().ok()?;
        if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        // Only the first three digits are milliseconds; more precision is dropped.
        let digits: String = frac.chars().take(3).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let ms: i64 = format!("{digits:0<3}").parse().ok()?;
        let days = days_from_civil(y, m, day);
        Some(UtcMs(
            ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms,
        ))
    }

    /// `YYYY-MM-DD HH:MM:SS`, for columns meant for eyes.
    pub fn short(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.parts();
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }

    fn parts(self) -> (i64, u32, u32, i64, i64, i64, i64) {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60, ms)
    }
}

impl fmt::Display for UtcMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

impl Serialize for UtcMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UtcMs, D::Error> {
        let s = String::deserialize(d)?;
        UtcMs::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not an RFC 3339 UTC time")))
    }
}

/// A duration in milliseconds as `1h02m03s`, `2m05s` or `4.2s`.
pub fn format_duration_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let s = ms / 1000;
    if s >= 3600 {
        format!("{sign}{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{sign}{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{sign}{}.{}s", s, ms % 1000 / 100)
    }
}

// Howard Hinnant's civil-calendar algorithms: exact for the proleptic Gregorian
// calendar over the whole i64 range we can meet, with no table and no date crate.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(UtcMs(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            UtcMs(1_709_210_096_789).to_string(),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(UtcMs(-1).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parse_inverts_display() {
        for ms in [
            0,
            -1,
            1_709_210_096_789,
            951_782_400_000,
            4_102_444_799_999,
            -62_135_596_800_000,
        ] {
            let t = UtcMs(ms);
            assert_eq!(UtcMs::parse(&t.to_string()), Some(t), "{t}");
        }
        assert_eq!(
            UtcMs::parse("2024-02-29 12:34:56"),
            Some(UtcMs(1_709_210_096_000))
        );
        assert_eq!(UtcMs::parse("2024-13-01T00:00:00Z"), None);
        assert_eq!(UtcMs::parse("yesterday"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration_ms(4_250), "4.2s");
        assert_eq!(format_duration_ms(125_000), "2m05s");
        assert_eq!(format_duration_ms(3_723_000), "1h02m03s");
    }
}
