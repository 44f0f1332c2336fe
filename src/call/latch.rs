//! Whom a call's RTP is believed from (symmetric RTP, the practice RFC 4961 describes for
//! callers behind NAT, whose RTP comes from another address than their SDP names).
//!
//! hotline sends a caller's audio to where the caller's RTP comes from, and then connects
//! the socket to it, so that nothing else is heard. Believing the first packet from
//! anywhere would let a stranger who sprays the RTP port range with one guessed packet
//! (payload type 0 is easy to guess) take a call's audio and key presses. So a source is
//! believed at once only from the SDP's own IP address; any other must first send
//! [`RUN`] packets in a row with one SSRC and consecutive sequence numbers (the rule
//! Asterisk's `strictrtp` applies). Until a source is believed, its packets are not
//! heard. An SDP without an address (`c=0.0.0.0`, the old way to hold) believes no one.
use std::net::SocketAddr;

/// Packets in a row a source other than the SDP's IP must send to be believed.
pub const RUN: u8 = 4;

/// What to do with one packet on a leg not latched yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Believe the source: send there from now on; hear the packet.
    Latch,
    /// Hear the packet, latch nothing (from the SDP's IP, but not the stream's RTP).
    Hear,
    /// Not heard: a stranger, or one still on probation.
    Drop,
}

/// One unlatched leg's probation: the source being watched and its run so far.
#[derive(Debug, Default)]
pub struct Probation {
    watching: Option<Watch>,
}

#[derive(Debug)]
struct Watch {
    from: SocketAddr,
    ssrc: u32,
    seq: u16,
    run: u8,
}

impl Probation {
    /// A packet from `from` on a leg whose SDP named `sdp`; `rtp` is its SSRC and
    /// sequence number when it is the stream's RTP (its payload type), else `None`.
    pub fn consider(
        &mut self,
        sdp: Option<SocketAddr>,
        from: SocketAddr,
        rtp: Option<(u32, u16)>,
    ) -> Verdict {
        let Some(sdp) = sdp else {
            return Verdict::Drop;
        };
        if from.ip() == sdp.ip() {
            self.watching = None;
            return if rtp.is_some() {
                Verdict::Latch
            } else {
                Verdict::Hear
            };
        }
        let Some((ssrc, seq)) = rtp else {
            return Verdict::Drop;
        };
        match &mut self.watching {
            Some(w) if w.from == from && w.ssrc == ssrc && seq == w.seq.wrapping_add(1) => {
                w.seq = seq;
                w.run += 1;
            }
            _ => {
                self.watching = Some(Watch {
                    from,
                    ssrc,
                    seq,
                    run: 1,
                })
            }
        }
        if self.watching.as_ref().is_some_and(|w| w.run >= RUN) {
            self.watching = None;
            Verdict::Latch
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_sdps_own_ip_is_believed_at_once_on_any_port() {
        let mut p = Probation::default();
        let sdp = Some(a("192.0.2.7:4000"));
        assert_eq!(
            p.consider(sdp, a("192.0.2.7:4000"), Some((1, 9))),
            Verdict::Latch
        );
        assert_eq!(
            p.consider(sdp, a("192.0.2.7:5555"), Some((1, 9))),
            Verdict::Latch
        );
        // Not the stream's RTP (another payload type, RTCP): heard, nothing latched.
        assert_eq!(p.consider(sdp, a("192.0.2.7:4000"), None), Verdict::Hear);
    }

    #[test]
    fn a_stranger_with_one_packet_is_not_believed() {
        let mut p = Probation::default();
        let sdp = Some(a("10.0.0.5:4000"));
        for port in 20000..20100 {
            let from = SocketAddr::new("203.0.113.9".parse().unwrap(), port);
            assert_eq!(p.consider(sdp, from, Some((7, 1))), Verdict::Drop);
        }
        assert_eq!(p.consider(sdp, a("203.0.113.9:1"), None), Verdict::Drop);
    }

    #[test]
    fn a_caller_behind_nat_is_believed_after_a_run() {
        let mut p = Probation::default();
        let sdp = Some(a("10.0.0.5:4000"));
        let nat = a("198.51.100.4:61000");
        for seq in 100..100 + u16::from(RUN) - 1 {
            assert_eq!(p.consider(sdp, nat, Some((0xabc, seq))), Verdict::Drop);
        }
        assert_eq!(
            p.consider(sdp, nat, Some((0xabc, 100 + u16::from(RUN) - 1))),
            Verdict::Latch
        );
    }

    #[test]
    fn a_run_broken_by_another_source_ssrc_or_a_gap_starts_again() {
        let sdp = Some(a("10.0.0.5:4000"));
        let nat = a("198.51.100.4:61000");
        let mut p = Probation::default();
        assert_eq!(p.consider(sdp, nat, Some((1, 10))), Verdict::Drop);
        assert_eq!(p.consider(sdp, nat, Some((1, 11))), Verdict::Drop);
        // A stranger's packet in between resets the run: interleaving cannot finish it.
        assert_eq!(
            p.consider(sdp, a("203.0.113.9:5"), Some((1, 12))),
            Verdict::Drop
        );
        assert_eq!(p.consider(sdp, nat, Some((1, 12))), Verdict::Drop);
        assert_eq!(p.consider(sdp, nat, Some((2, 13))), Verdict::Drop);
        assert_eq!(p.consider(sdp, nat, Some((2, 15))), Verdict::Drop);
        // Sequence numbers wrap.
        let mut p = Probation::default();
        let mut v = Verdict::Drop;
        for seq in [65534u16, 65535, 0, 1] {
            v = p.consider(sdp, nat, Some((3, seq)));
        }
        assert_eq!(v, Verdict::Latch);
    }

    #[test]
    fn a_held_sdp_without_an_address_believes_no_one() {
        let mut p = Probation::default();
        for seq in 0..20 {
            assert_eq!(
                p.consider(None, a("192.0.2.7:4000"), Some((1, seq))),
                Verdict::Drop
            );
        }
    }
}
