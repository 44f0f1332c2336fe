//! Spoken values from recorded fragments (零 一 … 十 百 千 萬 點 元 角 月 日 時 分),
//! the way Asterisk's `SayNumber` builds numbers from fragment prompts.
use super::model::SpokenKind;

/// Every fragment the readers below can use: (clip id, text). The catalogue must have
/// them all; `hotline check` says which are missing.
pub const FRAGMENTS: &[(&str, &str)] = &[
    ("num_0", "零"),
    ("num_1", "一"),
    ("num_2", "二"),
    ("num_3", "三"),
    ("num_4", "四"),
    ("num_5", "五"),
    ("num_6", "六"),
    ("num_7", "七"),
    ("num_8", "八"),
    ("num_9", "九"),
    ("num_10", "十"),
    ("num_100", "百"),
    ("num_1000", "千"),
    ("num_10k", "萬"),
    ("num_100m", "億"),
    ("num_liang", "兩"),
    ("num_point", "點"),
    ("unit_yuan", "元"),
    ("unit_jiao", "角"),
    ("unit_fen", "分"),
    ("unit_year", "年"),
    ("unit_month", "月"),
    ("unit_day", "日"),
    ("unit_hour", "時"),
    ("unit_minute", "分"),
];

/// A fragment's text, for showing what the caller hears.
pub fn fragment_text(id: &str) -> &'static str {
    FRAGMENTS
        .iter()
        .find(|(f, _)| *f == id)
        .map(|(_, t)| *t)
        .unwrap_or("")
}

const DIGIT: [&str; 10] = [
    "num_0", "num_1", "num_2", "num_3", "num_4", "num_5", "num_6", "num_7", "num_8", "num_9",
];

/// The fragments that speak `value` as `kind`; `None` when the value cannot be read
/// that way (the caller then hears nothing for it rather than nonsense).
pub fn speak(kind: SpokenKind, value: &str) -> Option<Vec<&'static str>> {
    let v = value.trim();
    match kind {
        SpokenKind::Digits | SpokenKind::DigitsSlow => digits(v),
        SpokenKind::Number => number_str(v),
        SpokenKind::Money => money(v),
        SpokenKind::Date => date(v),
        SpokenKind::Time => time(v),
        SpokenKind::Prompt => None,
    }
}

fn digits(v: &str) -> Option<Vec<&'static str>> {
    let out: Vec<&'static str> = v
        .chars()
        .filter_map(|c| c.to_digit(10).map(|d| DIGIT[d as usize]))
        .collect();
    (!out.is_empty()).then_some(out)
}

fn number_str(v: &str) -> Option<Vec<&'static str>> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    if int.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let Ok(n) = int.parse::<u64>() else {
        // Too long to read as a number: read it digit by digit.
        return digits(v);
    };
    let mut out = number(n);
    if let Some(f) = frac.filter(|f| !f.is_empty()) {
        if !f.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        out.push("num_point");
        out.extend(digits(f)?);
    }
    Some(out)
}

/// Mandarin reading of a whole number: 10 十, 12 十二, 105 一百零五, 200 兩百, 10010 一萬零一十.
pub fn number(n: u64) -> Vec<&'static str> {
    if n == 0 {
        return vec!["num_0"];
    }
    if n >= 1_000_000_000_000 {
        let s = n.to_string();
        return s
            .chars()
            .filter_map(|c| c.to_digit(10).map(|d| DIGIT[d as usize]))
            .collect();
    }
    let groups = [
        ((n / 100_000_000) as u16, Some("num_100m")),
        (((n / 10_000) % 10_000) as u16, Some("num_10k")),
        ((n % 10_000) as u16, None),
    ];
    let mut out = Vec::new();
    let mut zero_pending = false;
    for (g, unit) in groups {
        if g == 0 {
            if !out.is_empty() {
                zero_pending = true;
            }
            continue;
        }
        if !out.is_empty() && (zero_pending || g < 1000) {
            out.push("num_0");
        }
        zero_pending = false;
        group(g, out.is_empty(), unit.is_some(), &mut out);
        if let Some(u) = unit {
            out.push(u);
        }
    }
    out
}

/// One group of four digits (1..=9999).
fn group(g: u16, leading: bool, before_unit: bool, out: &mut Vec<&'static str>) {
    let places = [
        (g / 1000, "num_1000"),
        ((g / 100) % 10, "num_100"),
        ((g / 10) % 10, "num_10"),
        (g % 10, ""),
    ];
    let mut started = false;
    let mut zero_pending = false;
    for (i, (d, unit)) in places.into_iter().enumerate() {
        if d == 0 {
            if started {
                zero_pending = true;
            }
            continue;
        }
        if zero_pending {
            out.push("num_0");
            zero_pending = false;
        }
        let is_tens = i == 2;
        let is_units = i == 3;
        if is_tens && d == 1 && !started && leading {
            // 十二, not 一十二, at the start of a number.
        } else if d == 2 && !started && (i < 2 || (is_units && before_unit)) {
            // 兩百, 兩千, 兩萬: 2 before a large unit is 兩.
            out.push("num_liang");
        } else {
            out.push(DIGIT[d as usize]);
        }
        if !unit.is_empty() {
            out.push(unit);
        }
        started = true;
    }
}

fn money(v: &str) -> Option<Vec<&'static str>> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    let int = if int.is_empty() { "0" } else { int };
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let yuan: u64 = int.parse().ok()?;
    let mut f = frac.chars().map(|c| c.to_digit(10).unwrap_or(0) as u64);
    let jiao = f.next().unwrap_or(0);
    let fen = f.next().unwrap_or(0);
    let mut out = Vec::new();
    if yuan > 0 || (jiao == 0 && fen == 0) {
        out.extend(number(yuan));
        out.push("unit_yuan");
    }
    if jiao > 0 {
        out.push(DIGIT[jiao as usize]);
        out.push("unit_jiao");
    } else if fen > 0 && yuan > 0 {
        out.push("num_0");
    }
    if fen > 0 {
        out.push(DIGIT[fen as usize]);
        out.push("unit_fen");
    }
    Some(out)
}

fn date(v: &str) -> Option<Vec<&'static str>> {
    let parts: Vec<&str> = v.split(['-', '/']).collect();
    let (y, m, d) = match parts.as_slice() {
        [y, m, d] => (Some(*y), *m, *d),
        [m, d] => (None, *m, *d),
        _ => return None,
    };
    let m: u64 = m.parse().ok().filter(|m| (1..=12).contains(m))?;
    let d: u64 = d.parse().ok().filter(|d| (1..=31).contains(d))?;
    let mut out = Vec::new();
    if let Some(y) = y {
        if y.len() != 4 {
            return None;
        }
        out.extend(digits(y)?);
        out.push("unit_year");
    }
    out.extend(number(m));
    out.push("unit_month");
    out.extend(number(d));
    out.push("unit_day");
    Some(out)
}

fn time(v: &str) -> Option<Vec<&'static str>> {
    let (h, m) = v.split_once(':')?;
    let h: u64 = h.parse().ok().filter(|h| *h < 24)?;
    let m: u64 = m.get(..2).unwrap_or(m).parse().ok().filter(|m| *m < 60)?;
    let mut out = if h == 2 { vec!["num_liang"] } else { number(h) };
    out.push("unit_hour");
    if m > 0 {
        if m < 10 {
            out.push("num_0");
        }
        out.extend(number(m));
        out.push("unit_minute");
    }
    Some(out)
}

/// What the fragments say, as text.
pub fn text_of(clips: &[&str]) -> String {
    clips.iter().map(|c| fragment_text(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(kind: SpokenKind, v: &str) -> String {
        text_of(&speak(kind, v).unwrap_or_default())
    }

    #[test]
    fn numbers_read_as_mandarin() {
        let cases = [
            (0, "零"),
            (7, "七"),
            (10, "十"),
            (12, "十二"),
            (20, "二十"),
            (24, "二十四"),
            (100, "一百"),
            (105, "一百零五"),
            (110, "一百一十"),
            (200, "兩百"),
            (1002, "一千零二"),
            (1010, "一千零一十"),
            (2000, "兩千"),
            (10000, "一萬"),
            (10010, "一萬零一十"),
            (20000, "兩萬"),
            (100000, "十萬"),
            (120000, "十二萬"),
            (1_000_001, "一百萬零一"),
            (1_050_000, "一百零五萬"),
            (100_000_000, "一億"),
            (123_456_789, "一億兩千三百四十五萬六千七百八十九"),
        ];
        for (n, want) in cases {
            assert_eq!(text_of(&number(n)), want, "{n}");
        }
    }

    #[test]
    fn values_of_each_kind() {
        assert_eq!(say(SpokenKind::Digits, "10020"), "一零零二零");
        assert_eq!(say(SpokenKind::Number, "3.14"), "三點一四");
        assert_eq!(say(SpokenKind::Money, "56.30"), "五十六元三角");
        assert_eq!(say(SpokenKind::Money, "0.5"), "五角");
        assert_eq!(say(SpokenKind::Money, "10.05"), "十元零五分");
        assert_eq!(say(SpokenKind::Money, "128"), "一百二十八元");
        assert_eq!(say(SpokenKind::Money, "0"), "零元");
        assert_eq!(
            say(SpokenKind::Date, "2026-11-26"),
            "二零二六年十一月二十六日"
        );
        assert_eq!(say(SpokenKind::Date, "3-8"), "三月八日");
        assert_eq!(say(SpokenKind::Time, "14:30"), "十四時三十分");
        assert_eq!(say(SpokenKind::Time, "09:05"), "九時零五分");
        assert_eq!(say(SpokenKind::Time, "02:00"), "兩時");
        for (k, bad) in [
            (SpokenKind::Number, "abc"),
            (SpokenKind::Money, "1.x"),
            (SpokenKind::Date, "13-40"),
            (SpokenKind::Time, "25:00"),
            (SpokenKind::Digits, "none"),
        ] {
            assert!(speak(k, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_fragment_used_is_declared() {
        for n in (0..100_000u64).step_by(7).chain([2, 20_000, 200_000_000]) {
            for c in number(n) {
                assert!(!fragment_text(c).is_empty(), "{c}");
            }
        }
    }
}
