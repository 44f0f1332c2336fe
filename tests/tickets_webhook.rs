//! Ticket delivery through the webhook, in-process: the outbox worker against a real
//! HTTP receiver on 127.0.0.1, with short back-offs so that each test takes seconds.
#[path = "tickets/receiver.rs"]
mod receiver;
#[path = "tickets/rogue.rs"]
mod rogue;

use hmac::{Hmac, Mac};
use hotline::config::WebhookConfig;
use hotline::flow::model::Priority;
use hotline::server::http;
use hotline::store::{Delivery, NewTicket, Store, StoreHandle, Ticket, TicketId};
use hotline::tickets::{Outbox, Recordings, TicketRoutes};
use receiver::{Receiver, Reply, Req, unused_port};
use rogue::{Act, Framing, Rogue};
use sha2::Sha256;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "s3cret-for-tests";

fn hook(url: &str, concurrency: usize) -> WebhookConfig {
    WebhookConfig {
        url: Some(url.into()),
        secret: SECRET.into(),
        timeout: Duration::from_secs(2),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(300),
        concurrency,
        poll: Duration::from_millis(50),
        ..WebhookConfig::default()
    }
}

fn links() -> Recordings {
    Recordings {
        base_url: "http://127.0.0.1:9".into(),
        inline: false,
    }
}

fn ticket(caller: &str, priority: Priority) -> NewTicket {
    NewTicket {
        call_id: format!("call-{caller}@10.0.0.1"),
        caller: caller.into(),
        flow: "property".into(),
        state: "file_repair".into(),
        category: "repair".into(),
        priority,
        due_in: Some(Duration::from_secs(7200)),
        department: None,
        fields: vec![
            ("account".into(), "12345678".into()),
            ("callback".into(), "13800138000".into()),
        ],
        recordings: vec![],
        from_tag: "tag-1".into(),
        invite_branch: String::new(),
        ordinal: next_ordinal(),
    }
}

/// Each ticket a test files is another filing (tickets' keys derive from the call,
/// the state and this ordinal).
fn next_ordinal() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn store(dir: &Path) -> StoreHandle {
    Store::open(dir).unwrap().start_writer().unwrap()
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < end, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delivery(h: &StoreHandle, id: TicketId) -> Delivery {
    h.get_ticket(id).await.unwrap().unwrap().delivery
}

fn hmac_hex(ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_arrives_signed_with_its_fields_and_recording_link() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let wav = dir.path().join("complaint.wav");
    std::fs::write(&wav, b"RIFF....WAVEfmt fake audio").unwrap();
    let mut t = ticket("13800138000", Priority::High);
    t.recordings = vec![wav.display().to_string()];
    let id = h.file_ticket(t).await.unwrap();
    let stored = h.get_ticket(id).await.unwrap().unwrap();

    let rx = Receiver::start(0, Arc::new(|_, _| Reply::status(201).body("{\"ok\":true}"))).await;
    // The ops HTTP, for the recording link and the routes.
    let http_port = unused_port();
    let base = format!("http://127.0.0.1:{http_port}");
    let outbox = Outbox::start(
        h.clone(),
        &hook(&rx.url(), 4),
        Recordings {
            base_url: base.clone(),
            inline: false,
        },
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let (routes, recordings) = TicketRoutes {
        store: h.clone(),
        outbox: outbox.handle(),
    }
    .routers();
    struct Ok;
    impl http::Health for Ok {
        fn health(&self) -> String {
            "ok\n".into()
        }
    }
    let limits = http::Limits::default();
    let app = http::router(Arc::new(Ok), vec![routes, recordings]);
    http::serve(
        ([127, 0, 0, 1], http_port).into(),
        app,
        limits,
        cancel.clone(),
    )
    .await
    .unwrap();

    let reqs = rx.wait_for(1, Duration::from_secs(5)).await;
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.key(), stored.idempotency_key);
    let ts = r.header("x-hotline-timestamp");
    let ts_n: u64 = ts.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts_n) < 30, "timestamp {ts} vs now {now}");
    assert_eq!(
        r.header("x-hotline-signature"),
        format!("sha256={}", hmac_hex(ts, &r.body))
    );
    let j = r.json();
    assert_eq!(j["schema"], 1);
    assert_eq!(j["id"], id.0);
    assert_eq!(j["idempotency_key"], stored.idempotency_key);
    assert_eq!(j["call_id"], "call-13800138000@10.0.0.1");
    assert_eq!(j["caller"], "13800138000");
    assert_eq!(j["flow"], "property");
    assert_eq!(j["state"], "file_repair");
    assert_eq!(j["category"], "repair");
    assert_eq!(j["priority"], "high");
    assert_eq!(j["created_at"], stored.created_at.to_string());
    assert_eq!(j["due_at"], stored.due_at.unwrap().to_string());
    assert_eq!(j["fields"]["account"], "12345678");
    assert_eq!(j["fields"]["callback"], "13800138000");
    let rec = &j["recordings"][0];
    assert_eq!(rec["name"], "complaint.wav");
    assert_eq!(rec["content_type"], "audio/wav");
    let url = rec["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{base}/recordings/")), "{url}");

    eventually("delivered in the store", Duration::from_secs(5), || async {
        delivery(&h, id).await == Delivery::Delivered
    })
    .await;
    let t = h.get_ticket(id).await.unwrap().unwrap();
    assert_eq!((t.attempts, t.last_status), (1, Some(201)));
    assert!(t.delivered_at.is_some() && t.last_error.is_none());

    // The recording under its unguessable URL; a guessed one is a plain 404.
    let client = reqwest::Client::new();
    let got = client.get(url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.bytes().await.unwrap().as_ref(),
        std::fs::read(&wav).unwrap()
    );
    let guess = format!("{base}/recordings/{}/0", "0".repeat(32));
    assert_eq!(client.get(guess).send().await.unwrap().status(), 404);

    // The routes: list, show, a retry of a delivered ticket refused, the stats.
    let list: serde_json::Value = client
        .get(format!("{base}/tickets?state=delivered"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], id.0);
    let one = client
        .get(format!("{base}/tickets/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let retry = client
        .post(format!("{base}/tickets/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 409);
    let missing = client
        .get(format!("{base}/tickets/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    eventually("stats counted", Duration::from_secs(2), || async {
        let s: serde_json::Value = client
            .get(format!("{base}/outbox"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["deliveries"] == 1 && s["by_status"]["201"] == 1 && s["delivered"] == 1
    })
    .await;
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    assert_eq!(rx.requests().len(), 1, "delivered once");
    cancel.cancel();
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_go_inline_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let wav = dir.path().join("address.wav");
    std::fs::write(&wav, [0u8, 1, 2, 250, 251]).unwrap();
    let mut t = ticket("1", Priority::Normal);
    t.recordings = vec![wav.display().to_string()];
    h.file_ticket(t).await.unwrap();
    let rx = Receiver::start(0, Arc::new(|_, _| Reply::status(200))).await;
    let mut cfg = hook(&rx.url(), 1);
    cfg.inline_recordings = true;
    let outbox = Outbox::start(
        h.clone(),
        &cfg,
        Recordings {
            base_url: "http://x".into(),
            inline: true,
        },
    )
    .unwrap();
    let j = rx.wait_for(1, Duration::from_secs(5)).await[0].json();
    assert_eq!(j["recordings"][0]["data_base64"], "AAEC+vs=");
    assert!(j["recordings"][0].get("url").is_none());
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_up_gets_every_ticket_once_in_priority_order() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let plan = [
        Priority::Low,
        Priority::Normal,
        Priority::Emergency,
        Priority::High,
        Priority::Normal,
        Priority::Emergency,
        Priority::Low,
    ];
    let mut ids = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        ids.push(h.file_ticket(ticket(&format!("10{i}"), *p)).await.unwrap());
    }
    let port = unused_port();
    let outbox = Outbox::start(
        h.clone(),
        &hook(&format!("http://127.0.0.1:{port}/hook"), 1),
        links(),
    )
    .unwrap();
    let stats = outbox.handle();
    eventually("attempts while down", Duration::from_secs(5), || async {
        let s = stats.stats();
        s.receiver_unreachable && s.retries >= 3
    })
    .await;
    for id in &ids {
        assert_eq!(delivery(&h, *id).await, Delivery::Pending);
    }
    let rx = Receiver::start(port, Arc::new(|_, _| Reply::status(200))).await;
    let reqs = rx.wait_for(plan.len(), Duration::from_secs(10)).await;
    eventually("all delivered", Duration::from_secs(5), || async {
        h.list_tickets(Some(Delivery::Delivered))
            .await
            .unwrap()
            .len()
            == plan.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reqs_after = rx.requests();
    assert_eq!(reqs_after.len(), reqs.len(), "none sent twice");
    let got: Vec<String> = reqs
        .iter()
        .map(|r| r.json()["priority"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        [
            "emergency",
            "emergency",
            "high",
            "normal",
            "normal",
            "low",
            "low"
        ],
        "priority order"
    );
    // Within a priority, oldest first.
    let order: Vec<i64> = reqs.iter().map(|r| r.id()).collect();
    assert_eq!(
        order,
        [ids[2], ids[5], ids[3], ids[1], ids[4], ids[0], ids[6]]
            .iter()
            .map(|i| i.0)
            .collect::<Vec<_>>()
    );
    let s = stats.stats();
    assert!(!s.receiver_unreachable && s.pending == 0, "{s:?}");
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_overtakes_a_queue_of_ordinary_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    for i in 0..8 {
        h.file_ticket(ticket(&format!("20{i}"), Priority::Normal))
            .await
            .unwrap();
    }
    let rx = Receiver::start(
        0,
        Arc::new(|_, _| Reply::status(200).after(Duration::from_millis(250))),
    )
    .await;
    let outbox = Outbox::start(h.clone(), &hook(&rx.url(), 1), links()).unwrap();
    rx.wait_for(1, Duration::from_secs(5)).await;
    let emergency = h
        .file_ticket(ticket("999", Priority::Emergency))
        .await
        .unwrap();
    outbox.handle().wake();
    let reqs = rx.wait_for(9, Duration::from_secs(10)).await;
    let order: Vec<i64> = reqs.iter().map(|r| r.id()).collect();
    assert_eq!(order[1], emergency.0, "the emergency went next: {order:?}");
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_ticket_does_not_hold_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let stuck = h
        .file_ticket(ticket("stuck", Priority::Emergency))
        .await
        .unwrap();
    let mut others = Vec::new();
    for i in 0..5 {
        others.push(
            h.file_ticket(ticket(&format!("30{i}"), Priority::Normal))
                .await
                .unwrap(),
        );
    }
    let rx = Receiver::start(
        0,
        Arc::new(|r, _| {
            if r.json()["caller"] == "stuck" {
                Reply::status(200).after(Duration::from_secs(30))
            } else {
                Reply::status(200)
            }
        }),
    )
    .await;
    let mut cfg = hook(&rx.url(), 4);
    cfg.timeout = Duration::from_secs(3);
    let started = Instant::now();
    let outbox = Outbox::start(h.clone(), &cfg, links()).unwrap();
    eventually("the others delivered", Duration::from_secs(5), || async {
        let mut all = true;
        for id in &others {
            all &= delivery(&h, *id).await == Delivery::Delivered;
        }
        all
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "they waited"
    );
    eventually(
        "the stuck one timed out",
        Duration::from_secs(5),
        || async {
            let t = h.get_ticket(stuck).await.unwrap().unwrap();
            t.attempts >= 1 && t.last_error.is_some_and(|e| e.contains("timed out"))
        },
    )
    .await;
    assert_eq!(delivery(&h, stuck).await, Delivery::Pending);
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let id = h.file_ticket(ticket("40", Priority::Normal)).await.unwrap();
    let rx = Receiver::start(
        0,
        Arc::new(|_, n| {
            if n == 0 {
                Reply::status(503)
                    .header("Retry-After", "1")
                    .body("maintenance")
            } else {
                Reply::status(200)
            }
        }),
    )
    .await;
    let outbox = Outbox::start(h.clone(), &hook(&rx.url(), 1), links()).unwrap();
    let reqs = rx.wait_for(2, Duration::from_secs(5)).await;
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(reqs[0].key(), reqs[1].key());
    eventually("delivered", Duration::from_secs(3), || async {
        delivery(&h, id).await == Delivery::Delivered
    })
    .await;
    let t = h.get_ticket(id).await.unwrap().unwrap();
    assert_eq!((t.attempts, t.last_status), (2, Some(200)));
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ticket_is_parked_and_retried_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let id = h.file_ticket(ticket("50", Priority::High)).await.unwrap();
    let other = h.file_ticket(ticket("51", Priority::Low)).await.unwrap();
    let rx = Receiver::start(
        0,
        Arc::new(|r, _| {
            // Refuses ticket "50" until its first refusal has been seen.
            if r.json()["caller"] == "50" {
                static REFUSED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if !REFUSED.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return Reply::status(422).body("{\"error\":\"unknown account 12345678\"}");
                }
            }
            Reply::status(201)
        }),
    )
    .await;
    let outbox = Outbox::start(h.clone(), &hook(&rx.url(), 2), links()).unwrap();
    eventually("parked", Duration::from_secs(5), || async {
        delivery(&h, id).await == Delivery::Failed
    })
    .await;
    eventually("the other delivered", Duration::from_secs(5), || async {
        delivery(&h, other).await == Delivery::Delivered
    })
    .await;
    let t = h.get_ticket(id).await.unwrap().unwrap();
    assert_eq!((t.attempts, t.last_status), (1, Some(422)));
    let err = t.last_error.unwrap();
    assert!(
        err.contains("422") && err.contains("unknown account"),
        "{err}"
    );
    // Parked: not tried again by itself.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(outbox.handle().stats().parked, 1);

    // The operator: `hotline tickets retry ID` while the server runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["tickets", "retry", &id.to_string(), "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    eventually(
        "delivered after the retry",
        Duration::from_secs(5),
        || async { delivery(&h, id).await == Delivery::Delivered },
    )
    .await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    let keys: Vec<String> = reqs
        .iter()
        .filter(|r| r.id() == id.0)
        .map(|r| r.key())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the same idempotency key");
    let t = h.get_ticket(id).await.unwrap().unwrap();
    assert_eq!((t.attempts, t.last_status), (2, Some(201)));

    // Retrying a delivered ticket, or one that does not exist, is an error.
    for args in [
        vec!["tickets", "retry", &*id.to_string()],
        vec!["tickets", "retry", "42"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(args)
            .arg("--data")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_url_tickets_stay_pending_and_late_ones_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let mut t = ticket("60", Priority::Emergency);
    t.due_in = Some(Duration::from_millis(100));
    let id = h.file_ticket(t).await.unwrap();
    let cfg = WebhookConfig {
        poll: Duration::from_millis(50),
        ..WebhookConfig::default()
    };
    let outbox = Outbox::start(h.clone(), &cfg, links()).unwrap();
    let stats = outbox.handle();
    eventually("overdue seen once", Duration::from_secs(3), || async {
        stats.stats().overdue == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = stats.stats();
    assert_eq!((s.overdue, s.pending, s.enabled), (1, 1, false), "{s:?}");
    assert!(s.oldest_pending_age_ms.is_some_and(|a| a >= 100));
    assert_eq!(delivery(&h, id).await, Delivery::Pending);
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[test]
fn a_url_without_a_secret_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let h = store(dir.path());
        let cfg = WebhookConfig {
            url: Some("http://127.0.0.1:1/".into()),
            ..WebhookConfig::default()
        };
        let e = Outbox::start(h.clone(), &cfg, links()).err().unwrap();
        assert!(e.contains("webhook.secret"), "{e}");
        h.shutdown().await.unwrap();
    });
}

// Faults of the receiver. Each test files, next to the troubled ticket, one that the
// receiver answers well (caller "good"): deliveries run side by side, so it must go
// through while the other is retried, however that one's attempts end.

async fn get(h: &StoreHandle, id: TicketId) -> Ticket {
    h.get_ticket(id).await.unwrap().unwrap()
}

/// The ticket's caller; empty for a request that is not a ticket (a followed redirect).
fn caller(r: &Req) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|j| j["caller"].as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn attempted(h: &StoreHandle, id: TicketId, n: u32, within: Duration) {
    eventually(&format!("{n} attempts of {id}"), within, || async {
        get(h, id).await.attempts >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_or_drips_is_cut_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let silent = h
        .file_ticket(ticket("silent", Priority::Emergency))
        .await
        .unwrap();
    let drip = h
        .file_ticket(ticket("drip", Priority::Emergency))
        .await
        .unwrap();
    let good = h.file_ticket(ticket("good", Priority::Low)).await.unwrap();
    let port = unused_port();
    let mut rogue = Rogue::start(
        port,
        Arc::new(|r, _| match caller(r).as_str() {
            "silent" => Act::Silent,
            // The whole answer would take 100 s.
            "drip" => Act::Drip {
                every: Duration::from_millis(100),
            },
            _ => Act::Status(200),
        }),
    )
    .await;
    let mut cfg = hook(&rogue.url(), 3);
    cfg.timeout = Duration::from_secs(1);
    let outbox = Outbox::start(h.clone(), &cfg, links()).unwrap();

    eventually("the good one delivered", Duration::from_secs(3), || async {
        delivery(&h, good).await == Delivery::Delivered
    })
    .await;
    for id in [silent, drip] {
        assert_eq!(
            get(&h, id).await.attempts,
            0,
            "the good one waited for {id}"
        );
    }
    for id in [silent, drip] {
        attempted(&h, id, 2, Duration::from_secs(5)).await;
        let t = get(&h, id).await;
        assert_eq!(t.delivery, Delivery::Pending);
        assert_eq!(t.last_status, None, "{t:?}");
        let err = t.last_error.unwrap_or_default();
        assert!(err.contains("timed out after 1s"), "{err}");
    }
    for who in ["silent", "drip"] {
        let reqs = rogue.requests_of(who);
        assert!(reqs.len() >= 2);
        // Each attempt lasted the timeout, no less (nor two at once), and no more
        // than the timeout and the longest back-off.
        for w in reqs.windows(2) {
            let gap = w[1].at - w[0].at;
            assert!(gap >= Duration::from_millis(900), "{who}: {gap:?}");
            assert!(gap < Duration::from_millis(2500), "{who}: {gap:?}");
        }
    }
    let s = outbox.handle().stats();
    assert!(s.by_status["timeout"] >= 4, "{s:?}");
    assert!(!s.receiver_unreachable && s.parked == 0, "{s:?}");

    // The receiver mends, at the same address: both go through, with their keys.
    rogue.stop().await;
    let rx = Receiver::start(port, Arc::new(|_, _| Reply::status(201))).await;
    for id in [silent, drip] {
        eventually("delivered once mended", Duration::from_secs(5), || async {
            delivery(&h, id).await == Delivery::Delivered
        })
        .await;
        let t = get(&h, id).await;
        assert!(t.attempts >= 3 && t.last_status == Some(201), "{t:?}");
        assert!(t.last_error.is_none());
    }
    for who in ["silent", "drip"] {
        let key = rogue.requests_of(who)[0].key();
        let got = rx.requests();
        let mended = got.iter().find(|r| caller(r) == who).unwrap();
        assert_eq!(mended.key(), key, "{who}: the same idempotency key");
    }
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_http_is_retried_not_parked() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let bad = h
        .file_ticket(ticket("garbage", Priority::Emergency))
        .await
        .unwrap();
    let good = h.file_ticket(ticket("good", Priority::Low)).await.unwrap();
    // A different kind of garbage at each attempt.
    let raw = |b: &[u8]| Act::Raw(b.to_vec());
    let kinds = [
        raw(b"SSH-2.0-OpenSSH_9.6\r\n"),
        raw(&[
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0xff, 0x00,
        ]),
        raw(b"HTTP/1.1 2OO OK\r\n\r\n"),
        raw(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ncut short"),
        raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n"),
        raw(b""),
        // Never ends: only a bound on the head's size stops it before the timeout.
        Act::EndlessHead,
    ];
    let n_kinds = kinds.len();
    let seen = Arc::new(AtomicUsize::new(0));
    let rogue = Rogue::start(
        0,
        Arc::new(move |r, _| {
            if caller(r) == "garbage" {
                kinds[seen.fetch_add(1, Ordering::SeqCst) % kinds.len()].clone()
            } else {
                Act::Status(200)
            }
        }),
    )
    .await;
    // A long timeout: garbage must end an attempt at once, not by the clock.
    let mut cfg = hook(&rogue.url(), 2);
    cfg.timeout = Duration::from_secs(10);
    let outbox = Outbox::start(h.clone(), &cfg, links()).unwrap();
    let stats = outbox.handle();
    eventually("the good one delivered", Duration::from_secs(3), || async {
        delivery(&h, good).await == Delivery::Delivered
    })
    .await;
    attempted(&h, bad, n_kinds as u32 + 1, Duration::from_secs(5)).await;
    outbox.stop().await;

    let t = get(&h, bad).await;
    assert_eq!(t.delivery, Delivery::Pending, "{t:?}");
    assert_eq!(t.last_status, None, "{t:?}");
    let err = t.last_error.clone().unwrap_or_default();
    assert!(!err.is_empty() && !err.contains("timed out"), "{err}");
    assert_eq!(rogue.requests_of("garbage").len() as u32, t.attempts);
    // Every one an error of the answer: neither a refusal, nor a timeout, nor a
    // receiver taken for down (which would slow every other ticket to one at a time).
    let s = stats.stats();
    assert_eq!(
        s.by_status.get("error"),
        Some(&u64::from(t.attempts)),
        "{s:?}"
    );
    assert_eq!(
        (s.by_status.len(), s.parked, s.deliveries),
        (2, 0, 1),
        "{s:?}"
    );
    assert!(!s.receiver_unreachable);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let bad = h
        .file_ticket(ticket("loop", Priority::Emergency))
        .await
        .unwrap();
    let good = h.file_ticket(ticket("good", Priority::Low)).await.unwrap();
    let port = unused_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let to = url.clone();
    let rx = Receiver::start(
        port,
        Arc::new(move |r, _| {
            if caller(r) == "loop" {
                Reply::status(302).header("Location", &to)
            } else {
                Reply::status(200)
            }
        }),
    )
    .await;
    let outbox = Outbox::start(h.clone(), &hook(&url, 2), links()).unwrap();
    let stats = outbox.handle();
    eventually("the good one delivered", Duration::from_secs(3), || async {
        delivery(&h, good).await == Delivery::Delivered
    })
    .await;
    attempted(&h, bad, 3, Duration::from_secs(5)).await;
    outbox.stop().await;

    let t = get(&h, bad).await;
    assert_eq!((t.delivery, t.last_status), (Delivery::Pending, Some(302)));
    let err = t.last_error.unwrap_or_default();
    assert!(
        err.contains("redirect") && err.contains(&url) && err.contains("not followed"),
        "{err}"
    );
    // One request an attempt, every one a ticket: the Location was never asked for.
    let all = rx.requests();
    let looped = all.iter().filter(|r| caller(r) == "loop").count();
    assert_eq!(looped as u32, t.attempts);
    assert_eq!(all.len(), looped + 1, "only the tickets were asked for");
    let s = stats.stats();
    assert_eq!(
        s.by_status.get("302"),
        Some(&u64::from(t.attempts)),
        "{s:?}"
    );
    assert_eq!(s.parked, 0);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_answer_is_cut_at_max_body() {
    const TEN_MB: usize = 10 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let cases = [
        ("length", 200, Framing::ContentLength),
        ("chunked", 503, Framing::Chunked),
        ("until-close", 200, Framing::UntilClose),
    ];
    let mut bad = Vec::new();
    for (who, status, _) in cases {
        let id = h
            .file_ticket(ticket(who, Priority::Emergency))
            .await
            .unwrap();
        bad.push((who, status, id));
    }
    let good = h.file_ticket(ticket("good", Priority::Low)).await.unwrap();
    let rogue = Rogue::start(
        0,
        Arc::new(move |r, _| {
            let who = caller(r);
            match cases.iter().find(|c| c.0 == who) {
                Some(&(_, status, framing)) => Act::Long {
                    status,
                    len: TEN_MB,
                    framing,
                },
                None => Act::Status(200),
            }
        }),
    )
    .await;
    // A long timeout: the rogue never ends its answers, so an attempt that ends
    // before it is one that stopped reading at max_body.
    let mut cfg = hook(&rogue.url(), 4);
    cfg.timeout = Duration::from_secs(10);
    cfg.max_body = 64 * 1024;
    let outbox = Outbox::start(h.clone(), &cfg, links()).unwrap();
    eventually("the good one delivered", Duration::from_secs(3), || async {
        delivery(&h, good).await == Delivery::Delivered
    })
    .await;
    for &(who, status, id) in &bad {
        attempted(&h, id, 2, Duration::from_secs(5)).await;
        let t = get(&h, id).await;
        assert_eq!(
            (t.delivery, t.last_status),
            (Delivery::Pending, Some(status)),
            "{who}"
        );
        let err = t.last_error.unwrap_or_default();
        assert!(
            err.contains("longer than webhook.max_body (65536 bytes)"),
            "{who}: {err}"
        );
        let reqs = rogue.requests_of(who);
        let gap = reqs[1].at - reqs[0].at;
        assert!(
            gap < Duration::from_secs(3),
            "{who}: an attempt took {gap:?}"
        );
    }
    let s = outbox.handle().stats();
    assert_eq!((s.parked, s.deliveries), (0, 1), "{s:?}");
    outbox.stop().await;
    h.shutdown().await.unwrap();
}

/// `t` as an IMF-fixdate, worked out day by day (not the way hotline reads one).
fn imf_fixdate(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut days = secs / 86_400;
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let leap = |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let mut year = 1970;
    while days >= if leap(year) { 366 } else { 365 } {
        days -= if leap(year) { 366 } else { 365 };
        year += 1;
    }
    let lens = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lens[month] {
        days -= lens[month];
        month += 1;
    }
    let s = secs % 86_400;
    format!(
        "{weekday}, {:02} {} {year} {:02}:{:02}:{:02} GMT",
        days + 1,
        MONTHS[month],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[test]
fn the_test_date_formatter_is_right() {
    let at = |s| UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(
        imf_fixdate(at(784_111_777)),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(
        imf_fixdate(at(1_709_164_800)),
        "Thu, 29 Feb 2024 00:00:00 GMT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let h = store(dir.path());
    let id = h.file_ticket(ticket("41", Priority::Normal)).await.unwrap();
    let rx = Receiver::start(
        0,
        Arc::new(|_, n| {
            if n == 0 {
                // Two seconds on, to the second: between one and two from now.
                let back = imf_fixdate(SystemTime::now() + Duration::from_secs(2));
                Reply::status(503).header("Retry-After", &back)
            } else {
                Reply::status(200)
            }
        }),
    )
    .await;
    let outbox = Outbox::start(h.clone(), &hook(&rx.url(), 1), links()).unwrap();
    let reqs = rx.wait_for(2, Duration::from_secs(5)).await;
    let gap = reqs[1].at - reqs[0].at;
    // The back-off alone would be 25 to 50 ms.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    eventually("delivered", Duration::from_secs(3), || async {
        delivery(&h, id).await == Delivery::Delivered
    })
    .await;
    assert_eq!(get(&h, id).await.attempts, 2);
    outbox.stop().await;
    h.shutdown().await.unwrap();
}
