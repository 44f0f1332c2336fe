//! The figures the server's parts already keep, read at each scrape: the admission
//! queue, the SIP endpoint, the media threads, the outbox, the store and the reloads.
use super::lateness;
use crate::call::CallServices;
use crate::server::admission::Admission;
use crate::server::reload::Reloader;
use crate::sip::endpoint::SipEndpoint;
use crate::store::StoreHandle;
use crate::tickets::OutboxHandle;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::sync::Arc;

/// `hotline_sip_requests_total{method}`: the methods hotline knows; the rest `other`.
const METHODS: [&str; 10] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "NOTIFY", "REGISTER", "other",
];
/// `hotline_sip_responses_total{code}`: the codes hotline sends; the rest `other`.
const CODES: [u16; 24] = [
    100, 180, 183, 200, 202, 400, 403, 404, 405, 408, 415, 416, 420, 480, 481, 482, 486, 487, 488,
    491, 500, 501, 503, 505,
];

/// The running server's parts, read when Prometheus scrapes.
pub struct Readings {
    pub svc: Arc<CallServices>,
    pub admission: Arc<Admission>,
    pub max_calls: usize,
    pub endpoint: Arc<SipEndpoint>,
    pub outbox: OutboxHandle,
    pub store: StoreHandle,
    pub reloader: Arc<Reloader>,
    /// The `timezone` setting: the holiday calendar's days are local days.
    pub timezone: String,
    pub farm: Arc<crate::server::farm::Farm>,
}

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readings")
    }
}

type Res = Result<(), std::fmt::Error>;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Res {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Res {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter with one label, every value given.
fn counters<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Res {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (v, n) in values {
        let labels = [(key, v)];
        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(m: MetricEncoder, bounds: &[f64], per_bucket: &[u64], sum: f64) -> Res {
    let mut m = m;
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(per_bucket.iter().copied())
        .collect();
    let count = per_bucket.iter().sum();
    m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// `hotline_sip_limited_total{reason}`, `hotline_calls_refused_total{reason}`
/// (src/sip/refusals.rs).
fn refusals(e: &mut DescriptorEncoder) -> Res {
    let totals = crate::sip::refusals::tally().totals();
    counters(
        e,
        "hotline_sip_limited",
        "SIP requests refused before any call work: over a source's limits (requests, dialogs), a scanner's User-Agent, a source outside sip_allow",
        "reason",
        totals
            .iter()
            .filter(|(r, _)| r.by_guard())
            .map(|(r, n)| (r.name(), *n)),
    )?;
    counters(
        e,
        "hotline_calls_refused",
        "Calls refused with 503 after the guard let them in, by reason: no_rtp_port, media_overload (the media threads could not pace another call; refused before any call record), call_layer_busy (the call layer had not taken the new calls handed to it)",
        "reason",
        totals
            .iter()
            .filter(|(r, _)| !r.by_guard())
            .map(|(r, n)| (r.name(), *n)),
    )
}

impl Collector for Readings {
    fn encode(&self, mut e: DescriptorEncoder) -> Res {
        // Calls and the P-RING queue.
        let in_flows = self.admission.in_flows(self.max_calls);
        gauge(
            &mut e,
            "hotline_calls_active",
            "Calls in flows now",
            in_flows as f64,
        )?;
        gauge(
            &mut e,
            "hotline_calls_waiting",
            "Calls ringing in the queue for a free line (P-RING)",
            self.admission.waiting() as f64,
        )?;
        gauge(
            &mut e,
            "hotline_calls_max",
            "Calls hotline takes into flows at once (max_calls)",
            self.max_calls as f64,
        )?;
        farm(&mut e, &self.farm)?;

        // SIP.
        let sip = self.endpoint.stats();
        let method = |m: &str| {
            sip.requests
                .iter()
                .filter(|(k, _)| {
                    if m == "other" {
                        !METHODS.contains(k)
                    } else {
                        *k == m
                    }
                })
                .map(|(_, n)| *n)
                .sum::<u64>()
        };
        counters(
            &mut e,
            "hotline_sip_requests",
            "SIP requests received, by method",
            "method",
            METHODS.map(|m| (m, method(m))),
        )?;
        let codes: Vec<(String, u64)> = CODES
            .iter()
            .map(|c| (c.to_string(), sip.responses_with(*c)))
            .chain(std::iter::once((
                "other".to_string(),
                sip.responses
                    .iter()
                    .filter(|(c, _)| !CODES.contains(c))
                    .map(|(_, n)| n)
                    .sum(),
            )))
            .collect();
        counters(
            &mut e,
            "hotline_sip_responses",
            "SIP responses sent, by status code",
            "code",
            codes.iter().map(|(c, n)| (c.as_str(), *n)),
        )?;
        counter(
            &mut e,
            "hotline_sip_malformed",
            "SIP messages dropped as unparseable or unanswerable",
            sip.malformed_dropped,
        )?;

        refusals(&mut e)?;

        // Media.
        let pump = self.svc.pump.stats();
        counters(
            &mut e,
            "hotline_rtp_packets",
            "RTP packets, by direction",
            "direction",
            [("sent", pump.rtp_sent), ("received", pump.rtp_received)],
        )?;
        counter(
            &mut e,
            "hotline_rtp_send_errors",
            "RTP packets the socket refused (a full send buffer drops the frame)",
            pump.rtp_send_errors,
        )?;
        counter(
            &mut e,
            "hotline_rtp_frames_skipped",
            "Frames dropped from their 20 ms schedule because they were too late",
            pump.frames_skipped,
        )?;
        counter(
            &mut e,
            "hotline_media_late_visits",
            "Media-thread visits that began more than 2 ms late",
            pump.late_visits,
        )?;
        let late = self.svc.pump.lateness();
        histogram(
            e.encode_descriptor(
                "hotline_rtp_send_lateness_seconds",
                "When each RTP frame was sent against its 20 ms schedule",
                None,
                MetricType::Histogram,
            )?,
            &lateness::BOUNDS_S,
            &late.buckets,
            late.sum_ns as f64 / 1e9,
        )?;

        // Tickets and the webhook.
        let ob = self.outbox.stats();
        gauge(
            &mut e,
            "hotline_tickets_pending",
            "Tickets not yet delivered to the ticket system",
            ob.pending as f64,
        )?;
        gauge(
            &mut e,
            "hotline_tickets_oldest_pending_age_seconds",
            "Age of the oldest ticket not yet delivered (0: none)",
            ob.oldest_pending_age_ms.unwrap_or(0).max(0) as f64 / 1000.0,
        )?;
        gauge(
            &mut e,
            "hotline_tickets_overdue",
            "Tickets past their deadline and not delivered",
            ob.overdue_now as f64,
        )?;
        gauge(
            &mut e,
            "hotline_tickets_failed",
            "Tickets the ticket system refused, parked for an operator",
            ob.failed as f64,
        )?;
        gauge(
            &mut e,
            "hotline_webhook_enabled",
            "1 when webhook.url is set",
            f64::from(u8::from(ob.enabled)),
        )?;
        gauge(
            &mut e,
            "hotline_webhook_unreachable",
            "1 while the ticket system cannot be connected to",
            f64::from(u8::from(ob.receiver_unreachable)),
        )?;
        counters(
            &mut e,
            "hotline_webhook_deliveries",
            "Delivery attempts to the ticket system, by result",
            "result",
            self.outbox.results(),
        )?;
        self.outbox.delivery_seconds().encode(e.encode_descriptor(
            "hotline_ticket_delivery_seconds",
            "Tickets delivered, from filed to delivered",
            None,
            MetricType::Histogram,
        )?)?;

        // The store.
        let st = self.store.stats();
        counter(
            &mut e,
            "hotline_store_write_failures",
            "Store transactions that failed (each is retried)",
            st.write_failures,
        )?;
        gauge(
            &mut e,
            "hotline_store_queued",
            "Writes accepted and not yet committed",
            st.queued as f64,
        )?;
        gauge(
            &mut e,
            "hotline_store_tickets_held",
            "Tickets the store could not write (the caller heard P-FAULT), held in memory and retried",
            st.pending_tickets as f64,
        )?;

        // Reloads.
        let rl = self.reloader.status();
        counters(
            &mut e,
            "hotline_flow_reloads",
            "Reloads of the flows, by result",
            "result",
            [
                ("applied", rl.generation.saturating_sub(1)),
                ("refused", rl.refused),
            ],
        )?;
        gauge(
            &mut e,
            "hotline_flow_reload_failing",
            "1 while the last reload was refused",
            f64::from(u8::from(!rl.errors.is_empty())),
        )?;

        let tz = crate::flow::clock::time_zone(&self.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        if let Some(end) = self.svc.library().calendar.ends_at(&tz) {
            gauge(
                &mut e,
                "hotline_holiday_calendar_end_timestamp_seconds",
                "When the holiday calendar (holidays.yaml) runs out: the midnight after the last day it covers",
                end.as_second() as f64,
            )?;
        }

        let info = ConstGauge::new(1i64);
        let mut m = e.encode_descriptor(
            "hotline_build_info",
            "The version of hotline running",
            None,
            info.metric_type(),
        )?;
        info.encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        Ok(())
    }
}

/// A farm's view of this instance: draining, and INVITEs it sent on to the others.
fn farm(e: &mut DescriptorEncoder, f: &crate::server::farm::Farm) -> Res {
    gauge(
        e,
        "hotline_draining",
        "1 while draining (POST /drain, SIGUSR1): OPTIONS and new INVITEs get 503",
        f64::from(u8::from(f.is_draining())),
    )?;
    let (draining, full) = f.refused();
    counter(
        e,
        "hotline_farm_refused_draining",
        "New INVITEs answered 503 while draining, for the proxy to fail over",
        draining,
    )?;
    counter(
        e,
        "hotline_farm_refused_full",
        "New INVITEs answered 486 with every line busy, for the proxy to try the next instance",
        full,
    )
}
