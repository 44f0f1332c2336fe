//! The flow language's counters, patterns on caller data, built-in call variables and
//! local time, on small flows run by the simulator (the interpreter of live calls).
use hotline::designer::project::Project;
use hotline::designer::script::Step;
use hotline::designer::sim::{Entry, Sim};
use hotline::flow::{self, Flow, clock};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn project() -> &'static Project {
    static P: OnceLock<Project> = OnceLock::new();
    P.get_or_init(|| {
        let (p, errors) = Project::load(Path::new("prompts"), Path::new("data"));
        assert!(errors.is_empty(), "{errors:?}");
        p
    })
}

fn text(states: &str) -> String {
    format!(
        "flow: t\nstart: a\non:\n  no_input:\n    1: {{ say: how_can_i_help }}\n    2: {{ hangup: 0s }}\n  no_match: {{ say: key_not_recognised }}\n  fault: {{ hangup: 0s }}\nstates:\n{states}  done:\n    say: thanks_goodbye\n    hangup: 0s\n"
    )
}

fn load(states: &str) -> Result<Arc<Flow>, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, text(states)).unwrap();
    let p = project();
    flow::load_flow(&path, Some(&p.catalogue), Some(&p.sources))
        .map(Arc::new)
        .map_err(|e| {
            e.iter()
                .map(|d| {
                    // Paths of the temporary file are not the point.
                    let s = d.to_string();
                    s[s.find("t.yaml").unwrap_or(0)..].to_string()
                })
                .collect()
        })
}

fn flow(states: &str) -> Arc<Flow> {
    load(states).unwrap_or_else(|e| panic!("{}", e.join("\n")))
}

/// The tickets' fields (`k=v,...`) and the prompts, in order.
fn call(f: Arc<Flow>, vars: &[(&str, &str)], at: Option<&str>, steps: &[&str]) -> Vec<String> {
    let at = at.map(|s| clock::parse_local(s, &f.settings.timezone).unwrap());
    let vars = vars
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut sim = Sim::in_project_at(f, project(), 0, vars, at);
    let mut caller: VecDeque<Step> = steps.iter().map(|s| Step::parse(s).unwrap()).collect();
    sim.run(&mut caller, &mut |_| {});
    sim.timeline
        .iter()
        .filter_map(|e| match e {
            Entry::Heard { prompt, .. } => Some(prompt.clone()),
            Entry::Ticket { ticket, .. } => Some(
                ticket
                    .fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect()
}

const COUNTING: &str = "  a:
    inc: tries
    say: ask_account
    collect: { into: n, min: 3, max: 3, next: b }
    on:
      no_match: { inc: { wrong: 2 }, say: key_not_recognised, goto: a }
  b:
    next:
      - { when: \"tries >= 3\", goto: c }
      - { when: \"tries < 3\", goto: a }
      - { goto: done }
  c:
    inc: [visits, visits]
    ticket: { category: inquiry, fields: { tries: \"{tries}\", wrong: \"{wrong}\", visits: \"{visits}\" } }
    next: done
";

#[test]
fn counters_count_across_visits_and_start_from_zero() {
    // A short entry (no_match: +2 wrong), then two whole ones: a is entered three times.
    let seen = call(
        flow(COUNTING),
        &[],
        None,
        &["press 12#", "press 123", "press 456"],
    );
    assert_eq!(
        seen,
        [
            "ask_account",
            "key_not_recognised",
            "ask_account",
            "ask_account",
            "tries=3,wrong=2,visits=2",
            "thanks_goodbye"
        ]
    );
    // Two entries are not enough: the call is still asking.
    let seen = call(
        flow(COUNTING),
        &[],
        None,
        &["press 123", "press 456", "hangup"],
    );
    assert!(!seen.iter().any(|s| s.starts_with("tries=")), "{seen:?}");
}

const CALLER_KIND: &str = "  a:
    next:
      - { when: 'caller matches \"^1[3-9][0-9]{9}$\"', goto: mobile }
      - { when: \"not called matches '^t$'\", goto: elsewhere }
      - { goto: landline }
  mobile:
    ticket: { category: inquiry, fields: { kind: mobile, called: \"{called}\", id: \"{call_id}\" } }
    next: done
  landline:
    ticket: { category: inquiry, fields: { kind: landline, called: \"{called}\" } }
    next: done
  elsewhere:
    ticket: { category: inquiry, fields: { kind: other, called: \"{called}\" } }
    next: done
";

#[test]
fn patterns_on_the_caller_and_the_called_number() {
    let f = flow(CALLER_KIND);
    let mobile = call(f.clone(), &[("caller", "13800138000")], None, &[]);
    assert_eq!(mobile[0], "kind=mobile,called=t,id=simulated", "{mobile:?}");
    let land = call(f.clone(), &[("caller", "02188886666")], None, &[]);
    assert_eq!(land[0], "kind=landline,called=t");
    let short = call(f.clone(), &[("caller", "1380013800")], None, &[]);
    assert_eq!(
        short[0], "kind=landline,called=t",
        "ten digits is no mobile"
    );
    let other = call(
        f,
        &[("caller", "02188886666"), ("called", "8001")],
        None,
        &[],
    );
    assert_eq!(other[0], "kind=other,called=8001");
}

#[test]
fn a_bad_pattern_or_counter_is_a_load_error_with_its_place() {
    let e = load(
        "  a:\n    next:\n      - { when: 'caller matches \"[0-9\"', goto: done }\n      - { goto: done }\n",
    )
    .unwrap_err();
    assert!(
        e.iter().any(|m| m.starts_with(
            "t.yaml:12:17: condition \"caller matches \"[0-9\"\": not a valid regular expression"
        )),
        "{e:?}"
    );
    let e = load("  a:\n    inc: { tries: 0, \"bad name\": 1 }\n    next: done\n").unwrap_err();
    assert!(
        e.iter()
            .any(|m| m.starts_with("t.yaml:11:19: inc: tries must go up or down")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("must be a name")), "{e:?}");
}

const HOURS: &str = "  a:
    next:
      - { when: \"now.holiday\", goto: holiday }
      - { when: \"not now.workday\", goto: closed }
      - { when: \"now.time < 08:00\", goto: closed }
      - { when: \"now.hour >= 20\", goto: closed }
      - { goto: open }
  holiday:
    ticket: { category: inquiry, fields: { open: \"no\", why: \"{now.holiday_name}\", at: \"{now.date} {now.time} {now.weekday}\" } }
    next: done
  closed:
    ticket: { category: inquiry, fields: { open: \"no\", at: \"{now.date} {now.time} {now.weekday}\" } }
    next: done
  open:
    ticket: { category: inquiry, fields: { open: \"yes\", at: \"{now.date} {now.hour}:{now.minute} {now.weekday}\" } }
    next: done
";

#[test]
fn local_time_and_the_holiday_calendar_decide() {
    let f = flow(HOURS);
    let at = |t: &str| call(f.clone(), &[], Some(t), &[])[0].clone();
    assert_eq!(
        at("2026-10-01T10:00"),
        "open=no,why=國慶節,at=2026-10-01 10:00 4"
    );
    assert_eq!(at("2026-01-06T07:59"), "open=no,at=2026-01-06 07:59 2");
    assert_eq!(at("2026-01-06T08:00"), "open=yes,at=2026-01-06 8:0 2");
    assert_eq!(at("2026-01-06T19:59"), "open=yes,at=2026-01-06 19:59 2");
    assert_eq!(at("2026-01-06T20:00"), "open=no,at=2026-01-06 20:00 2");
    assert_eq!(at("2026-01-10T12:00"), "open=no,at=2026-01-10 12:00 6");
    // A Saturday worked instead of a holiday (調休).
    assert_eq!(at("2026-10-10T12:00"), "open=yes,at=2026-10-10 12:0 6");
    // Without `at`, a simulated call is on Monday 2026-01-05 at 10:00.
    assert_eq!(call(f, &[], None, &[])[0], "open=yes,at=2026-01-05 10:0 1");
}

#[test]
fn the_clock_runs_on_during_the_call() {
    // Asked at 19:59:50, answered after 12 s of greeting and keys: it is 20:00 by then.
    let f = flow(
        "  a:\n    say: greeting\n    menu: { \"1\": b }\n  b:\n    ticket: { category: inquiry, fields: { at: \"{now.time}\" } }\n    next: done\n",
    );
    let seen = call(f, &[], Some("2026-01-06T19:59:50"), &["press 1"]);
    assert_eq!(seen[1], "at=20:00", "{seen:?}");
}

#[test]
fn the_time_zone_is_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    let body = text(
        "  a:\n    ticket: { category: inquiry, fields: { at: \"{now.time}\" } }\n    next: done\n",
    );
    std::fs::write(
        &path,
        body.replace("start: a\n", "start: a\nsettings:\n  timezone: UTC\n"),
    )
    .unwrap();
    let p = project();
    let f = Arc::new(flow::load_flow(&path, Some(&p.catalogue), Some(&p.sources)).unwrap());
    // 10:00 in Shanghai is 02:00 UTC.
    let t = clock::parse_local("2026-01-05T10:00", &clock::default_time_zone()).unwrap();
    let mut sim = Sim::in_project_at(f, p, 0, Default::default(), Some(t));
    sim.run(&mut VecDeque::<Step>::new(), &mut |_| {});
    let fields = sim.timeline.iter().find_map(|e| match e {
        Entry::Ticket { ticket, .. } => Some(ticket.fields.clone()),
        _ => None,
    });
    assert_eq!(fields.unwrap(), [("at".to_string(), "02:00".to_string())]);
    std::fs::write(
        &path,
        body.replace(
            "start: a\n",
            "start: a\nsettings:\n  timezone: Asia/Shangai\n",
        ),
    )
    .unwrap();
    let e = flow::load_flow(&path, Some(&p.catalogue), Some(&p.sources)).unwrap_err();
    assert!(
        e[0].to_string()
            .contains(":4:13: settings.timezone: 'Asia/Shangai' is not a time zone"),
        "{e:?}"
    );
}
