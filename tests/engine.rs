//! The interpreter under random callers: it never panics, and once the caller stops
//! doing anything, every call ends within a bounded time.
use hotline::designer::project::Project;
use hotline::designer::script::{Action, Step};
use hotline::designer::sim::{CallSetup, Entry, Sim};
use hotline::flow::catalogue::Catalogue;
use hotline::flow::{self, Command, Event, Flow, LookupResult, Session};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

struct Fixture {
    project: Project,
    flows: Vec<Arc<Flow>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (project, errors) = Project::load(Path::new("prompts"), Path::new("data"));
        assert!(errors.is_empty());
        let flows = [
            "flows/property.yaml",
            "flows/water.yaml",
            "flows/callback.yaml",
        ]
        .iter()
        .map(|f| {
            Arc::new(
                flow::load_flow(
                    Path::new(f),
                    Some(&project.catalogue),
                    Some(&project.sources),
                )
                .unwrap(),
            )
        })
        .collect();
        Fixture { project, flows }
    })
}

/// A silent caller ends within this long from any state the flows have.
const BOUND: Duration = Duration::from_secs(10 * 60);

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => "[0-9*#]{1,12}".prop_map(Action::Press),
        2 => (0u64..12_000).prop_map(|ms| Action::Silence(Duration::from_millis(ms))),
        2 => (100u64..8_000).prop_map(|ms| Action::Voice(Duration::from_millis(ms))),
        1 => Just(Action::Quiet),
        1 => Just(Action::Noise),
        1 => Just(Action::LookupFails),
        1 => (0u64..15_000).prop_map(|ms| Action::LookupSlow(Duration::from_millis(ms))),
        1 => Just(Action::TicketFails),
        1 => Just(Action::TransferFails),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (action(), proptest::option::weighted(0.1, 0u64..120_000)).prop_map(|(action, at)| Step {
        at: at.map(Duration::from_millis),
        action,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_caller_is_served_and_the_call_ends(
        which in 0usize..3,
        rings in 0u32..6,
        steps in proptest::collection::vec(step(), 0..25),
    ) {
        let fx = fixture();
        let flow = fx.flows[which].clone();
        let mut sim = Sim::new(
            flow,
            &fx.project.catalogue,
            fx.project.catalogue.clone(),
            fx.project.data.as_ref(),
            CallSetup { rings, vars: Default::default() },
        );
        let mut caller: VecDeque<Step> = steps.into_iter().collect();
        sim.run(&mut caller, &mut |_| {});
        let last_caller = sim
            .timeline
            .iter()
            .filter_map(|e| match e {
                Entry::Caller { at, .. } => Some(*at),
                _ => None,
            })
            .max()
            .unwrap_or_default();
        let end = sim.timeline.iter().find_map(|e| match e {
            Entry::End { at, outcome } => Some((*at, outcome.clone())),
            _ => None,
        });
        let (at, outcome) = end.expect("the call never ended");
        prop_assert!(at <= last_caller + BOUND, "ended at {at:?}, last caller step at {last_caller:?}");
        prop_assert!(!matches!(outcome, flow::Outcome::Failed(_)), "{outcome:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// P-EMERG: once a caller has said it is an emergency, an emergency ticket is filed
    /// whatever they do next: speak, key, fall silent, mumble, make noise or hang up.
    #[test]
    fn an_emergency_once_chosen_is_always_filed(
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        let fx = fixture();
        let mut script: VecDeque<Step> = ["press 1", "press 1"]
            .iter()
            .map(|s| Step::parse(s).unwrap())
            .collect();
        // A ticket store that fails is P-FAULT's business, not this property's.
        script.extend(steps.into_iter().filter(|s| !matches!(s.action, Action::TicketFails)));
        let mut sim = Sim::new(
            fx.flows[0].clone(),
            &fx.project.catalogue,
            fx.project.catalogue.clone(),
            fx.project.data.as_ref(),
            CallSetup { rings: 0, vars: Default::default() },
        );
        sim.run(&mut script, &mut |_| {});
        let entered = sim.timeline.iter().any(|e| matches!(e, Entry::State { name, .. } if name == "emergency"));
        prop_assert!(entered);
        let filed = sim.timeline.iter().any(|e| matches!(e, Entry::Ticket { ticket, .. }
            if ticket.category == "emergency-repair" && ticket.priority == flow::model::Priority::Emergency));
        prop_assert!(filed, "no emergency ticket: {:#?}", sim.timeline);
    }
}

/// Drives a session with raw events, including ones that make no sense (stale ids,
/// answers nobody asked for), completing its commands as a call layer would.
fn drive(flow: Arc<Flow>, cat: &Arc<Catalogue>, events: Vec<(u64, Event)>) -> (Duration, bool) {
    let t0 = Instant::now();
    let mut s = Session::new(flow, cat.clone(), Default::default(), t0);
    let mut now = t0;
    let mut pending: Vec<(Instant, Event)> = Vec::new();
    s.handle(Event::Answered { rings: 0 }, now);
    let pump = |s: &mut Session, now: Instant, pending: &mut Vec<(Instant, Event)>| {
        while let Some(c) = s.poll_command() {
            match c {
                Command::Play { id, utterances } => {
                    let d: Duration = utterances.iter().map(|u| cat.duration(u)).sum();
                    pending.push((now + d, Event::PlayDone { id }));
                }
                Command::Lookup { id, .. } => pending.push((
                    now + Duration::from_millis(300),
                    Event::LookupDone {
                        id,
                        result: LookupResult::NotFound,
                    },
                )),
                Command::FileTicket { id, .. } => pending.push((
                    now,
                    Event::TicketDone {
                        id,
                        result: Ok("1".into()),
                    },
                )),
                Command::Transfer { id, .. } => {
                    pending.push((now, Event::TransferDone { id, ok: false }))
                }
                _ => {}
            }
        }
    };
    for (gap, ev) in events {
        now += Duration::from_millis(gap);
        loop {
            pump(&mut s, now, &mut pending);
            pending.sort_by_key(|(t, _)| *t);
            let due = pending.first().map(|(t, _)| *t).filter(|t| *t <= now);
            let wake = s.poll_timeout().filter(|t| *t <= now);
            match (due, wake) {
                (Some(t), w) if w.is_none_or(|w| t <= w) => {
                    let (_, e) = pending.remove(0);
                    s.handle(e, t);
                }
                (_, Some(w)) => s.handle_timeout(w),
                _ => break,
            }
        }
        s.handle(ev, now);
    }
    let last = now;
    while !s.is_ended() && now < last + BOUND {
        pump(&mut s, now, &mut pending);
        pending.sort_by_key(|(t, _)| *t);
        let next = [pending.first().map(|(t, _)| *t), s.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = now.max(next);
        if pending.first().is_some_and(|(t, _)| *t <= now) {
            let (_, e) = pending.remove(0);
            s.handle(e, now);
        } else {
            s.handle_timeout(now);
        }
    }
    (now - last, s.is_ended())
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => proptest::sample::select(vec!['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A']).prop_map(Event::Dtmf),
        2 => Just(Event::VoiceStart),
        2 => Just(Event::VoiceEnd),
        1 => Just(Event::TooQuiet),
        1 => Just(Event::Noise),
        1 => (0u64..50).prop_map(|id| Event::PlayDone { id }),
        1 => (0u64..50).prop_map(|id| Event::LookupDone { id, result: LookupResult::Failed("x".into()) }),
        1 => (0u64..50).prop_map(|id| Event::TicketDone { id, result: Err("x".into()) }),
        1 => (0u64..50, any::<bool>()).prop_map(|(id, ok)| Event::TransferDone { id, ok }),
        1 => (0u32..9).prop_map(|rings| Event::Answered { rings }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn raw_events_never_panic_and_silence_ends_the_call(
        which in 0usize..3,
        events in proptest::collection::vec((0u64..9_000, event()), 0..60),
        hang_up in any::<bool>(),
    ) {
        let fx = fixture();
        let mut events = events;
        if hang_up {
            events.push((10, Event::Hangup));
        }
        let (took, ended) = drive(fx.flows[which].clone(), &fx.project.catalogue, events);
        prop_assert!(ended, "still going {took:?} after the caller went quiet");
    }
}

#[test]
fn max_call_ends_even_a_flow_that_would_go_on_forever() {
    // A flow the checker would refuse (it never hangs up), loaded structurally only.
    let text = "flow: loop\nsettings: { max_call: 2m }\nstart: a\non:\n  no_input: { repeat: true }\nstates:\n  a:\n    say: how_can_i_help\n    menu: { 1: a }\n";
    let mut d = flow::Diags::new(Path::new("loop.yaml"));
    let f = Arc::new(flow::load::load_str(text, Path::new("loop.yaml"), &mut d).unwrap());
    let (took, ended) = drive(f, &fixture().project.catalogue, vec![]);
    assert!(ended);
    assert!(took <= Duration::from_secs(120), "{took:?}");
}

#[test]
fn a_loop_of_states_that_never_waits_is_stopped() {
    let text = "flow: spin\nstart: a\nstates:\n  a: { next: b }\n  b: { next: a }\n";
    let mut d = flow::Diags::new(Path::new("spin.yaml"));
    let f = Arc::new(flow::load::load_str(text, Path::new("spin.yaml"), &mut d).unwrap());
    let cat = fixture().project.catalogue.clone();
    let mut s = Session::new(f, cat, Default::default(), Instant::now());
    s.handle(Event::Answered { rings: 0 }, Instant::now());
    assert!(s.is_ended());
    assert!(matches!(s.outcome(), Some(flow::Outcome::Failed(w)) if w.contains("loops")));
}
