//! A ticket's idempotency key, derived from the call that filed it rather than drawn
//! at random: a proxy that fails a slow instance's call over delivers the same INVITE
//! to a second instance, and both file the same tickets. With the same keys, the
//! ticket system's de-duplication (it sees `Idempotency-Key`) keeps one of each.
//!
//! The key is a UUID (version 8, RFC 9562's custom layout) made from the SHA-256 of
//! the Call-ID, From's tag, the flow state that filed the ticket and its ordinal (the
//! n-th ticket that state filed in the call), so its shape is what the ticket system
//! has always received.
use sha2::{Digest, Sha256};

pub fn idempotency_key(call_id: &str, from_tag: &str, state: &str, ordinal: u32) -> String {
    let mut h = Sha256::new();
    // Lengths first, so that no two different tuples hash the same bytes.
    for part in [call_id, from_tag, state] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(ordinal.to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_call_gives_the_same_key_and_any_difference_another() {
        let k = idempotency_key("a@h", "t1", "repair_ticket", 1);
        assert_eq!(k, idempotency_key("a@h", "t1", "repair_ticket", 1));
        assert_eq!(k.len(), 36);
        assert_eq!(k.as_bytes()[14], b'8', "version 8: {k}");
        for other in [
            idempotency_key("b@h", "t1", "repair_ticket", 1),
            idempotency_key("a@h", "t2", "repair_ticket", 1),
            idempotency_key("a@h", "t1", "complaint_ticket", 1),
            idempotency_key("a@h", "t1", "repair_ticket", 2),
            // Where one part ends and the next begins matters.
            idempotency_key("a@ht", "1", "repair_ticket", 1),
        ] {
            assert_ne!(k, other);
        }
    }
}
