//! `hotline outbound add|list|show|cancel`: the outbound routes of a running server,
//! from a terminal (token: `HOTLINE_OPS_TOKEN`).
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Server {
    /// The running server's ops HTTP
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Print the server's JSON answer as it is
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum OutboundCmd {
    /// Place a call: a job dialled within its window, retried per its settings
    Add {
        /// A SIP URI, or a number dialled through the configured trunk
        to: String,
        /// The flow the call runs
        #[arg(long, default_value = "callback")]
        flow: String,
        /// A flow variable, NAME=VALUE (repeatable)
        #[arg(long = "var")]
        vars: Vec<String>,
        #[arg(long)]
        ticket_id: Option<String>,
        /// RFC 3339 times
        #[arg(long)]
        not_before: Option<String>,
        #[arg(long)]
        deadline: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        /// e.g. 30m
        #[arg(long)]
        retry_after: Option<String>,
        /// e.g. 30s
        #[arg(long)]
        ring_timeout: Option<String>,
        /// Calling hours, HH:MM-HH:MM local time
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        ops: Server,
    },
    /// The jobs, optionally in one status
    List {
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        ops: Server,
    },
    /// One job with its attempts and result
    Show {
        id: String,
        #[command(flatten)]
        ops: Server,
    },
    /// Cancel a job; a call in progress is ended politely by its flow
    Cancel {
        id: String,
        #[command(flatten)]
        ops: Server,
    },
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn add_body(cmd: &OutboundCmd) -> Result<Value, String> {
    let OutboundCmd::Add {
        to,
        flow,
        vars,
        ticket_id,
        not_before,
        deadline,
        max_attempts,
        retry_after,
        ring_timeout,
        window,
        idempotency_key,
        ..
    } = cmd
    else {
        return Ok(Value::Null);
    };
    let mut v = json!({ "to": to, "flow": flow });
    let mut m = serde_json::Map::new();
    for kv in vars {
        let (k, val) = kv
            .split_once('=')
            .ok_or_else(|| format!("--var {kv}: write NAME=VALUE"))?;
        m.insert(k.to_string(), json!(val));
    }
    if !m.is_empty() {
        v["vars"] = Value::Object(m);
    }
    let opt = [
        ("ticket_id", ticket_id),
        ("not_before", not_before),
        ("deadline", deadline),
        ("retry_after", retry_after),
        ("ring_timeout", ring_timeout),
        ("idempotency_key", idempotency_key),
    ];
    for (k, val) in opt {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    if let Some(n) = max_attempts {
        v["max_attempts"] = json!(n);
    }
    if let Some(w) = window {
        let (s, e) = w
            .split_once('-')
            .ok_or_else(|| format!("--window {w}: write HH:MM-HH:MM"))?;
        v["window"] = json!({ "start": s, "end": e });
    }
    Ok(v)
}

pub fn run(cmd: OutboundCmd) -> ExitCode {
    let token = std::env::var(crate::server::auth::TOKEN_ENV).ok();
    let body = match add_body(&cmd) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (method, path, ops) = match &cmd {
        OutboundCmd::Add { ops, .. } => (reqwest::Method::POST, "/outbound".to_string(), ops),
        OutboundCmd::List { status, ops } => (
            reqwest::Method::GET,
            match status {
                Some(s) => format!("/outbound?status={}", enc(s)),
                None => "/outbound".to_string(),
            },
            ops,
        ),
        OutboundCmd::Show { id, ops } => {
            (reqwest::Method::GET, format!("/outbound/{}", enc(id)), ops)
        }
        OutboundCmd::Cancel { id, ops } => (
            reqwest::Method::DELETE,
            format!("/outbound/{}", enc(id)),
            ops,
        ),
    };
    let url = format!("{}{path}", ops.server.trim_end_matches('/'));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let answer = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        let mut req = client.request(method, &url);
        if let Some(t) = &token {
            req = req.bearer_auth(t.trim());
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        Ok::<_, reqwest::Error>((status, resp.text().await?))
    });
    let (status, text) = match answer {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            "\nset HOTLINE_OPS_TOKEN to the server's ops token"
        } else {
            ""
        };
        eprintln!("{url}: {status}\n{}{hint}", text.trim_end());
        return ExitCode::FAILURE;
    }
    if ops.json {
        println!("{}", text.trim_end());
        return ExitCode::SUCCESS;
    }
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    let s = |v: &Value, k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    match cmd {
        OutboundCmd::Add { .. } => println!(
            "job {} {}: next attempt at {}",
            s(&v, "id"),
            s(&v, "status"),
            s(&v, "next_attempt_at")
        ),
        OutboundCmd::List { .. } => {
            for j in v.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\tattempts {}/{}\tnext {}",
                    s(j, "id"),
                    s(j, "status"),
                    s(j, "flow"),
                    s(j, "to"),
                    j["attempts"].as_array().map_or(0, Vec::len),
                    s(j, "max_attempts"),
                    s(j, "next_attempt_at")
                );
            }
        }
        OutboundCmd::Show { .. } | OutboundCmd::Cancel { .. } => {
            println!(
                "job {} {} ({} to {}), window {}-{}",
                s(&v, "id"),
                s(&v, "status"),
                s(&v, "flow"),
                s(&v, "to"),
                s(&v["window"], "start"),
                s(&v["window"], "end")
            );
            for a in v["attempts"].as_array().into_iter().flatten() {
                println!(
                    "  attempt {}\t{}\tstarted {}\tanswered {}\tended {}\tSIP {}\t{}",
                    s(a, "n"),
                    s(a, "call_id"),
                    s(a, "started_at"),
                    s(a, "answered_at"),
                    s(a, "ended_at"),
                    s(a, "sip_code"),
                    s(a, "outcome")
                );
            }
            if !v["result"].is_null() {
                println!("  result {}", v["result"]);
            }
            if let Some(r) = v["reason"].as_str() {
                println!("  reason: {r}");
            }
        }
    }
    ExitCode::SUCCESS
}
