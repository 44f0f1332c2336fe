//! RFC 4733 telephone-events: DTMF keys in, DTMF keys out.
//!
//! An event is identified by the RTP timestamp of its start: every packet of
//! one key press carries the same timestamp, a growing duration, and finally
//! the E (end) bit, usually in three identical copies (§2.5.1.4). The
//! [`DtmfDetector`] turns that stream into exactly one key per press, however
//! many copies arrive and whichever of them are lost.

use std::fmt;

/// A DTMF key: RFC 4733 §3.2 events 0-15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfKey {
    /// Event 0.
    Zero,
    /// Event 1.
    One,
    /// Event 2.
    Two,
    /// Event 3.
    Three,
    /// Event 4.
    Four,
    /// Event 5.
    Five,
    /// Event 6.
    Six,
    /// Event 7.
    Seven,
    /// Event 8.
    Eight,
    /// Event 9.
    Nine,
    /// `*`, event 10.
    Star,
    /// `#`, event 11.
    Pound,
    /// Event 12.
    A,
    /// Event 13.
    B,
    /// Event 14.
    C,
    /// Event 15.
    D,
}

/// Keys in event-code order, so that the code is the index.
const KEYS: [DtmfKey; 16] = [
    DtmfKey::Zero,
    DtmfKey::One,
    DtmfKey::Two,
    DtmfKey::Three,
    DtmfKey::Four,
    DtmfKey::Five,
    DtmfKey::Six,
    DtmfKey::Seven,
    DtmfKey::Eight,
    DtmfKey::Nine,
    DtmfKey::Star,
    DtmfKey::Pound,
    DtmfKey::A,
    DtmfKey::B,
    DtmfKey::C,
    DtmfKey::D,
];

const KEY_CHARS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

impl DtmfKey {
    /// The key for an event code; `None` for codes that are not DTMF (flash, tones, ...).
    pub fn from_event_code(code: u8) -> Option<DtmfKey> {
        KEYS.get(usize::from(code)).copied()
    }

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        self as u8
    }

    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub fn as_char(self) -> char {
        KEY_CHARS[self as usize]
    }

    /// The key for a character; lower-case `a`-`d` are accepted too.
    pub fn from_char(c: char) -> Option<DtmfKey> {
        let upper = c.to_ascii_uppercase();
        KEY_CHARS.iter().position(|&k| k == upper).map(|i| KEYS[i])
    }
}

impl fmt::Display for DtmfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// Length of one event report on the wire.
pub const EVENT_LEN: usize = 4;

/// One 4-byte event report (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 are DTMF).
    pub event: u8,
    /// E bit: this report ends the event.
    pub end: bool,
    /// Power level as -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

/// A telephone-event payload too short to hold one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortEvent(pub usize);

impl fmt::Display for ShortEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "telephone-event payload of {} bytes, need 4", self.0)
    }
}

impl std::error::Error for ShortEvent {}

impl TelephoneEvent {
    /// Reads the first report of a payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ShortEvent> {
        payload
            .first_chunk::<EVENT_LEN>()
            .map(Self::from_bytes)
            .ok_or(ShortEvent(payload.len()))
    }

    /// Reads a report.
    pub fn from_bytes(b: &[u8; EVENT_LEN]) -> Self {
        TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            // The R bit (0x40) is reserved: ignored on receipt (§2.3.4).
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        }
    }

    /// The report's wire form.
    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d0,
            d1,
        ]
    }
}

/// Keys produced by one packet; at most [`MAX_KEYS_PER_PACKET`].
#[derive(Debug, Clone, Default)]
pub struct Keys {
    keys: [Option<DtmfKey>; MAX_KEYS_PER_PACKET],
    next: usize,
}

/// Reports read from one packet; more would be an abuse of §2.5.1.5 packing.
const MAX_EVENTS_PER_PACKET: usize = 3;
/// Each report can finish itself, the first can also flush a press whose end was lost.
pub const MAX_KEYS_PER_PACKET: usize = MAX_EVENTS_PER_PACKET + 1;

impl Keys {
    fn push(&mut self, key: Option<DtmfKey>) {
        if let Some(slot) = self.keys.iter_mut().find(|k| k.is_none()) {
            *slot = key;
        }
    }
}

impl Iterator for Keys {
    type Item = DtmfKey;

    fn next(&mut self) -> Option<DtmfKey> {
        while self.next < self.keys.len() {
            let key = self.keys[self.next].take();
            self.next += 1;
            if key.is_some() {
                return key;
            }
        }
        None
    }
}

/// The identity of an event: its source and start timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventId {
    ssrc: u32,
    timestamp: u32,
}

/// Where a report belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// Another copy or update of the current event.
    Same,
    /// The next segment of the current (long) event.
    NextSegment,
    /// A late report of an event already superseded.
    Stale,
    /// A new event.
    New,
}

/// The event most recently started.
#[derive(Debug, Clone, Copy)]
struct Current {
    id: EventId,
    key: Option<DtmfKey>,
    reported: bool,
    /// Longest duration seen so far, to recognise the next segment of a long event.
    duration: u16,
}

/// How many finished events are remembered to drop their late copies.
const RECENT: usize = 4;

/// Per-call RFC 4733 receiver.
///
/// A key is reported on the first end packet of its event; the two redundant
/// copies, retransmissions, and reordered packets of older events are
/// dropped by their timestamp. If every end packet of a press is lost, the
/// key is reported when the next event starts (or on [`DtmfDetector::flush`]).
/// Events from any SSRC are accepted: a phone may send DTMF as its own RTP
/// stream with its own sequence space (§2.6.2 of RFC 4733 allows both).
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    current: Option<Current>,
    recent: [Option<EventId>; RECENT],
    recent_next: usize,
}

impl DtmfDetector {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (its SSRC, RTP timestamp and payload).
    /// Malformed payloads produce no keys.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Keys {
        let mut keys = Keys::default();
        // Packed reports (§2.5.1.5) follow each other without gaps, so each
        // starts where the previous one's duration ends.
        let mut start = timestamp;
        for chunk in payload.chunks_exact(EVENT_LEN).take(MAX_EVENTS_PER_PACKET) {
            let Some(bytes) = chunk.first_chunk::<EVENT_LEN>() else {
                break;
            };
            let event = TelephoneEvent::from_bytes(bytes);
            let (flushed, finished) = self.on_event(
                EventId {
                    ssrc,
                    timestamp: start,
                },
                event,
            );
            keys.push(flushed);
            keys.push(finished);
            start = start.wrapping_add(u32::from(event.duration));
        }
        keys
    }

    /// Reports a key whose press began but whose end never arrived. The call
    /// invokes this when telephone-events have been silent for a while.
    pub fn flush(&mut self) -> Option<DtmfKey> {
        let current = self.current.as_mut()?;
        if current.reported {
            return None;
        }
        current.reported = true;
        current.key
    }

    /// Handles one report; returns (key of an unfinished earlier press, key finished now).
    fn on_event(
        &mut self,
        id: EventId,
        event: TelephoneEvent,
    ) -> (Option<DtmfKey>, Option<DtmfKey>) {
        let key = DtmfKey::from_event_code(event.event);
        match (self.relation(id, key), self.current.as_mut()) {
            (Relation::Same, Some(current)) => {
                current.duration = current.duration.max(event.duration);
                (None, finish(current, event.end))
            }
            (Relation::NextSegment, Some(current)) => {
                let old = std::mem::replace(&mut current.id, id);
                current.duration = event.duration;
                let finished = finish(current, event.end);
                self.remember(old);
                (None, finished)
            }
            (Relation::Stale, _) => (None, None),
            _ => {
                let flushed = self.start(id, key, event);
                (flushed, if event.end { key } else { None })
            }
        }
    }

    /// How a report relates to what has been seen.
    fn relation(&self, id: EventId, key: Option<DtmfKey>) -> Relation {
        let Some(current) = &self.current else {
            return Relation::New;
        };
        if current.id == id {
            return Relation::Same;
        }
        if self.recent.contains(&Some(id)) {
            return Relation::Stale;
        }
        if current.id.ssrc != id.ssrc {
            return Relation::New;
        }
        if is_next_segment(current, id, key) {
            Relation::NextSegment
        } else if precedes(id.timestamp, current.id.timestamp) {
            // A reordered report of an event older than the current one.
            Relation::Stale
        } else {
            Relation::New
        }
    }

    /// Makes `id` the current event; returns the previous one's key if it never ended.
    fn start(
        &mut self,
        id: EventId,
        key: Option<DtmfKey>,
        event: TelephoneEvent,
    ) -> Option<DtmfKey> {
        let previous = self.current.replace(Current {
            id,
            key,
            reported: event.end,
            duration: event.duration,
        })?;
        self.remember(previous.id);
        if previous.reported {
            None
        } else {
            previous.key
        }
    }

    fn remember(&mut self, id: EventId) {
        self.recent[self.recent_next] = Some(id);
        self.recent_next = (self.recent_next + 1) % RECENT;
    }
}

/// Marks the current event reported if this is its first end packet.
fn finish(current: &mut Current, end: bool) -> Option<DtmfKey> {
    if end && !current.reported {
        current.reported = true;
        current.key
    } else {
        None
    }
}

/// §2.5.1.3: a press longer than the 16-bit duration field continues as a
/// new segment whose timestamp is where the previous segment ended.
fn is_next_segment(current: &Current, id: EventId, key: Option<DtmfKey>) -> bool {
    !current.reported
        && current.key == key
        && current.duration > 0
        && id.timestamp
            == current
                .id
                .timestamp
                .wrapping_add(u32::from(current.duration))
}

/// RTP timestamp order modulo 2^32 (RFC 3550 §A.1 style serial comparison).
fn precedes(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// Timestamp units between successive reports of one event: one per 20 ms packet.
pub const REPORT_INTERVAL: u16 = 160;

/// Copies of the final report (RFC 4733 §2.5.1.4 recommends three).
const END_COPIES: u8 = 3;

/// One outgoing telephone-event packet. All packets of one press share the
/// RTP timestamp of the press start; each takes the next sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-byte payload.
    pub payload: [u8; EVENT_LEN],
    /// RTP marker: set on the first packet of the event (§2.5.1.1).
    pub marker: bool,
}

/// The packets a sender emits for one key press, one per 20 ms.
#[derive(Debug, Clone)]
pub struct EventPackets {
    event: u8,
    volume: u8,
    total: u16,
    reported: u16,
    end_copies_left: u8,
    first: bool,
}

impl EventPackets {
    /// A press of `key` lasting `duration_ms` (clamped to 1..=8191 ms, the
    /// 16-bit duration field at 8 kHz) at `volume` -dBm0 (clamped to 63).
    pub fn new(key: DtmfKey, duration_ms: u32, volume: u8) -> Self {
        let samples = duration_ms.saturating_mul(8).clamp(1, u32::from(u16::MAX));
        EventPackets {
            event: key.event_code(),
            volume: volume.min(63),
            total: u16::try_from(samples).unwrap_or(u16::MAX),
            reported: 0,
            end_copies_left: END_COPIES,
            first: true,
        }
    }
}

impl Iterator for EventPackets {
    type Item = EventPacket;

    fn next(&mut self) -> Option<EventPacket> {
        if self.end_copies_left == 0 {
            return None;
        }
        self.reported = self
            .reported
            .saturating_add(REPORT_INTERVAL)
            .min(self.total);
        let end = self.reported == self.total;
        if end {
            self.end_copies_left -= 1;
        }
        let report = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.reported,
        };
        let marker = std::mem::replace(&mut self.first, false);
        Some(EventPacket {
            payload: report.to_bytes(),
            marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SSRC: u32 = 0x5555_0001;

    fn press(key: DtmfKey, ms: u32) -> Vec<[u8; 4]> {
        EventPackets::new(key, ms, 10).map(|p| p.payload).collect()
    }

    fn feed(det: &mut DtmfDetector, ts: u32, payloads: &[[u8; 4]]) -> Vec<DtmfKey> {
        payloads
            .iter()
            .flat_map(|p| det.on_packet(SSRC, ts, p))
            .collect()
    }

    #[test]
    fn event_codes_and_chars_agree() {
        for code in 0..16u8 {
            let key = DtmfKey::from_event_code(code).expect("DTMF code");
            assert_eq!(key.event_code(), code);
            assert_eq!(DtmfKey::from_char(key.as_char()), Some(key));
        }
        assert_eq!(DtmfKey::from_event_code(16), None, "flash is not a key");
        assert_eq!(DtmfKey::Star.as_char(), '*');
        assert_eq!(DtmfKey::Pound.to_string(), "#");
        assert_eq!(DtmfKey::from_char('d'), Some(DtmfKey::D));
        assert_eq!(DtmfKey::from_char('E'), None);
    }

    #[test]
    fn parses_the_wire_format() {
        // Event 11 (#), E=1, R=1 (ignored), volume 10, duration 800.
        let ev = TelephoneEvent::parse(&[11, 0xC0 | 10, 0x03, 0x20]).expect("4 bytes");
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), [11, 0x80 | 10, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(ShortEvent(3)));
    }

    #[test]
    fn encoder_emits_growing_durations_then_three_ends() {
        let packets: Vec<EventPacket> = EventPackets::new(DtmfKey::Five, 100, 10).collect();
        let reports: Vec<TelephoneEvent> = packets
            .iter()
            .map(|p| TelephoneEvent::from_bytes(&p.payload))
            .collect();
        assert_eq!(
            reports.iter().map(|r| r.duration).collect::<Vec<_>>(),
            vec![160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(
            reports.iter().map(|r| r.end).collect::<Vec<_>>(),
            vec![false, false, false, false, true, true, true]
        );
        assert!(reports.iter().all(|r| r.event == 5 && r.volume == 10));
        assert_eq!(
            packets.iter().map(|p| p.marker).collect::<Vec<_>>(),
            vec![true, false, false, false, false, false, false]
        );
    }

    #[test]
    fn encoder_clamps_short_and_long_presses() {
        let short: Vec<EventPacket> = EventPackets::new(DtmfKey::One, 0, 99).collect();
        assert_eq!(short.len(), 3, "a single report, sent three times");
        let ev = TelephoneEvent::from_bytes(&short[0].payload);
        assert!(ev.end && ev.duration == 1 && ev.volume == 63);
        let long = EventPackets::new(DtmfKey::One, 60_000, 10)
            .last()
            .expect("packets");
        assert_eq!(TelephoneEvent::from_bytes(&long.payload).duration, u16::MAX);
    }

    #[test]
    fn one_press_gives_one_key_despite_three_end_packets() {
        let mut det = DtmfDetector::new();
        assert_eq!(
            feed(&mut det, 1000, &press(DtmfKey::Seven, 120)),
            vec![DtmfKey::Seven]
        );
        assert_eq!(det.flush(), None);
    }

    #[test]
    fn key_is_reported_on_the_first_end_packet() {
        let mut det = DtmfDetector::new();
        let packets = press(DtmfKey::Pound, 100);
        let (start, ends) = packets.split_at(4);
        assert!(feed(&mut det, 0, start).is_empty(), "not before the end");
        assert_eq!(feed(&mut det, 0, &ends[..1]), vec![DtmfKey::Pound]);
        assert!(feed(&mut det, 0, &ends[1..]).is_empty());
    }

    #[test]
    fn press_whose_ends_were_lost_is_reported_when_the_next_starts() {
        let mut det = DtmfDetector::new();
        let first = press(DtmfKey::One, 100);
        assert!(feed(&mut det, 8000, &first[..4]).is_empty());
        let second = press(DtmfKey::Two, 100);
        assert_eq!(feed(&mut det, 9600, &second[..1]), vec![DtmfKey::One]);
        assert_eq!(feed(&mut det, 9600, &second[1..]), vec![DtmfKey::Two]);
    }

    #[test]
    fn flush_reports_a_press_left_hanging() {
        let mut det = DtmfDetector::new();
        assert!(feed(&mut det, 0, &press(DtmfKey::A, 100)[..2]).is_empty());
        assert_eq!(det.flush(), Some(DtmfKey::A));
        assert_eq!(det.flush(), None);
        // Its end arriving later must not report it again.
        assert!(feed(&mut det, 0, &press(DtmfKey::A, 100)[4..]).is_empty());
    }

    #[test]
    fn lone_end_packet_is_enough() {
        let mut det = DtmfDetector::new();
        assert_eq!(
            feed(&mut det, 0, &press(DtmfKey::D, 100)[6..]),
            vec![DtmfKey::D]
        );
    }

    #[test]
    fn late_copies_of_finished_events_are_dropped() {
        let mut det = DtmfDetector::new();
        let one = press(DtmfKey::One, 100);
        let two = press(DtmfKey::Two, 100);
        assert_eq!(feed(&mut det, 0, &one[..5]), vec![DtmfKey::One]);
        assert_eq!(feed(&mut det, 2000, &two[..2]), vec![]);
        // A reordered end copy of the first press, and a stale interim report.
        assert!(feed(&mut det, 0, &one[6..]).is_empty());
        assert!(feed(&mut det, 0, &one[..1]).is_empty());
        assert_eq!(feed(&mut det, 2000, &two[4..]), vec![DtmfKey::Two]);
        assert_eq!(det.flush(), None);
    }

    #[test]
    fn repeated_key_presses_are_separate_events() {
        let mut det = DtmfDetector::new();
        let p = press(DtmfKey::Nine, 80);
        let mut got = feed(&mut det, 100, &p);
        got.extend(feed(&mut det, 100 + 1280, &p));
        assert_eq!(got, vec![DtmfKey::Nine, DtmfKey::Nine]);
    }

    #[test]
    fn events_from_another_ssrc_are_accepted_and_kept_apart() {
        let mut det = DtmfDetector::new();
        let p = press(DtmfKey::Three, 100);
        let a: Vec<DtmfKey> = p.iter().flat_map(|x| det.on_packet(1, 500, x)).collect();
        let b: Vec<DtmfKey> = p.iter().flat_map(|x| det.on_packet(2, 500, x)).collect();
        assert_eq!((a, b), (vec![DtmfKey::Three], vec![DtmfKey::Three]));
    }

    #[test]
    fn late_copy_from_a_previous_ssrc_is_dropped() {
        // The phone moved DTMF to a new stream (say after a re-INVITE) while
        // an end copy from the old stream was still in flight.
        let mut det = DtmfDetector::new();
        let p = press(DtmfKey::Eight, 100);
        let old: Vec<DtmfKey> = p[..5]
            .iter()
            .flat_map(|x| det.on_packet(1, 700, x))
            .collect();
        let new: Vec<DtmfKey> = p[..2]
            .iter()
            .flat_map(|x| det.on_packet(2, 90, x))
            .collect();
        let late: Vec<DtmfKey> = p[5..]
            .iter()
            .flat_map(|x| det.on_packet(1, 700, x))
            .collect();
        assert_eq!((old, new, late), (vec![DtmfKey::Eight], vec![], vec![]));
    }

    #[test]
    fn non_dtmf_events_are_ignored_but_still_flush_a_hanging_press() {
        let mut det = DtmfDetector::new();
        assert!(feed(&mut det, 0, &press(DtmfKey::Six, 100)[..3]).is_empty());
        // Event 16 (flash) with E set, then event 32 (ANS).
        assert_eq!(
            feed(&mut det, 4000, &[[16, 0x80, 0, 160]]),
            vec![DtmfKey::Six]
        );
        assert!(feed(&mut det, 8000, &[[32, 0x80, 0, 160]]).is_empty());
        assert_eq!(det.flush(), None);
    }

    #[test]
    fn long_press_segments_give_one_key() {
        let mut det = DtmfDetector::new();
        // First segment ends at the 16-bit limit without the E bit (§2.5.1.3).
        let seg1 = TelephoneEvent {
            event: 4,
            end: false,
            volume: 10,
            duration: u16::MAX,
        };
        assert!(
            det.on_packet(SSRC, 10_000, &seg1.to_bytes())
                .next()
                .is_none()
        );
        let seg2_start = 10_000 + u32::from(u16::MAX);
        let seg2 = TelephoneEvent {
            event: 4,
            end: false,
            volume: 10,
            duration: 800,
        };
        assert!(
            det.on_packet(SSRC, seg2_start, &seg2.to_bytes())
                .next()
                .is_none()
        );
        let end = TelephoneEvent {
            end: true,
            duration: 1600,
            ..seg2
        };
        let keys: Vec<DtmfKey> = (0..3)
            .flat_map(|_| det.on_packet(SSRC, seg2_start, &end.to_bytes()))
            .collect();
        assert_eq!(keys, vec![DtmfKey::Four]);
        assert_eq!(det.flush(), None);
    }

    #[test]
    fn packed_events_in_one_packet_each_count() {
        let mut det = DtmfDetector::new();
        let one = TelephoneEvent {
            event: 1,
            end: true,
            volume: 10,
            duration: 400,
        };
        let two = TelephoneEvent {
            event: 2,
            end: true,
            volume: 10,
            duration: 400,
        };
        let mut payload = [0u8; 8];
        payload[..4].copy_from_slice(&one.to_bytes());
        payload[4..].copy_from_slice(&two.to_bytes());
        let keys: Vec<DtmfKey> = (0..3)
            .flat_map(|_| det.on_packet(SSRC, 0, &payload))
            .collect();
        assert_eq!(keys, vec![DtmfKey::One, DtmfKey::Two]);
    }

    #[test]
    fn timestamps_compare_across_wrap() {
        assert!(precedes(u32::MAX - 10, 5));
        assert!(!precedes(5, u32::MAX - 10));
        assert!(!precedes(7, 7));
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic(
            ssrc: u32,
            packets in proptest::collection::vec(
                (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..40),
        ) {
            let mut det = DtmfDetector::new();
            for (ts, payload) in &packets {
                let n = det.on_packet(ssrc, *ts, payload).count();
                prop_assert!(n <= MAX_KEYS_PER_PACKET);
            }
            let _ = det.flush();
        }

        /// Any run of presses, with any loss, duplication and adjacent
        /// reordering that leaves at least one packet per press, yields every
        /// key once and in order.
        #[test]
        fn lossy_streams_yield_each_key_once(
            presses in proptest::collection::vec((0u8..16, 40u32..400, 40u32..300), 1..12),
            fate in proptest::collection::vec(0u8..10, 300),
            start: u32,
        ) {
            let mut det = DtmfDetector::new();
            let mut got = Vec::new();
            let mut ts = start;
            let mut fates = fate.iter().cycle();
            for &(code, ms, gap_ms) in &presses {
                let key = DtmfKey::from_event_code(code).expect("0..16");
                let mut packets: Vec<[u8; 4]> = EventPackets::new(key, ms, 10).map(|p| p.payload).collect();
                let keep_one = *fates.next().unwrap_or(&0) as usize % packets.len();
                let mut sent = Vec::new();
                for (i, p) in packets.drain(..).enumerate() {
                    match fates.next().copied().unwrap_or(0) {
                        0..=2 if i != keep_one => {}          // lost
                        3 => { sent.push(p); sent.push(p); } // duplicated
                        _ => sent.push(p),
                    }
                }
                if sent.len() > 2 && fates.next().copied().unwrap_or(0) < 3 {
                    sent.swap(0, 1);
                }
                for p in &sent {
                    got.extend(det.on_packet(SSRC, ts, p));
                }
                ts = ts.wrapping_add((ms + gap_ms) * 8);
            }
            got.extend(det.flush());
            let want: Vec<DtmfKey> = presses
                .iter()
                .filter_map(|&(code, _, _)| DtmfKey::from_event_code(code))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
