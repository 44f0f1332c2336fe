//! Who may use the ops API, against a real `hotline serve` on 127.0.0.1: every route
//! that changes state or serves residents' data wants `Authorization: Bearer TOKEN`;
//! `/healthz`, `/metrics` and recording links stay open; a server on another address
//! with no token does not start.
mod common;

use common::hotline::Hotline;
use common::ports::{free_tcp_port, free_udp_port, free_udp_range};
use common::{HttpAnswer, http_send, repo_path};
use std::time::Duration;

const TOKEN: &str = "s3cret-ops-token-for-tests";

/// Every protected route with a request that the right token gets answered, and how.
const PROTECTED: [(&str, &str, u16); 10] = [
    ("GET", "/outages", 200),
    ("POST", "/outages", 400),
    ("DELETE", "/outages/none", 404),
    ("GET", "/tickets", 200),
    ("GET", "/tickets/1", 404),
    ("POST", "/tickets/1/retry", 404),
    ("GET", "/outbox", 200),
    ("GET", "/reload", 200),
    ("POST", "/reload", 200),
    ("GET", "/status", 200),
];

fn send(h: &Hotline, method: &str, path: &str, auth: Option<&str>) -> HttpAnswer {
    let value = auth.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = value
        .as_deref()
        .map(|v| vec![("Authorization", v)])
        .unwrap_or_default();
    http_send(h.http, method, path, &headers, b"")
}

fn refused_count(h: &Hotline) -> u64 {
    let (code, text) = h.http("GET", "/metrics");
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("hotline_ops_requests_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refusal counter in /metrics:\n{text}"))
}

fn assert_refused(a: &HttpAnswer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {a:?}");
    assert_eq!(
        a.header("WWW-Authenticate"),
        Some("Bearer"),
        "{what}: {a:?}"
    );
}

fn check_protected(h: &Hotline) {
    let before = refused_count(h);
    let mut refusals = 0;
    for (method, path, ok) in PROTECTED {
        assert_refused(
            &send(h, method, path, None),
            &format!("{method} {path} no token"),
        );
        assert_refused(
            &send(h, method, path, Some("wrong-token")),
            &format!("{method} {path} wrong token"),
        );
        // The right token's prefix, and the token as another scheme, are wrong too.
        assert_refused(
            &send(h, method, path, Some(&TOKEN[..TOKEN.len() - 1])),
            &format!("{method} {path} prefix"),
        );
        let basic = http_send(
            h.http,
            method,
            path,
            &[("Authorization", &format!("Basic {TOKEN}"))],
            b"",
        );
        assert_refused(&basic, &format!("{method} {path} Basic"));
        refusals += 4;
        let a = send(h, method, path, Some(TOKEN));
        assert_eq!(a.status, ok, "{method} {path} with the token: {a:?}");
    }
    assert_eq!(
        refused_count(h),
        before + refusals,
        "every refusal is counted"
    );
}

fn check_open(h: &Hotline) {
    let (code, text) = h.http("GET", "/healthz");
    assert_eq!(code, 200, "{text}");
    assert!(text.starts_with("ok"), "{text}");
    let (code, _) = h.http("GET", "/metrics");
    assert_eq!(code, 200);
    // The status page holds no data: it asks for the token when /status refuses it.
    let (code, page) = h.http("GET", "/");
    assert_eq!(code, 200);
    assert!(
        page.contains("Authorization") && page.contains("fetch(\"/status\""),
        "{page}"
    );
    // A recording link needs no bearer token: an unknown link is the same 404 as ever.
    let (code, _) = h.http("GET", "/recordings/0123456789abcdef0123456789abcdef/0");
    assert_eq!(code, 404);
}

#[test]
fn the_token_from_the_environment_guards_every_protected_route() {
    let h = Hotline::cmd().env("HOTLINE_OPS_TOKEN", TOKEN).start();
    check_open(&h);
    check_protected(&h);
    let out = h.server.output();
    assert!(
        out.contains("ops request")
            && out.contains("/reload")
            && out.contains("/tickets/{id}/retry"),
        "state-changing requests are logged with their route:\n{out}"
    );
    assert!(out.contains("401"), "refusals are logged:\n{out}");
    assert!(!out.contains(TOKEN), "the token is never logged:\n{out}");
    assert!(!out.contains("open to anyone"), "{out}");
}

#[test]
fn the_token_from_ops_token_file_guards_them_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ops-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let h = Hotline::cmd()
        .config(&format!("ops_token_file: {}\n", file.display()))
        .start();
    check_open(&h);
    check_protected(&h);
}

#[test]
fn loopback_without_a_token_serves_as_before_and_says_so_once() {
    let h = Hotline::cmd().start();
    for (method, path, ok) in PROTECTED {
        let a = send(&h, method, path, None);
        assert_eq!(a.status, ok, "{method} {path}: {a:?}");
    }
    check_open(&h);
    let out = h.server.output();
    assert_eq!(
        out.matches("open to anyone on this machine").count(),
        1,
        "{out}"
    );
}

/// `hotline serve` on 0.0.0.0 with no token: it exits with an error that says how to
/// set one, and binds nothing.
#[test]
fn another_address_without_a_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_tcp_port();
    let (lo, hi) = free_udp_range(16);
    let out = common::tools::run_with_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .current_dir(repo_path(""))
            .env_remove("HOTLINE_OPS_TOKEN")
            .args(["serve", "--sip"])
            .arg(format!("127.0.0.1:{}", free_udp_port()))
            .arg("--http")
            .arg(format!("0.0.0.0:{http}"))
            .arg("--rtp-ports")
            .arg(format!("{lo}-{hi}"))
            .arg("--data")
            .arg(dir.path().join("var")),
        Duration::from_secs(30),
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    let status = out.status.expect("it exits rather than serve");
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("HOTLINE_OPS_TOKEN") && text.contains("ops_token_file"),
        "the message says how to set a token: {text}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", http)).is_err(),
        "the ops HTTP is not bound"
    );
}
