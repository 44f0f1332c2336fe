//! The call-record store under a steady stream of calls ending, as at full load: how
//! many records a second and how many commits (fsyncs) a second that costs.
//! `cargo bench --bench store`
use hotline::store::{CallEvent, CallRecord, Store, UtcMs};
use std::time::{Duration, Instant};

fn call(n: usize) -> CallRecord {
    let received = UtcMs(1_770_000_000_000 + n as i64 * 1000);
    CallRecord {
        call_id: format!("call-{n}@10.0.0.1"),
        flow: "property".into(),
        from: format!("<sip:1380013{n:04}@10.0.0.9>;tag=a{n}"),
        to: "<sip:property@hotline>".into(),
        caller: format!("1380013{n:04}"),
        received_at: received,
        answered_at: Some(UtcMs(received.0 + 15_000)),
        ended_at: UtcMs(received.0 + 75_500),
        rings: 3,
        outcome: "caller-hung-up".into(),
        reason: None,
        path: vec!["greet".into(), "main_menu".into(), "repair".into()],
        events: (0..12)
            .map(|i| CallEvent {
                offset_ms: i * 4000,
                kind: "prompt".into(),
                detail: "main_menu".into(),
            })
            .collect(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let h = Store::open(dir.path())
            .and_then(Store::start_writer)
            .expect("store");
        let rate = 5000;
        let secs = 3;
        let t0 = Instant::now();
        for n in 0..rate * secs {
            h.record_call(call(n));
            if n % 50 == 49 {
                // 50 records every 10 ms: 5,000 calls ending a second.
                let due = t0 + Duration::from_millis((n as u64 + 1) * 1000 / rate as u64);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        h.flush().await.expect("flush");
        let s = h.stats();
        println!(
            "store: {} records at {rate}/s over {:.1?}: {} commits ({:.0}/s)",
            s.calls_written,
            t0.elapsed(),
            s.commits,
            s.commits as f64 / t0.elapsed().as_secs_f64()
        );
    });
}
