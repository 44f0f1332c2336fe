//! The `hotline` command: the designer's tools now, the server later.
use clap::{Parser, Subcommand, ValueEnum};
use hotline::designer::graph::{self, Format};
use hotline::designer::project::{Project, sibling};
use hotline::designer::runner::{self, Verdict};
use hotline::designer::script::{self, HELP, Step};
use hotline::designer::sim::{Caller, Sim};
use hotline::designer::{coverage, junit, render_entry, schema};
use hotline::flow::{self, Diagnostic, Flow};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "A telephony IVR engine: YAML call flows over SIP/RTP"
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log lines as text, or as one JSON object a line for log collectors
    #[arg(long, global = true, value_enum, default_value_t = hotline::logs::LogFormat::Text)]
    pub log_format: hotline::logs::LogFormat,
}

#[derive(clap::Args, Clone)]
struct Dirs {
    /// Prompt directory holding catalogue.yaml (default: prompts/ beside the flows)
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Data directory for lookups (default: data/ beside the flows)
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load and validate flows and the prompt catalogue; every error as file:line:col
    Check {
        /// Flow files or directories
        #[arg(default_value = "flows")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Run flow tests (scripted calls in flows/tests/)
    Test {
        /// Test files or folders of them; or flow files or folders of flows (`flows`),
        /// meaning the tests in flows/tests/ that call those flows
        #[arg(default_value = "flows/tests")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        dirs: Dirs,
        /// Print every test's timeline, not only failing ones
        #[arg(long, short)]
        verbose: bool,
        /// Also write the results as JUnit XML to this file, for CI
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Report, per flow, the states and transitions no test visited
        #[arg(long)]
        coverage: bool,
    },
    /// An interactive text call through a flow, on a simulated clock
    Simulate {
        flow: PathBuf,
        /// Read the caller's steps from this file instead of the terminal
        #[arg(long)]
        script: Option<PathBuf>,
        /// Rings before the answer (3 or more: the busy apology, P-RING)
        #[arg(long, default_value_t = 0)]
        rings: u32,
        /// Call variables, e.g. --var caller=13800138000
        #[arg(long = "var", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// The local time of the call, e.g. 2026-10-01T22:00 (default: now)
        #[arg(long, value_parser = hotline::flow::clock::parse_civil)]
        at: Option<jiff::civil::DateTime>,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// The flow as a diagram
    Graph {
        flow: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Answer calls: a SIP/RTP endpoint running the flows
    Serve(ServeArgs),
    /// JSON Schema of the flow format, for editors
    Schema {
        /// The schema of flow test files (flows/tests/*.yaml) instead
        #[arg(long)]
        tests: bool,
    },
    /// The prompt recordings the catalogue needs (used by scripts/gen-prompts.sh)
    Prompts {
        #[arg(long, default_value = "prompts")]
        dir: PathBuf,
        /// Only recordings that are missing, malformed or older than their text
        #[arg(long)]
        stale: bool,
    },
    /// Call records (P-RECORD), read from the store while the server runs
    Calls {
        #[command(subcommand)]
        cmd: CallsCmd,
    },
    /// Tickets filed by the flows, read from the store
    Tickets {
        #[command(subcommand)]
        cmd: TicketsCmd,
    },
    /// Water outages on a running server's ops API (token: HOTLINE_OPS_TOKEN)
    Outages {
        #[command(subcommand)]
        cmd: OutagesCmd,
    },
    /// Outbound calls (call-backs, surveys) on a running server's ops API
    Outbound {
        #[command(subcommand)]
        cmd: hotline::outbound::cli::OutboundCmd,
    },
    /// Take a running server out of rotation for an upgrade (POST /drain): the proxy
    /// stops sending it calls, calls in progress finish
    Drain {
        /// Only show whether it is draining and how many calls are left (GET /drain)
        #[arg(long)]
        status: bool,
        /// Wait until the last call has ended, printing the calls left as they fall
        #[arg(long, conflicts_with = "status")]
        wait: bool,
        #[command(flatten)]
        ops: OpsServer,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Settings file; every key and its default is in hotline.example.yaml
    #[arg(long)]
    config: Option<PathBuf>,
    /// SIP address, UDP and TCP (default 127.0.0.1:5060)
    #[arg(long)]
    sip: Option<std::net::SocketAddr>,
    /// RTP port range LO-HI (default 20000-39999)
    #[arg(long)]
    rtp_ports: Option<hotline::config::PortRange>,
    /// Call records, tickets and recordings (default ./var)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Flow files (default ./flows)
    #[arg(long)]
    flows: Option<PathBuf>,
    /// Prompt catalogue and WAVs (default ./prompts)
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Calls in flows at once (default 5000)
    #[arg(long)]
    max_calls: Option<usize>,
    /// Ops HTTP address (default 127.0.0.1:8080)
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
    /// Exit 0 once drained (POST /drain or SIGUSR1) and the last call has ended
    #[arg(long)]
    exit_when_drained: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

/// Designer commands print to pipes (`| head`, `| less`): a reader that goes away ends
/// them quietly, as it does any Unix filter, instead of with a panic on the write.
/// Not for a server, whose sockets must never kill it this way.
fn die_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn run(cli: Cli) -> ExitCode {
    if let Cmd::Serve(args) = cli.cmd {
        return serve(args);
    }
    die_quietly_on_closed_pipe();
    match cli.cmd {
        Cmd::Serve(_) => ExitCode::SUCCESS,
        Cmd::Check { paths, dirs } => check(&paths, &dirs),
        Cmd::Test {
            paths,
            dirs,
            verbose,
            junit,
            coverage,
        } => test(&paths, &dirs, verbose, junit.as_deref(), coverage),
        Cmd::Simulate {
            flow,
            script,
            rings,
            vars,
            at,
            dirs,
        } => simulate(&flow, script.as_deref(), rings, vars, at, &dirs),
        Cmd::Graph { flow, format } => graph_cmd(&flow, format),
        Cmd::Schema { tests } => {
            let s = if tests {
                schema::test_schema()
            } else {
                schema::schema()
            };
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Cmd::Prompts { dir, stale } => prompts(&dir, stale),
        Cmd::Calls { cmd } => calls_cmd(cmd),
        Cmd::Tickets { cmd } => tickets_cmd(cmd),
        Cmd::Outages { cmd } => outages_cmd(cmd),
        Cmd::Outbound { cmd } => hotline::outbound::cli::run(cmd),
        Cmd::Drain { status, wait, ops } => drain_cmd(status, wait, &ops),
    }
}

fn print_errors(errors: &[Diagnostic]) {
    for e in errors {
        eprintln!("{e}");
    }
}

fn project_for(path: &Path, dirs: &Dirs) -> (Project, Vec<Diagnostic>) {
    let prompts = dirs
        .prompts
        .clone()
        .unwrap_or_else(|| sibling(path, "prompts"));
    let data = dirs.data.clone().unwrap_or_else(|| sibling(path, "data"));
    Project::load(&prompts, &data)
}

fn check(paths: &[PathBuf], dirs: &Dirs) -> ExitCode {
    let first = paths
        .first()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("flows"));
    let (project, mut errors) = project_for(first, dirs);
    errors.extend(project.catalogue.check_files());
    let mut count = 0;
    let mut seen_names = std::collections::HashMap::new();
    let mut loaded: Vec<Flow> = Vec::new();
    for p in paths {
        let files = match flow::flow_files(p) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        for f in files {
            count += 1;
            match flow::load_flow(&f, Some(&project.catalogue), Some(&project.sources)) {
                Ok(fl) => {
                    if let Some(prev) = seen_names.insert(fl.name.clone(), f.clone()) {
                        errors.push(Diagnostic {
                            file: f.clone(),
                            pos: flow::Pos::at(1, 1),
                            message: format!(
                                "flow name '{}' is also used by {}",
                                fl.name,
                                prev.display()
                            ),
                        });
                    }
                    loaded.push(fl);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    let data_dir = dirs.data.clone().unwrap_or_else(|| sibling(first, "data"));
    let flows: Vec<&Flow> = loaded.iter().collect();
    errors.extend(hotline::data::validate::check(
        &flows,
        &project.catalogue,
        &data_dir,
    ));
    if errors.is_empty() {
        println!(
            "ok: {count} flow(s), {} prompt(s), {} recording(s)",
            project.catalogue.prompts.len(),
            project.catalogue.clips.len()
        );
        ExitCode::SUCCESS
    } else {
        print_errors(&errors);
        eprintln!("{} error(s)", errors.len());
        ExitCode::FAILURE
    }
}

fn load_one(path: &Path, project: &Project) -> Result<Arc<Flow>, Vec<Diagnostic>> {
    flow::load_flow(path, Some(&project.catalogue), Some(&project.sources)).map(Arc::new)
}

impl Dirs {
    fn runner(&self) -> runner::Dirs {
        runner::Dirs {
            prompts: self.prompts.clone(),
            data: self.data.clone(),
        }
    }
}

fn test(
    paths: &[PathBuf],
    dirs: &Dirs,
    verbose: bool,
    junit_file: Option<&Path>,
    coverage: bool,
) -> ExitCode {
    let sel = runner::select(paths);
    for p in &sel.problems {
        eprintln!("{p}");
    }
    for f in &sel.untested {
        println!(
            "note: no test file in {} calls {}",
            f.parent().unwrap_or(Path::new(".")).join("tests").display(),
            f.display()
        );
    }
    let dirs = dirs.runner();
    let mut runs = Vec::new();
    let mut covered = BTreeSet::new();
    for file in &sel.test_files {
        let r = runner::run_file(file, &dirs);
        print_errors(&r.warnings);
        if !r.errors.is_empty() {
            println!("BROKEN {}: the file cannot be read", file.display());
            for e in &r.errors {
                println!("      {e}");
            }
        }
        for c in &r.cases {
            match &c.verdict {
                Verdict::Passed => {
                    covered.extend(c.covers.iter().cloned());
                    println!("ok    {}: {}", file.display(), c.name);
                    if verbose {
                        for e in &c.timeline {
                            println!("        {}", render_entry(e));
                        }
                    }
                }
                Verdict::Failed(why) => {
                    println!("FAIL  {}:{}: {}", file.display(), c.line, c.name);
                    for l in why.lines() {
                        println!("      {l}");
                    }
                }
                Verdict::Broken(errors) => {
                    println!("BROKEN {}:{}: {}", file.display(), c.line, c.name);
                    for e in errors {
                        println!("      {e}");
                    }
                }
            }
        }
        runs.push(r);
    }
    let t = runner::Totals::of(&runs);
    println!(
        "\n{} passed, {} failed{}; protocol rules covered: {}",
        t.passed,
        t.failed,
        if t.broken > 0 {
            format!(", {} broken", t.broken)
        } else {
            String::new()
        },
        covered.into_iter().collect::<Vec<_>>().join(" ")
    );
    let mut ok = t.failed == 0 && t.broken == 0 && sel.problems.is_empty();
    if sel.test_files.is_empty() && sel.problems.is_empty() {
        eprintln!("no flow tests found");
        ok = false;
    }
    if coverage {
        // Flows named on the command line that no test calls are shown too, at 0 %.
        let untested: Vec<Arc<Flow>> = sel
            .untested
            .iter()
            .filter_map(|f| {
                let (project, _) = dirs.project(f);
                load_one(f, &project).ok()
            })
            .collect();
        let untested: Vec<&Flow> = untested.iter().map(Arc::as_ref).collect();
        print!(
            "\n{}",
            coverage::render(&coverage::compute(&runs, &untested))
        );
    }
    if let Some(path) = junit_file {
        let written = junit::render(&runs).and_then(|xml| std::fs::write(path, xml));
        if let Err(e) = written {
            eprintln!("{}: cannot write the JUnit report: {e}", path.display());
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The designer at a terminal as the caller: a step is asked for when the hotline
/// waits for one, and a mistyped step is said and asked for again, since a person can
/// retype it. Scripts and piped input are read whole instead (`script::parse_script`).
struct TerminalCaller {
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Caller for TerminalCaller {
    fn next(&mut self, now: Duration) -> Option<Step> {
        loop {
            print!("[{:>7.3}s] caller> ", now.as_secs_f64());
            let _ = std::io::stdout().flush();
            let line = self.lines.next()?.ok()?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line == "help" || line == "?" {
                println!("{HELP}");
                continue;
            }
            match Step::parse(line) {
                Ok(s) => return Some(s),
                Err(e) => eprintln!("{e}"),
            }
        }
    }
}

/// The caller's steps from a script's text; a bad line stops the simulation before
/// the call starts, each one named with its line.
fn script_caller(name: &str, text: &str) -> Result<VecDeque<Step>, ExitCode> {
    match script::parse_script(text) {
        Ok(steps) => Ok(steps.into()),
        Err(errors) => {
            for e in &errors {
                // `at 3s: pres 1`: the message names the step, the line says where it was.
                let whole = if e.message.contains(&e.text) {
                    String::new()
                } else {
                    format!(" in '{}'", e.text)
                };
                eprintln!("{name}:{}: {}{whole}", e.line, e.message);
            }
            eprintln!("{HELP}");
            eprintln!("{} bad step(s): the simulation did not start", errors.len());
            Err(ExitCode::FAILURE)
        }
    }
}

fn simulate(
    path: &Path,
    script: Option<&Path>,
    rings: u32,
    vars: Vec<(String, String)>,
    at: Option<jiff::civil::DateTime>,
    dirs: &Dirs,
) -> ExitCode {
    let (project, perrs) = project_for(path, dirs);
    print_errors(&perrs);
    let flow = match load_one(path, &project) {
        Ok(f) => f,
        Err(e) => {
            print_errors(&e);
            return ExitCode::FAILURE;
        }
    };
    let stdin = std::io::stdin();
    let mut caller: Box<dyn Caller> = match script {
        Some(s) => match flow::read_limited(s) {
            Ok(text) => match script_caller(&s.display().to_string(), &text) {
                Ok(steps) => Box::new(steps),
                Err(code) => return code,
            },
            Err(e) => {
                eprintln!("{}: {e}", s.display());
                return ExitCode::FAILURE;
            }
        },
        None if std::io::IsTerminal::is_terminal(&stdin) => Box::new(TerminalCaller {
            lines: stdin.lock().lines(),
        }),
        None => {
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut stdin.lock(), &mut text) {
                eprintln!("standard input: {e}");
                return ExitCode::FAILURE;
            }
            match script_caller("stdin", &text) {
                Ok(steps) => Box::new(steps),
                Err(code) => return code,
            }
        }
    };
    println!(
        "simulated call to '{}' ({} ring(s)); type 'help' for caller steps; end of input = the caller stays silent",
        flow.name, rings
    );
    // A designer's simulated call happens now, unless --at says when.
    let at = match at.map(|dt| flow::clock::in_zone(dt, &flow.settings.timezone)) {
        None => jiff::Timestamp::now(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("--at: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut sim = Sim::in_project_at(
        flow.clone(),
        &project,
        rings,
        vars.into_iter().collect(),
        Some(at),
    );
    sim.run(caller.as_mut(), &mut |e| println!("{}", render_entry(e)));
    ExitCode::SUCCESS
}

fn graph_cmd(path: &Path, format: GraphFormat) -> ExitCode {
    let mut d = flow::Diags::new(path);
    let text = match flow::read_limited(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    match flow::load::load_str(&text, path, &mut d) {
        Some(f) if d.is_empty() => {
            let fmt = match format {
                GraphFormat::Mermaid => Format::Mermaid,
                GraphFormat::Dot => Format::Dot,
            };
            print!("{}", graph::render(&f, fmt));
            ExitCode::SUCCESS
        }
        _ => {
            print_errors(&d.into_sorted());
            ExitCode::FAILURE
        }
    }
}

fn prompts(dir: &Path, stale: bool) -> ExitCode {
    let file = dir.join("catalogue.yaml");
    let mut d = flow::Diags::new(&file);
    let text = match flow::read_limited(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let Some(cat) = flow::Catalogue::parse(&text, &file, dir, &mut d) else {
        print_errors(&d.into_sorted());
        return ExitCode::FAILURE;
    };
    if !d.is_empty() {
        print_errors(&d.into_sorted());
        return ExitCode::FAILURE;
    }
    let mut out = std::io::stdout().lock();
    for c in cat.plan() {
        // A closed pipe (`| head`) ends the listing quietly.
        if (!stale || c.problem.is_some()) && writeln!(out, "{}\t{}", c.id, c.text).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut cfg = match &args.config {
        Some(p) => match hotline::config::Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => hotline::config::Config::default(),
    };
    if let Some(v) = args.sip {
        cfg.sip = v;
    }
    if let Some(v) = args.rtp_ports {
        cfg.rtp_ports = v;
    }
    if let Some(v) = args.data {
        cfg.data = v;
    }
    if let Some(v) = args.flows {
        cfg.flows = v;
    }
    if let Some(v) = args.prompts {
        cfg.prompts = v;
    }
    if let Some(v) = args.max_calls {
        cfg.max_calls = v;
    }
    if let Some(v) = args.http {
        cfg.http = v;
    }
    if args.exit_when_drained {
        cfg.exit_when_drained = true;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.async_workers())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Spawned, not run by block_on: the server's loop then runs on the workers, where
    // a new call's hand-over wakes no other thread (block_on's own thread was woken
    // for every call).
    match rt.block_on(async { tokio::spawn(hotline::server::serve(cfg)).await }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("hotline stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

// The store's commands: kept together here, apart from the designer's.
use hotline::store;

#[derive(Subcommand)]
enum CallsCmd {
    /// One line a call, oldest first
    List {
        /// One JSON object a line, with every event
        #[arg(long)]
        json: bool,
        /// Only the most recent N calls
        #[arg(long)]
        last: Option<usize>,
        /// The server's data directory
        #[arg(long, default_value = "var")]
        data: PathBuf,
    },
    /// One call in full, with its timeline
    Show {
        call_id: String,
        #[arg(long, default_value = "var")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum TicketsCmd {
    /// One line a ticket, in id order
    List {
        #[arg(long)]
        json: bool,
        /// Only tickets in this delivery state
        #[arg(long, value_enum)]
        state: Option<DeliveryArg>,
        #[arg(long, default_value = "var")]
        data: PathBuf,
    },
    /// One ticket in full
    Show {
        id: i64,
        #[arg(long, default_value = "var")]
        data: PathBuf,
    },
    /// Send a failed ticket again (or a pending one now); the running server picks it up
    Retry {
        /// The ticket
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        id: Option<i64>,
        /// Every ticket parked as failed
        #[arg(long)]
        all_failed: bool,
        #[arg(long, default_value = "var")]
        data: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DeliveryArg {
    Pending,
    Delivered,
    Failed,
}

impl From<DeliveryArg> for store::Delivery {
    fn from(d: DeliveryArg) -> Self {
        match d {
            DeliveryArg::Pending => store::Delivery::Pending,
            DeliveryArg::Delivered => store::Delivery::Delivered,
            DeliveryArg::Failed => store::Delivery::Failed,
        }
    }
}

/// Runs a store command, turning its error into a message and a failing exit.
fn with_store(
    data: &Path,
    f: impl FnOnce(&store::Store) -> Result<ExitCode, store::StoreError>,
) -> ExitCode {
    // Read-only: the server may be writing, and a listing must never take its lock.
    match store::Store::open_read_only(data).and_then(|s| f(&s)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn calls_cmd(cmd: CallsCmd) -> ExitCode {
    match cmd {
        CallsCmd::List { json, last, data } => with_store(&data, |st| {
            let calls = st.list_calls(&store::CallQuery {
                last,
                call_id: None,
            })?;
            let mut out = std::io::stdout().lock();
            for c in &calls {
                let tickets = st.tickets_for_call(&c.call_id)?;
                let line = if json {
                    call_json(c, &tickets)
                } else {
                    let ids: Vec<String> = tickets.iter().map(|t| t.id.to_string()).collect();
                    format!(
                        "{}  {}  {}  {}  rings={}  {}  {}{}  tickets={}",
                        c.received_at.short(),
                        c.call_id,
                        c.flow,
                        c.caller,
                        c.rings,
                        store::format_duration_ms(c.duration_ms()),
                        c.outcome,
                        c.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default(),
                        if ids.is_empty() {
                            "-".into()
                        } else {
                            ids.join(",")
                        }
                    )
                };
                // A closed pipe (`| head`) ends the listing quietly.
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        CallsCmd::Show { call_id, data } => with_store(&data, |st| {
            let calls = st.get_call(&call_id)?;
            if calls.is_empty() {
                eprintln!("no call {call_id} in {}", st.path().display());
                return Ok(ExitCode::FAILURE);
            }
            for c in &calls {
                let tickets = st.tickets_for_call(&c.call_id)?;
                print!("{}", render_call(c, &tickets));
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn call_json(c: &store::CallRecord, tickets: &[store::Ticket]) -> String {
    // Flattened rather than built as a serde_json::Value, to keep the record's field
    // order: a person reads these lines too.
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(flatten)]
        call: &'a store::CallRecord,
        duration_ms: i64,
        tickets: Vec<store::TicketId>,
    }
    serde_json::to_string(&Line {
        call: c,
        duration_ms: c.duration_ms(),
        tickets: tickets.iter().map(|t| t.id).collect(),
    })
    .unwrap_or_default()
}

fn render_call(c: &store::CallRecord, tickets: &[store::Ticket]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "Call-ID   {}", c.call_id);
    let _ = writeln!(s, "flow      {}", c.flow);
    let _ = writeln!(s, "from      {}", c.from);
    let _ = writeln!(s, "to        {}", c.to);
    let _ = writeln!(s, "caller    {}", c.caller);
    let _ = writeln!(s, "received  {}", c.received_at);
    match c.answered_at {
        Some(a) => {
            let _ = writeln!(s, "answered  {a}  after {} ring(s)", c.rings);
        }
        None => {
            let _ = writeln!(s, "answered  never ({} ring(s))", c.rings);
        }
    }
    let _ = writeln!(
        s,
        "ended     {}  duration {}",
        c.ended_at,
        store::format_duration_ms(c.duration_ms())
    );
    let _ = writeln!(
        s,
        "outcome   {}{}",
        c.outcome,
        c.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "path      {}", c.path.join(" -> "));
    for t in tickets {
        let _ = writeln!(
            s,
            "ticket    {}  {} {}  {}",
            t.id,
            t.category,
            t.priority,
            t.delivery.name()
        );
    }
    let _ = writeln!(s, "events    (seconds from the answer)");
    for e in &c.events {
        let _ = writeln!(
            s,
            "  {:>+9.3}  {:<10} {}",
            e.offset_ms as f64 / 1000.0,
            e.kind,
            e.detail
        );
    }
    s
}

fn tickets_cmd(cmd: TicketsCmd) -> ExitCode {
    match cmd {
        TicketsCmd::List { json, state, data } => with_store(&data, |st| {
            let mut out = std::io::stdout().lock();
            for t in st.list_tickets(state.map(Into::into))? {
                let line = if json {
                    serde_json::to_string(&t).unwrap_or_default()
                } else {
                    format!(
                        "{}  {}  {}  {}  {}  due {}  {}  call {}",
                        t.id,
                        t.created_at.short(),
                        t.category,
                        t.priority,
                        t.caller,
                        t.due_at.map(|d| d.short()).unwrap_or_else(|| "-".into()),
                        t.delivery.name(),
                        t.call_id
                    )
                };
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        TicketsCmd::Show { id, data } => with_store(&data, |st| {
            let Some(t) = st.get_ticket(store::TicketId(id))? else {
                eprintln!("no ticket {id} in {}", st.path().display());
                return Ok(ExitCode::FAILURE);
            };
            println!("ticket      {}", t.id);
            println!("key         {}", t.idempotency_key);
            println!("call        {}", t.call_id);
            println!("caller      {}", t.caller);
            println!("flow        {} (state {})", t.flow, t.state);
            println!("category    {}", t.category);
            println!("priority    {}", t.priority);
            println!("department  {}", t.department.as_deref().unwrap_or("-"));
            println!("created     {}", t.created_at);
            println!(
                "due         {}",
                t.due_at
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            println!(
                "delivery    {} ({} attempt(s)){}",
                t.delivery.name(),
                t.attempts,
                t.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
            if let Some(d) = t.delivered_at {
                println!("delivered   {d}");
            }
            for (k, v) in &t.fields {
                println!("field       {k} = {v}");
            }
            for r in &t.recordings {
                println!("recording   {r}");
            }
            if let Some(n) = t.next_attempt_at {
                println!("next try    {n}");
            }
            Ok(ExitCode::SUCCESS)
        }),
        TicketsCmd::Retry {
            id,
            all_failed,
            data,
        } => tickets_retry(id, all_failed, &data),
    }
}

fn tickets_retry(id: Option<i64>, all_failed: bool, data: &Path) -> ExitCode {
    // Read-write beside the server's own connection: a short UPDATE that SQLite's lock
    // (with its busy timeout) serialises with the server's writes.
    // Opening read-write creates a store; retrying in one that is not there is a typo.
    if !data.join(store::DB_FILE).exists() {
        eprintln!(
            "{}",
            store::StoreError::Missing {
                path: data.join(store::DB_FILE)
            }
        );
        return ExitCode::FAILURE;
    }
    let st = match store::Store::open(data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (id, all_failed) {
        (_, true) => st.retry_all_failed().map(|n| {
            println!("{n} failed ticket(s) back to pending");
            ExitCode::SUCCESS
        }),
        (Some(id), false) => st.retry_ticket(store::TicketId(id)).map(|t| match t {
            None => {
                eprintln!("no ticket {id} in {}", st.path().display());
                ExitCode::FAILURE
            }
            Some(t) if t.delivery == store::Delivery::Delivered => {
                eprintln!("ticket {id} is already delivered");
                ExitCode::FAILURE
            }
            Some(_) => {
                println!("ticket {id} pending, due now");
                ExitCode::SUCCESS
            }
        }),
        (None, false) => Ok(ExitCode::FAILURE),
    };
    result.unwrap_or_else(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })
}

// `hotline outages`: the ops API's outage routes, for a dispatcher at a terminal.

#[derive(clap::Args)]
struct OpsServer {
    /// The running server's ops HTTP
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Print the server's JSON answer as it is
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum OutagesCmd {
    /// Publish an outage: callers from the area hear it at once
    Add {
        /// Area code, as callers key it (the catalogue's area_N)
        area: String,
        /// One of the catalogue's reason_* prompts
        reason: String,
        /// When water is back: HH:MM local time, or an RFC 3339 time
        until: String,
        #[command(flatten)]
        ops: OpsServer,
    },
    /// The outages, in force and ended
    List {
        #[command(flatten)]
        ops: OpsServer,
    },
    /// Withdraw an outage, by its id (or its area code)
    End {
        id: String,
        #[command(flatten)]
        ops: OpsServer,
    },
}

/// One request to a running server's ops API: the answer's body, or the exit code after
/// saying what went wrong.
fn ops_request(
    method: reqwest::Method,
    ops: &OpsServer,
    path: &str,
    body: Option<&serde_json::Value>,
    token: Option<&str>,
) -> Result<String, ExitCode> {
    let url = format!("{}{path}", ops.server.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start: {e}");
            ExitCode::FAILURE
        })?;
    let answer = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        let mut req = client.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t.trim());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        Ok::<_, reqwest::Error>((status, resp.text().await?))
    });
    let (status, text) = answer.map_err(|e| {
        eprintln!("{url}: {e}");
        ExitCode::FAILURE
    })?;
    if !status.is_success() {
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            "\nset HOTLINE_OPS_TOKEN to the server's ops token"
        } else {
            ""
        };
        eprintln!("{url}: {status}\n{}{hint}", text.trim_end());
        return Err(ExitCode::FAILURE);
    }
    Ok(text)
}

/// `hotline drain`: the rolling upgrade's first step, without curl and the token's header.
fn drain_cmd(status_only: bool, wait: bool, ops: &OpsServer) -> ExitCode {
    let token = std::env::var(hotline::server::auth::TOKEN_ENV).ok();
    let method = if status_only {
        reqwest::Method::GET
    } else {
        reqwest::Method::POST
    };
    let mut text = match ops_request(method, ops, "/drain", None, token.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut last_left = None;
    loop {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let left = v["calls_left"].as_u64().unwrap_or(0);
        if ops.json {
            println!("{}", text.trim_end());
        } else if last_left != Some(left) {
            match v["draining"].as_bool() {
                Some(true) => println!(
                    "draining since {} ({}): {left} calls left",
                    match &v["draining_since"] {
                        serde_json::Value::String(t) => t.clone(),
                        other => other.to_string(),
                    },
                    v["draining_by"].as_str().unwrap_or("?"),
                ),
                _ => println!("not draining: {left} calls in progress"),
            }
        }
        last_left = Some(left);
        if !wait || left == 0 {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        text = match ops_request(reqwest::Method::GET, ops, "/drain", None, token.as_deref()) {
            Ok(t) => t,
            // With --exit-when-drained the server goes away as its last call ends.
            Err(_) if !ops.json => {
                println!("the server is gone (exit when drained?)");
                return ExitCode::SUCCESS;
            }
            Err(code) => return code,
        };
    }
}

fn outages_cmd(cmd: OutagesCmd) -> ExitCode {
    let token = std::env::var(hotline::server::auth::TOKEN_ENV).ok();
    let (method, path, body, ops) = match &cmd {
        OutagesCmd::Add {
            area,
            reason,
            until,
            ops,
        } => (
            reqwest::Method::POST,
            "/outages".to_string(),
            Some(serde_json::json!({ "area": area, "reason": reason, "until": until })),
            ops,
        ),
        OutagesCmd::List { ops } => (reqwest::Method::GET, "/outages".to_string(), None, ops),
        OutagesCmd::End { id, ops } => (
            reqwest::Method::DELETE,
            format!(
                "/outages/{}",
                percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            ),
            None,
            ops,
        ),
    };
    let text = match ops_request(method, ops, &path, body.as_ref(), token.as_deref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if ops.json {
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
        return ExitCode::SUCCESS;
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    match cmd {
        OutagesCmd::Add { .. } => {
            if let Some(note) = v["note"].as_str() {
                println!("{note}");
            }
            println!(
                "published outage {}: area {}, {}, until {}",
                s(&v, "id"),
                s(&v, "area"),
                s(&v, "reason"),
                s(&v, "until")
            );
            println!("callers hear ({} s): {}", v["seconds"], s(&v, "text"));
        }
        OutagesCmd::List { .. } => {
            for o in v.as_array().into_iter().flatten() {
                println!(
                    "{}\tarea {}\t{}\tuntil {}\t{}",
                    s(o, "id"),
                    s(o, "area"),
                    s(o, "reason"),
                    s(o, "until"),
                    s(o, "state")
                );
            }
        }
        OutagesCmd::End { id, .. } => println!("outage {id} withdrawn"),
    }
    ExitCode::SUCCESS
}
