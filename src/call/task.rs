//! The one task per call that joins SIP, media and the flow: SIP events and RTP
//! packets go into the flow session, its commands come out as audio, BYEs, REFERs,
//! tickets and the call record.
use super::lifecycle::{CallLifecycle, Input, Phase};
use super::media::{Stream, play_starts, write_wav};
use super::watch::CallWatch;
use super::{CallEvent, CallRecord, CallServices, Library, RecordExt, TicketToFile, new_record};
use crate::data::Answer;
use crate::flow::{Command, Event, LookupResult, Outcome, Session};
use crate::sip::sdp::{self, Prefs};
use crate::sip::{IncomingCall, SipCommand, SipEvent};
use crate::store::UtcMs;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A call admitted to a flow: the SIP side of it and how long it rang.
pub struct Admitted {
    pub call: IncomingCall,
    pub events: mpsc::Receiver<SipEvent>,
    pub commands: mpsc::Sender<SipCommand>,
    pub rings: u32,
    pub received_at: UtcMs,
    /// The flows and prompts as they were when the call arrived.
    pub library: Arc<Library>,
    /// Set for a call hotline placed (src/outbound): already answered, media agreed.
    /// Boxed: every inbound call's task would carry room for one.
    pub placed: Option<Box<Placed>>,
}

/// A call hotline placed and the far end answered: our offer and their answer made
/// the media; from here it runs exactly as an answered inbound call does.
pub struct Placed {
    pub port: super::ports::RtpPort,
    pub offer: sdp::SessionDescription,
    pub session_id: u64,
    /// The SDP answer of the 2xx.
    pub answer: String,
    /// The flow's variables from the job (`ticket`, ...).
    pub vars: Vec<(String, String)>,
    /// Fires when the job is cancelled mid-call: the flow goes to its `canceled` state.
    pub polite_end: tokio_util::sync::CancellationToken,
}

/// How a call ended, for whoever started it.
#[derive(Clone, Debug, Default)]
pub struct CallEnd {
    pub answered: bool,
    pub outcome: String,
    /// The variables the flow set during the call (what it collected, `ticket_id`).
    pub collected: Vec<(String, String)>,
}

/// Back-end answers that arrive while the call goes on.
enum Done {
    Ticket {
        id: u64,
        result: Result<String, String>,
    },
}

/// Not an `async fn`, for the reason given at [`Flowing::run`].
pub fn run(svc: Arc<CallServices>, a: Admitted) -> impl Future<Output = CallEnd> {
    let Admitted {
        call,
        events,
        commands,
        rings,
        received_at,
        library,
        placed,
    } = a;
    async move {
        let flow = library.flow_for(&call.user);
        let mut record = new_record(&call, &flow.name, received_at, rings);
        let mut life = CallLifecycle::default();
        let mut end = CallEnd::default();
        if let Some(p) = placed {
            // Boxed: inline, every inbound call's task had room for an outbound one too.
            return Box::pin(run_placed(svc, call, events, commands, library, record, *p)).await;
        }

        let Some(port) = svc.ports.take() else {
            // Summed up per interval: a flood would write a line per INVITE.
            crate::sip::refusals::note(call.source.ip(), crate::sip::refusals::Reason::NoRtpPort);
            let _ = commands
                .send(SipCommand::Reject {
                    code: 503,
                    retry_after: Some(5),
                })
                .await;
            record.finish("rejected", Some("no free RTP port".into()));
            svc.backend.record_call(record);
            return end;
        };
        let session_id: u64 = rand::random::<u32>() as u64;
        let prefs = Prefs::new(session_id, 1);
        // An INVITE without an offer gets ours in the 200 and answers in the ACK (RFC 3264).
        let mut offered_by_us: Option<sdp::SessionDescription> = None;
        let (answer_text, local_sdp, stream) = if call.offer.trim().is_empty() {
            let ours = sdp::offer(svc.media_ip, port.port, &prefs);
            let stream = Stream {
                codec: crate::media::Codec::Pcmu,
                payload_type: 0,
                telephone_event: None,
                remote: None,
                send: false,
            };
            offered_by_us = Some(ours.clone());
            (ours.to_string(), ours, stream)
        } else {
            let offer = match sdp::parse(&call.offer) {
                Ok(o) => o,
                Err(e) => {
                    tracing::info!(error = %e, "unusable SDP offer: 488");
                    reject(&commands, &svc, record, 488, &e.to_string()).await;
                    return end;
                }
            };
            match sdp::negotiate(&offer, svc.media_ip, port.port, &prefs) {
                Ok(a) => (
                    a.to_string(),
                    a.sdp.clone(),
                    Stream::from_negotiated(&a.media),
                ),
                Err(e) => {
                    tracing::info!(error = %e, "no common codec: 488");
                    reject(&commands, &svc, record, e.sip_status(), &e.to_string()).await;
                    return end;
                }
            }
        };
        if commands
            .send(SipCommand::Answer { sdp: answer_text })
            .await
            .is_err()
        {
            return end;
        }
        life.handle(Input::Answer);
        let flowing = Flowing {
            call,
            events,
            commands,
            rings,
            received_at,
            library,
            record,
            life,
            port,
            stream,
            local_sdp,
            offered_by_us,
            prefs,
            vars: Vec::new(),
            polite_end: None,
        };
        end = flowing.run(svc).await;
        end
    }
}

/// An outbound call, answered: the media from our offer and the 2xx's answer.
async fn run_placed(
    svc: Arc<CallServices>,
    call: IncomingCall,
    events: mpsc::Receiver<SipEvent>,
    commands: mpsc::Sender<SipCommand>,
    library: Arc<Library>,
    mut record: CallRecord,
    p: Placed,
) -> CallEnd {
    let received_at = record.received_at;
    let prefs = Prefs::new(p.session_id, 1);
    let got = sdp::parse(&p.answer)
        .map_err(|e| e.to_string())
        .and_then(|a| sdp::accept_answer(&p.offer, &a).map_err(|e| e.to_string()));
    let negotiated = match got {
        Ok(n) => n,
        Err(why) => {
            // RFC 3264: no usable answer, no session; the dialog ends with a BYE.
            tracing::info!(error = %why, "unusable SDP answer: BYE");
            let _ = commands.send(SipCommand::Hangup).await;
            record.finish("failed", Some(format!("unusable SDP answer: {why}")));
            svc.backend.record_call(record);
            return CallEnd {
                answered: true,
                outcome: "failed".into(),
                collected: Vec::new(),
            };
        }
    };
    let mut life = CallLifecycle::default();
    life.handle(Input::Answer);
    Flowing {
        call,
        events,
        commands,
        rings: 0,
        received_at,
        library,
        record,
        life,
        port: p.port,
        stream: Stream::from_negotiated(&negotiated),
        local_sdp: p.offer,
        offered_by_us: None,
        prefs,
        vars: p.vars,
        polite_end: Some(p.polite_end),
    }
    .run(svc)
    .await
}

/// An answered call about to run its flow, whoever placed it.
struct Flowing {
    call: IncomingCall,
    events: mpsc::Receiver<SipEvent>,
    commands: mpsc::Sender<SipCommand>,
    rings: u32,
    received_at: UtcMs,
    library: Arc<Library>,
    record: CallRecord,
    life: CallLifecycle,
    port: super::ports::RtpPort,
    stream: Stream,
    local_sdp: sdp::SessionDescription,
    offered_by_us: Option<sdp::SessionDescription>,
    prefs: Prefs,
    vars: Vec<(String, String)>,
    polite_end: Option<tokio_util::sync::CancellationToken>,
}

impl Flowing {
    /// Not an `async fn`: one keeps its arguments for as long as it runs, and `self`
    /// destructured inside it was stored twice in every call's task.
    fn run(self, svc: Arc<CallServices>) -> impl Future<Output = CallEnd> {
        let Flowing {
            call,
            mut events,
            commands,
            rings,
            received_at,
            library,
            mut record,
            mut life,
            port,
            stream,
            mut local_sdp,
            mut offered_by_us,
            prefs,
            vars: job_vars,
            polite_end,
        } = self;
        async move {
            let flow = library.flow_for(&call.user);
            let placed = polite_end.is_some();
            let polite_end = polite_end.unwrap_or_default();
            let mut polite_asked = false;
            record.answered_at = Some(UtcMs::now());
            let answered = Instant::now();
            let port_number = port.port;
            let mut leg = svc.pump.add(stream, &svc.voice, port);
            let mut watch = CallWatch::answered(&svc, &flow, &call.caller, rings, received_at);

            let mut vars = crate::flow::expr::Vars::new();
            vars.extend(job_vars);
            vars.insert("caller".into(), call.caller.clone());
            vars.insert("called".into(), call.user.clone());
            vars.insert("call_id".into(), call.call_id.clone());
            let mut session = Session::new(
                flow.clone(),
                library.catalogue.clone(),
                vars,
                answered.into_std(),
            );
            session.set_wall_clock(crate::flow::clock::WallClock::new(
                answered.into_std(),
                jiff::Timestamp::now(),
                library.calendar.clone(),
            ));
            let before: std::collections::HashSet<String> =
                session.vars().keys().cloned().collect();
            let mut started = false;
            if placed {
                // The far end answered and was ACKed: the flow starts now, like an inbound call
                // at its ACK.
                life.handle(Input::Acked);
                started = true;
                session.handle(Event::Answered { rings }, answered.into_std());
            }
            // Made at the first ticket: most calls file none, and a channel allocates room
            // for 32 answers as soon as it exists.
            let mut done: Option<(mpsc::Sender<Done>, mpsc::Receiver<Done>)> = None;
            let mut recordings: HashMap<String, PathBuf> = HashMap::new();
            // Tickets filed so far by each state: the ordinal in a ticket's identity.
            let mut filed_by_state: HashMap<String, u32> = HashMap::new();
            let mut transfer_id: Option<u64> = None;
            let mut pending: VecDeque<Event> = VecDeque::new();
            // The deadline the leg's alarm is set to (Leg::alarm).
            let mut alarm: Option<Instant> = None;
            // Dropped with the call: a lookup nobody waits for any more is not finished.
            let mut lookups: tokio::task::JoinSet<(u64, String, LookupResult)> =
                tokio::task::JoinSet::new();

            loop {
                watch.events(&session);
                // Flow commands first: they may queue audio, tickets, a BYE.
                while let Some(cmd) = session.poll_command() {
                    watch.command(&cmd);
                    let now = Instant::now();
                    let offset = now.duration_since(answered).as_millis() as i64;
                    match cmd {
                        Command::Entered { state } => record.path.push(state),
                        Command::Play { id, utterances } => {
                            // A new play replaces the one still going: its unplayed rest is not heard.
                            record.cut_prompts(offset);
                            let starts = play_starts(&library.prompts, &utterances);
                            for (u, start) in utterances.iter().zip(starts) {
                                let detail = match &u.value {
                                    Some(v) => format!("{} {v}", u.prompt),
                                    None => u.prompt.clone(),
                                };
                                record.event(offset + start as i64, "prompt", detail);
                            }
                            leg.play(id, library.prompts.clone(), utterances);
                        }
                        Command::StopPlay => {
                            record.cut_prompts(offset);
                            leg.stop();
                        }
                        Command::StartRecording { .. } => leg.start_recording(),
                        Command::StopRecording { name, keep } => {
                            let samples = leg.stop_recording().await;
                            if keep && !samples.is_empty() {
                                let path = svc.recording_path(&call.call_id, &name);
                                record.event(offset, "recording", path.display().to_string());
                                recordings.insert(name, path.clone());
                                // Written off the task; the ticket names the path, which exists
                                // by the time anyone follows it.
                                tokio::task::spawn_blocking(move || {
                                    if let Err(e) = write_wav(&path, &samples) {
                                        tracing::error!(path = %path.display(), error = %e, "recording not written");
                                    }
                                });
                            }
                        }
                        Command::Lookup { id, source, key } => {
                            match library.data.lookup(&source, &key) {
                                Answer::Now(result) => {
                                    log_lookup(&source, &result);
                                    pending.push_back(Event::LookupDone { id, result });
                                }
                                // A back end answers while the call goes on; the flow's own timers
                                // (P-WAIT, lookup_timeout) run meanwhile.
                                Answer::Later(fut) => {
                                    lookups.spawn(async move { (id, source, fut.await) });
                                }
                            }
                        }
                        Command::FileTicket { id, ticket } => {
                            record.event(offset, "ticket", ticket.category.clone());
                            let ordinal = filed_by_state.entry(ticket.state.clone()).or_insert(0);
                            *ordinal += 1;
                            let t = TicketToFile {
                                call_id: call.call_id.clone(),
                                caller: call.caller.clone(),
                                from_tag: call.from_tag.clone(),
                                invite_branch: call.invite_branch.clone(),
                                ordinal: *ordinal,
                                recordings: ticket
                                    .recordings
                                    .iter()
                                    .filter_map(|r| {
                                        recordings.get(r).map(|p| p.display().to_string())
                                    })
                                    .collect(),
                                request: ticket,
                            };
                            let fut = svc.backend.file_ticket(t);
                            let tx = done.get_or_insert_with(|| mpsc::channel(8)).0.clone();
                            tokio::spawn(async move {
                                let result = fut.await;
                                let _ = tx.send(Done::Ticket { id, result }).await;
                            });
                        }
                        Command::Transfer { id, to } => {
                            record.event(offset, "transfer", to.clone());
                            transfer_id = Some(id);
                            let _ = commands.send(SipCommand::Refer { target: to }).await;
                        }
                        Command::Hangup => {
                            record.event(offset, "hangup", "hotline".into());
                            record.cut_prompts(offset);
                            leg.stop();
                            if life.handle(Input::HangUp) {
                                let _ = commands.send(SipCommand::Hangup).await;
                            }
                        }
                        Command::Ended { outcome } => {
                            finish(&mut record, &outcome);
                        }
                    }
                }
                if let Some(ev) = pending.pop_front() {
                    session.handle(ev, Instant::now().into_std());
                    continue;
                }
                if session.is_ended() || life.phase() == Phase::Ended {
                    break;
                }

                let wake = session.poll_timeout().map(Instant::from_std);
                if wake != alarm {
                    leg.alarm(wake.map(Instant::into_std));
                    alarm = wake;
                }
                // The leg's alarm fires the flow's timer; tokio's only if the media thread
                // has not within ALARM_BACKSTOP (a stalled machine), or at once for a
                // deadline already past.
                let backstop = wake.map(|w| {
                    if w <= Instant::now() {
                        w
                    } else {
                        crate::timers::coarse(w + ALARM_BACKSTOP)
                    }
                });
                tokio::select! {
                    ev = events.recv() => {
                        let now = Instant::now();
                        match ev {
                            None => {
                                life.handle(Input::CallerGone);
                                session.handle(Event::Hangup, now.into_std());
                            }
                            Some(SipEvent::Acked { sdp: answer }) => {
                                if let Some(ours) = offered_by_us.take() {
                                    let got = answer
                                        .as_deref()
                                        .ok_or_else(|| "the ACK carried no SDP answer".to_string())
                                        .and_then(|a| sdp::parse(a).map_err(|e| e.to_string()))
                                        .and_then(|a| sdp::accept_answer(&ours, &a).map_err(|e| e.to_string()));
                                    match got {
                                        Ok(n) => leg.set_stream(Stream::from_negotiated(&n)),
                                        Err(why) => {
                                            // RFC 3264: no usable answer, no session; end it.
                                            record.finish("failed", Some(why));
                                            life.handle(Input::Acked);
                                            if life.handle(Input::HangUp) {
                                                let _ = commands.send(SipCommand::Hangup).await;
                                            }
                                            break;
                                        }
                                    }
                                }
                                life.handle(Input::Acked);
                                if !started {
                                    started = true;
                                    session.handle(Event::Answered { rings }, now.into_std());
                                }
                            }
                            Some(SipEvent::AckTimeout) => {
                                // The endpoint has sent the BYE itself (RFC 3261 13.3.1.4).
                                record.finish("failed", Some("the 200 OK was never acknowledged".into()));
                                life.handle(Input::AckTimeout);
                                session.handle(Event::Hangup, now.into_std());
                            }
                            Some(SipEvent::Hangup { .. }) => {
                                life.handle(Input::CallerGone);
                                record.cut_prompts(now.duration_since(answered).as_millis() as i64);
                                leg.stop();
                                session.handle(Event::Hangup, now.into_std());
                            }
                            Some(SipEvent::Dtmf(k)) => {
                                record.event(now.duration_since(answered).as_millis() as i64, "key", k.to_string());
                                session.handle(Event::Dtmf(k), now.into_std());
                            }
                            Some(SipEvent::Reinvite { offer }) => {
                                let result = reoffer(&svc, &offer, &local_sdp, port_number, &prefs);
                                let reply = match result {
                                    Ok(a) => {
                                        leg.set_stream(Stream::from_negotiated(&a.media));
                                        local_sdp = a.sdp.clone();
                                        Ok(a.to_string())
                                    }
                                    Err(code) => Err(code),
                                };
                                let _ = commands.send(SipCommand::Reoffer { result: reply }).await;
                            }
                            Some(SipEvent::TransferDone { ok }) => {
                                if ok {
                                    life.handle(Input::Transferred);
                                }
                                if let Some(id) = transfer_id.take() {
                                    session.handle(Event::TransferDone { id, ok }, now.into_std());
                                }
                            }
                        }
                    }
                    Some(m) = leg.events.recv() => {
                        let at = Instant::from_std(m.at);
                        if m.is_alarm() {
                            if alarm == Some(at) {
                                alarm = None;
                            }
                            let now = Instant::now();
                            if wake.is_some_and(|w| w <= now) {
                                session.handle_timeout(now.into_std());
                            }
                        } else if started && let Some(event) = m.event() {
                            record.voice_or_key(at.duration_since(answered).as_millis() as i64, &event);
                            session.handle(event, at.into_std());
                        }
                    }
                    _ = sleep_opt(backstop) => {
                        session.handle_timeout(Instant::now().into_std());
                    }
                    _ = polite_end.cancelled(), if placed && !polite_asked => {
                        polite_asked = true;
                        tracing::info!("the job was cancelled: the flow says goodbye");
                        session.goto(crate::flow::CANCELED_STATE, Instant::now().into_std());
                    }
                    _ = svc.stopping.cancelled() => {
                        record.finish("hotline-hung-up", Some("hotline stopped".into()));
                        record.cut_prompts(Instant::now().duration_since(answered).as_millis() as i64);
                        leg.stop();
                        if life.handle(Input::HangUp) {
                            let _ = commands.send(SipCommand::Hangup).await;
                        }
                        break;
                    }
                    Some(done) = lookups.join_next() => match done {
                        Ok((id, source, result)) => {
                            log_lookup(&source, &result);
                            session.handle(Event::LookupDone { id, result }, Instant::now().into_std());
                        }
                        Err(e) => tracing::error!(error = %e, "lookup task failed"),
                    },
                    Some(d) = next_done(&mut done) => {
                        match d {
                            Done::Ticket { id, result } => {
                                session.handle(Event::TicketDone { id, result }, Instant::now().into_std());
                            }
                        }
                    }
                }
            }
            if record.outcome.is_empty() {
                record.finish("caller-hung-up", None);
            }
            record.cut_prompts(Instant::now().duration_since(answered).as_millis() as i64);
            // Tickets filed after the caller left land before the record closes.
            if let Some((tx, mut rx)) = done {
                drop(tx);
                while rx.recv().await.is_some() {}
            }
            tracing::info!(outcome = %record.outcome, "call ended");
            let collected = session
                .vars()
                .iter()
                .filter(|(k, _)| {
                    !before.contains(*k) && !k.starts_with("now.") && k.as_str() != "rings"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let end = CallEnd {
                answered: true,
                outcome: record.outcome.clone(),
                collected,
            };
            svc.backend.record_call(record);
            end
        }
    }
}

fn log_lookup(source: &str, result: &LookupResult) {
    if let LookupResult::Failed(e) = result {
        tracing::warn!(source, error = %e, "lookup failed");
    }
}

/// The next back-end answer; never, while nothing has been asked.
async fn next_done(done: &mut Option<(mpsc::Sender<Done>, mpsc::Receiver<Done>)>) -> Option<Done> {
    match done {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How long past a flow timer's deadline tokio fires it if the media thread's alarm
/// has not: the alarm comes within a slot (4 ms) while the media threads keep time.
const ALARM_BACKSTOP: std::time::Duration = std::time::Duration::from_millis(100);

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn finish(record: &mut CallRecord, outcome: &Outcome) {
    let reason = match outcome {
        Outcome::Failed(w) => Some(w.clone()),
        Outcome::Transferred(to) => Some(to.clone()),
        _ => record.reason.take(),
    };
    record.finish(outcome.name(), reason);
}

fn reoffer(
    svc: &CallServices,
    offer: &str,
    local: &sdp::SessionDescription,
    port: u16,
    prefs: &Prefs,
) -> Result<sdp::Answer, u16> {
    let re = sdp::parse(offer).map_err(|_| 488u16)?;
    sdp::renegotiate(local, &re, svc.media_ip, port, prefs).map_err(|e| e.sip_status())
}

async fn reject(
    commands: &mpsc::Sender<SipCommand>,
    svc: &CallServices,
    mut record: CallRecord,
    code: u16,
    why: &str,
) {
    let _ = commands
        .send(SipCommand::Reject {
            code,
            retry_after: None,
        })
        .await;
    record.finish("rejected", Some(format!("{code}: {why}")));
    svc.backend.record_call(record);
}

trait VoiceOrKey {
    fn voice_or_key(&mut self, offset: i64, ev: &Event);
}

impl VoiceOrKey for CallRecord {
    fn voice_or_key(&mut self, offset: i64, ev: &Event) {
        let (kind, detail) = match ev {
            Event::Dtmf(k) => ("key", k.to_string()),
            Event::VoiceStart => ("voice", "start".into()),
            Event::VoiceEnd => ("voice", "end".into()),
            Event::TooQuiet => ("too_quiet", String::new()),
            Event::Noise => ("noise", String::new()),
            _ => return,
        };
        self.events.push(CallEvent {
            offset_ms: offset,
            kind: kind.into(),
            detail,
        });
    }
}
