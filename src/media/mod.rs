//! Pure media core: G.711, RTP, RFC 4733 events, prompt frames, voice classification.
