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

impl Answer {
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
            return too_long(status, self.max_body);
        }
        let mut got = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if got.len() + c.len() > self.max_body {
                        return too_long(status, self.max_body);
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

fn too_long(status: u16, max: usize) -> Answer {
    Answer::Retry {
        status: Some(status),
        error: format!("HTTP {status}: answer longer than webhook.max_body ({max} bytes)"),
        after: None,
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

/// Seconds only: an HTTP-date is rare from an API and is ignored (the back-off holds).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = v.trim().parse().ok()?;
    // A day at most: a broken header must not shelve a ticket for years.
    Some(Duration::from_secs(secs.min(86_400)))
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
}
