//! Free local ports on 127.0.0.1.
//!
//! A port is free when binding it succeeds; the socket is closed before the
//! number is returned, so another process could take it in between (rare on a
//! test machine). Numbers handed out once are never handed out again by this
//! process, so parallel tests in one binary do not collide.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim(ports: &[u16]) -> bool {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if ports.iter().any(|p| set.contains(p)) {
        return false;
    }
    set.extend(ports.iter().copied());
    true
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A UDP port on 127.0.0.1 that nothing is bound to now.
pub fn free_udp_port() -> u16 {
    for _ in 0..1000 {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0/udp");
        let port = sock.local_addr().expect("local addr").port();
        drop(sock);
        // SIP endpoints often bind TCP on the same number too: want both free.
        if tcp_free(port) && claim(&[port]) {
            return port;
        }
    }
    panic!("no free UDP port on 127.0.0.1");
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_tcp_port() -> u16 {
    for _ in 0..1000 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0/tcp");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        if claim(&[port]) {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1");
}

/// `count` consecutive free UDP ports `(lo, hi)` (inclusive), `lo` even, for
/// an RTP port range (`--rtp-ports LO-HI`). Chosen in 20000..40000, clear of
/// the ephemeral range and of pjcall.py's own RTP ports (from 4000).
pub fn free_udp_range(count: u16) -> (u16, u16) {
    assert!(count > 0 && count < 2000, "range of {count} ports");
    let mut seed = std::process::id() as u64 ^ nanos();
    for _ in 0..2000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let lo = (20000 + ((seed >> 33) % (20000 - u64::from(count))) as u16) & !1;
        let hi = lo + count - 1;
        let ports: Vec<u16> = (lo..=hi).collect();
        if ports.iter().all(|&p| udp_free(p)) && claim(&ports) {
            return (lo, hi);
        }
    }
    panic!("no {count} consecutive free UDP ports on 127.0.0.1");
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
