//! A lookup source that asks a back end over HTTP: `data/<source>.http.yaml`.
//!
//! ```yaml
//! url: https://billing.example/api/accounts/{key}     # {key} is percent-encoded
//! method: GET                                         # or POST, with body:
//! headers:
//!   Authorization: Bearer ${BILLING_TOKEN}            # from hotline's environment
//! timeout: 5s
//! record: /account                                    # where the record is in the answer
//! fields:                                             # {acct.FIELD}: where it is in the record
//!   surname: /holder/surname
//!   amount: bill.amount
//! ```
//!
//! The answer means what a record file's answer means: a record is `found`; 404, 204,
//! an empty body, `null`, `{}` or `[]` are `not_found`; anything else (5xx, other
//! statuses, no connection, no answer within `timeout`, not JSON) is a failure, which
//! the flow meets as `fault`. The engine's own `wait_after` and `lookup_timeout` run
//! over it as over any lookup.
use crate::flow::diag::Diags;
use crate::flow::engine::LookupResult;
use crate::flow::expr::{fmt_duration, parse_duration, valid_var_name};
use crate::flow::keys::suggest;
use crate::flow::yaml::{self, Node, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value as Json;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type LookupFuture = Pin<Box<dyn Future<Output = LookupResult> + Send>>;

/// Looks an environment variable up (`${NAME}` in a header).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The keys of an HTTP source file.
pub const KEYS: &[(&str, &str)] = &[
    ("description", "free text"),
    (
        "url",
        "http(s) URL; {key} is replaced by the lookup key, percent-encoded",
    ),
    ("method", "GET (default) or POST"),
    (
        "body",
        "POST only: the JSON body; \"{key}\" in its strings is the key",
    ),
    (
        "headers",
        "request headers; ${NAME} in a value reads hotline's environment",
    ),
    (
        "timeout",
        "no answer within this is a failure (fault); default 10s",
    ),
    (
        "record",
        "JSON pointer (/a/b) or path (a.b) of the record in the answer; default the whole answer",
    ),
    (
        "fields",
        "field: JSON pointer or path in the record; each becomes {into.field}",
    ),
];

/// RFC 3986 unreserved characters stay; everything else in a key is escaped.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The most of an answer read: a record is a few hundred bytes.
const MAX_ANSWER: usize = 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpSource {
    pub name: String,
    pub file: PathBuf,
    url: String,
    post: bool,
    body: Option<Json>,
    /// Values from the environment are marked sensitive: never printed, never logged.
    headers: HeaderMap,
    timeout: Duration,
    record: Option<String>,
    /// (field, JSON pointer in the record), in the order written.
    fields: Vec<(String, String)>,
}

impl HttpSource {
    /// Reads a source file. `env` looks environment variables up; `None` leaves them
    /// unresolved (for `check` and `simulate`, which send nothing).
    pub fn parse(
        name: &str,
        file: &Path,
        text: &str,
        env: Option<Env<'_>>,
        d: &mut Diags,
    ) -> Option<HttpSource> {
        let root = yaml::parse(text, d)?;
        let Some(map) = root.as_map() else {
            d.error(
                root.pos,
                "an HTTP source is a mapping with url: and fields:",
            );
            return None;
        };
        let mut src = HttpSource {
            name: name.to_string(),
            file: file.to_path_buf(),
            url: String::new(),
            post: false,
            body: None,
            headers: HeaderMap::new(),
            timeout: DEFAULT_TIMEOUT,
            record: None,
            fields: Vec::new(),
        };
        let mut body_pos = None;
        let mut fields_seen = false;
        for (k, v) in map {
            let key = k.scalar().unwrap_or_default();
            match key.as_str() {
                "description" => {}
                "url" => src.url = url(v, d).unwrap_or_default(),
                "method" => match v.scalar().unwrap_or_default().to_ascii_uppercase().as_str() {
                    "GET" => src.post = false,
                    "POST" => src.post = true,
                    _ => d.error(v.pos, "method must be GET or POST"),
                },
                "body" => {
                    body_pos = Some(v.pos);
                    match &v.value {
                        Value::Map(_) | Value::Seq(_) => src.body = Some(to_json(v)),
                        _ => d.error(
                            v.pos,
                            "body must be a mapping (or list): the JSON to send, e.g. { account: \"{key}\" }",
                        ),
                    }
                }
                "headers" => src.headers = headers(v, env, d),
                "timeout" => match v.scalar().map(|s| parse_duration(&s)) {
                    Some(Ok(t)) if !t.is_zero() && t <= MAX_TIMEOUT => src.timeout = t,
                    Some(Err(e)) => d.error(v.pos, format!("timeout: {e}")),
                    _ => d.error(
                        v.pos,
                        format!(
                            "timeout must be a duration above 0 and at most {}",
                            fmt_duration(MAX_TIMEOUT)
                        ),
                    ),
                },
                "record" => src.record = pointer(v, "record", d),
                "fields" => {
                    fields_seen = true;
                    src.fields = fields(v, d);
                }
                _ => {
                    let hint = match suggest(KEYS, &key) {
                        Some(s) => format!(" (did you mean '{s}'?)"),
                        None => format!(
                            " (expected one of: {})",
                            KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    d.error(
                        k.pos,
                        format!("unknown key '{key}' in an HTTP source{hint}"),
                    );
                }
            }
        }
        if src.url.is_empty()
            && !map
                .iter()
                .any(|(k, _)| k.scalar().as_deref() == Some("url"))
        {
            d.error(root.pos, "an HTTP source needs 'url:'");
        }
        if !fields_seen {
            d.error(
                root.pos,
                "an HTTP source needs 'fields:' (field: where it is in the answer)",
            );
        }
        if let (Some(pos), false) = (body_pos, src.post) {
            d.error(pos, "a body is sent with method: POST only");
        }
        if src.post && !src.headers.contains_key(reqwest::header::CONTENT_TYPE) {
            src.headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Some(src)
    }

    pub fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|(f, _)| f.clone()).collect()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks the back end for `key`. Errors name the status or the failure, never the
    /// headers (a token) nor the URL (a caller's account number).
    pub fn fetch(self: Arc<Self>, client: reqwest::Client, key: String) -> LookupFuture {
        Box::pin(async move {
            let encoded = utf8_percent_encode(key.trim(), KEY_ESCAPE).to_string();
            let url = self.url.replace("{key}", &encoded);
            let mut req = if self.post {
                client.post(url)
            } else {
                client.get(url)
            };
            req = req.headers(self.headers.clone()).timeout(self.timeout);
            if let Some(b) = &self.body {
                req = req.body(fill(b, key.trim()).to_string());
            }
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return LookupResult::Failed(self.describe(&e)),
            };
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::NO_CONTENT
            {
                return LookupResult::NotFound;
            }
            if status.is_redirection() {
                return LookupResult::Failed(format!(
                    "HTTP {status}: a redirect is not followed; fix url in {}",
                    self.file.display()
                ));
            }
            if !status.is_success() {
                return LookupResult::Failed(format!("HTTP {status}"));
            }
            let mut body = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if body.len() + c.len() > MAX_ANSWER {
                            return LookupResult::Failed(format!(
                                "the answer is longer than {MAX_ANSWER} bytes"
                            ));
                        }
                        body.extend_from_slice(&c);
                    }
                    Ok(None) => break,
                    Err(e) => return LookupResult::Failed(self.describe(&e)),
                }
            }
            self.answer(&body)
        })
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("no answer within {}", fmt_duration(self.timeout));
        }
        let mut msg = if e.is_connect() {
            "cannot connect".to_string()
        } else {
            "request failed".to_string()
        };
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            msg += &format!(": {c}");
            cause = c.source();
        }
        msg
    }

    /// What a 2xx answer's body means.
    pub fn answer(&self, body: &[u8]) -> LookupResult {
        if body.iter().all(u8::is_ascii_whitespace) {
            return LookupResult::NotFound;
        }
        let json: Json = match serde_json::from_slice(body) {
            Ok(j) => j,
            Err(e) => return LookupResult::Failed(format!("the answer is not JSON: {e}")),
        };
        let record = match &self.record {
            Some(p) => json.pointer(p).unwrap_or(&Json::Null),
            None => &json,
        };
        if empty(record) {
            return LookupResult::NotFound;
        }
        let mut out = Vec::new();
        for (field, ptr) in &self.fields {
            match record.pointer(ptr) {
                None | Some(Json::Null) => {}
                Some(Json::String(s)) => out.push((field.clone(), s.clone())),
                Some(v) => out.push((field.clone(), v.to_string())),
            }
        }
        if out.is_empty() {
            return LookupResult::Failed(format!(
                "none of the fields of {} is in the answer: check its paths",
                self.file.display()
            ));
        }
        LookupResult::Found(out)
    }
}

/// Header names only: a value may be a token.
impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("post", &self.post)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("fields", &self.fields)
            .finish()
    }
}

fn empty(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn url(n: &Node, d: &mut Diags) -> Option<String> {
    let Some(s) = n.scalar().map(|s| s.trim().to_string()) else {
        d.error(n.pos, "url must be text");
        return None;
    };
    if s.replace("{key}", "").contains(['{', '}']) {
        d.error(
            n.pos,
            format!("url \"{s}\": only {{key}} is filled in; a back end answers one key"),
        );
        return None;
    }
    match reqwest::Url::parse(&s.replace("{key}", "0")) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(s),
        Ok(u) => {
            d.error(
                n.pos,
                format!(
                    "url \"{s}\" must be http:// or https:// with a host, not {}:",
                    u.scheme()
                ),
            );
            None
        }
        Err(e) => {
            d.error(n.pos, format!("url \"{s}\" is not a URL: {e}"));
            None
        }
    }
}

fn headers(n: &Node, env: Option<Env<'_>>, d: &mut Diags) -> HeaderMap {
    let mut out = HeaderMap::new();
    let Some(map) = n.as_map() else {
        d.error(n.pos, "headers must be a mapping of name: value");
        return out;
    };
    for (k, v) in map {
        let name = k.scalar().unwrap_or_default();
        let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
            d.error(k.pos, format!("'{name}' is not a header name"));
            continue;
        };
        let Some(raw) = v.scalar() else {
            d.error(v.pos, format!("header {name} must be text"));
            continue;
        };
        let (value, secret) = match expand_env(&raw, env) {
            Ok(x) => x,
            Err(e) => {
                d.error(v.pos, format!("header {name}: {e}"));
                continue;
            }
        };
        match HeaderValue::from_str(&value) {
            Ok(mut hv) => {
                hv.set_sensitive(secret);
                out.append(hn, hv);
            }
            // Never echo the value: it may hold a secret.
            Err(_) => d.error(
                v.pos,
                format!("header {name}: the value is not a valid header value"),
            ),
        }
    }
    out
}

/// `Bearer ${TOKEN}` → the value from the environment, and whether it used any.
fn expand_env(raw: &str, env: Option<Env<'_>>) -> Result<(String, bool), String> {
    let mut out = String::new();
    let mut rest = raw;
    let mut secret = false;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed '${' (write ${NAME})".to_string())?;
        let var = &after[..end];
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("'${{{var}}}' is not an environment variable name"));
        }
        secret = true;
        if let Some(env) = env {
            match env(var) {
                Some(v) if !v.is_empty() => out.push_str(&v),
                _ => {
                    return Err(format!(
                        "environment variable {var} is not set (hotline serve needs it; set it where hotline starts)"
                    ));
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secret))
}

/// `/a/b`, or a path `a.b.0`, as a JSON pointer.
fn pointer(n: &Node, what: &str, d: &mut Diags) -> Option<String> {
    let s = n.scalar().unwrap_or_default();
    let s = s.trim();
    if s.is_empty() {
        d.error(
            n.pos,
            format!("{what} must be a JSON pointer (/a/b) or a path (a.b)"),
        );
        return None;
    }
    if s.starts_with('/') {
        return Some(s.to_string());
    }
    if s.split('.').any(str::is_empty) {
        d.error(
            n.pos,
            format!("{what} \"{s}\" has an empty step (write a.b.c)"),
        );
        return None;
    }
    Some(
        s.split('.')
            .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
            .collect(),
    )
}

fn fields(n: &Node, d: &mut Diags) -> Vec<(String, String)> {
    let Some(map) = n.as_map().filter(|m| !m.is_empty()) else {
        d.error(
            n.pos,
            "fields must map each field to where it is in the answer, e.g. surname: holder.surname",
        );
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in map {
        let f = k.scalar().unwrap_or_default();
        if !valid_var_name(&f) || f.contains('.') {
            d.error(
                k.pos,
                format!("field name '{f}' must be a name (letters, digits, '_', '-')"),
            );
            continue;
        }
        if let Some(p) = pointer(v, &format!("field {f}"), d) {
            out.push((f, p));
        }
    }
    out
}

fn to_json(n: &Node) -> Json {
    match &n.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.scalar().unwrap_or_default(), to_json(v)))
                .collect(),
        ),
    }
}

/// The body with `{key}` put into its strings: as JSON values, so a key cannot break
/// out of its string.
fn fill(v: &Json, key: &str) -> Json {
    match v {
        Json::String(s) => Json::String(s.replace("{key}", key)),
        Json::Array(a) => Json::Array(a.iter().map(|x| fill(x, key)).collect()),
        Json::Object(o) => Json::Object(o.iter().map(|(k, x)| (k.clone(), fill(x, key))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<HttpSource, Vec<String>> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let look = move |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone());
        let mut d = Diags::new(Path::new("data/accounts.http.yaml"));
        let s = HttpSource::parse(
            "accounts",
            Path::new("data/accounts.http.yaml"),
            text,
            Some(&look),
            &mut d,
        );
        match s {
            Some(s) if d.is_empty() => Ok(s),
            _ => Err(d.into_sorted().iter().map(|e| e.to_string()).collect()),
        }
    }

    const GOOD: &str = "url: http://127.0.0.1:9/accounts/{key}\nheaders:\n  Authorization: Bearer ${TOKEN}\nrecord: data\nfields:\n  surname: holder.surname\n  amount: /bill/amount\n  paid: bill.paid\n";

    #[test]
    fn an_answer_is_mapped_into_fields() {
        let s = parse(GOOD, &[("TOKEN", "s3cret")]).unwrap();
        assert_eq!(s.field_names(), ["surname", "amount", "paid"]);
        assert!(s.headers["authorization"].is_sensitive());
        let r = s.answer(br#"{"data": {"holder": {"surname": "surname_zhang"}, "bill": {"amount": 56.3, "paid": false}}}"#);
        assert_eq!(
            r,
            LookupResult::Found(vec![
                ("surname".into(), "surname_zhang".into()),
                ("amount".into(), "56.3".into()),
                ("paid".into(), "false".into()),
            ])
        );
        for empty in [
            "",
            "  \n",
            "null",
            "{}",
            "{\"data\": null}",
            "{\"data\": []}",
            "{\"other\": 1}",
        ] {
            assert_eq!(
                s.answer(empty.as_bytes()),
                LookupResult::NotFound,
                "{empty}"
            );
        }
        assert!(matches!(s.answer(b"<html>"), LookupResult::Failed(e) if e.contains("not JSON")));
        assert!(
            matches!(s.answer(br#"{"data": {"x": 1}}"#), LookupResult::Failed(e) if e.contains("none of the fields"))
        );
    }

    #[test]
    fn a_bad_source_file_says_where_and_never_shows_a_secret() {
        let e = parse(
            "url: ftp://x/{key}\nmethod: PUT\nheaders:\n  Authorization: Bearer ${NOPE}\n  X-Key: \"a\\nb\"\ntimout: 5s\nbody: { a: 1 }\nfields: {}\n",
            &[],
        )
        .unwrap_err()
        .join("\n");
        for want in [
            "accounts.http.yaml:1:6: url \"ftp://x/{key}\" must be http:// or https://",
            ":2:9: method must be GET or POST",
            ":4:18: header Authorization: environment variable NOPE is not set",
            ":5:10: header X-Key: the value is not a valid header value",
            ":6:1: unknown key 'timout' in an HTTP source (did you mean 'timeout'?)",
            ":7:7: a body is sent with method: POST only",
            ":8:9: fields must map each field",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
        let e = parse("url: http://h/{account}\nfields: { a: b }\n", &[]).unwrap_err();
        assert!(
            e[0].contains(":1:6: url \"http://h/{account}\": only {key}"),
            "{e:?}"
        );
        let e = parse("fields: { a: \"x..y\" }\n", &[])
            .unwrap_err()
            .join("\n");
        assert!(
            e.contains("needs 'url:'") && e.contains("empty step"),
            "{e}"
        );
        // Unresolved for check and simulate: the secret is not needed there.
        let mut d = Diags::new(Path::new("a.http.yaml"));
        assert!(HttpSource::parse("a", Path::new("a.http.yaml"), GOOD, None, &mut d).is_some());
        assert!(d.is_empty());
    }

    #[test]
    fn keys_are_escaped_in_the_url_and_quoted_in_the_body() {
        let body = serde_json::json!({"account": "{key}", "n": [1, "k={key}"]});
        assert_eq!(
            fill(&body, "a\"b").to_string(),
            r#"{"account":"a\"b","n":[1,"k=a\"b"]}"#
        );
        assert_eq!(
            utf8_percent_encode("1/2 3?", KEY_ESCAPE).to_string(),
            "1%2F2%203%3F"
        );
    }
}
