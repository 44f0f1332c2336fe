//! RTP ports: each call takes an even port from the configured range (RFC 3550 §11:
//! RTP on even, RTCP on the next odd port) and gives it back when it ends.
//!
//! A port has two sockets where the kernel allows it: one that sends and reads the
//! caller, and one watched by the media thread's epoll that hears anyone else. Why:
//! every datagram a socket sends wakes that socket's wait queue when the kernel frees
//! it (`sock_wfree`), and a socket watched by epoll has a waiter there, so each send paid
//! an epoll callback under a lock: ~10 % of the media threads' CPU at 5,000 calls (perf,
//! 2026-12-03). A socket nobody waits on frees its datagrams without it.
//!
//! Both sockets are bound to the same port, so the caller still gets RTP from the port
//! our SDP names (symmetric RTP, callers behind NAT). How they come to share it, and
//! why nobody else can: the sending socket binds first with no flags (so a port that
//! any other program holds, whatever its flags, is refused and skipped, as before),
//! then turns on `SO_REUSEADDR`, the reading socket binds beside it with the same flag,
//! and both turn it off again, after which no third socket can bind the port.
//!
//! Who gets an arrival: a `connect()`ed socket is the kernel's better match for
//! datagrams from its peer, so the sending socket, connected to where the call's RTP
//! goes (the SDP's address, later where the caller's RTP comes from), gets the caller's
//! datagrams and nobody else's; the media thread reads it in its visit
//! (src/call/pump.rs). Arrivals from anyone else go to the unconnected reader (between
//! two unconnected sockets, to the one bound last: it heads the port's hash chain), which
//! is how a caller behind NAT is found. A probe at start ([`PortPool::new`]) checks both
//! on this kernel and address family, else each port has one socket as before.
use std::collections::VecDeque;
use std::net::UdpSocket;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct PortPool {
    ip: IpAddr,
    free: Arc<Mutex<VecDeque<u16>>>,
    /// Each port gets a second socket, for the caller (the probe passed).
    send_socket: bool,
}

/// A bound, non-blocking RTP port whose number returns to the pool when dropped.
pub struct RtpPort {
    /// The socket watched for datagrams from anyone (and the only one, where the port
    /// has no `sender`).
    pub socket: UdpSocket,
    /// The socket that sends, and reads the caller once connected, on the same port.
    sender: Option<UdpSocket>,
    pub port: u16,
    pool: PortPool,
}

impl RtpPort {
    /// The port's sending socket, if it has one of its own.
    pub fn sender(&self) -> Option<&UdpSocket> {
        self.sender.as_ref()
    }

    /// The socket the port's RTP goes out of.
    pub fn send_fd(&self) -> RawFd {
        self.sender.as_ref().unwrap_or(&self.socket).as_raw_fd()
    }
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        if let Ok(mut f) = self.pool.free.lock() {
            // At the back: a port just freed is reused last, so stray packets of the old
            // call do not land in a new one.
            f.push_back(self.port);
        }
    }
}

impl PortPool {
    /// The pool of `lo..hi` on `ip`, each port with a sending socket of its own where
    /// `send_socket` asks for it and the probe shows this kernel steers arrivals as the
    /// module doc says.
    pub fn new(ip: IpAddr, lo: u16, hi: u16, send_socket: bool) -> PortPool {
        let send_socket = send_socket
            && match probe(ip) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "RTP: one socket per port, as before rtp_send_socket: calls work the same, each RTP datagram sent or received costs more CPU (~13 % a send, 15-21 % per packet with callers sending); set rtp_send_socket: false to run this way without the warning");
                    false
                }
            };
        let first = lo + (lo % 2);
        let free = (first..hi).step_by(2).collect();
        PortPool {
            ip,
            free: Arc::new(Mutex::new(free)),
            send_socket,
        }
    }

    /// Each port has a socket that only sends.
    pub fn send_socket(&self) -> bool {
        self.send_socket
    }

    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Binds the next free port; ports another program holds are skipped.
    pub fn take(&self) -> Option<RtpPort> {
        let tries = self.available();
        for _ in 0..tries {
            let port = self.free.lock().ok()?.pop_front()?;
            let addr = SocketAddr::new(self.ip, port);
            let bound = if self.send_socket {
                bind_pair(addr).map(|(reader, sender)| (reader, Some(sender)))
            } else {
                bind_one(addr).map(|s| (s, None))
            };
            match bound {
                Ok((socket, sender)) => {
                    return Some(RtpPort {
                        socket,
                        sender,
                        port,
                        pool: self.clone(),
                    });
                }
                Err(e) => {
                    if let Ok(mut f) = self.free.lock() {
                        f.push_back(port);
                    }
                    // Only a port another program holds means "try the next one"; out of
                    // file descriptors or memory, every other port fails the same way,
                    // and trying them all would burn the CPU the calls need.
                    if e.kind() != std::io::ErrorKind::AddrInUse {
                        tracing::error!(port, error = %e, "cannot open an RTP socket");
                        return None;
                    }
                    tracing::debug!(port, "RTP port held by another program, skipped");
                }
            }
        }
        None
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The reading and the sending socket of `addr` (see the module doc for the order).
fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let sender = bind_one(addr)?;
    let shared = socket2::SockRef::from(&sender);
    shared.set_reuse_address(true)?;
    let reader = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    reader.set_reuse_address(true)?;
    reader.bind(&addr.into())?;
    // Closed to any third socket from here.
    shared.set_reuse_address(false)?;
    reader.set_reuse_address(false)?;
    reader.set_nonblocking(true)?;
    let reader: UdpSocket = reader.into();
    let bound = |s: &UdpSocket| s.local_addr().map(|a| a.port());
    if bound(&reader)? != bound(&sender)? {
        return Err(std::io::Error::other("the RTP socket pair is on two ports"));
    }
    Ok((reader, sender))
}

/// Binds a pair on a free port of `ip` and sends it datagrams: a stranger's must land on
/// the reader, and once the sender is connected, its peer's on the sender.
fn probe(ip: IpAddr) -> Result<(), String> {
    // A free port found by binding it and letting go; another program may take it in
    // between, so a few tries.
    let mut tries = 0;
    let (reader, sender, port) = loop {
        let first = bind_one(SocketAddr::new(ip, 0)).map_err(|e| format!("probe socket: {e}"))?;
        let port = first.local_addr().map_err(|e| e.to_string())?.port();
        drop(first);
        match bind_pair(SocketAddr::new(ip, port)) {
            Ok((r, s)) => break (r, s, port),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 3 => tries += 1,
            Err(e) => return Err(format!("probe pair: {e}")),
        }
    };
    let to = SocketAddr::new(
        match ip {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            a => a,
        },
        port,
    );
    let bind_client = || {
        UdpSocket::bind(SocketAddr::new(
            match to.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            0,
        ))
        .map_err(|e| format!("probe client: {e}"))
    };
    let (caller, stranger) = (bind_client()?, bind_client()?);
    if probe_landed(&reader, &sender, &stranger, to)? != Landed::Reader {
        return Err("arrivals land on the sending socket on this kernel".into());
    }
    // The sending socket connected to a caller: the caller's datagrams are its, and
    // everyone else's still the reader's.
    let caller_at = SocketAddr::new(
        to.ip(),
        caller.local_addr().map_err(|e| e.to_string())?.port(),
    );
    sender
        .connect(caller_at)
        .map_err(|e| format!("probe connect: {e}"))?;
    if probe_landed(&reader, &sender, &caller, to)? != Landed::Sender {
        return Err("a caller's datagrams miss the connected sending socket on this kernel".into());
    }
    if probe_landed(&reader, &sender, &stranger, to)? != Landed::Reader {
        return Err("a stranger's datagrams land on the connected sending socket".into());
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Landed {
    Reader,
    Sender,
}

/// Sends a datagram from `from` to the pair at `to`: which socket got it.
fn probe_landed(
    reader: &UdpSocket,
    sender: &UdpSocket,
    from: &UdpSocket,
    to: SocketAddr,
) -> Result<Landed, String> {
    from.send_to(b"hotline RTP probe", to)
        .map_err(|e| format!("probe send to {to}: {e}"))?;
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        if reader.recv(&mut buf).is_ok() {
            return Ok(Landed::Reader);
        }
        if sender.recv(&mut buf).is_ok() {
            return Ok(Landed::Sender);
        }
        if Instant::now() > deadline {
            return Err(format!("the probe datagram to {to} never arrived"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn ports_are_even_and_come_back() {
        for send_socket in [false, true] {
            let pool = PortPool::new(lo(), 41001, 41010, send_socket);
            assert_eq!(pool.available(), 4);
            let a = pool.take().unwrap();
            assert_eq!(a.port % 2, 0);
            assert_eq!(pool.available(), 3);
            drop(a);
            assert_eq!(pool.available(), 4);
        }
    }

    /// Which of the port's sockets got a datagram sent to it now.
    fn landed(p: &RtpPort, from: &UdpSocket) -> &'static str {
        from.send_to(b"rtp", SocketAddr::new(lo(), p.port)).unwrap();
        let mut buf = [0u8; 16];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if p.socket.recv(&mut buf).is_ok() {
                return "reader";
            }
            if p.sender().unwrap().recv(&mut buf).is_ok() {
                return "sender";
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        "nowhere"
    }

    #[test]
    fn the_sending_socket_hears_its_peer_and_the_reader_everyone_else() {
        let pool = PortPool::new(lo(), 41012, 41020, true);
        assert!(
            pool.send_socket(),
            "the probe passes on Linux over loopback"
        );
        let p = pool.take().unwrap();
        let sender = p.sender().unwrap();
        let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        // No address yet (an SDP on hold): everything to the reader.
        assert_eq!(landed(&p, &caller), "reader");
        // Aimed at the caller: the caller's datagrams are the sender's, a stranger's
        // the reader's.
        crate::call::rtpio::connect(sender, Some(caller.local_addr().unwrap())).unwrap();
        assert_eq!(landed(&p, &caller), "sender");
        assert_eq!(landed(&p, &stranger), "reader");
        // Latched elsewhere (the caller is behind NAT and sends from `stranger`).
        crate::call::rtpio::connect(sender, Some(stranger.local_addr().unwrap())).unwrap();
        assert_eq!(landed(&p, &stranger), "sender");
        assert_eq!(landed(&p, &caller), "reader");
        // Aimed again (a re-INVITE): as before. Never undone with AF_UNSPEC: after
        // that, this kernel hands every arrival to the sending socket.
        crate::call::rtpio::connect(sender, Some(caller.local_addr().unwrap())).unwrap();
        assert_eq!(landed(&p, &caller), "sender");
        assert_eq!(landed(&p, &stranger), "reader");
        // What the sending socket sends comes from the port the SDP names.
        sender
            .send_to(b"out", caller.local_addr().unwrap())
            .unwrap();
        caller
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 16];
        let (_, src) = caller.recv_from(&mut buf).unwrap();
        assert_eq!(src.port(), p.port);
        assert_ne!(p.send_fd(), p.socket.as_raw_fd());
    }

    #[test]
    fn no_third_socket_can_join_a_port_and_a_held_port_is_skipped() {
        let pool = PortPool::new(lo(), 41022, 41030, true);
        let p = pool.take().unwrap();
        for reuse in [false, true] {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
            s.set_reuse_address(reuse).unwrap();
            let addr: SocketAddr = SocketAddr::new(lo(), p.port);
            assert!(
                s.bind(&addr.into()).is_err(),
                "joined with SO_REUSEADDR {reuse}"
            );
        }
        // Another program holding the next port, even with SO_REUSEADDR, keeps it.
        let next = p.port + 2;
        let other =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        other.set_reuse_address(true).unwrap();
        other.bind(&SocketAddr::new(lo(), next).into()).unwrap();
        let q = pool.take().unwrap();
        assert_ne!(q.port, next);
        assert_ne!(q.port, p.port);
    }
}
