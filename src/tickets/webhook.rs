//! One POST of a ticket to the webhook, bounded in time and size, and what its answer
//! means for the ticket.
use crate::config::WebhookConfig;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the receiver's answer (or its silence) means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Delivered {
        status: u16,
    },
    /// No connection: the receiver is down, nothing is wrong with this ticket.
    Unreachable {
        error: String,
    },
    /// Try this ticket again later (408, 429, 5xx, timeout, garbage, too long, redirect),
    /// not before `after` if the receiver said so.
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// Refused (another 4xx): a retry would be refused again; parked for the operator.
    Park {
        status: u16,
        error: String,
    },
}

/// How an answer too long for `webhook.max_body` is told apart from other failures.
const TOO_LONG: &str = "answer longer than webhook.max_body";

impl Answer {
    /// The result as the metrics count it (one of `outbox::RESULTS`).
    pub fn result(&self) -> &'static str {
        match self {
            Answer::Delivered { .. } => "delivered",
            Answer::Unreachable { .. } => "connect_error",
            Answer::Park { .. } => "http_4xx",
            Answer::Retry { error, .. } if error.contains(TOO_LONG) => "too_large",
            Answer::Retry {
                status: Some(s), ..
            } => match s {
                300..=399 => "redirect",
                400..=499 => "http_4xx",
                500..=599 => "http_5xx",
                _ => "bad_answer",
            },
            Answer::Retry { error, .. } if error.starts_with("timed out") => "timeout",
            Answer::Retry { .. } => "bad_answer",
        }
    }

    /// The key of the by-status counters.
    pub fn label(&self) -> String {
        match self {
            Answer::Delivered { status } | Answer::Park { status, .. } => status.to_string(),
            Answer::Retry {
                status: Some(s), ..
            } => s.to_string(),
            Answer::Retry { error, .. } if error.starts_with("timed out") => "timeout".into(),
            Answer::Retry { .. } => "error".into(),
            Answer::Unreachable { .. } => "unreachable".into(),
        }
    }
}

/// Characters of a refusal's body kept for the operator.
const EXCERPT: usize = 300;

pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Vec<u8>,
    max_body: usize,
    timeout: Duration,
}

impl Webhook {
    /// None without `webhook.url`; an error for a setting that cannot work.
    pub fn new(cfg: &WebhookConfig) -> Result<Option<Webhook>, String> {
        let Some(url) = &cfg.url else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(url).map_err(|e| format!("webhook.url '{url}': {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("webhook.url '{url}': not http or https"));
        }
        if cfg.secret.is_empty() {
            return Err(
                "webhook.url is set but webhook.secret is empty: the ticket system could not \
                 tell hotline's tickets from anyone's"
                    .into(),
            );
        }
        let client = reqwest::Client::builder()
            // A redirect is answered with a retry, not followed: the ticket goes where
            // it was configured to, and a redirect loop costs one request an attempt.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("hotline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Some(Webhook {
            client,
            url,
            secret: cfg.secret.as_bytes().to_vec(),
            max_body: cfg.max_body,
            timeout: cfg.timeout,
        }))
    }

    pub async fn post(&self, idempotency_key: &str, body: Vec<u8>) -> Answer {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sig = signature(&self.secret, ts, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", idempotency_key)
            .header("X-Hotline-Timestamp", ts.to_string())
            .header("X-Hotline-Signature", sig)
            .body(body)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return self.failure(&e),
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return too_long(status, after, self.max_body);
        }
        let mut got = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if got.len() + c.len() > self.max_body {
                        return too_long(status, after, self.max_body);
                    }
                    got.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return self.failure(&e),
            }
        }
        classify(status, after, location, &got)
    }

    fn failure(&self, e: &reqwest::Error) -> Answer {
        if e.is_connect() {
            return Answer::Unreachable { error: chain(e) };
        }
        let error = if e.is_timeout() {
            format!("timed out after {:?}", self.timeout)
        } else {
            chain(e)
        };
        Answer::Retry {
            status: None,
            error,
            after: None,
        }
    }
}

fn classify(status: u16, after: Option<Duration>, location: Option<String>, body: &[u8]) -> Answer {
    let error = || format!("HTTP {status}: {}", excerpt(body));
    match status {
        200..=299 => Answer::Delivered { status },
        300..=399 => Answer::Retry {
            status: Some(status),
            error: format!(
                "HTTP {status}: redirect to {} not followed; fix webhook.url",
                location.as_deref().unwrap_or("(no Location)")
            ),
            after,
        },
        408 | 429 | 500..=599 => Answer::Retry {
            status: Some(status),
            error: error(),
            after,
        },
        400..=499 => Answer::Park {
            status,
            error: error(),
        },
        _ => Answer::Retry {
            status: Some(status),
            error: error(),
            after,
        },
    }
}

/// A `Retry-After` still counts: a 503 may come with a long maintenance page.
fn too_long(status: u16, after: Option<Duration>, max: usize) -> Answer {
    Answer::Retry {
        status: Some(status),
        error: format!("HTTP {status}: {TOO_LONG} ({max} bytes)"),
        after,
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY` under the secret.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // new_from_slice accepts a key of any length (HMAC hashes long keys).
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut s = String::with_capacity(7 + tag.len() * 2);
    s.push_str("sha256=");
    for b in tag {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The longest wait a `Retry-After` is taken for: a broken header must not shelve a
/// ticket for years.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(86_400);

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    retry_after_at(v, SystemTime::now())
}

/// `Retry-After` (RFC 9110 §10.2.3), delay-seconds or an HTTP-date, as a wait from
/// `now`. A date already past means no wait beyond the back-off; anything else
/// unreadable is ignored, and the back-off holds.
fn retry_after_at(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 still says "a long time", not "no idea".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_MAX));
    }
    let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let at = http_date(v, now_secs)?;
    let Ok(at) = u64::try_from(at) else {
        return Some(Duration::ZERO);
    };
    let wait = (UNIX_EPOCH + Duration::from_secs(at))
        .duration_since(now)
        .unwrap_or(Duration::ZERO);
    Some(wait.min(RETRY_AFTER_MAX))
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the Unix epoch of an HTTP-date (RFC 9110 §5.6.7). Senders must use
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), but recipients must also read the
/// obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms, which old servers and proxies still send.
/// `now` places RFC 850's two-digit year. The weekday is not checked against the date:
/// a sender's slip there does not make the date itself any less meant.
fn http_date(s: &str, now: u64) -> Option<i64> {
    let t: Vec<&str> = s.split_ascii_whitespace().collect();
    let weekday = |w: &str, names: &[&str]| w.strip_suffix(',').is_some_and(|w| names.contains(&w));
    let (year, month, day, time) = match t.as_slice() {
        [w, d, m, y, time, "GMT"] if weekday(w, &DAYS) => (
            i64::from(digits(y, 4, 4)?),
            month_of(m)?,
            digits(d, 2, 2)?,
            *time,
        ),
        [w, dmy, time, "GMT"] if weekday(w, &LONG_DAYS) => {
            let mut p = dmy.split('-');
            let (d, m, yy) = (p.next()?, p.next()?, p.next()?);
            if p.next().is_some() {
                return None;
            }
            let year = century_of(digits(yy, 2, 2)?, now);
            (year, month_of(m)?, digits(d, 2, 2)?, *time)
        }
        [w, m, d, time, y] if DAYS.contains(w) => (
            i64::from(digits(y, 4, 4)?),
            month_of(m)?,
            digits(d, 1, 2)?,
            *time,
        ),
        _ => return None,
    };
    let mut hms = time.split(':');
    let (h, mi, sec) = (
        digits(hms.next()?, 2, 2)?,
        digits(hms.next()?, 2, 2)?,
        digits(hms.next()?, 2, 2)?,
    );
    // 60: a leap second, which the grammar allows.
    if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    Some(days * 86_400 + i64::from(h * 3600 + mi * 60 + sec))
}

/// `min..=max` ASCII digits.
fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if !(min..=max).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// 1..=12
fn month_of(m: &str) -> Option<u32> {
    let i = MONTHS.iter().position(|n| *n == m)?;
    u32::try_from(i + 1).ok()
}

/// RFC 9110: a two-digit year more than 50 years ahead is the latest such year past.
fn century_of(yy: u32, now: u64) -> i64 {
    // Within a day of the true year is close enough for a 50-year window.
    let this_year = 1970 + i64::try_from(now / 31_556_952).unwrap_or(0);
    let mut year = this_year - this_year.rem_euclid(100) + i64::from(yy);
    if year > this_year + 50 {
        year -= 100;
    } else if year <= this_year - 50 {
        year += 100;
    }
    year
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (negative before it).
fn days_since_epoch(y: i64, m: u32, d: u32) -> i64 {
    const BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    // Leap years in 1..=y: the difference of two counts those from 1970 to y.
    let leaps = |y: i64| y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400);
    let month = usize::try_from(m.saturating_sub(1)).unwrap_or(0).min(11);
    let mut days = 365 * (y - 1970) + leaps(y - 1) - leaps(1969) + BEFORE_MONTH[month];
    if m > 2 && is_leap(y) {
        days += 1;
    }
    days + i64::from(d) - 1
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text
        .chars()
        .take(EXCERPT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT {
        s.push('…');
    }
    s.trim().to_string()
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let got = signature(b"k", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(got, format!("sha256={want}"));
        assert_ne!(got, signature(b"k", 1_700_000_001, b"{\"a\":1}"));
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(201, None, None, b""),
            Answer::Delivered { status: 201 }
        );
        assert!(matches!(
            classify(503, None, None, b""),
            Answer::Retry { .. }
        ));
        assert!(matches!(
            classify(429, None, None, b""),
            Answer::Retry { .. }
        ));
        assert!(matches!(
            classify(408, None, None, b""),
            Answer::Retry { .. }
        ));
        assert!(matches!(
            classify(302, None, None, b""),
            Answer::Retry { .. }
        ));
        match classify(422, None, None, b"bad\nfield") {
            Answer::Park { status, error } => {
                assert_eq!((status, error.as_str()), (422, "HTTP 422: bad field"))
            }
            a => panic!("{a:?}"),
        }
        assert!(excerpt(&[b'x'; 1000]).chars().count() <= EXCERPT + 1);
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let now = 1_700_000_000;
        for (s, want) in [
            ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
            ("Sunday, 06-Nov-94 08:49:37 GMT", 784_111_777),
            ("Sun Nov  6 08:49:37 1994", 784_111_777),
            ("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_480),
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Wed, 31 Dec 1969 23:59:59 GMT", -1),
            // Leap days: every 4th year, not every 100th, but every 400th.
            ("Tue, 29 Feb 2000 12:00:00 GMT", 951_825_600),
            ("Thu, 29 Feb 2024 00:00:00 GMT", 1_709_164_800),
            ("Fri, 01 Mar 2024 00:00:00 GMT", 1_709_251_200),
            ("Fri, 31 Dec 2100 23:59:59 GMT", 4_133_980_799),
            ("Sat, 31 Dec 2016 23:59:60 GMT", 1_483_228_800),
        ] {
            assert_eq!(http_date(s, now), Some(want), "{s}");
        }
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 gmt",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Mon, 29 Feb 1900 00:00:00 GMT",
            "Wed, 29 Feb 2023 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun Nov 06 08:49:37 94",
            "tomorrow",
        ] {
            assert_eq!(http_date(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn an_rfc850_year_is_never_more_than_50_years_ahead() {
        let y2023 = 1_700_000_000;
        let year = |s: &str, now| http_date(s, now).map(|t| 1970 + t / 31_556_952);
        assert_eq!(year("Friday, 01-Jul-73 00:00:00 GMT", y2023), Some(2073));
        assert_eq!(year("Monday, 01-Jul-74 00:00:00 GMT", y2023), Some(1974));
        assert_eq!(year("Saturday, 01-Jul-23 00:00:00 GMT", y2023), Some(2023));
        // In 2090, "10" is 2110, twenty years ahead, not 2010.
        let y2090 = 3_800_000_000;
        assert_eq!(year("Tuesday, 01-Jul-10 00:00:00 GMT", y2090), Some(2110));
        assert_eq!(year("Thursday, 01-Jul-60 00:00:00 GMT", y2090), Some(2060));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = at(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        let secs = Duration::from_secs;
        assert_eq!(retry_after_at("120", now), Some(secs(120)));
        assert_eq!(retry_after_at(" 0 ", now), Some(secs(0)));
        assert_eq!(retry_after_at("9999999", now), Some(RETRY_AFTER_MAX));
        assert_eq!(
            retry_after_at("99999999999999999999999999", now),
            Some(RETRY_AFTER_MAX)
        );
        assert_eq!(
            retry_after_at("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(secs(120))
        );
        // Part of a second already gone: the wait is what is left of it.
        assert_eq!(
            retry_after_at(
                "Wed, 21 Oct 2015 07:28:01 GMT",
                now + Duration::from_millis(250)
            ),
            Some(Duration::from_millis(750))
        );
        assert_eq!(
            retry_after_at("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_at("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_at("Mon, 01 Jan 1900 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after_at("Fri, 21 Oct 2016 07:28:00 GMT", now),
            Some(RETRY_AFTER_MAX)
        );
        for bad in ["", "-5", "1.5", "soon", "120s", "Wed, 21 Oct 2015 07:30:00"] {
            assert_eq!(retry_after_at(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn a_long_answer_keeps_its_retry_after() {
        let after = Some(Duration::from_secs(30));
        match too_long(503, after, 10) {
            Answer::Retry {
                status, after: a, ..
            } => assert_eq!((status, a), (Some(503), after)),
            a => panic!("{a:?}"),
        }
    }
}
