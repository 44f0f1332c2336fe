//! The whole bench of issue 11 in one command: the floor, the SIPp reference, hotline at
//! each size, the setup-rate script, then the figures side by side and a verdict line
//! per goal. Every ratio is of figures measured in this one run.
use super::{Args, floor, report, sipp};
use serde_json::{Value, json};

/// The goals.
pub const FLOOR_RATIO: f64 = 1.15;
const MARK_TOL_MS: f64 = 50.0;
const SKIPPED_MAX: f64 = 0.001;
const LATENESS_P99_MS: f64 = 5.0;
const GAP_P999_MS: f64 = 40.0;
const KIB_PER_CALL: f64 = 48.0;
const SETUP_P99_MS: f64 = 20.0;
/// "Flat": the largest CPU per packet across the sizes over the smallest.
const FLAT_RATIO: f64 = 1.25;
const SETUP_RATE: f64 = 2500.0;

fn n(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

pub fn run(a: &Args) -> Result<(), String> {
    let sizes: Vec<usize> = match a.calls {
        Some(c) => vec![c],
        None => a.sizes.clone(),
    };
    // The floor and SIPp are run at the goal size, or at the one size asked for.
    let reference = match a.calls {
        Some(c) => c,
        None => a.goal_calls,
    };
    let mut out = json!({ "sizes": sizes, "reference_calls": reference });
    super::procfs::raise_nofile();
    // The floor's rounds and SIPp go around hotline's run at the reference size: the
    // sizes below it first, then a floor round, SIPp, hotline at the reference, the
    // other floor round, then the sizes above it. Each ratio then compares stretches of
    // this machine a minute apart at most, not the suite's start with its middle. Every
    // size but the overload's also has a machine probe just before and after its run
    // (`floor::probe`), the linear verdict's yardstick.
    let threads = super::threads_in_use(a, reference);
    let mut floor = if a.no_floor {
        None
    } else {
        Some(floor::Floor::new(
            reference,
            threads,
            a.floor_secs,
            super::media_realtime(a),
        )?)
    };
    let rounds = a.floor_rounds.max(1);
    let (before, after) = (rounds.div_ceil(2), rounds / 2);
    let mut runs = Vec::new();
    let mut sipp_ref = Value::Null;
    let mut beside = Value::Null;
    let mut order: Vec<usize> = sizes.iter().copied().filter(|&s| s < reference).collect();
    order.push(reference);
    order.extend(sizes.iter().copied().filter(|&s| s > reference));
    for size in order {
        let at_reference = size == reference;
        if at_reference {
            if let Some(f) = floor.as_mut() {
                eprintln!(
                    "load: floor before hotline at {reference}: {reference} sockets from {threads} thread(s) (the media threads hotline carries them on), {} s per method, {before} round(s)",
                    a.floor_secs
                );
                for _ in 0..before {
                    f.round("before")?;
                }
            }
            if !a.no_sipp {
                eprintln!("load: SIPp UAS reference, {reference} calls");
                sipp_ref = match sipp::run(reference, a.ramp, a.hold.min(30.0)) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("load: SIPp reference failed: {e}");
                        json!({ "error": e })
                    }
                };
            }
        }
        if sizes.contains(&size) {
            // The machine's speed at this size just before and after hotline's run: the
            // linear verdict's yardstick (not at the overload size, judged on its own).
            let probing = !a.no_floor && (size != a.overload_calls || sizes.len() == 1);
            let probe = |when: &str| -> Value {
                let threads = super::threads_in_use(a, size);
                let v = floor::probe(size, threads, a.floor_secs, super::media_realtime(a))
                    .unwrap_or_else(|e| json!({ "error": e }));
                eprintln!(
                    "load: machine probe {when} hotline at {size}: io_uring (connected) from {size} sockets in {threads} thread(s), {:.2} µs/packet",
                    n(&v, "/us_per_packet/total")
                );
                v
            };
            let before = if probing {
                probe("before")
            } else {
                Value::Null
            };
            eprintln!("load: hotline at {size} calls");
            let one = Args {
                calls: Some(size),
                json: None,
                ..a.clone()
            };
            let mut run = super::run(&one)?;
            if probing {
                let after = probe("after");
                run["machine_probe"] = probe_summary(before, after);
            }
            runs.push(run);
        }
        if at_reference && let Some(f) = floor.as_mut() {
            eprintln!("load: floor after hotline at {reference}, {after} round(s)");
            for _ in 0..after {
                f.round("after")?;
            }
            // The ratio's verdict: hotline at half the reference, the floor beside it
            // from as many sockets, over the same seconds.
            let half = (reference / 2).max(1);
            eprintln!("load: hotline at {half} calls with the floor beside it");
            let mut one = Args {
                calls: Some(half),
                json: None,
                floor_beside: true,
                ..a.clone()
            };
            // The floor's senders beside hotline are this measurement's own instrument,
            // not load hotline should shed calls for: with the machine's share counted,
            // their CPU tripped the overload at the lines' redial wave (machine 0.94,
            // 2,201 of 5,253 calls refused, 424 left up for the last rounds), and the
            // ratio was of fewer calls than the floor's sockets. The media threads'
            // own signals (busy, late visits) still judge. A `--setting` of the user's wins.
            if !one
                .settings
                .iter()
                .any(|l| l.trim_start().starts_with("overload_machine"))
            {
                one.settings.push("overload_machine: 1".into());
            }
            beside = super::run(&one)?;
        }
    }
    let floor = floor.map_or(Value::Null, |f| f.summary());
    out["floor"] = floor.clone();
    out["sipp"] = sipp_ref.clone();
    out["beside"] = beside.clone();
    out["hotline"] = json!(runs);
    let setup_rate = if a.calls.is_none() && !a.no_setup_rate {
        setup_rate()
    } else {
        Value::Null
    };
    out["setup_rate"] = setup_rate.clone();
    let verdicts = print_suite(a, reference, &floor, &beside, &sipp_ref, &runs, &setup_rate);
    out["verdicts"] = verdicts;
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&out).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("load: suite report written to {}", p.display());
    }
    Ok(())
}

/// The two probes around a run: their CPU over their datagrams (each weighs what it
/// sent), counted only where the reader lost nothing.
fn probe_summary(before: Value, after: Value) -> Value {
    let counted: Vec<&Value> = [&before, &after]
        .into_iter()
        .filter(|v| v["counted"] == json!(true))
        .collect();
    let sent: f64 = counted.iter().map(|v| n(v, "/sent")).sum();
    let cpu: f64 = counted
        .iter()
        .map(|v| n(v, "/us_per_packet/total") * n(v, "/sent"))
        .sum();
    json!({
        "us_per_packet": if sent > 0.0 { json!(cpu / sent) } else { Value::Null },
        "before": before,
        "after": after,
    })
}

/// benches/setup-rate.sh against a fresh `hotline serve`; its last line is the figures.
fn setup_rate() -> Value {
    let script = super::repo("benches/setup-rate.sh");
    eprintln!("load: setup rate ({})", script.display());
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("HOTLINE_BIN", super::hotline_bin())
        .stderr(std::process::Stdio::inherit())
        .output();
    let Ok(out) = out else {
        return json!({ "error": "cannot run benches/setup-rate.sh" });
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(last) = text.lines().rev().find(|l| l.starts_with("RESULT ")) else {
        return json!({ "error": "benches/setup-rate.sh printed no RESULT line" });
    };
    let mut v = serde_json::Map::new();
    for kv in last.trim_start_matches("RESULT ").split_whitespace() {
        if let Some((k, x)) = kv.split_once('=') {
            v.insert(k.into(), x.parse::<f64>().map_or(json!(x), |f| json!(f)));
        }
    }
    Value::Object(v)
}

/// A size's figures for the linear verdict: calls offered, in flows at most, RSS (MB),
/// hotline's CPU per packet and the machine probe's (µs).
type Row = (u64, f64, f64, f64, f64);

/// The figures side by side and a verdict per goal.
fn print_suite(
    a: &Args,
    reference: usize,
    floor: &Value,
    beside: &Value,
    sipp: &Value,
    runs: &[Value],
    setup: &Value,
) -> Value {
    println!();
    println!("==== issue 11: CPU per RTP packet, side by side (one run, same machine) ====");
    let best_floor = n(floor, "/floor_us_per_packet");
    if let Some(ms) = floor.get("per_method").and_then(Value::as_array) {
        for m in ms {
            println!(
                "floor      {:<30} {:6.2} µs/packet (user {:.2}, sys {:.2}; lowest round {:.2}); {} sockets, {} threads, {} round(s), {:.0} packets/s{}",
                m["method"].as_str().unwrap_or("?"),
                n(m, "/us_per_packet/total"),
                n(m, "/us_per_packet/user"),
                n(m, "/us_per_packet/sys"),
                n(m, "/lowest_round_us_per_packet"),
                m["sockets"],
                m["threads"],
                m["rounds"],
                n(m, "/packets_per_s"),
                if m["floor"] == json!(true) {
                    ""
                } else {
                    "  (not a floor)"
                },
            );
        }
        println!(
            "floor      the best method over its rounds around hotline's run: {best_floor:.2} µs/packet (its lowest single round: {:.2})",
            n(floor, "/lowest_round_us_per_packet")
        );
    }
    let sipp_us = n(sipp, "/us_per_packet/total");
    if sipp.is_object() {
        println!(
            "SIPp UAS   {} calls: {:6.2} µs/packet (user {:.2}, sys {:.2}); {:.0} of {:.0} packets/s, {:.2} cores, RSS {:.0} MB{}",
            sipp["calls"],
            sipp_us,
            n(sipp, "/us_per_packet/user"),
            n(sipp, "/us_per_packet/sys"),
            n(sipp, "/rtp_packets_per_s"),
            n(sipp, "/expected_packets_per_s"),
            n(sipp, "/cpu_cores"),
            n(sipp, "/rss_mb"),
            sipp.get("error")
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default(),
        );
    }
    let at = |calls: usize| {
        runs.iter()
            .find(|r| r.pointer("/args/calls").and_then(Value::as_u64) == Some(calls as u64))
    };
    let hot = at(reference);
    let hot_us = hot.map_or(f64::NAN, |r| n(r, "/hotline/us_per_packet/total"));
    println!(
        "hotline    {reference} calls: {hot_us:6.2} µs/packet (media I/O {});  ÷ floor {:.2}×;  ÷ SIPp {:.2}×",
        hot.and_then(|r| r.pointer("/calls/hotline_healthz/media_io"))
            .and_then(Value::as_str)
            .unwrap_or("?"),
        hot_us / best_floor,
        hot_us / sipp_us,
    );
    // The same seconds: the floor beside hotline at half the reference each.
    let fb = beside.pointer("/floor_beside").unwrap_or(&Value::Null);
    if let Some(ms) = fb.get("per_method").and_then(Value::as_array) {
        for m in ms {
            println!(
                "beside     {:<30} floor {:6.2} µs/packet, hotline {:6.2} over the same seconds ({:.2}×); {} sockets beside {} calls, {} of {} round(s){}",
                m["method"].as_str().unwrap_or("?"),
                n(m, "/us_per_packet/total"),
                n(m, "/hotline_us_per_packet"),
                n(m, "/ratio"),
                m["sockets"],
                calls_up(beside),
                m["rounds_counted"],
                fb["rounds"],
                if m["counted"] == json!(true) {
                    ""
                } else {
                    "  (the client lost datagrams: not counted)"
                },
            );
        }
    }
    let same_time = (
        n(fb, "/best/hotline_us_per_packet"),
        n(fb, "/best/us_per_packet/total"),
        fb.pointer("/best/method")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    );
    println!();
    println!(
        "| calls offered | in flows (max) | refused 503 | µs/packet (user+sys) | ÷ machine probe | lateness p99 | gap p99.9 | skipped | marks p1..p99 | setup p99 | RSS | KiB/call | contaminated |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<Row> = Vec::new();
    for r in runs {
        let calls = r
            .pointer("/args/calls")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let max_up = n(r, "/calls/max_concurrent");
        let refused = r
            .pointer("/calls/failed/503")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let rss = n(r, "/hotline/vm_rss_mb");
        let kib = rss * 1024.0 / max_up.max(1.0);
        let others = n(r, "/other_processes_cpu_cores");
        let us = n(r, "/hotline/us_per_packet/total");
        let probe = n(r, "/machine_probe/us_per_packet");
        println!(
            "| {calls} | {max_up:.0} | {refused} | {:.2} ({:.2}+{:.2}) | {} | {:.1} ms | {:.1} ms | {:.2} % | {:+.0}..{:+.0} ms | {:.1} ms | {:.0} MB | {kib:.1} | {} |",
            us,
            n(r, "/hotline/us_per_packet/user"),
            n(r, "/hotline/us_per_packet/sys"),
            if probe.is_finite() {
                format!("{:.2}× ({probe:.2})", us / probe)
            } else {
                "–".into()
            },
            n(r, "/rtp_from_hotline/lateness/p99_ms"),
            n(r, "/rtp_from_hotline/gaps/p999_ms"),
            n(r, "/rtp_from_hotline/skipped_share_in_window") * 100.0,
            n(r, "/marks_in_window/p1_ms"),
            n(r, "/marks_in_window/p99_ms"),
            n(r, "/calls/setup/p99_ms"),
            rss,
            if others > 0.1 {
                format!("{others:.2} cores")
            } else if super::stalled(n(r, "/stolen_cpu_cores"), n(r, "/longest_tick_s")) {
                "stalled by the host".into()
            } else {
                "no".into()
            },
        );
        rows.push((calls, max_up, rss, us, probe));
    }
    println!();
    // Clean audio, judged on a run's own figures.
    let clean = |r: &Value| {
        n(r, "/marks_in_window/p99_ms") <= MARK_TOL_MS
            && n(r, "/marks_in_window/p1_ms") >= -MARK_TOL_MS
            && n(r, "/rtp_from_hotline/skipped_share_in_window") <= SKIPPED_MAX
            && n(r, "/rtp_from_hotline/lateness/p99_ms") <= LATENESS_P99_MS
            && n(r, "/rtp_from_hotline/gaps/p999_ms") <= GAP_P999_MS
    };
    let mut v = serde_json::Map::new();
    let mut line = |key: &str, ok: Option<bool>, what: String| {
        let shown = match ok {
            Some(b) => yes(b),
            None => "not run",
        };
        println!("verdict  {shown:<7} {what}");
        v.insert(key.into(), json!(ok));
    };
    // Judged over the same seconds (the floor beside hotline); the figures a minute apart
    // are printed above, and judged only where no beside run was made.
    let (hb, fbest, method) = same_time;
    if hb.is_finite() && fbest.is_finite() {
        line(
            "cpu_within_floor",
            Some(hb <= FLOOR_RATIO * fbest),
            format!(
                "CPU per packet ≤ {FLOOR_RATIO}× the best floor over the same seconds: hotline {hb:.2} µs vs {method} {fbest:.2} µs ({:.2}×), {} calls beside {} sockets (a minute apart at {reference}: {hot_us:.2} vs {best_floor:.2}, {:.2}×)",
                hb / fbest,
                calls_up(beside),
                fb["sockets"],
                hot_us / best_floor,
            ),
        );
    } else {
        line(
            "cpu_within_floor",
            (best_floor.is_finite() && hot_us.is_finite())
                .then_some(hot_us <= FLOOR_RATIO * best_floor),
            format!(
                "CPU per packet ≤ {FLOOR_RATIO}× the floor (best method, its rounds around hotline's run): {hot_us:.2} µs vs {best_floor:.2} µs ({:.2}×) at {reference} calls",
                hot_us / best_floor
            ),
        );
    }
    line(
        "cpu_below_sipp",
        (sipp_us.is_finite() && hot_us.is_finite()).then_some(hot_us < sipp_us),
        format!("CPU per packet below SIPp's: {hot_us:.2} µs vs {sipp_us:.2} µs"),
    );
    let goal = at(a.goal_calls);
    // The figures below are at the calls hotline admitted: where its overload judge
    // refused part of the goal's calls, they are not the goal's.
    line(
        "concurrent_at_goal",
        goal.map(|r| n(r, "/calls/max_concurrent") >= a.goal_calls as f64),
        format!(
            "{} concurrent calls up at once (the figures below are at what was admitted): {:.0} at most",
            a.goal_calls,
            goal.map_or(f64::NAN, |r| n(r, "/calls/max_concurrent")),
        ),
    );
    line(
        "marks_p99",
        goal.map(|r| {
            n(r, "/marks_in_window/p99_ms") <= MARK_TOL_MS
                && n(r, "/marks_in_window/p1_ms") >= -MARK_TOL_MS
        }),
        format!(
            "P-SIL marks p1..p99 within ±{MARK_TOL_MS} ms at {} calls: {:+.0}..{:+.0} ms",
            a.goal_calls,
            goal.map_or(f64::NAN, |r| n(r, "/marks_in_window/p1_ms")),
            goal.map_or(f64::NAN, |r| n(r, "/marks_in_window/p99_ms")),
        ),
    );
    line(
        "frames_skipped",
        goal.map(|r| n(r, "/rtp_from_hotline/skipped_share_in_window") <= SKIPPED_MAX),
        format!(
            "frames skipped ≤ 0.1 % at {}: {:.3} %",
            a.goal_calls,
            goal.map_or(f64::NAN, |r| n(
                r,
                "/rtp_from_hotline/skipped_share_in_window"
            ) * 100.0)
        ),
    );
    line(
        "lateness_p99",
        goal.map(|r| n(r, "/rtp_from_hotline/lateness/p99_ms") <= LATENESS_P99_MS),
        format!(
            "send lateness p99 ≤ {LATENESS_P99_MS} ms at {}: {:.1} ms",
            a.goal_calls,
            goal.map_or(f64::NAN, |r| n(r, "/rtp_from_hotline/lateness/p99_ms"))
        ),
    );
    line(
        "gap_p999",
        goal.map(|r| n(r, "/rtp_from_hotline/gaps/p999_ms") <= GAP_P999_MS),
        format!(
            "gap between a call's packets p99.9 ≤ {GAP_P999_MS} ms at {}: {:.1} ms",
            a.goal_calls,
            goal.map_or(f64::NAN, |r| n(r, "/rtp_from_hotline/gaps/p999_ms"))
        ),
    );
    // Linear cost: over the sizes hotline admitted in full (the overload size is judged
    // on its own line).
    let full: Vec<&Row> = rows
        .iter()
        .filter(|r| r.0 as usize != a.overload_calls || rows.len() == 1)
        .collect();
    let spread = |f: &dyn Fn(&Row) -> f64| {
        full.iter()
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(f(r)), hi.max(f(r))))
    };
    let (lo, hi) = spread(&|r| r.3);
    // Judged on hotline's figure over the machine probe's at each size (the kernel's
    // charge for as many sockets, just before and after the run): this machine's speed
    // swings within minutes, and the raw figures compared the 1,000-call run with a
    // 5,000-call run in a faster stretch (5.12 against 3.98 µs, 1.29×, 2026-12-04). The
    // raw spread is printed beside it; without probes (--no-floor) it is the verdict.
    let probed = full.iter().all(|r| r.4.is_finite());
    let (plo, phi) = spread(&|r| r.3 / r.4);
    let flat = if probed { phi / plo } else { hi / lo };
    // Memory per call: the slope between the smallest and largest size (what one more
    // call costs), and RSS over calls at the largest.
    let slope = match (full.first(), full.last()) {
        (Some(x), Some(y)) if y.1 > x.1 => (y.2 - x.2) * 1024.0 / (y.1 - x.1),
        (_, Some(y)) => y.2 * 1024.0 / y.1.max(1.0),
        _ => f64::NAN,
    };
    let setup_ok = runs
        .iter()
        .all(|r| n(r, "/calls/setup/p99_ms") < SETUP_P99_MS);
    line(
        "linear_cost",
        (full.len() >= 2).then_some(flat <= FLAT_RATIO && slope <= KIB_PER_CALL && setup_ok),
        format!(
            "linear cost over {:?}: CPU per packet {}, {slope:.1} KiB per added call (≤ {KIB_PER_CALL}), setup p99 < {SETUP_P99_MS} ms at every size: {}",
            full.iter().map(|r| r.0).collect::<Vec<_>>(),
            if probed {
                format!(
                    "over the machine probe at each size {plo:.2}..{phi:.2}×, the largest {flat:.2}× the smallest (≤ {FLAT_RATIO}×; raw {lo:.2}..{hi:.2} µs, {:.2}×)",
                    hi / lo
                )
            } else {
                format!("{lo:.2}..{hi:.2} µs ({flat:.2}× ≤ {FLAT_RATIO}×)")
            },
            yes(setup_ok),
        ),
    );
    let over = at(a.overload_calls);
    line(
        "overload",
        over.map(clean),
        format!(
            "overload at {} offered: {} in flows at most, {} refused with 503; the admitted keep clean audio: {}",
            a.overload_calls,
            over.map_or(f64::NAN, |r| n(r, "/calls/max_concurrent")),
            over.and_then(|r| r.pointer("/calls/failed/503"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            over.map_or("not run", |r| yes(clean(r))),
        ),
    );
    let rate = n(setup, "/rate");
    line(
        "setup_rate",
        rate.is_finite().then(|| {
            rate >= SETUP_RATE
                && n(setup, "/failures") == 0.0
                && n(setup, "/retransmissions") == 0.0
        }),
        format!(
            "setup rate ≥ {SETUP_RATE} calls/s with 0 failures and 0 retransmissions (benches/setup-rate.sh): {rate:.0}/s, {} failures, {} retransmissions (SIPp's own socket dropped {})",
            n(setup, "/failures"),
            n(setup, "/retransmissions"),
            n(setup, "/sipp_drops"),
        ),
    );
    let _ = report::quantile;
    Value::Object(v)
}

/// The calls a run had up over its window: "2500", or "2147..2500 (of 2500)" where
/// some went (refused redials): a ratio beside the floor is of those calls.
fn calls_up(run: &Value) -> String {
    let lines = run
        .pointer("/args/calls")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let w = run.pointer("/calls/concurrent_in_window");
    let (lo, hi) = (
        w.and_then(|w| w["min"].as_i64()).unwrap_or(lines),
        w.and_then(|w| w["max"].as_i64()).unwrap_or(lines),
    );
    if lo == lines && hi == lines {
        lines.to_string()
    } else {
        format!("{lo}..{hi} (of {lines})")
    }
}
