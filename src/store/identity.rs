//! A ticket's idempotency key, derived from the call that filed it rather than drawn
//! at random: a proxy that fails a slow instance's call over delivers the same INVITE
//! to a second instance, and both file the same tickets. With the same keys, the
//! ticket system's de-duplication (it sees `Idempotency-Key`) keeps one of each.
//!
//! The key is a UUID (version 8, RFC 9562's custom layout) made from the SHA-256 of
//! the Call-ID, From's tag, the branch of the caller's own Via on the INVITE, the
//! flow state that filed the ticket and its ordinal (the n-th ticket that state filed
//! in the call), so its shape is what the ticket system has always received.
//!
//! The branch is there because a phone that resets its counters on a reboot can send
//! a later call with an earlier call's Call-ID and From tag: with the same key, the
//! store kept the first ticket and the ticket system would drop the second as a
//! repeat, while the second caller was told the request was filed. A failover copy
//! carries the caller's Via untouched (a proxy adds its own above it), so it keeps
//! its key. Without an RFC 3261 branch (empty) the key is what it was before.
use sha2::{Digest, Sha256};

pub fn idempotency_key(
    call_id: &str,
    from_tag: &str,
    invite_branch: &str,
    state: &str,
    ordinal: u32,
) -> String {
    let mut h = Sha256::new();
    // Lengths first, so that no two different tuples hash the same bytes.
    let branch = (!invite_branch.is_empty()).then_some(invite_branch);
    for part in [Some(call_id), Some(from_tag), branch, Some(state)]
        .into_iter()
        .flatten()
    {
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

    const B: &str = "z9hG4bK776asdhds";

    #[test]
    fn the_same_call_gives_the_same_key_and_any_difference_another() {
        let k = idempotency_key("a@h", "t1", B, "repair_ticket", 1);
        assert_eq!(k, idempotency_key("a@h", "t1", B, "repair_ticket", 1));
        assert_eq!(k.len(), 36);
        assert_eq!(k.as_bytes()[14], b'8', "version 8: {k}");
        for other in [
            idempotency_key("b@h", "t1", B, "repair_ticket", 1),
            idempotency_key("a@h", "t2", B, "repair_ticket", 1),
            // A later call that reused the Call-ID and the tag.
            idempotency_key("a@h", "t1", "z9hG4bK9f1c", "repair_ticket", 1),
            idempotency_key("a@h", "t1", "", "repair_ticket", 1),
            idempotency_key("a@h", "t1", B, "complaint_ticket", 1),
            idempotency_key("a@h", "t1", B, "repair_ticket", 2),
            // Where one part ends and the next begins matters.
            idempotency_key("a@ht", "1", B, "repair_ticket", 1),
        ] {
            assert_ne!(k, other);
        }
    }

    /// Without a branch the key is the one hotline derived before branches counted
    /// (this value is that derivation's: SHA-256 over the Call-ID, the tag and the
    /// state, each after its length, then the ordinal): a ticket system that has seen
    /// it drops a repeat from an older instance in a rolling upgrade.
    #[test]
    fn no_branch_keeps_the_earlier_key() {
        assert_eq!(
            idempotency_key("a@h", "t1", "", "repair_ticket", 1),
            "1b03d63f-63dc-885c-98b7-00e5cc47f53d"
        );
    }
}
