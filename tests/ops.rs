//! What an operator sees, tested as an operator would see it: a real Prometheus
//! (Debian's `prometheus`) scraping `hotline serve` during a real PJSIP call, the
//! status page in headless Chromium during the same call, `promtool` on the live
//! metrics, and the Grafana dashboard and alert rules in deploy/ against what
//! `/metrics` exports. Needs tests/callers/INSTALL.sh.
mod common;

use common::hotline::Hotline;
use common::pjcall::PjCall;
use common::ports::free_tcp_port;
use common::repo_path;
use common::server::{Ready, Server, ServerCmd, Stream};
use common::tools::{require_tool, run_with_timeout};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One GET to 127.0.0.1:port: the status and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let (status, body) = common::http_request(port, "GET", path);
    let body = body.as_str();
    // Prometheus answers chunked; a JSON body is found between the chunk sizes.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if path.starts_with("/api/") => &body[a..=b],
        _ => body,
    };
    (status, body.to_string())
}

/// Polls `f` every 200 ms until it gives a value, for at most `within`.
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus on 127.0.0.1 with its own storage, scraping hotline every second.
struct Prometheus {
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(hotline_http: u16) -> Prometheus {
        require_tool("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_tcp_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: hotline\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{hotline_http}']\n"
            ),
        )
        .expect("config written");
        let server = ServerCmd::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .ready(Ready::TcpPort(port))
            .timeout(Duration::from_secs(30))
            .start();
        Prometheus {
            server,
            port,
            _dir: dir,
        }
    }

    /// The value of an instant query's single sample, if it has one.
    fn query(&self, q: &str) -> Option<f64> {
        let (status, body) = get(self.port, &format!("/api/v1/query?query={}", encode(q)));
        if status != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?;
        r.first()?["value"][1].as_str()?.parse().ok()
    }
}

/// Headless Chromium; `what` is `--dump-dom` or `--screenshot=FILE`.
fn chromium(url: &str, what: &str) -> String {
    require_tool("chromium");
    let profile = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
        // Lets the page fetch /status and draw it before the DOM is taken.
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(what)
    .arg(url);
    let done = run_with_timeout(&mut cmd, Duration::from_secs(90));
    assert!(
        done.success(),
        "chromium failed: {:?}\n{}",
        done.status,
        done.stderr
    );
    done.stdout
}

fn promtool(args: &[&str], stdin_file: Option<&Path>, dir: &Path) -> (bool, String) {
    require_tool("promtool");
    let mut cmd = match stdin_file {
        Some(f) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("promtool {} < '{}'", args.join(" "), f.display()));
            c
        }
        None => {
            let mut c = Command::new("promtool");
            c.args(args);
            c
        }
    };
    cmd.current_dir(dir);
    let done = run_with_timeout(&mut cmd, Duration::from_secs(60));
    (done.success(), format!("{}{}", done.stdout, done.stderr))
}

/// The sample names `/metrics` exports (`_bucket`, `_sum`, `_count` included).
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every `hotline_*` name in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"hotline_[a-z0-9_]+").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn prometheus_and_the_status_page_see_a_call_in_progress() {
    let h = Hotline::cmd().arg("--log-format").arg("json").start();
    let prom = Prometheus::start(h.http);
    wait_for(
        "Prometheus scrapes hotline",
        Duration::from_secs(30),
        || (prom.query("up{job=\"hotline\"}") == Some(1.0)).then_some(()),
    );
    let before = prom
        .query("sum(hotline_calls_total)")
        .expect("hotline_calls_total is there from the first scrape");
    assert_eq!(before, 0.0);

    // A silent caller: the greeting state lasts the whole call.
    let call = PjCall::new(h.target("property"))
        .arg("--user")
        .arg("13800138000")
        .hangup_after(25.0)
        .max_time(40.0)
        .spawn();

    // /status lists the call, its flow and state, the caller masked.
    let st: Value = wait_for("the call on /status", Duration::from_secs(15), || {
        let (code, body) = h.http("GET", "/status");
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["calls"].as_array()?.len() == 1 && v["calls"][0]["state"] != "")
            .then_some(v)
    });
    let c = &st["calls"][0];
    assert_eq!(c["flow"], "property", "{st:#}");
    let state = c["state"].as_str().unwrap().to_string();
    assert_eq!(state, "greet", "{st:#}");
    assert!(
        c["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{st:#}"
    );
    assert_eq!(c["caller"], "*******8000", "{st:#}");
    for key in ["waiting", "outbox", "webhook", "outages", "flows"] {
        assert!(!st[key].is_null(), "/status has {key}: {st:#}");
    }
    assert_eq!(st["outages"].as_array().map(Vec::len), Some(2), "{st:#}");
    assert_eq!(st["flows"]["last_reload"], "applied", "{st:#}");

    // Prometheus sees it through its query API.
    wait_for(
        "hotline_calls_active = 1 in Prometheus",
        Duration::from_secs(15),
        || (prom.query("hotline_calls_active") == Some(1.0)).then_some(()),
    );

    // The page, rendered by a real browser from /status, shows the call.
    let url = format!("http://127.0.0.1:{}/", h.http);
    let dom = chromium(&url, "--dump-dom");
    assert!(
        dom.contains("<td class=\"flow\">property</td>")
            && dom.contains(&format!("<td class=\"state\">{state}</td>")),
        "the status page does not show the call:\n{dom}"
    );
    assert!(
        dom.contains("live ·"),
        "the page did not load /status:\n{dom}"
    );
    // The README's picture is refreshed on request, so that a test run leaves the
    // checkout as it found it: HOTLINE_SCREENSHOT=docs/status.png cargo test --test ops
    let shot_dir = tempfile::tempdir().expect("temp dir");
    let shot = match std::env::var("HOTLINE_SCREENSHOT") {
        Ok(p) => repo_path(&p),
        Err(_) => shot_dir.path().join("status.png"),
    };
    chromium(&url, &format!("--screenshot={}", shot.display()));
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "no screenshot"
    );

    let out = call.join().expect("call thread");
    out.assert_ok();

    // After the call: counted, and the live output passes promtool.
    let after = wait_for(
        "hotline_calls_total rises in Prometheus",
        Duration::from_secs(15),
        || {
            prom.query("sum(hotline_calls_total)")
                .filter(|v| *v > before)
        },
    );
    assert_eq!(after, 1.0);
    assert_eq!(
        prom.query("hotline_calls_total{outcome=\"caller_hung_up\"}"),
        Some(1.0)
    );
    assert!(prom.query("sum(hotline_rtp_packets_total)").unwrap_or(0.0) > 100.0);
    assert!(
        prom.query("hotline_rtp_send_lateness_seconds_count")
            .unwrap_or(0.0)
            > 100.0
    );
    assert!(
        prom.query("hotline_prompts_played_total{flow=\"property\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    let (code, metrics) = h.http("GET", "/metrics");
    assert_eq!(code, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &metrics).unwrap();
    let (ok, said) = promtool(&["check", "metrics"], Some(&file), dir.path());
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );
    drop(prom.server);

    // The logs: one JSON object a line; the call's lines name the call and its flow.
    let lines = h.server.lines(Stream::Stderr);
    let mut of_the_call = 0;
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for key in ["time", "level", "message"] {
            assert!(v[key].is_string(), "no {key}: {l}");
        }
        if v["call_id"].is_string() && v["flow"] == "property" {
            of_the_call += 1;
        }
    }
    assert!(of_the_call >= 1, "no log line names the call: {lines:#?}");
}

#[test]
fn the_dashboard_and_the_alerts_use_only_what_hotline_exports() {
    let h = Hotline::cmd().start();
    let (code, metrics) = h.http("GET", "/metrics");
    assert_eq!(code, 200);
    let names = exported(&metrics);
    // The issue's table, exactly.
    for n in [
        "hotline_calls_active",
        "hotline_calls_waiting",
        "hotline_calls_total",
        "hotline_call_duration_seconds_bucket",
        "hotline_call_wait_seconds_bucket",
        "hotline_ring_apologies_total",
        "hotline_protocol_events_total",
        "hotline_protocol_hangups_total",
        "hotline_prompts_played_total",
        "hotline_sip_requests_total",
        "hotline_sip_responses_total",
        "hotline_sip_malformed_total",
        "hotline_rtp_packets_total",
        "hotline_rtp_send_lateness_seconds_bucket",
        "hotline_rtp_frames_skipped_total",
        "hotline_tickets_created_total",
        "hotline_tickets_pending",
        "hotline_tickets_oldest_pending_age_seconds",
        "hotline_tickets_overdue",
        "hotline_webhook_deliveries_total",
        "hotline_ticket_delivery_seconds_bucket",
        "hotline_store_write_failures_total",
        "hotline_flow_reloads_total",
        "hotline_build_info",
    ] {
        assert!(names.contains(n), "/metrics lacks {n}");
    }
    for (line, want) in [
        ("hotline_calls_total{outcome=\"abandoned\"} 0", true),
        (
            "hotline_protocol_hangups_total{reason=\"nuisance\"} 0",
            true,
        ),
        (
            "hotline_webhook_deliveries_total{result=\"too_large\"} 0",
            true,
        ),
        ("hotline_flow_reloads_total{result=\"refused\"} 0", true),
    ] {
        assert_eq!(metrics.contains(line), want, "{line}");
    }

    // The dashboard: importable JSON, a Prometheus data-source variable, the panels.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/hotline.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus data-source variable"
    );
    let panels = dash["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for t in [
        "Calls active and waiting",
        "Calls per second",
        "Outcomes",
        "Service level",
        "Abandonment",
        "The protocol's hang-ups",
        "Ring apologies",
        "Tickets by category",
        "Outbox",
        "Webhook results",
        "Ticket delivery latency p95",
        "RTP send lateness p99 and frames skipped",
        "SIP responses by code",
        "Callers refused, by reason",
    ] {
        assert!(titles.contains(&t), "no panel '{t}': {titles:?}");
    }
    let mut used = 0;
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for n in names_in(expr) {
                assert!(
                    names.contains(&n),
                    "panel '{}' uses {n}, which /metrics does not export",
                    p["title"]
                );
                used += 1;
            }
        }
    }
    assert!(used >= 20, "{used} metric uses in the panels");

    // The alert rules: valid, their unit tests pass, and their names exist.
    let deploy = repo_path("deploy/prometheus");
    let (ok, said) = promtool(&["check", "rules", "alerts.yml"], None, &deploy);
    assert!(ok, "promtool check rules: {said}");
    let (ok, said) = promtool(&["test", "rules", "alerts_test.yml"], None, &deploy);
    assert!(ok, "promtool test rules: {said}");
    let rules = std::fs::read_to_string(deploy.join("alerts.yml")).unwrap();
    for n in names_in(&rules) {
        assert!(names.contains(&n), "alerts.yml uses {n}, not exported");
    }
}
