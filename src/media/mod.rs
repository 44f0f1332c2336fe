//! Pure media core: G.711, RTP, RFC 4733 events, prompt frames, voice classification.
//!
//! Nothing here touches a socket, a clock or an executor: packets come in as
//! byte slices, time comes in as [`std::time::Instant`] or frame counts, and
//! results go out as values. That keeps every piece testable on its own and
//! lets the async edge own all I/O.
//!
//! The whole media plane runs at 8 kHz in 20 ms frames of 160 samples
//! ([`FRAME_SAMPLES`]); with G.711 a frame is also 160 payload bytes.

pub mod dtmf;
pub mod g711;
pub mod prompt;
pub mod rtp;
pub mod voice;

use std::time::Duration;

/// RTP clock rate of G.711 and of telephone-event as we negotiate it (RFC 3551 §4.5.14).
pub const SAMPLE_RATE: u32 = 8000;

/// Samples (and G.711 bytes) in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;

/// Wall-clock length of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// A hint to bring the cache line holding `p` in; nothing is read, nothing can fault.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    hint((p as *const T).cast());
}

/// [`prefetch`] for every cache line of the `len` bytes at `p`; a hint, nothing is read.
#[inline(always)]
pub fn prefetch_bytes(p: *const u8, len: usize) {
    for off in (0..len)
        .step_by(64)
        .chain(std::iter::once(len.saturating_sub(1)))
    {
        // wrapping_add: no pointer arithmetic is assumed in bounds.
        hint(p.wrapping_add(off));
    }
}

#[inline(always)]
fn hint(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it reads nothing and cannot fault,
    // whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The two static-payload-type G.711 codecs of RFC 3551.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// μ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

/// A full frame of μ-law silence (the code for +0).
static PCMU_SILENCE: [u8; FRAME_SAMPLES] = [g711::ULAW_SILENCE; FRAME_SAMPLES];
/// A full frame of A-law silence (the code for the smallest positive step).
static PCMA_SILENCE: [u8; FRAME_SAMPLES] = [g711::ALAW_SILENCE; FRAME_SAMPLES];

impl Codec {
    /// Static RTP payload type (RFC 3551 table 4).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Encoding name as it appears in SDP `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The byte that decodes to (near) zero.
    pub const fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => g711::ULAW_SILENCE,
            Codec::Pcma => g711::ALAW_SILENCE,
        }
    }

    /// A static 20 ms frame of silence, so idle senders never build one.
    pub fn silence_frame(self) -> &'static [u8; FRAME_SAMPLES] {
        match self {
            Codec::Pcmu => &PCMU_SILENCE,
            Codec::Pcma => &PCMA_SILENCE,
        }
    }

    /// Decodes `min(payload.len(), out.len())` bytes into `out`; returns that count.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> usize {
        match self {
            Codec::Pcmu => g711::ulaw_decode_slice(payload, out),
            Codec::Pcma => g711::alaw_decode_slice(payload, out),
        }
    }

    /// Encodes `min(samples.len(), out.len())` samples into `out`; returns that count.
    pub fn encode(self, samples: &[i16], out: &mut [u8]) -> usize {
        match self {
            Codec::Pcmu => g711::ulaw_encode_slice(samples, out),
            Codec::Pcma => g711::alaw_encode_slice(samples, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_follow_rfc3551() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
        }
        assert_eq!(Codec::from_payload_type(101), None);
        assert_eq!(Codec::from_payload_type(3), None);
    }

    #[test]
    fn silence_frames_decode_to_near_zero() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let frame = codec.silence_frame();
            assert!(frame.iter().all(|&b| b == codec.silence_byte()));
            let mut pcm = [1234i16; FRAME_SAMPLES];
            assert_eq!(codec.decode(frame, &mut pcm), FRAME_SAMPLES);
            assert!(
                pcm.iter().all(|s| s.abs() <= 8),
                "{codec:?}: {:?}",
                &pcm[..4]
            );
        }
    }

    #[test]
    fn slice_helpers_stop_at_the_shorter_side() {
        let mut out = [0u8; 3];
        assert_eq!(Codec::Pcmu.encode(&[0, 0, 0, 0, 0], &mut out), 3);
        let mut pcm = [0i16; 10];
        assert_eq!(Codec::Pcma.decode(&[0xD5; 4], &mut pcm), 4);
    }
}
