//! Digest authentication for the requests hotline sends through a trunk (RFC 3261
//! §22.4, RFC 8760): reads a 401's `WWW-Authenticate` or a 407's `Proxy-Authenticate`
//! and writes the matching `Authorization` / `Proxy-Authorization`.
//!
//! Written here rather than taken from a crate: the Rust digest-auth crates are HTTP
//! clients' (they own the request type and want `http::Method`), while a SIP answer
//! is a header value computed from a method, a Request-URI and one challenge, about
//! sixty lines on top of the `md-5` and `sha2` hashes.
use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The hash a challenge asks for. SHA-256 is preferred when a server offers both
/// (RFC 8760 §2.4: a server lists its challenges from most to least preferred, a
/// client picks the strongest it knows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    fn sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `Digest` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `qop="auth"` offered (auth-int alone is not supported: bodies differ per retry).
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired, the password was not refused (RFC 7616 §3.3).
    pub stale: bool,
}

/// Splits `a=b, c="d, e"` into pairs, honouring quotes and backslash escapes.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.trim().is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        _ => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

impl Challenge {
    /// One header value; None for another scheme, an unknown algorithm or no nonce.
    pub fn parse(value: &str) -> Option<Challenge> {
        let v = value.trim_start();
        let (scheme, rest) = v.split_at(v.find(char::is_whitespace).unwrap_or(v.len()));
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Some(Algorithm::Md5);
        let mut qop_auth = false;
        let mut qop_offered = false;
        let mut stale = false;
        for (k, val) in params(rest) {
            // Echoed into our headers: no CR, LF or other control characters.
            let val: String = val.chars().filter(|c| !c.is_control()).collect();
            match k.as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "algorithm" => algorithm = Algorithm::parse(&val),
                "qop" => {
                    qop_offered = true;
                    qop_auth = val
                        .split(',')
                        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                }
                "stale" => stale = val.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        if qop_offered && !qop_auth {
            // Only auth-int: an answer without qop would be refused anyway.
            return None;
        }
        Some(Challenge {
            realm: realm.unwrap_or_default(),
            nonce: nonce.filter(|n| !n.is_empty())?,
            opaque,
            algorithm: algorithm?,
            qop_auth,
            stale,
        })
    }

    /// The strongest challenge hotline can answer among a response's header values.
    pub fn best<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
        // The first of the strongest (RFC 7616 §3.7: in the server's order of preference).
        values
            .filter_map(Challenge::parse)
            .fold(None, |best, c| match best {
                Some(b) if b.algorithm.strength() >= c.algorithm.strength() => Some(b),
                _ => Some(c),
            })
    }

    /// The credentials header value for `method uri`.
    pub fn answer(&self, user: &str, password: &str, method: &str, uri: &str) -> String {
        let cnonce = format!("{:016x}", rand::random::<u64>());
        self.answer_with(user, password, method, uri, &cnonce)
    }

    fn answer_with(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> String {
        let alg = self.algorithm;
        let nc = "00000001";
        let mut ha1 = alg.hash(&format!("{user}:{}:{password}", self.realm));
        if alg.sess() {
            ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            q(user),
            q(&self.realm),
            q(&self.nonce),
            q(uri),
            alg.name()
        );
        if self.qop_auth {
            out.push_str(&format!(", cnonce=\"{cnonce}\", qop=auth, nc={nc}"));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{}\"", q(o)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1: the same computation as SIP's, with its published responses.
    const CHALLENGE: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=ALG, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn response_of(header: &str) -> String {
        header
            .split("response=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string()
    }

    #[test]
    fn rfc7616_vectors() {
        let sha = Challenge::parse(&CHALLENGE.replace("ALG", "SHA-256")).unwrap();
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert!(sha.qop_auth);
        let a = sha.answer_with("Mufasa", "Circle of Life", "GET", "/dir/index.html", CNONCE);
        assert_eq!(
            response_of(&a),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert!(a.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
        let md5 = Challenge::parse(&CHALLENGE.replace("ALG", "MD5")).unwrap();
        let a = md5.answer_with("Mufasa", "Circle of Life", "GET", "/dir/index.html", CNONCE);
        assert_eq!(response_of(&a), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn sha256_is_chosen_when_offered() {
        let md5 = r#"Digest realm="r", nonce="n1""#;
        let sha = r#"Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth""#;
        let best = Challenge::best([md5, sha].into_iter()).unwrap();
        assert_eq!(best.algorithm, Algorithm::Sha256);
        assert_eq!(best.nonce, "n2");
        let only_md5 = Challenge::best([md5].into_iter()).unwrap();
        assert_eq!(only_md5.algorithm, Algorithm::Md5);
        assert!(!only_md5.qop_auth);
    }

    #[test]
    fn rfc2617_without_qop() {
        // RFC 2617 §3.5's example has qop; without it the response is H(HA1:nonce:HA2).
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
        )
        .unwrap();
        let a = c.answer_with("Mufasa", "Circle Of Life", "GET", "/dir/index.html", "x");
        let ha1 = Algorithm::Md5.hash("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = Algorithm::Md5.hash("GET:/dir/index.html");
        let want = Algorithm::Md5.hash(&format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}"));
        assert_eq!(response_of(&a), want);
        assert!(!a.contains("qop"));
    }

    #[test]
    fn garbage_is_no_challenge() {
        assert_eq!(Challenge::parse("Basic realm=\"x\""), None);
        assert_eq!(Challenge::parse("Digest realm=\"x\""), None);
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\", algorithm=SHA-512"),
            None
        );
        assert_eq!(Challenge::parse(""), None);
        assert_eq!(Challenge::parse("Digest ,,,=\"\\"), None);
    }
}
