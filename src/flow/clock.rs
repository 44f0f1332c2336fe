//! Local time and the holiday calendar, for conditions such as `now.hour >= 20` or
//! `now.holiday`.
//!
//! The engine reads no clock: the driver hands the session a [`WallClock`], the wall
//! time at one `Instant`, and the session derives `now.*` from the `Instant`s its
//! events carry. A live call passes the real time; `simulate --at` and a flow test's
//! `at:` pass the time they are set to, which then runs on with the simulated clock.
use super::diag::{Diagnostic, Diags, Pos};
use super::expr::Vars;
use super::yaml::{self, Node, Value};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The time zone of a flow that names none.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// Today's date in the zone named (UTC if the name is not one).
pub fn today_in(zone: &str) -> Date {
    Timestamp::now()
        .to_zoned_datetime(time_zone(zone).unwrap_or(TimeZone::UTC))
        .date()
}

/// An IANA time zone by name (`Asia/Shanghai`, `UTC`).
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("'{name}' is not a time zone of the IANA database (e.g. Asia/Shanghai, Asia/Hong_Kong, UTC)")
    })
}

pub fn default_time_zone() -> TimeZone {
    time_zone(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC)
}

/// A local date and time as designers write it, `2026-10-01T22:00` (or with a space,
/// with seconds, or a date alone for midnight).
pub fn parse_civil(s: &str) -> Result<DateTime, String> {
    let s = s.trim();
    let bad = || format!("'{s}' is not a local date and time (write e.g. 2026-10-01T22:00)");
    match s.parse::<DateTime>() {
        Ok(dt) => Ok(dt),
        Err(_) => Ok(s
            .parse::<Date>()
            .map_err(|_| bad())?
            .to_datetime(jiff::civil::Time::midnight())),
    }
}

/// The moment a local date and time is in `tz`.
pub fn in_zone(dt: DateTime, tz: &TimeZone) -> Result<Timestamp, String> {
    dt.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{dt} in {}: {e}", tz.iana_name().unwrap_or("the time zone")))
}

/// [`parse_civil`] in `tz`.
pub fn parse_local(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    in_zone(parse_civil(s)?, tz)
}

/// Public holidays by date, and the weekend days that are working days instead
/// (China's 調休), from `data/holidays.yaml`:
///
/// ```yaml
/// holidays:
///   2026-01-01: 元旦
///   2026-10-01..2026-10-07: 國慶節
/// workdays: [2026-09-27, 2026-10-10]
/// ```
#[derive(Clone, Debug, Default)]
pub struct Calendar {
    holidays: BTreeMap<Date, String>,
    workdays: BTreeSet<Date>,
}

/// The longest holiday range: a longer one is a typo in a year.
const MAX_RANGE_DAYS: i32 = 60;

impl Calendar {
    /// Reads a calendar file; every problem with its line and column.
    pub fn load(path: &Path) -> Result<Calendar, Vec<Diagnostic>> {
        let mut d = Diags::new(path);
        let text = super::read_limited(path).map_err(|e| {
            d.error(Pos::FILE, e);
            std::mem::take(&mut d.list)
        })?;
        let cal = Calendar::parse(&text, &mut d);
        if d.is_empty() {
            Ok(cal)
        } else {
            Err(d.into_sorted())
        }
    }

    pub fn parse(text: &str, d: &mut Diags) -> Calendar {
        let mut cal = Calendar::default();
        let Some(root) = yaml::parse(text, d) else {
            return cal;
        };
        let Some(map) = root.as_map() else {
            if !matches!(root.value, Value::Null) {
                d.error(
                    root.pos,
                    "a holiday calendar is a mapping with holidays: and workdays:",
                );
            }
            return cal;
        };
        let mut first_seen: BTreeMap<Date, Pos> = BTreeMap::new();
        for (k, v) in map {
            match k.scalar().unwrap_or_default().as_str() {
                "holidays" => cal.holidays_from(v, d, &mut first_seen),
                "workdays" => cal.workdays_from(v, d, &mut first_seen),
                other => d.error(
                    k.pos,
                    format!(
                        "unknown key '{other}' in the holiday calendar (expected holidays, workdays)"
                    ),
                ),
            }
        }
        cal
    }

    fn holidays_from(&mut self, n: &Node, d: &mut Diags, seen: &mut BTreeMap<Date, Pos>) {
        let Some(map) = n.as_map() else {
            if !matches!(n.value, Value::Null) {
                d.error(
                    n.pos,
                    "holidays must be a mapping of DATE (or DATE..DATE): name",
                );
            }
            return;
        };
        for (k, v) in map {
            let Some(days) = dates(k, d) else { continue };
            let name = match &v.value {
                Value::Str(s) if !s.trim().is_empty() => s.trim().to_string(),
                Value::Int(_) | Value::Float(_) => v.scalar().unwrap_or_default(),
                _ => {
                    d.error(v.pos, "a holiday needs a name, e.g. 國慶節");
                    continue;
                }
            };
            for day in days {
                if let Some(prev) = seen.insert(day, k.pos) {
                    d.error(
                        k.pos,
                        format!("{day} is listed twice (first at line {})", prev.line),
                    );
                }
                self.holidays.insert(day, name.clone());
            }
        }
    }

    fn workdays_from(&mut self, n: &Node, d: &mut Diags, seen: &mut BTreeMap<Date, Pos>) {
        let items: &[Node] = match &n.value {
            Value::Seq(items) => items,
            Value::Null => &[],
            _ => {
                d.error(
                    n.pos,
                    "workdays must be a list of dates, e.g. [2026-09-27, 2026-10-10]",
                );
                return;
            }
        };
        for i in items {
            for day in dates(i, d).unwrap_or_default() {
                if day.weekday().to_monday_one_offset() <= 5 {
                    d.error(
                        i.pos,
                        format!(
                            "{day} is a {:?}, a working day anyway: workdays lists the weekend days worked instead of a holiday",
                            day.weekday()
                        ),
                    );
                    continue;
                }
                if let Some(prev) = seen.insert(day, i.pos) {
                    d.error(
                        i.pos,
                        format!("{day} is listed twice (first at line {})", prev.line),
                    );
                }
                self.workdays.insert(day);
            }
        }
    }

    pub fn holiday(&self, day: Date) -> Option<&str> {
        self.holidays.get(&day).map(String::as_str)
    }

    /// Monday to Friday unless a holiday, and the weekend days listed as workdays.
    pub fn is_workday(&self, day: Date) -> bool {
        self.workdays.contains(&day)
            || (day.weekday().to_monday_one_offset() <= 5 && !self.holidays.contains_key(&day))
    }

    pub fn len(&self) -> usize {
        self.holidays.len()
    }

    /// The last day the calendar speaks for: 31 December of the last year it lists a
    /// holiday in. Past it, `now.holiday` is false and `now.workday` follows the
    /// weekdays, whatever the State Council decided.
    pub fn covers_until(&self) -> Option<Date> {
        let last = self.holidays.keys().next_back()?;
        Date::new(last.year(), 12, 31).ok()
    }

    /// When the calendar stops speaking for the days, in `tz`: the midnight after the
    /// last day it covers (Prometheus wants a time in seconds, not days).
    pub fn ends_at(&self, tz: &TimeZone) -> Option<Timestamp> {
        let next = self.covers_until()?.tomorrow().ok()?;
        in_zone(next.to_datetime(jiff::civil::Time::midnight()), tz).ok()
    }

    /// Days from `today` to the calendar's end (negative once past it); `None` when
    /// there is no calendar at all.
    pub fn days_left(&self, today: Date) -> Option<i64> {
        let end = self.covers_until()?;
        today.until(end).ok().map(|span| i64::from(span.get_days()))
    }

    /// What to tell the operator when the calendar ends within a month: the yearly
    /// notice comes out in November, and a flow that opens on holidays must not
    /// quietly treat next year's as working days.
    pub fn running_out(&self, today: Date) -> Option<String> {
        let left = self.days_left(today)?;
        if left > 31 {
            return None;
        }
        let end = self.covers_until()?;
        let next = end.year() + 1;
        let when = if left < 0 {
            format!("ended {} day(s) ago", -left)
        } else {
            format!("ends in {left} day(s)")
        };
        Some(format!(
            "the holiday calendar covers up to {end} and {when}: add {next}'s holidays and workdays from the State Council's notice to holidays.yaml, or now.holiday and now.workday take {next}'s holidays for ordinary days"
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.holidays.is_empty() && self.workdays.is_empty()
    }
}

/// `2026-10-01` or `2026-10-01..2026-10-07`: the days it names.
fn dates(n: &Node, d: &mut Diags) -> Option<Vec<Date>> {
    let s = n.scalar().unwrap_or_default();
    let one = |t: &str, d: &mut Diags| -> Option<Date> {
        match t.trim().parse::<Date>() {
            Ok(day) if t.trim().len() == 10 => Some(day),
            _ => {
                d.error(
                    n.pos,
                    format!("'{}' is not a date: write YYYY-MM-DD", t.trim()),
                );
                None
            }
        }
    };
    match s.split_once("..") {
        None => one(&s, d).map(|day| vec![day]),
        Some((a, b)) => {
            let (a, b) = (one(a, d)?, one(b, d)?);
            let len = a.until(b).map(|span| span.get_days()).unwrap_or(-1);
            if !(0..=MAX_RANGE_DAYS).contains(&len) {
                d.error(
                    n.pos,
                    format!("'{s}': a range goes from a first day to a later last day, at most {MAX_RANGE_DAYS} days"),
                );
                return None;
            }
            Some(
                (0..=len)
                    .filter_map(|i| a.checked_add(i.days()).ok())
                    .collect(),
            )
        }
    }
}

/// The wall-clock time at one moment of the driver's monotonic clock.
#[derive(Clone, Debug)]
pub struct WallClock {
    anchor: Instant,
    wall: Timestamp,
    calendar: Arc<Calendar>,
    /// The minute the variables were last set for: they change once a minute.
    shown: Option<i64>,
}

impl WallClock {
    /// `wall` is the time at `anchor`.
    pub fn new(anchor: Instant, wall: Timestamp, calendar: Arc<Calendar>) -> WallClock {
        WallClock {
            anchor,
            wall,
            calendar,
            shown: None,
        }
    }

    /// The wall time at `now`.
    pub fn at(&self, now: Instant) -> Timestamp {
        let since = now.saturating_duration_since(self.anchor);
        self.wall.checked_add(since).unwrap_or(self.wall)
    }

    /// Sets the `now.*` variables for `now` in `tz`, unless they already show its minute.
    pub fn update(&mut self, now: Instant, tz: &TimeZone, vars: &mut Vars) {
        let t = self.at(now);
        let minute = t.as_second().div_euclid(60);
        if self.shown == Some(minute) {
            return;
        }
        self.shown = Some(minute);
        for (k, v) in now_vars(t, tz, &self.calendar) {
            vars.insert(k.to_string(), v);
        }
    }
}

/// The `now.*` variables at `t` in `tz`.
pub fn now_vars(t: Timestamp, tz: &TimeZone, cal: &Calendar) -> [(&'static str, String); 8] {
    let z = t.to_zoned_datetime(tz.clone());
    let day = z.date();
    let holiday = cal.holiday(day);
    [
        ("now.hour", z.hour().to_string()),
        ("now.minute", z.minute().to_string()),
        (
            "now.weekday",
            z.weekday().to_monday_one_offset().to_string(),
        ),
        ("now.date", day.to_string()),
        ("now.time", format!("{:02}:{:02}", z.hour(), z.minute())),
        ("now.holiday", holiday.is_some().to_string()),
        ("now.holiday_name", holiday.unwrap_or_default().to_string()),
        ("now.workday", cal.is_workday(day).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cal(text: &str) -> Result<Calendar, Vec<String>> {
        let mut d = Diags::new(Path::new("holidays.yaml"));
        let c = Calendar::parse(text, &mut d);
        if d.is_empty() {
            Ok(c)
        } else {
            Err(d.into_sorted().iter().map(|e| e.to_string()).collect())
        }
    }

    #[test]
    fn an_operator_is_told_a_month_ahead_that_the_calendar_runs_out() {
        let c = cal("holidays:\n  2026-10-01..2026-10-07: 國慶節\n").unwrap();
        let day = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(c.covers_until(), Some(day("2026-12-31")));
        assert_eq!(c.days_left(day("2026-11-30")), Some(31));
        assert_eq!(c.running_out(day("2026-11-29")), None);
        let soon = c.running_out(day("2026-12-02")).unwrap();
        assert!(
            soon.contains("ends in 29 day(s)") && soon.contains("add 2027's"),
            "{soon}"
        );
        let late = c.running_out(day("2027-01-03")).unwrap();
        assert!(late.contains("ended 3 day(s) ago"), "{late}");
        assert_eq!(Calendar::default().running_out(day("2027-01-03")), None);
        let tz = time_zone("Asia/Shanghai").unwrap();
        assert_eq!(
            c.ends_at(&tz).unwrap().to_string(),
            "2026-12-31T16:00:00Z",
            "midnight of 1 January in Shanghai"
        );
    }

    #[test]
    fn the_clock_gives_local_time_in_the_flows_zone() {
        let tz = time_zone("Asia/Shanghai").unwrap();
        let c =
            cal("holidays:\n  2026-10-01..2026-10-07: 國慶節\nworkdays: [2026-10-10]\n").unwrap();
        let t = parse_local("2026-10-01T22:00", &tz).unwrap();
        assert_eq!(t.to_string(), "2026-10-01T14:00:00Z");
        let t0 = Instant::now();
        let mut w = WallClock::new(t0, t, Arc::new(c));
        let mut v = Vars::new();
        w.update(t0 + Duration::from_secs(2 * 3600 + 61), &tz, &mut v);
        let get = |k: &str| v.get(k).cloned().unwrap_or_default();
        assert_eq!(get("now.date"), "2026-10-02");
        assert_eq!(get("now.time"), "00:01");
        assert_eq!(get("now.hour"), "0");
        assert_eq!(get("now.minute"), "1");
        assert_eq!(get("now.weekday"), "5");
        assert_eq!(get("now.holiday"), "true");
        assert_eq!(get("now.holiday_name"), "國慶節");
        assert_eq!(get("now.workday"), "false");
        for k in v.keys() {
            assert!(super::super::builtins::is_builtin(k), "{k} is not listed");
        }
    }

    #[test]
    fn weekends_holidays_and_workdays() {
        let c =
            cal("holidays:\n  2026-10-01..2026-10-07: 國慶節\nworkdays: [2026-10-10]\n").unwrap();
        let day = |s: &str| s.parse::<Date>().unwrap();
        assert!(c.is_workday(day("2026-09-30")));
        assert!(!c.is_workday(day("2026-10-05")));
        assert!(c.is_workday(day("2026-10-10")), "a Saturday worked instead");
        assert!(!c.is_workday(day("2026-10-11")), "a Sunday");
        assert_eq!(c.len(), 7);
    }

    #[test]
    fn a_bad_calendar_says_where() {
        let e = cal("holidays:\n  2026-13-01: x\n  2026-10-01: \"\"\n  2026-10-09..2026-10-01: y\nworkdays: [2026-10-05]\nextra: 1\n").unwrap_err();
        let all = e.join("\n");
        assert!(
            all.contains("holidays.yaml:2:3: '2026-13-01' is not a date"),
            "{all}"
        );
        assert!(all.contains(":3:15: a holiday needs a name"), "{all}");
        assert!(all.contains(":4:3: '2026-10-09..2026-10-01'"), "{all}");
        assert!(all.contains(":5:12: 2026-10-05 is a Monday"), "{all}");
        assert!(all.contains(":6:1: unknown key 'extra'"), "{all}");
        let e = cal("holidays:\n  2026-10-01: a\n  2026-09-30..2026-10-02: b\n").unwrap_err();
        assert!(
            e[0].contains(":3:3: 2026-10-01 is listed twice (first at line 2)"),
            "{e:?}"
        );
        assert!(cal("holidays:\n").unwrap().is_empty());
    }

    #[test]
    fn local_times_parse_in_their_zone() {
        let utc = TimeZone::UTC;
        for (s, want) in [
            ("2026-10-01T22:00", "2026-10-01T22:00:00Z"),
            ("2026-10-01 08:30:15", "2026-10-01T08:30:15Z"),
            ("2026-10-01", "2026-10-01T00:00:00Z"),
        ] {
            assert_eq!(parse_local(s, &utc).unwrap().to_string(), want, "{s}");
        }
        for bad in ["", "22:00", "2026-10-32T01:00", "tomorrow"] {
            assert!(parse_local(bad, &utc).is_err(), "{bad}");
        }
        assert!(time_zone("Asia/Shanghia").is_err());
    }
}
