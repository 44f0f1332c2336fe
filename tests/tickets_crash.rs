//! `kill -9` of a real `hotline serve` in the middle of deliveries, then a restart:
//! no ticket is lost, and a ticket sent twice is sent with the same idempotency key.
mod common;
#[path = "tickets/receiver.rs"]
mod receiver;

use common::hotline::Hotline;
use hotline::flow::model::Priority;
use hotline::store::{Delivery, NewTicket, Store};
use receiver::{Receiver, Reply};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICKETS: usize = 24;

fn ticket(i: usize) -> NewTicket {
    NewTicket {
        call_id: format!("call-{i}@10.0.0.1"),
        caller: format!("1380000{i:04}"),
        flow: "property".into(),
        state: "file_repair".into(),
        category: "repair".into(),
        priority: if i.is_multiple_of(5) {
            Priority::Emergency
        } else {
            Priority::Normal
        },
        due_in: Some(Duration::from_secs(3600)),
        department: None,
        fields: vec![("account".into(), format!("{i:08}"))],
        recordings: vec![],
        from_tag: format!("tag-{i}"),
        invite_branch: String::new(),
        ordinal: 1,
    }
}

fn start_hotline(dir: &Path, hook_url: &str) -> Hotline {
    Hotline::cmd()
        .dir(dir)
        .config(&format!(
            "webhook:\n  url: {hook_url}\n  secret: s3cret\n  timeout: 5s\n  \
             retry_initial: 100ms\n  retry_max: 500ms\n  concurrency: 4\n  poll: 50ms\n"
        ))
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_deliveries_loses_no_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var");
    // Filed before the server starts, as a crashed server would have left them.
    let keys: HashMap<i64, String> = {
        let h = Store::open(&data).unwrap().start_writer().unwrap();
        let mut keys = HashMap::new();
        for i in 0..TICKETS {
            let id = h.file_ticket(ticket(i)).await.unwrap();
            let t = h.get_ticket(id).await.unwrap().unwrap();
            keys.insert(id.0, t.idempotency_key);
        }
        h.shutdown().await.unwrap();
        keys
    };
    // Slow enough that the kill lands with deliveries in flight.
    let rx = Receiver::start(
        0,
        Arc::new(|_, _| Reply::status(200).after(Duration::from_millis(300))),
    )
    .await;
    let url = rx.url();

    let (d, u) = (dir.path().to_path_buf(), url.clone());
    let mut first = tokio::task::spawn_blocking(move || start_hotline(&d, &u))
        .await
        .unwrap();
    rx.wait_for(6, Duration::from_secs(20)).await;
    // SAFETY: kill(2) of the child this test started.
    unsafe {
        libc::kill(first.server.pid() as libc::pid_t, libc::SIGKILL);
    }
    let status = first
        .server
        .wait_exit(Duration::from_secs(5))
        .expect("killed");
    assert!(!status.success());
    let before = rx.requests().len();
    let delivered_before = Store::open_read_only(&data)
        .unwrap()
        .list_tickets(Some(Delivery::Delivered))
        .unwrap()
        .len();
    assert!(delivered_before < TICKETS, "the kill came too late");

    let (d, u) = (dir.path().to_path_buf(), url.clone());
    let mut second = tokio::task::spawn_blocking(move || start_hotline(&d, &u))
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let st = Store::open_read_only(&data).unwrap();
        if st.list_tickets(Some(Delivery::Delivered)).unwrap().len() == TICKETS {
            break;
        }
        assert!(
            Instant::now() < end,
            "not all delivered:\n{}",
            second.server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reqs = rx.requests();
    let mut seen = HashSet::new();
    let mut twice = 0;
    for r in &reqs {
        let id = r.id();
        assert_eq!(
            keys.get(&id),
            Some(&r.key()),
            "ticket {id} sent with its own key"
        );
        if !seen.insert(id) {
            twice += 1;
        }
    }
    assert_eq!(seen.len(), TICKETS, "every ticket reached the receiver");
    // Only those in flight at the kill (at most `concurrency`) may go twice.
    assert!(twice <= 4, "{twice} sent twice");
    assert!(reqs.len() > before);
    second.server.stop(Duration::from_secs(10));
}
