//! Which transitions a call took, for `hotline test --coverage`. A session records them
//! only when asked (`Session::trace_transitions`): live calls never do.
use super::model::Handler;

/// A handler of the loaded flow (a menu key's or an event's), by identity. A session
/// shares its flow and never copies a handler out of it, so a handler's address names
/// it for as long as the flow lives, however the session came to pick it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandlerId(usize);

impl HandlerId {
    pub fn of(h: &Handler) -> HandlerId {
        HandlerId(std::ptr::from_ref(h).addr())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Taken {
    /// A menu key's or an event's handler ran.
    Handler(HandlerId),
    /// The `next:` branch at `index` of the state at `state` was taken.
    Branch { state: usize, index: usize },
    /// The `collect` or `record` of the state at `state` finished and went on to its `next`.
    Next { state: usize },
}
