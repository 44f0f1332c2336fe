//! The IVR designer's tools: simulated calls, flow tests, diagrams, the JSON Schema.
pub mod coverage;
pub mod flowtest;
pub mod graph;
pub mod junit;
pub mod project;
pub mod runner;
pub mod schema;
pub mod script;
pub mod sim;

use crate::flow::expr::fmt_duration;
use sim::Entry;

fn clock(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    format!(
        "{:02}:{:02}.{:03}",
        ms / 60_000,
        (ms / 1000) % 60,
        ms % 1000
    )
}

/// One line of a call's timeline, as `simulate` prints it and failing tests show it.
pub fn render_entry(e: &Entry) -> String {
    match e {
        Entry::Heard {
            at,
            prompt,
            value,
            text,
            ..
        } => {
            let id = match value {
                Some(v) => format!("{prompt} {v}"),
                None => prompt.clone(),
            };
            format!("[{}] hotline: {text}  ({id})", clock(*at))
        }
        Entry::Caller { at, step } => format!("[{}] caller:  {step}", clock(*at)),
        Entry::State { at, name } => format!("[{}]   → {name}", clock(*at)),
        Entry::Lookup {
            at,
            source,
            key,
            result,
        } => format!("[{}]   lookup {source} {key}: {result}", clock(*at)),
        Entry::Ticket { at, id, ticket } => {
            let fields: Vec<String> = ticket
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "[{}]   ticket {} {} {}{}{} {}",
                clock(*at),
                id.as_deref().unwrap_or("(not filed)"),
                ticket.category,
                ticket.priority.name(),
                ticket
                    .due_in
                    .map(|d| format!(" due {}", fmt_duration(d)))
                    .unwrap_or_default(),
                ticket
                    .department
                    .as_ref()
                    .map(|d| format!(" to {d}"))
                    .unwrap_or_default(),
                fields.join(" ")
            )
        }
        Entry::Recording { at, name, kept } => format!(
            "[{}]   recording {name} {}",
            clock(*at),
            if *kept { "kept" } else { "discarded" }
        ),
        Entry::Transfer { at, to } => format!("[{}]   transfer to {to}", clock(*at)),
        Entry::Hangup { at } => format!("[{}] hotline hangs up", clock(*at)),
        Entry::End { at, outcome } => {
            let why = match outcome {
                crate::flow::Outcome::Failed(w) => format!(": {w}"),
                _ => String::new(),
            };
            format!("[{}] call ended: {}{why}", clock(*at), outcome.name())
        }
        Entry::Unused { step } => format!("          (not used: {step})"),
    }
}
