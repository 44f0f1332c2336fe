//! Tickets to the customer's ticket system through a webhook: the outbox worker
//! ([`Outbox`]), the signed POST ([`webhook`]), the JSON form ([`payload`]) and the
//! operator's routes on the ops HTTP ([`routes`]). The store holds every ticket and
//! its delivery state; this module only moves them.
pub mod outbox;
pub mod payload;
pub mod routes;
pub mod webhook;

pub use outbox::{Outbox, OutboxHandle, OutboxStats};
pub use payload::{Recordings, SCHEMA};
pub use routes::TicketRoutes;
pub use webhook::{Answer, Webhook, signature};

use crate::config::Config;

/// How recordings reach the ticket system under this configuration.
pub fn recordings(cfg: &Config) -> Recordings {
    let base = cfg
        .webhook
        .recordings_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.http));
    Recordings {
        base_url: base.trim_end_matches('/').to_string(),
        inline: cfg.webhook.inline_recordings,
    }
}
