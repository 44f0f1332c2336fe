//! The data store: call records (P-RECORD) and tickets, durable and readable while
//! the server writes.
use hotline::flow::model::Priority;
use hotline::store::{
    CallEvent, CallQuery, CallRecord, Delivery, NewTicket, Store, StoreError, StoreOptions,
    TicketId, UtcMs,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn call(n: usize) -> CallRecord {
    let received = UtcMs(1_770_000_000_000 + n as i64 * 1000);
    CallRecord {
        call_id: format!("call-{n}@10.0.0.1"),
        flow: "main".into(),
        from: format!("<sip:1380013{n:04}@10.0.0.9>;tag=a{n}"),
        to: "<sip:12345@hotline>".into(),
        caller: format!("1380013{n:04}"),
        received_at: received,
        answered_at: Some(UtcMs(received.0 + 15_000)),
        ended_at: UtcMs(received.0 + 75_500),
        rings: 3,
        outcome: "caller-hung-up".into(),
        reason: None,
        path: vec!["greet".into(), "menu".into(), "repair".into()],
        events: vec![
            CallEvent {
                offset_ms: 0,
                kind: "prompt".into(),
                detail: "busy_apology".into(),
            },
            CallEvent {
                offset_ms: 4_210,
                kind: "key".into(),
                detail: "1".into(),
            },
            CallEvent {
                offset_ms: 9_000,
                kind: "voice".into(),
                detail: "start".into(),
            },
            CallEvent {
                offset_ms: 60_500,
                kind: "hangup".into(),
                detail: "caller".into(),
            },
        ],
    }
}

fn ticket(call_id: &str, priority: Priority, due_in: Option<Duration>) -> NewTicket {
    NewTicket {
        call_id: call_id.into(),
        caller: "13800138000".into(),
        flow: "main".into(),
        state: "emergency".into(),
        category: "burst-pipe".into(),
        priority,
        due_in,
        department: None,
        fields: vec![
            ("account".into(), "10086".into()),
            ("callback".into(), "13800138000".into()),
        ],
        recordings: vec!["var/recordings/call-1/address.wav".into()],
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

fn fast_retry() -> StoreOptions {
    StoreOptions {
        busy_timeout: Duration::from_millis(100),
        retry_interval: Duration::from_millis(50),
        max_retry_interval: Duration::from_millis(200),
        ..StoreOptions::default()
    }
}

#[tokio::test]
async fn call_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    let mut unanswered = call(2);
    unanswered.answered_at = None;
    unanswered.outcome = "cancelled".into();
    unanswered.path.clear();
    unanswered.events.clear();
    let mut transferred = call(3);
    transferred.outcome = "transferred".into();
    transferred.reason = Some("sip:8001@pbx".into());
    for c in [call(1), unanswered.clone(), transferred.clone()] {
        h.record_call(c);
    }
    h.flush().await.unwrap();

    let r = Store::open_read_only(dir.path()).unwrap();
    let all = r.list_calls(&CallQuery::default()).unwrap();
    assert_eq!(all, vec![call(1), unanswered, transferred.clone()]);
    assert_eq!(r.get_call(&transferred.call_id).unwrap(), vec![transferred]);
    assert!(r.get_call("nope").unwrap().is_empty());
    let last = r
        .list_calls(&CallQuery {
            last: Some(2),
            call_id: None,
        })
        .unwrap();
    assert_eq!(
        last.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
        ["call-2@10.0.0.1", "call-3@10.0.0.1"],
        "the newest two, oldest first"
    );
    let s = h.stats();
    assert_eq!((s.calls_written, s.queued), (3, 0));
}

/// Records that trickle in, as calls end one by one, share a commit: without the window
/// each found the writer idle and paid its own fsync. What someone waits on (a flush,
/// a ticket) is not held for the window.
#[tokio::test]
async fn call_records_a_moment_apart_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(5);
    let options = StoreOptions {
        commit_window: window,
        ..StoreOptions::default()
    };
    let h = Store::open_with(dir.path(), options)
        .unwrap()
        .start_writer()
        .unwrap();
    let t0 = Instant::now();
    for n in 0..10 {
        h.record_call(call(n));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    h.flush().await.unwrap();
    assert!(
        t0.elapsed() < window,
        "the flush waited {:?}, the length of the window",
        t0.elapsed()
    );
    let s = h.stats();
    assert_eq!(s.calls_written, 10);
    assert!(
        s.commits <= 2,
        "10 records 2 ms apart in a 5 s window: {} commits",
        s.commits
    );
    // A ticket after a record: the record's window ends when the ticket comes.
    h.record_call(call(10));
    let t0 = Instant::now();
    let id = h
        .file_ticket(ticket("call-11@10.0.0.1", Priority::Normal, None))
        .await;
    assert!(id.is_ok(), "{id:?}");
    assert!(
        t0.elapsed() < window,
        "a ticket waited {:?}, the length of the window",
        t0.elapsed()
    );
    h.flush().await.unwrap();
    assert_eq!(h.stats().calls_written, 11);
}

#[tokio::test]
async fn group_commit_of_5000_calls() {
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    let t0 = Instant::now();
    // From many tasks, as the server's call tasks would.
    let tasks: Vec<_> = (0..5000)
        .map(|n| {
            let h = h.clone();
            tokio::spawn(async move { h.record_call(call(n)) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let queued_in = t0.elapsed();
    h.flush().await.unwrap();
    let took = t0.elapsed();
    let s = h.stats();
    println!(
        "5000 call records: queued in {queued_in:.1?}, durable in {took:.1?} \
         ({:.0} records/s) with {} commit(s)",
        5000.0 / took.as_secs_f64(),
        s.commits
    );
    assert_eq!(s.calls_written, 5000);
    assert!(
        s.commits < 100,
        "group commit: {} transactions for 5000 records",
        s.commits
    );
    let r = Store::open_read_only(dir.path()).unwrap();
    let all = r.list_calls(&CallQuery::default()).unwrap();
    assert_eq!(all.len(), 5000);
    assert_eq!(all[4999], call(4999));
}

#[tokio::test]
async fn ticket_ids_grow_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    h.record_call(call(1));
    let before = UtcMs::now();
    let a = h
        .file_ticket(ticket(
            "call-1@10.0.0.1",
            Priority::Emergency,
            Some(Duration::from_secs(15 * 60)),
        ))
        .await
        .unwrap();
    let b = h
        .file_ticket(ticket("call-1@10.0.0.1", Priority::Normal, None))
        .await
        .unwrap();
    assert_eq!(a, TicketId(10_000_001), "8 digits, from 10000001");
    assert_eq!(b, TicketId(10_000_002));
    // Without a flush: file_ticket resolving means committed.
    h.shutdown().await.unwrap();
    assert!(matches!(h.flush().await, Err(StoreError::Closed)));

    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    let t = h
        .get_ticket(a)
        .await
        .unwrap()
        .expect("ticket after restart");
    assert!(t.created_at >= before);
    assert_eq!(
        t.due_at,
        Some(t.created_at.plus(Duration::from_secs(900))),
        "P-EMERG: due 15 minutes after filing"
    );
    assert_eq!(t.priority, "emergency");
    assert_eq!(t.delivery, Delivery::Pending);
    assert_eq!(t.fields[0], ("account".into(), "10086".into()));
    assert_eq!(t.recordings, ["var/recordings/call-1/address.wav"]);
    assert_eq!(t.idempotency_key.len(), 36);
    let other = h.get_ticket(b).await.unwrap().unwrap();
    assert_ne!(t.idempotency_key, other.idempotency_key);
    assert_eq!(other.due_at, None);

    let c = h
        .file_ticket(ticket("call-2@10.0.0.1", Priority::Low, None))
        .await
        .unwrap();
    assert_eq!(c, TicketId(10_000_003), "ids go on growing after a restart");
    let pending = h.list_tickets(Some(Delivery::Pending)).await.unwrap();
    assert_eq!(pending.iter().map(|t| t.id).collect::<Vec<_>>(), [a, b, c]);
    assert!(
        h.list_tickets(Some(Delivery::Delivered))
            .await
            .unwrap()
            .is_empty()
    );
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(r.tickets_for_call("call-1@10.0.0.1").unwrap().len(), 2);
}

#[test]
fn a_corrupt_file_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotline.db");
    let long = b"this is not a database, it is a shopping list. ".repeat(200);
    for (garbage, how) in [
        (&long[..], "read-write"),
        (&long[..], "read-only"),
        (&b"garbage"[..], "read-write"),
        (&b"garbage"[..], "read-only"),
    ] {
        std::fs::write(&db, garbage).unwrap();
        let r = match how {
            "read-write" => Store::open(dir.path()).err(),
            _ => Store::open_read_only(dir.path()).err(),
        };
        let e = r.unwrap_or_else(|| panic!("{how} open of {} bytes of garbage", garbage.len()));
        assert!(matches!(e, StoreError::NotADatabase { .. }), "{how}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&db.display().to_string()), "{msg}");
        assert!(msg.contains("move the file aside"), "{msg}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            garbage,
            "the damaged file is left as it was, for recovery"
        );
    }
}

#[test]
fn the_handle_can_go_anywhere() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<hotline::store::StoreHandle>();
    fn spawnable<F: std::future::Future + Send>(_: F) {}
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    spawnable(h.file_ticket(ticket("c", Priority::Low, None)));
    spawnable(h.flush());
}

#[test]
fn reading_a_store_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open_read_only(&dir.path().join("var"))
        .err()
        .unwrap();
    assert!(matches!(e, StoreError::Missing { .. }), "{e:?}");
}

#[tokio::test]
async fn a_reader_sees_what_the_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    h.record_call(call(1));
    h.flush().await.unwrap();
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(r.list_calls(&CallQuery::default()).unwrap().len(), 1);
    for n in 2..=100 {
        h.record_call(call(n));
    }
    h.flush().await.unwrap();
    assert_eq!(r.list_calls(&CallQuery::default()).unwrap().len(), 100);
    assert!(
        r.start_writer().is_err(),
        "a reader cannot become the writer"
    );
}

#[tokio::test]
async fn a_locked_database_fails_the_ticket_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open_with(dir.path(), fast_retry())
        .unwrap()
        .start_writer()
        .unwrap();
    // Another writer holds the lock past the busy timeout, as a stuck process would.
    let blocker = rusqlite::Connection::open(dir.path().join("hotline.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    h.record_call(call(1));
    let e = h
        .file_ticket(ticket("call-1@10.0.0.1", Priority::High, None))
        .await
        .expect_err("the database is locked");
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert!(h.flush().await.is_err(), "nothing is durable yet");
    let s = h.stats();
    assert_eq!((s.pending_tickets, s.ticket_failures), (1, 1), "{s:?}");
    assert!(s.write_failures >= 1 && s.queued == 2, "{s:?}");

    blocker.execute_batch("COMMIT").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.flush().await.is_err() {
        assert!(Instant::now() < deadline, "never retried: {:?}", h.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = h.stats();
    assert_eq!((s.pending_tickets, s.queued, s.tickets_written), (0, 0, 1));
    let kept = h.list_tickets(None).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id, TicketId(10_000_001));
    assert_eq!(kept[0].call_id, "call-1@10.0.0.1");
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(r.list_calls(&CallQuery::default()).unwrap(), vec![call(1)]);
}

#[tokio::test]
async fn a_record_the_database_refuses_does_not_hold_up_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let st = Store::open(dir.path()).unwrap();
    // Stands in for any record-specific refusal (a constraint, an oversized value).
    rusqlite::Connection::open(st.path())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON calls WHEN NEW.caller = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let h = st.start_writer().unwrap();
    let mut bad = call(2);
    bad.caller = "bad".into();
    h.record_call(call(1));
    h.record_call(bad);
    h.record_call(call(3));
    let id = h
        .file_ticket(ticket("call-3@10.0.0.1", Priority::Normal, None))
        .await
        .unwrap();
    h.flush().await.unwrap();
    let s = h.stats();
    assert_eq!(
        (s.calls_written, s.tickets_written, s.dropped, s.queued),
        (2, 1, 1, 0),
        "{s:?}"
    );
    assert_eq!(id, TicketId(10_000_001));
    h.record_call(call(4));
    h.flush().await.unwrap();
    let r = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        r.list_calls(&CallQuery::default()).unwrap(),
        vec![call(1), call(3), call(4)]
    );
}

fn hotline(args: &[&str], data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_cli_lists_calls_and_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let h = Store::open(dir.path()).unwrap().start_writer().unwrap();
    h.record_call(call(1));
    h.record_call(call(2));
    let id = h
        .file_ticket(ticket("call-2@10.0.0.1", Priority::Emergency, None))
        .await
        .unwrap();
    h.flush().await.unwrap();

    // While the writer still holds the database open.
    let out = hotline(&["calls", "list", "--json"], dir.path());
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["call_id"], "call-2@10.0.0.1");
    assert_eq!(lines[1]["tickets"][0], id.0);
    assert_eq!(lines[1]["rings"], 3);
    assert_eq!(lines[1]["duration_ms"], 75_500);
    assert_eq!(lines[1]["events"][1]["kind"], "key");
    assert_eq!(lines[1]["events"][1]["offset_ms"], 4_210);
    let received = lines[0]["received_at"].as_str().unwrap();
    assert_eq!(UtcMs::parse(received), Some(call(1).received_at));
    let back: CallRecord = serde_json::from_value(lines[0].clone()).unwrap();
    assert_eq!(back, call(1));

    h.shutdown().await.unwrap();
    // And after it has closed.
    let out = hotline(&["calls", "list"], dir.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("call-2@10.0.0.1"), "{text}");
    assert!(text.contains(&format!("tickets={id}")), "{text}");
    assert!(text.contains("1m15s"), "{text}");

    let out = hotline(&["calls", "show", "call-1@10.0.0.1"], dir.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("greet -> menu -> repair"), "{text}");
    assert!(text.contains("+4.210  key"), "{text}");

    let out = hotline(&["calls", "show", "no-such-call"], dir.path());
    assert!(!out.status.success());

    let out = hotline(
        &["tickets", "list", "--json", "--state", "pending"],
        dir.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["id"], id.0);
    assert_eq!(t["priority"], "emergency");
    let out = hotline(&["tickets", "list", "--state", "delivered"], dir.path());
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let out = hotline(&["tickets", "show", &id.to_string()], dir.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("field       account = 10086"), "{text}");

    std::fs::write(dir.path().join("hotline.db"), b"garbage".repeat(100)).unwrap();
    let out = hotline(&["calls", "list"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("move the file aside"), "{err}");
}
