//! The variables hotline sets itself, in one place: the README lists these, and
//! `check` treats them as set without a `set`, `collect` or `lookup` setting them.
//!
//! | name | value |
//! |---|---|
//! | `caller` | the caller's number (the From user) |
//! | `called` | the number or user the caller dialled (the Request-URI user; in `simulate` and flow tests the flow's name) |
//! | `call_id` | the SIP Call-ID |
//! | `rings` | ring-back periods before the answer (P-RING) |
//! | `agent_id`, `hotline`, `ring_apology_after` | the flow's settings of those names |
//! | `ticket_id` | the id of the ticket the call filed last; set once a ticket is filed |
//! | `now.hour`, `now.minute` | local time, 0-23 and 0-59 (`settings.timezone`) |
//! | `now.weekday` | 1 (Monday) to 7 (Sunday) |
//! | `now.date`, `now.time` | `YYYY-MM-DD`, `HH:MM` |
//! | `now.holiday`, `now.holiday_name` | `true` on a day of `data/holidays.yaml`, and its name (else `false`, empty) |
//! | `now.workday` | `true` Monday to Friday unless a holiday, and on the calendar's `workdays` |
//!
//! `now.*` is the time at the moment a condition or a prompt is evaluated.

/// A built-in variable: its name, whether it is set from the start of the call, and
/// what it holds.
pub struct Builtin {
    pub name: &'static str,
    /// False for `ticket_id`: set only once a ticket has been filed.
    pub always: bool,
    pub doc: &'static str,
}

pub const BUILTINS: &[Builtin] = &[
    b("caller", "the caller's number"),
    b(
        "called",
        "the number or user dialled (the flow's name in simulate and flow tests)",
    ),
    b("call_id", "the SIP Call-ID"),
    b("rings", "ring-back periods before the answer (P-RING)"),
    b("agent_id", "settings.agent_id"),
    b("hotline", "settings.hotline"),
    b("ring_apology_after", "settings.ring_apology_after"),
    Builtin {
        name: "ticket_id",
        always: false,
        doc: "the id of the ticket filed last (set once a ticket is filed)",
    },
    b("now.hour", "local hour, 0-23"),
    b("now.minute", "local minute, 0-59"),
    b("now.weekday", "1 (Monday) to 7 (Sunday)"),
    b("now.date", "local date, YYYY-MM-DD"),
    b("now.time", "local time, HH:MM"),
    b(
        "now.holiday",
        "true on a day of the holiday calendar, else false",
    ),
    b("now.holiday_name", "the holiday's name, else empty"),
    b(
        "now.workday",
        "true Monday to Friday unless a holiday, and on the calendar's workdays",
    ),
];

const fn b(name: &'static str, doc: &'static str) -> Builtin {
    Builtin {
        name,
        always: true,
        doc,
    }
}

/// True for a variable hotline sets itself (see [`BUILTINS`]).
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|b| b.name == name)
}

/// True for a built-in that is set from the start of every call (all but `ticket_id`).
pub fn is_always_set(name: &str) -> bool {
    BUILTINS.iter().any(|b| b.name == name && b.always)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_known_and_others_are_not() {
        for n in [
            "caller",
            "called",
            "call_id",
            "rings",
            "now.hour",
            "now.holiday",
        ] {
            assert!(is_builtin(n), "{n}");
        }
        assert!(is_builtin("ticket_id") && !is_always_set("ticket_id"));
        for n in ["callr", "now", "now.year", "acct.name", ""] {
            assert!(!is_builtin(n), "{n}");
        }
    }
}
