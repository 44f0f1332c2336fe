//! The call's SIP-side lifecycle: ringing → answered → in flow → hanging up → ended.
//!
//! The flow interpreter decides what is said; this machine decides what the call may
//! still do on the wire (a BYE only once, no prompts before the ACK, nothing after the
//! end), so that a late or duplicated event cannot put a dialog in an impossible state.
use statig::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The call layer answered (200 sent).
    Answer,
    /// The 200 was acknowledged.
    Acked,
    /// The 200 was never acknowledged.
    AckTimeout,
    /// Hotline decided to end the call (BYE to send).
    HangUp,
    /// The caller hung up (BYE) or cancelled.
    CallerGone,
    /// The call was refused before answering (486, 488, 503...).
    Rejected,
    /// A blind transfer succeeded; the caller is someone else's now.
    Transferred,
    /// The BYE we sent was answered (or given up on).
    ByeDone,
}

/// Where the call stands; `Lifecycle::phase` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Ringing,
    Answered,
    InFlow,
    HangingUp,
    Ended,
}

#[derive(Default)]
pub struct Lifecycle;

/// What a transition asks of the call, collected while the machine handles an input.
#[derive(Default)]
pub struct Effects {
    pub send_bye: bool,
}

#[state_machine(
    initial = "State::ringing()",
    state(derive(Debug, Clone, Copy, PartialEq, Eq))
)]
impl Lifecycle {
    #[state]
    fn ringing(event: &Input) -> Outcome<State> {
        match event {
            Input::Answer => Transition(State::answered()),
            Input::CallerGone | Input::Rejected => Transition(State::ended()),
            _ => Handled,
        }
    }

    #[state]
    fn answered(context: &mut Effects, event: &Input) -> Outcome<State> {
        match event {
            Input::Acked => Transition(State::in_flow()),
            Input::CallerGone => Transition(State::ended()),
            // RFC 3261 13.3.1.4: an unacknowledged 200 ends the dialog with a BYE.
            Input::AckTimeout | Input::HangUp => {
                context.send_bye = true;
                Transition(State::hanging_up())
            }
            _ => Handled,
        }
    }

    #[state]
    fn in_flow(context: &mut Effects, event: &Input) -> Outcome<State> {
        match event {
            Input::HangUp => {
                context.send_bye = true;
                Transition(State::hanging_up())
            }
            Input::CallerGone | Input::Transferred => Transition(State::ended()),
            _ => Handled,
        }
    }

    #[state]
    fn hanging_up(event: &Input) -> Outcome<State> {
        match event {
            Input::ByeDone | Input::CallerGone => Transition(State::ended()),
            _ => Handled,
        }
    }

    #[state]
    fn ended(event: &Input) -> Outcome<State> {
        let _ = event;
        Handled
    }
}

/// The lifecycle machine with a readable phase.
pub struct CallLifecycle {
    machine: StateMachine<Lifecycle>,
}

impl Default for CallLifecycle {
    fn default() -> Self {
        CallLifecycle {
            machine: Lifecycle.state_machine(),
        }
    }
}

impl CallLifecycle {
    /// Feeds an input; returns true if the call must now send a BYE.
    pub fn handle(&mut self, input: Input) -> bool {
        let mut effects = Effects::default();
        self.machine.handle_with_context(&input, &mut effects);
        effects.send_bye
    }

    pub fn phase(&self) -> Phase {
        match self.machine.state() {
            State::Ringing {} => Phase::Ringing,
            State::Answered {} => Phase::Answered,
            State::InFlow {} => Phase::InFlow,
            State::HangingUp {} => Phase::HangingUp,
            State::Ended {} => Phase::Ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normal_call() {
        let mut c = CallLifecycle::default();
        assert_eq!(c.phase(), Phase::Ringing);
        assert!(!c.handle(Input::Answer));
        assert!(!c.handle(Input::Acked));
        assert_eq!(c.phase(), Phase::InFlow);
        assert!(c.handle(Input::HangUp));
        assert!(!c.handle(Input::HangUp), "BYE is sent once");
        assert_eq!(c.phase(), Phase::HangingUp);
        c.handle(Input::ByeDone);
        assert_eq!(c.phase(), Phase::Ended);
    }

    #[test]
    fn unacknowledged_answer_is_ended_with_bye() {
        let mut c = CallLifecycle::default();
        c.handle(Input::Answer);
        assert!(c.handle(Input::AckTimeout));
        assert_eq!(c.phase(), Phase::HangingUp);
    }

    #[test]
    fn late_events_after_the_end_change_nothing() {
        let mut c = CallLifecycle::default();
        c.handle(Input::CallerGone);
        assert_eq!(c.phase(), Phase::Ended);
        for i in [
            Input::Answer,
            Input::Acked,
            Input::HangUp,
            Input::AckTimeout,
        ] {
            assert!(!c.handle(i));
            assert_eq!(c.phase(), Phase::Ended);
        }
    }
}
