//! Lookups from a back end over HTTP (`data/<source>.http.yaml`), against a real HTTP
//! server this test starts on 127.0.0.1: what each kind of answer means, and real
//! PJSIP calls through water.yaml's bill path with the accounts asked over HTTP.
mod common;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::hotline::{Hotline, prompts};
use common::pjcall::PjCall;
use hotline::data::{Answer, Data, DataSource, Mode};
use hotline::flow::LookupResult;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "t0ken-for-the-test";

/// What the billing back end saw: (path as sent, body).
#[derive(Default)]
struct Seen(Mutex<Vec<(String, String)>>);

fn account(surname: &str, title: &str, amount: f64, months: u32, total: f64) -> Value {
    json!({ "account": {
        "holder": { "surname": surname, "title": title },
        "bill": { "month": 10, "amount": amount, "arrears_months": months, "arrears_total": total }
    }})
}

/// The billing system: accounts by number, each kind of answer on its own number.
async fn accounts(
    State(seen): State<Arc<Seen>>,
    UrlPath(key): UrlPath<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    seen.0
        .lock()
        .unwrap()
        .push((uri.path().to_string(), String::new()));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match key.as_str() {
        "100234" => Json(account("surname_zhang", "title_mr", 56.3, 0, 0.0)).into_response(),
        "100567" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(account("surname_li", "title_ms", 42.5, 3, 128.6)).into_response()
        }
        "200100" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Json(account("surname_chen", "title_mr", 105.0, 0, 0.0)).into_response()
        }
        "404404" => StatusCode::NOT_FOUND.into_response(),
        "000000" => StatusCode::OK.into_response(),
        "000001" => Json(json!({ "account": null })).into_response(),
        "500500" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "503503" => (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response(),
        "777777" => (StatusCode::OK, "<html>oops</html>").into_response(),
        "301301" => (StatusCode::MOVED_PERMANENTLY, [("location", "/elsewhere")]).into_response(),
        other => Json(account(other, "title_mr", 1.0, 0, 0.0)).into_response(),
    }
}

/// The same back end's search: POST a JSON body, get a list.
async fn search(State(seen): State<Arc<Seen>>, body: String) -> Response {
    seen.0
        .lock()
        .unwrap()
        .push(("/search".into(), body.clone()));
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    match v["account"].as_str() {
        Some("100234") => {
            Json(json!({ "results": [ { "name": "surname_zhang", "due": "56.30" } ] }))
                .into_response()
        }
        _ => Json(json!({ "results": [] })).into_response(),
    }
}

async fn start_backend() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/accounts/{key}", get(accounts))
        .route("/search", post(search))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn accounts_source(addr: SocketAddr, timeout: &str) -> String {
    format!(
        "# W-BILL from the billing system\nurl: http://{addr}/accounts/{{key}}\nheaders:\n  Authorization: Bearer ${{BILLING_TOKEN}}\n  Accept: application/json\ntimeout: {timeout}\nrecord: account\nfields:\n  surname: holder.surname\n  title: /holder/title\n  month: bill.month\n  amount: bill.amount\n  arrears_months: bill.arrears_months\n  arrears_total: bill.arrears_total\n"
    )
}

fn env(k: &str) -> Option<String> {
    (k == "BILLING_TOKEN").then(|| TOKEN.to_string())
}

async fn ask(data: &Data, source: &str, key: &str) -> LookupResult {
    match data.lookup(source, key) {
        Answer::Later(f) => f.await,
        Answer::Now(_) => panic!("an HTTP source answered at once"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_answer_means_what_a_record_file_would() {
    let (addr, seen) = start_backend().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("accounts.http.yaml"),
        accounts_source(addr, "1s"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("search.http.yaml"),
        format!(
            "url: http://{addr}/search\nmethod: POST\nbody: {{ account: \"{{key}}\", kind: water }}\nrecord: results.0\nfields: {{ surname: name, amount: due }}\n"
        ),
    )
    .unwrap();
    let data = Data::load_dir_with_env(dir.path(), Mode::Live, &env).unwrap();
    assert_eq!(data.sources(), ["accounts", "search"]);
    assert_eq!(
        data.fields("accounts").unwrap(),
        [
            "surname",
            "title",
            "month",
            "amount",
            "arrears_months",
            "arrears_total"
        ]
    );

    let found = ask(&data, "accounts", "100234").await;
    assert_eq!(
        found,
        LookupResult::Found(
            [
                ("surname", "surname_zhang"),
                ("title", "title_mr"),
                ("month", "10"),
                ("amount", "56.3"),
                ("arrears_months", "0"),
                ("arrears_total", "0.0"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .to_vec()
        )
    );
    for key in ["404404", "000000", "000001"] {
        assert_eq!(
            ask(&data, "accounts", key).await,
            LookupResult::NotFound,
            "{key}"
        );
    }
    for (key, why) in [
        ("500500", "HTTP 500"),
        ("503503", "HTTP 503"),
        ("777777", "not JSON"),
        ("301301", "redirect is not followed"),
        ("100567", "no answer within 1s"),
    ] {
        match ask(&data, "accounts", key).await {
            LookupResult::Failed(e) => assert!(e.contains(why), "{key}: {e}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    // The key is percent-encoded into the URL and arrives whole.
    let odd = ask(&data, "accounts", "12 3/4?x").await;
    assert!(
        matches!(&odd, LookupResult::Found(f) if f[0].1 == "12 3/4?x"),
        "{odd:?}"
    );
    assert!(
        seen.0
            .lock()
            .unwrap()
            .iter()
            .any(|(p, _)| p == "/accounts/12%203%2F4%3Fx")
    );

    // POST with the key in the JSON body, quoted as JSON.
    let s = ask(&data, "search", "100234").await;
    assert_eq!(
        s,
        LookupResult::Found(vec![
            ("surname".into(), "surname_zhang".into()),
            ("amount".into(), "56.30".into())
        ])
    );
    assert_eq!(ask(&data, "search", "1\"2").await, LookupResult::NotFound);
    let bodies: Vec<String> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/search")
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"account":"100234","kind":"water"}"#,
            r#"{"account":"1\"2","kind":"water"}"#
        ]
    );

    // Without the token the back end refuses: a fault, not a wrong answer.
    let wrong = Data::load_dir_with_env(dir.path(), Mode::Live, &|_| Some("nope".into())).unwrap();
    assert!(
        matches!(ask(&wrong, "accounts", "100234").await, LookupResult::Failed(e) if e.contains("401"))
    );

    // Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gone = tempfile::tempdir().unwrap();
    std::fs::write(
        gone.path().join("accounts.http.yaml"),
        accounts_source(closed, "2s"),
    )
    .unwrap();
    let gone = Data::load_dir_with_env(gone.path(), Mode::Live, &env).unwrap();
    assert!(
        matches!(ask(&gone, "accounts", "100234").await, LookupResult::Failed(e) if e.contains("cannot connect"))
    );
}

#[test]
fn a_source_without_its_secret_is_refused_at_load_and_offline_uses_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    std::fs::write(
        dir.path().join("accounts.http.yaml"),
        accounts_source(addr, "1s"),
    )
    .unwrap();
    let e = Data::load_dir_with_env(dir.path(), Mode::Live, &|_| None).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].to_string().ends_with(
            "accounts.http.yaml:4:18: header Authorization: environment variable BILLING_TOKEN is not set (hotline serve needs it; set it where hotline starts)"
        ),
        "{}",
        e[0]
    );
    // check and simulate need no secret; with no test records a lookup says why.
    let off = Data::load_dir_with_env(dir.path(), Mode::Offline, &|_| None).unwrap();
    match off.lookup("accounts", "100234") {
        Answer::Now(LookupResult::Failed(e)) => {
            assert!(e.contains("accounts.yaml beside it"), "{e}")
        }
        _ => panic!("offline lookups answer at once"),
    }
    // With test records beside it, simulate and flow tests answer from them.
    std::fs::copy(
        Path::new("data/accounts.yaml"),
        dir.path().join("accounts.yaml"),
    )
    .unwrap();
    let off = Data::load_dir_with_env(dir.path(), Mode::Offline, &|_| None).unwrap();
    assert!(matches!(
        off.lookup("accounts", "100234"),
        Answer::Now(LookupResult::Found(_))
    ));
    // The fields check knows are the mapping's, not the records'.
    assert_eq!(off.fields("accounts").unwrap().len(), 6);
}

/// The `nth` PJSIP call to the water line: keys, then hang up; its call record.
fn bill_call(h: &Hotline, nth: usize, account: &str, keys_after: &str, hangup: f64) -> Value {
    let mut dtmf = vec!["1@2".to_string()];
    for (i, k) in account.chars().chain(['#']).enumerate() {
        dtmf.push(format!("{k}@{:.1}", 3.0 + 0.3 * i as f64));
    }
    if !keys_after.is_empty() {
        dtmf.push(keys_after.to_string());
    }
    let out = PjCall::new(h.target("water"))
        .dtmf(&dtmf.join(","))
        .hangup_after(hangup)
        .max_time(hangup + 20.0)
        .run();
    out.assert_ok();
    h.records(nth)[nth - 1].clone()
}

#[test]
fn water_bills_asked_over_http_on_real_calls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, seen) = rt.block_on(start_backend());
    let data = tempfile::tempdir().unwrap();
    // The source's own timeout is longer than the flow's lookup_timeout (8s), so the
    // flow's timers are what the caller meets.
    std::fs::write(
        data.path().join("accounts.http.yaml"),
        accounts_source(addr, "20s"),
    )
    .unwrap();
    for f in ["outages.yaml", "holidays.yaml"] {
        std::fs::copy(Path::new("data").join(f), data.path().join(f)).unwrap();
    }
    let h = Hotline::cmd()
        .lookups(data.path())
        .env("BILLING_TOKEN", TOKEN)
        .start();

    // Found at once: the name is confirmed, then the bill is read.
    let rec = bill_call(&h, 1, "100234", "1@9", 16.0);
    let p = prompts(&rec);
    let path = rec["path"].to_string();
    assert!(path.contains("\"bill_current\""), "{path} {p:?}");
    assert!(p.iter().any(|x| x.starts_with("confirm_name")), "{p:?}");
    assert!(p.iter().any(|x| x.starts_with("bill_amount")), "{p:?}");
    assert!(!p.iter().any(|x| x == "please_wait"), "{p:?}");

    // 3 s: past wait_after (1 s): asked to wait, thanked, then the name (P-WAIT).
    let rec = bill_call(&h, 2, "100567", "", 15.0);
    let p = prompts(&rec);
    let order: Vec<&str> = p
        .iter()
        .map(|x| x.split(' ').next().unwrap())
        .filter(|x| ["please_wait", "sorry_to_keep_you", "confirm_name"].contains(x))
        .collect();
    assert_eq!(
        order,
        ["please_wait", "sorry_to_keep_you", "confirm_name"],
        "{p:?}"
    );

    // 30 s: past lookup_timeout (8 s): fault (P-FAULT), and the call's record does not
    // wait for the back end.
    let rec = bill_call(&h, 3, "200100", "", 16.0);
    let p = prompts(&rec);
    assert!(p.iter().any(|x| x == "fault_take_number"), "{p:?}");
    assert!(!p.iter().any(|x| x.starts_with("confirm_name")), "{p:?}");
    assert!(rec["path"].to_string().contains("\"fault\""));

    let asked: Vec<String> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        asked,
        ["/accounts/100234", "/accounts/100567", "/accounts/200100"]
    );
    assert!(
        !h.server.output().contains(TOKEN),
        "the token is never logged"
    );

    // The source reloads with the rest of the data: a broken edit is refused with its
    // place, a good one serves.
    let file = data.path().join("accounts.http.yaml");
    std::fs::write(
        &file,
        accounts_source(addr, "20s").replace("BILLING_TOKEN", "NO_SUCH_VAR"),
    )
    .unwrap();
    let (status, body) = h.http("POST", "/reload");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("accounts.http.yaml:4:18: header Authorization: environment variable NO_SUCH_VAR is not set"),
        "{body}"
    );
    std::fs::write(&file, accounts_source(addr, "5s")).unwrap();
    let (status, body) = h.http("POST", "/reload");
    assert_eq!(status, 200, "{body}");
}
