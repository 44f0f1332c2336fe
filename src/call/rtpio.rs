//! How a media thread moves datagrams: every send due in a slot submitted to the kernel
//! at once through io_uring (one `io_uring_enter` for a few hundred sends), the visit's
//! reads in one batch (the callers' connected sockets, and the watched ones that one
//! `epoll_wait` names), and the plain one-syscall-per-datagram path where io_uring is
//! not available.
//!
//! Why: at 5,000 calls nearly all of hotline's CPU was the kernel's per-datagram work,
//! and a per-socket batch (`sendmmsg`) batches nothing when every call has its own
//! socket (callers behind NAT need RTP from the port the SDP names). io_uring is the
//! one way to hand the kernel many sends on many sockets in one system call. Our own
//! code because the `io-uring` crate is the raw ring: the batching, the probe and the
//! fallback are ours.
//!
//! Watched sockets are also registered with the ring (a sparse table of
//! [`FIXED_FILES`]): a send or read on a registered socket skips the kernel's lookup and
//! reference count of the descriptor, which was 5 % of hotline's CPU at 5,000 calls
//! (`fget` under `io_file_get_normal`). A socket must leave the table before it is
//! closed ([`RtpIo::forget`]): the table holds the socket open, and its port bound.
//!
//! Sends carry `MSG_DONTWAIT`: a full socket buffer fails the send at once (the frame
//! is dropped and counted, as with `sendto`) rather than parking it in the ring, so a
//! flush always completes inside its own `io_uring_enter` and the buffers are free
//! again when it returns.
//!
//! A caller who sends nothing is not read here at all: the pump watches its socket for
//! the next datagram (src/call/quiet.rs). Not by a poll on the ring: a poll waits on
//! the socket's wait queue, which every send on that socket then wakes.
use crate::media::rtp::RtpHeader;
use io_uring::{IoUring, opcode, types};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Sends or receives submitted to the kernel in one call at most.
pub const BATCH: usize = 256;
/// The submission queue: a batch of sends or reads, and the poll on the epoll set.
const RING_ENTRIES: u32 = 2 * BATCH as u32;
/// The completion queue: the kernel's default, twice the submission queue.
const CQ_ENTRIES: u32 = 2 * RING_ENTRIES;
/// User data of the completion of the poll on the epoll set; a batch's sends and reads
/// carry their index (below [`BATCH`]).
const SET_POLL: u64 = 1 << 62;
/// Largest datagram sent: an RTP header and one 20 ms G.711 frame.
pub const MAX_OUT: usize = super::media::MAX_PACKET;
/// Largest datagram read whole; longer ones are cut (a 20 ms frame is 172 bytes, 40 ms
/// is 332: anything near this is not a caller's audio).
pub const MAX_IN: usize = 1500;
/// Sockets each media thread registers with its ring; past that, sockets are named by
/// descriptor (they work the same, a little dearer).
pub const FIXED_FILES: u32 = 16_384;
/// Reads submitted per socket and visit, at most: a caller's packet and the one behind
/// it after a burst of jitter; a socket with more is read again at the next visit, so
/// one flooding caller cannot take the slot from the others.
pub const READS_PER_SOCKET: usize = 2;

/// Which way RTP goes to the kernel; the `media_io` setting chooses, `auto` probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaIo {
    /// io_uring if the probe passes, else `sendto`.
    #[default]
    Auto,
    IoUring,
    Sendto,
}

impl MediaIo {
    pub fn name(self) -> &'static str {
        match self {
            MediaIo::Auto => "auto",
            MediaIo::IoUring => "io_uring",
            MediaIo::Sendto => "sendto",
        }
    }
}

/// The path `want` resolves to on this machine: `auto` and `io_uring` probe (a ring
/// built and one datagram sent through it over loopback), and fall back to `sendto`
/// with the reason where the kernel, a seccomp filter or `io_uring_disabled` says no.
pub fn resolve(want: MediaIo) -> (MediaIo, Option<String>) {
    match want {
        MediaIo::Sendto => (MediaIo::Sendto, None),
        MediaIo::Auto | MediaIo::IoUring => match probe() {
            Ok(()) => (MediaIo::IoUring, None),
            Err(e) => (MediaIo::Sendto, Some(e)),
        },
    }
}

fn probe() -> Result<(), String> {
    let mut ring = new_ring(4, 8).map_err(|e| format!("io_uring_setup: {e}"))?;
    let mut p = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| format!("io_uring probe: {e}"))?;
    for (op, name) in [
        (opcode::Send::CODE, "send"),
        (opcode::RecvMsg::CODE, "recvmsg"),
        (opcode::PollAdd::CODE, "poll"),
    ] {
        if !p.is_supported(op) {
            return Err(format!("io_uring has no {name}"));
        }
    }
    let a = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let b = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    b.set_nonblocking(true).map_err(|e| e.to_string())?;
    let to = b.local_addr().map_err(|e| e.to_string())?;
    let mut out = Outbox::new();
    out.push(a.as_raw_fd(), 0, b"probe", Some(to));
    let r = out.flush_ring(&mut ring, &mut SetWatch::default());
    if r.ok != 1 || r.failed != 0 {
        return Err(format!(
            "a datagram sent through io_uring did not go ({})",
            out.last_error.map_or("no completion".into(), |e| {
                std::io::Error::from_raw_os_error(e).to_string()
            })
        ));
    }
    let mut buf = [0u8; 16];
    // Loopback delivers inside the send: the datagram is there or it is lost.
    match b.recv(&mut buf) {
        Ok(5) if &buf[..5] == b"probe" => Ok(()),
        other => Err(format!(
            "the io_uring probe datagram did not arrive: {other:?}"
        )),
    }
}

/// `fd`'s slot + 1 in a ring's table of registered files, 0 if it has none. A free
/// function: the read path looks it up while the ring is borrowed.
fn fixed_slot(table: &[u32], fd: RawFd) -> u32 {
    usize::try_from(fd)
        .ok()
        .and_then(|i| table.get(i))
        .copied()
        .unwrap_or(0)
}

/// The soft open-file limit: a ring's table of registered files may not be larger.
fn open_file_limit() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a local rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    u32::try_from(lim.rlim_cur).unwrap_or(u32::MAX)
}

fn new_ring(entries: u32, completions: u32) -> std::io::Result<IoUring> {
    // One thread submits and reaps: the kernel may skip the locking and the
    // inter-processor interrupts that a shared ring needs. Older kernels refuse the
    // flags; a plain ring does the same work.
    IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_cqsize(completions)
        .build(entries)
        .or_else(|_| IoUring::builder().setup_cqsize(completions).build(entries))
}

/// A socket address as the kernel takes it.
#[derive(Clone, Copy)]
#[repr(C)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

fn raw_addr(a: SocketAddr) -> (RawAddr, libc::socklen_t) {
    match a {
        SocketAddr::V4(v) => {
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = v.port().to_be();
            s.sin_addr.s_addr = u32::from_ne_bytes(v.ip().octets());
            (
                RawAddr { v4: s },
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(v) => {
            // SAFETY: as above.
            let mut s: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = v.port().to_be();
            s.sin6_addr.s6_addr = v.ip().octets();
            s.sin6_flowinfo = v.flowinfo();
            s.sin6_scope_id = v.scope_id();
            (
                RawAddr { v6: s },
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// The source of a received datagram, from what the kernel wrote.
fn from_raw(a: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let fam = i32::from(a.ss_family);
    if fam == libc::AF_INET && len as usize >= std::mem::size_of::<libc::sockaddr_in>() {
        // SAFETY: the kernel wrote a sockaddr_in here; sockaddr_storage is larger and aligned.
        let s: &libc::sockaddr_in = unsafe { &*(a as *const _ as *const libc::sockaddr_in) };
        let ip = Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr));
        return Some(SocketAddr::V4(SocketAddrV4::new(
            ip,
            u16::from_be(s.sin_port),
        )));
    }
    if fam == libc::AF_INET6 && len as usize >= std::mem::size_of::<libc::sockaddr_in6>() {
        // SAFETY: as above, for sockaddr_in6.
        let s: &libc::sockaddr_in6 = unsafe { &*(a as *const _ as *const libc::sockaddr_in6) };
        let ip = Ipv6Addr::from(s.sin6_addr.s6_addr);
        return Some(SocketAddr::V6(SocketAddrV6::new(
            ip,
            u16::from_be(s.sin6_port),
            s.sin6_flowinfo,
            s.sin6_scope_id,
        )));
    }
    None
}

/// `connect()` a UDP socket to `to`, or with `None` dissolve the association
/// (`AF_UNSPEC`), so that it receives from anyone again.
pub fn connect(sock: &UdpSocket, to: Option<SocketAddr>) -> std::io::Result<()> {
    match to {
        Some(a) => sock.connect(a),
        None => {
            // SAFETY: sockaddr is plain data; AF_UNSPEC with zeroes dissolves (connect(2)).
            let mut s: libc::sockaddr = unsafe { std::mem::zeroed() };
            s.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
            // SAFETY: a valid pointer and its length.
            let r = unsafe {
                libc::connect(
                    sock.as_raw_fd(),
                    &s,
                    std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
    }
}

struct OutSlot {
    buf: [u8; MAX_OUT],
    len: u32,
    fd: RawFd,
    /// The ring's table slot + 1 of `fd`, 0 if not registered.
    fixed: u32,
    addr: RawAddr,
    addr_len: libc::socklen_t,
}

/// The sends due in one visit, kept until they are flushed.
struct Outbox {
    slots: Box<[OutSlot]>,
    n: usize,
    last_error: Option<i32>,
}

impl Outbox {
    fn new() -> Outbox {
        let empty = || OutSlot {
            buf: [0; MAX_OUT],
            len: 0,
            fd: -1,
            fixed: 0,
            addr: raw_addr(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).0,
            addr_len: 0,
        };
        Outbox {
            slots: (0..BATCH).map(|_| empty()).collect(),
            n: 0,
            last_error: None,
        }
    }

    fn full(&self) -> bool {
        self.n == self.slots.len()
    }

    /// `to: None`: the socket is connected.
    fn push(&mut self, fd: RawFd, fixed: u32, pkt: &[u8], to: Option<SocketAddr>) {
        self.push_with(fd, fixed, to, copied(pkt));
    }

    /// Queues the datagram `write` puts in the slot's buffer (its length; `None`:
    /// nothing to send), so that a packet is built where it is sent from.
    fn push_with(
        &mut self,
        fd: RawFd,
        fixed: u32,
        to: Option<SocketAddr>,
        write: impl FnOnce(&mut [u8; MAX_OUT]) -> Option<usize>,
    ) {
        let s = &mut self.slots[self.n];
        let Some(len) = write(&mut s.buf) else {
            return;
        };
        s.len = len.min(MAX_OUT) as u32;
        s.fd = fd;
        s.fixed = fixed;
        match to {
            Some(a) => (s.addr, s.addr_len) = raw_addr(a),
            None => s.addr_len = 0,
        }
        self.n += 1;
    }

    /// Submits every queued send, and the poll on the epoll set if it waits to be
    /// armed, in one `io_uring_enter`, and reaps the sends.
    fn flush_ring(&mut self, ring: &mut IoUring, set: &mut SetWatch) -> Reaped {
        if self.n == 0 && set.state != SetPoll::Queued {
            return Reaped::default();
        }
        {
            let mut sq = ring.submission();
            if set.state == SetPoll::Queued {
                let op = opcode::PollAdd::new(types::Fd(set.fd), libc::POLLIN as u32);
                // SAFETY: a poll names no memory of ours. The queue holds it besides a
                // batch of sends (RING_ENTRIES).
                let pushed = unsafe { sq.push(&op.build().user_data(SET_POLL)) };
                debug_assert!(pushed.is_ok(), "the submission queue holds the poll");
                set.state = SetPoll::Armed;
            }
            for (i, s) in self.slots[..self.n].iter().enumerate() {
                let mut op = match s.fixed {
                    0 => opcode::Send::new(types::Fd(s.fd), s.buf.as_ptr(), s.len),
                    f => opcode::Send::new(types::Fixed(f - 1), s.buf.as_ptr(), s.len),
                }
                .flags(libc::MSG_DONTWAIT);
                if s.addr_len > 0 {
                    op = op
                        .dest_addr(&s.addr as *const RawAddr as *const libc::sockaddr)
                        .dest_addr_len(s.addr_len);
                }
                // SAFETY: the buffer and address live in `self.slots`, untouched until
                // every completion of this flush is reaped below (or the ring, broken,
                // is dropped first). A flush holds at most BATCH sends, and the queue
                // room for them besides the poll, so the push cannot fail.
                let pushed = unsafe { sq.push(&op.build().user_data(i as u64)) };
                debug_assert!(pushed.is_ok(), "the submission queue holds a batch");
            }
        }
        let want = self.n;
        self.n = 0;
        reap(ring, want, |_, res| res, &mut self.last_error, set)
    }

    /// The path without a ring: one system call per datagram.
    fn send_plain(fd: RawFd, pkt: &[u8], to: Option<SocketAddr>) -> Result<(), i32> {
        let (addr, len) = match to {
            Some(a) => raw_addr(a),
            None => (raw_addr(SocketAddr::from(([0, 0, 0, 0], 0))).0, 0),
        };
        let ptr = if len > 0 {
            &addr as *const RawAddr as *const libc::sockaddr
        } else {
            std::ptr::null()
        };
        // SAFETY: pkt and addr are valid for the lengths given.
        let r = unsafe {
            libc::sendto(
                fd,
                pkt.as_ptr().cast(),
                pkt.len(),
                libc::MSG_DONTWAIT,
                ptr,
                len,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        }
    }
}

/// Writes a packet built elsewhere into a send buffer (cut to [`MAX_OUT`]).
fn copied(pkt: &[u8]) -> impl FnOnce(&mut [u8; MAX_OUT]) -> Option<usize> + '_ {
    move |buf| {
        let len = pkt.len().min(MAX_OUT);
        buf[..len].copy_from_slice(&pkt[..len]);
        Some(len)
    }
}

/// What one batch came to: sends done and failed, and whether the ring itself failed.
#[derive(Debug, Default, Clone, Copy)]
struct Reaped {
    ok: u64,
    failed: u64,
    /// `io_uring_enter` failed: entries may be left in the queue, to be submitted later
    /// against descriptors that by then belong to other calls. The ring must go.
    broken: bool,
}

/// The poll on the epoll set (see [`RtpIo::readable`]).
#[derive(Default)]
struct SetWatch {
    state: SetPoll,
    /// The epoll set's descriptor.
    fd: RawFd,
}

/// Where the poll on the epoll set is.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum SetPoll {
    /// None: the set is asked each visit.
    #[default]
    Idle,
    /// Waiting for the next flush to submit it; the set is still asked.
    Queued,
    /// Submitted: nothing is ready in the set until it completes.
    Armed,
    /// Completed: something is ready.
    Fired,
}

impl SetWatch {
    /// A completion that is the poll's: noted, and not one of a batch's.
    fn take(&mut self, user_data: u64) -> bool {
        if user_data != SET_POLL {
            return false;
        }
        self.state = SetPoll::Fired;
        true
    }

    /// Takes the completions the kernel has posted, without a system call. Outside a
    /// reap only the poll completes (a batch is reaped whole within its own call).
    fn take_posted(&mut self, ring: &mut IoUring) {
        for cqe in ring.completion() {
            self.take(cqe.user_data());
        }
    }
}

/// Submits what is queued and waits for `want` completions of the batch (they
/// complete inside the enter: MSG_DONTWAIT), handing each to `f` with its user data; ok
/// or failed by the sign of what `f` returns. The set poll's completion among them goes
/// to `set`. With `want` 0 it submits and takes what is there without waiting.
fn reap(
    ring: &mut IoUring,
    want: usize,
    mut f: impl FnMut(u64, i32) -> i32,
    last_error: &mut Option<i32>,
    set: &mut SetWatch,
) -> Reaped {
    let mut r = Reaped::default();
    let mut got = 0usize;
    loop {
        let entered = if got < want {
            ring.submit_and_wait(want - got)
        } else {
            ring.submit()
        };
        if let Err(e) = entered {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // What was not reaped is lost; count it so.
            *last_error = e.raw_os_error();
            r.failed += (want - got) as u64;
            r.broken = true;
            break;
        }
        for cqe in ring.completion() {
            if set.take(cqe.user_data()) {
                continue;
            }
            got += 1;
            let res = f(cqe.user_data(), cqe.result());
            if res < 0 {
                r.failed += 1;
                *last_error = Some(-res);
            } else {
                r.ok += 1;
            }
        }
        if got >= want {
            break;
        }
    }
    r
}

struct InSlot {
    buf: [u8; MAX_IN],
    iov: libc::iovec,
    hdr: libc::msghdr,
    addr: libc::sockaddr_storage,
    key: u64,
    /// Read with `recv` from a connected socket: the source is its peer.
    peer: Option<SocketAddr>,
}

/// A socket to read in a visit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToRead {
    /// Handed back with each datagram.
    pub key: u64,
    pub fd: RawFd,
    /// Datagrams to ask for, at most [`READS_PER_SOCKET`].
    pub reads: usize,
    /// The address the socket is `connect()`ed to. Only its datagrams reach such a
    /// socket (the kernel matches a connected socket on the source too), so it is read
    /// with `recv`, which fills in no address: a read that finds nothing, the usual
    /// case for a silent caller, costs no message header (`recvmsg`'s header copy and
    /// iovec import were a third of a read's kernel time; perf, 2026-12-03).
    pub peer: Option<SocketAddr>,
}

/// One media thread's datagram I/O.
pub struct RtpIo {
    ring: Option<IoUring>,
    out: Outbox,
    /// Reads in flight, boxed so that the pointers in their headers stay put.
    ins: Box<[InSlot]>,
    epoll: OwnedFd,
    ready: Vec<libc::epoll_event>,
    /// Completed reads of a batch (slot, length), kept to allocate nothing per visit.
    got: Vec<(usize, usize)>,
    /// By descriptor: its slot + 1 in the ring's table of registered files (0: none);
    /// and the free slots.
    fixed: Vec<u32>,
    free_fixed: Vec<u32>,
    set: SetWatch,
    pub sent: u64,
    pub send_errors: u64,
}

impl RtpIo {
    /// `path` as [`resolve`] gave it.
    pub fn new(path: MediaIo) -> std::io::Result<RtpIo> {
        let ring = match path {
            MediaIo::IoUring => Some(new_ring(RING_ENTRIES, CQ_ENTRIES)?),
            _ => None,
        };
        // A table the kernel refuses (older kernels, a low open-file limit) leaves
        // every socket named by descriptor.
        let free_fixed = match &ring {
            Some(r) => {
                let n = FIXED_FILES.min(open_file_limit());
                match r.submitter().register_files_sparse(n) {
                    Ok(()) => (0..n).rev().collect(),
                    Err(e) => {
                        tracing::debug!(error = %e, "io_uring: no table of registered files");
                        Vec::new()
                    }
                }
            }
            None => Vec::new(),
        };
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let ins = if ring.is_some() {
            (0..BATCH)
                .map(|_| InSlot {
                    buf: [0; MAX_IN],
                    iov: libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    },
                    // SAFETY: plain C structs; all-zero is valid.
                    hdr: unsafe { std::mem::zeroed() },
                    // SAFETY: as above.
                    addr: unsafe { std::mem::zeroed() },
                    key: 0,
                    peer: None,
                })
                .collect()
        } else {
            Vec::new().into_boxed_slice()
        };
        Ok(RtpIo {
            ring,
            out: Outbox::new(),
            ins,
            epoll,
            ready: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
            got: Vec::with_capacity(BATCH),
            fixed: Vec::new(),
            free_fixed,
            set: SetWatch {
                state: SetPoll::Idle,
                fd,
            },
            sent: 0,
            send_errors: 0,
        })
    }

    pub fn path(&self) -> MediaIo {
        if self.ring.is_some() {
            MediaIo::IoUring
        } else {
            MediaIo::Sendto
        }
    }

    /// The ring's table slot + 1 of `fd`, 0 if it has none.
    fn fixed_of(&self, fd: RawFd) -> u32 {
        fixed_slot(&self.fixed, fd)
    }

    /// Registers `fd` with the ring if there is room: its sends and reads then skip the
    /// descriptor lookup. Call [`RtpIo::forget`] before closing it.
    fn register(&mut self, fd: RawFd) {
        let (Some(ring), Ok(i)) = (self.ring.as_ref(), usize::try_from(fd)) else {
            return;
        };
        if self.fixed_of(fd) != 0 {
            return;
        }
        let Some(slot) = self.free_fixed.pop() else {
            return;
        };
        match ring.submitter().register_files_update(slot, &[fd]) {
            Ok(1) => {
                if self.fixed.len() <= i {
                    self.fixed.resize(i + 1, 0);
                }
                self.fixed[i] = slot + 1;
            }
            _ => self.free_fixed.push(slot),
        }
    }

    /// Takes `sock` out of the ring's table (if it was there) and stops watching it:
    /// before it is closed, or the table keeps it open and its port bound.
    pub fn forget(&mut self, sock: &UdpSocket) {
        self.unwatch(sock);
        let fd = sock.as_raw_fd();
        let slot = self.fixed_of(fd);
        if slot == 0 {
            return;
        }
        if let Some(f) = usize::try_from(fd).ok().and_then(|i| self.fixed.get_mut(i)) {
            *f = 0;
        }
        // A send of this socket still queued would go by the slot: flush first.
        self.flush();
        let cleared = self
            .ring
            .as_ref()
            .is_some_and(|r| r.submitter().register_files_update(slot - 1, &[-1]).is_ok());
        if cleared {
            self.free_fixed.push(slot - 1);
        }
    }

    /// Registers a port's sending socket, read in the visits once connected but never
    /// watched (see `src/call/ports.rs`).
    /// Call [`RtpIo::forget`] before closing it.
    pub fn register_sender(&mut self, sock: &UdpSocket) {
        self.register(sock.as_raw_fd());
    }

    /// Watches `sock` for datagrams; `key` comes back from [`RtpIo::readable`].
    pub fn watch(&mut self, sock: &UdpSocket, key: u64) -> std::io::Result<()> {
        self.register(sock.as_raw_fd());
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: both descriptors are open; ev is a valid pointer.
        let r = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                sock.as_raw_fd(),
                &mut ev,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Stops watching (closing the socket does too; this is for a socket that lives on).
    pub fn unwatch(&self, sock: &UdpSocket) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in watch.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                sock.as_raw_fd(),
                &mut ev,
            )
        };
    }

    /// The keys of the watched sockets with something to read, without waiting. At most
    /// the array's length a visit: level-triggered, the rest come at the next one. With
    /// a ring, the set is asked only after a poll on it (armed with the next flush, and
    /// completing at once if anything is ready then) said something is: callers who
    /// latched or sent nothing leave the set quiet, and a visit's `epoll_wait` for
    /// nothing was 0.5 % of a media thread's CPU (perf, 2026-12-05).
    pub fn readable(&mut self, keys: &mut Vec<u64>) {
        keys.clear();
        if let Some(ring) = self.ring.as_mut() {
            self.set.take_posted(ring);
            match self.set.state {
                SetPoll::Armed => return,
                SetPoll::Queued => {}
                SetPoll::Idle | SetPoll::Fired => self.set.state = SetPoll::Queued,
            }
        }
        // SAFETY: `ready` has room for its length in events.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.ready.as_mut_ptr(),
                self.ready.len() as i32,
                0,
            )
        };
        if n > 0 {
            keys.extend(self.ready[..n as usize].iter().map(|e| e.u64));
        }
    }

    /// Reads what waits on the sockets named, each up to its `reads` datagrams (at most
    /// [`READS_PER_SOCKET`]), handing each datagram to `f` with its key and source.
    /// With a ring: every read in one system call.
    pub fn receive(
        &mut self,
        socks: &[ToRead],
        mut f: impl FnMut(u64, &[u8], Option<SocketAddr>),
    ) -> u64 {
        let mut received = 0u64;
        let mut broken = false;
        let Some(ring) = self.ring.as_mut() else {
            let mut buf = [0u8; MAX_IN];
            for r in socks {
                for _ in 0..READS_PER_SOCKET * 4 {
                    // SAFETY: sockaddr_storage is plain data.
                    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                    let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    let (name, namelen) = match r.peer {
                        Some(_) => (std::ptr::null_mut(), std::ptr::null_mut()),
                        None => (
                            (&mut addr as *mut libc::sockaddr_storage).cast(),
                            &mut alen as *mut libc::socklen_t,
                        ),
                    };
                    // SAFETY: buf is valid for its length; the address and its length
                    // are both valid or both null.
                    let n = unsafe {
                        libc::recvfrom(
                            r.fd,
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT,
                            name,
                            namelen,
                        )
                    };
                    if n < 0 {
                        break;
                    }
                    received += 1;
                    let from = r.peer.or_else(|| from_raw(&addr, alen));
                    f(r.key, &buf[..n as usize], from);
                }
            }
            return received;
        };
        let mut at = 0;
        while at < socks.len() {
            let mut n = 0usize;
            {
                let mut sq = ring.submission();
                while at < socks.len()
                    && n + socks[at].reads.min(READS_PER_SOCKET) <= self.ins.len()
                {
                    let r = socks[at];
                    let fixed = fixed_slot(&self.fixed, r.fd);
                    for _ in 0..r.reads.min(READS_PER_SOCKET) {
                        let s = &mut self.ins[n];
                        s.key = r.key;
                        s.peer = r.peer;
                        let op = if r.peer.is_some() {
                            let buf = s.buf.as_mut_ptr();
                            match fixed {
                                0 => opcode::Recv::new(types::Fd(r.fd), buf, MAX_IN as u32),
                                f => opcode::Recv::new(types::Fixed(f - 1), buf, MAX_IN as u32),
                            }
                            .flags(libc::MSG_DONTWAIT)
                            .build()
                        } else {
                            s.iov.iov_base = s.buf.as_mut_ptr().cast();
                            s.iov.iov_len = MAX_IN;
                            s.hdr.msg_name = (&mut s.addr as *mut libc::sockaddr_storage).cast();
                            s.hdr.msg_namelen =
                                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                            s.hdr.msg_iov = &mut s.iov;
                            s.hdr.msg_iovlen = 1;
                            s.hdr.msg_control = std::ptr::null_mut();
                            s.hdr.msg_controllen = 0;
                            s.hdr.msg_flags = 0;
                            match fixed {
                                0 => opcode::RecvMsg::new(types::Fd(r.fd), &mut s.hdr),
                                f => opcode::RecvMsg::new(types::Fixed(f - 1), &mut s.hdr),
                            }
                            .flags(libc::MSG_DONTWAIT as u32)
                            .build()
                        };
                        // SAFETY: the slot (buffer, iovec, header, address) is boxed and
                        // untouched until this batch is reaped below; BATCH entries.
                        let _ = unsafe { sq.push(&op.user_data(n as u64)) };
                        n += 1;
                    }
                    at += 1;
                }
            }
            let ins = &self.ins;
            let got = &mut self.got;
            let set = &mut self.set;
            got.clear();
            let mut last = None;
            let r = reap(
                ring,
                n,
                |i, res| {
                    if res > 0 {
                        got.push((i as usize, res as usize));
                    }
                    // EAGAIN on the second read of a socket is the usual case, not a failure.
                    0
                },
                &mut last,
                set,
            );
            broken |= r.broken;
            // In submission order, so that two packets of one socket are heard in order.
            got.sort_unstable_by_key(|g| g.0);
            for &(i, len) in got.iter() {
                let s = &ins[i];
                received += 1;
                let from = s.peer.or_else(|| from_raw(&s.addr, s.hdr.msg_namelen));
                f(s.key, &s.buf[..len.min(MAX_IN)], from);
            }
            if broken {
                break;
            }
        }
        if broken {
            self.give_up_ring(last_error_text(None));
        }
        received
    }

    /// The ring failed: this thread sends and reads with plain system calls from now on.
    fn give_up_ring(&mut self, why: String) {
        // Dropping the ring discards what it still queues; the slots stay alive with self.
        self.ring = None;
        self.out.n = 0;
        self.set.state = SetPoll::Idle;
        tracing::error!(error = %why, "io_uring failed: this media thread uses sendto from now on");
    }

    fn account(&mut self, r: Reaped) {
        self.sent += r.ok;
        self.send_errors += r.failed;
        if r.broken {
            self.give_up_ring(last_error_text(self.out.last_error));
        }
    }

    /// Queues a datagram (`to: None` for a connected socket); with a ring it goes at
    /// the next [`RtpIo::flush`] (or now, if the batch is full), without one at once.
    pub fn send(&mut self, fd: RawFd, pkt: &[u8], to: Option<SocketAddr>) {
        self.send_with(fd, to, copied(pkt));
    }

    /// Queues an RTP packet, as [`RtpIo::send`], written straight into the buffer it is
    /// sent from: the copy from a packet built elsewhere, and that buffer's zeroing, were
    /// 1 % of a media thread's CPU (perf, 2026-12-05).
    pub fn send_rtp(
        &mut self,
        fd: RawFd,
        header: &RtpHeader,
        payload: &[u8],
        to: Option<SocketAddr>,
    ) {
        self.send_with(fd, to, |buf| header.write(payload, buf).ok());
    }

    fn send_with(
        &mut self,
        fd: RawFd,
        to: Option<SocketAddr>,
        write: impl FnOnce(&mut [u8; MAX_OUT]) -> Option<usize>,
    ) {
        match self.ring.as_mut() {
            None => {
                let mut buf = [0u8; MAX_OUT];
                let Some(len) = write(&mut buf) else { return };
                match Outbox::send_plain(fd, &buf[..len.min(MAX_OUT)], to) {
                    Ok(()) => self.sent += 1,
                    Err(_) => self.send_errors += 1,
                }
            }
            Some(ring) => {
                if self.out.full() {
                    let r = self.out.flush_ring(ring, &mut self.set);
                    self.account(r);
                    if self.ring.is_none() {
                        return self.send_with(fd, to, write);
                    }
                }
                let fixed = self.fixed_of(fd);
                self.out.push_with(fd, fixed, to, write);
            }
        }
    }

    /// Submits the queued sends.
    pub fn flush(&mut self) {
        if let Some(ring) = self.ring.as_mut() {
            let r = self.out.flush_ring(ring, &mut self.set);
            self.account(r);
        }
    }
}

fn last_error_text(errno: Option<i32>) -> String {
    errno.map_or_else(
        || "io_uring_enter failed".to_string(),
        |e| std::io::Error::from_raw_os_error(e).to_string(),
    )
}

/// Pins the calling thread to one CPU; false where the kernel refuses (a cpuset that
/// excludes it, say), and the thread runs where the scheduler puts it.
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; sched_setaffinity(0)
    // applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Both paths send, batch past the ring's size, read what arrived with its source,
    /// and find only the sockets that have something.
    fn round_trip(path: MediaIo) {
        let mut io = RtpIo::new(path).unwrap();
        assert_eq!(io.path(), path);
        let (a, b) = pair();
        let (c, d) = pair();
        let (_, sink) = pair();
        let to_b = b.local_addr().unwrap();
        // More than one ring's worth in one flush (to a socket nobody reads: whether
        // its buffer holds them all is not the sender's business).
        for i in 0..(BATCH + 10) as u32 {
            io.send(
                a.as_raw_fd(),
                &i.to_be_bytes(),
                Some(sink.local_addr().unwrap()),
            );
        }
        io.flush();
        assert_eq!(io.sent, (BATCH + 10) as u64);
        assert_eq!(io.send_errors, 0);
        for i in 0..40u32 {
            io.send(a.as_raw_fd(), &i.to_be_bytes(), Some(to_b));
        }
        io.flush();
        // A connected socket sends without an address.
        c.connect(d.local_addr().unwrap()).unwrap();
        io.send(c.as_raw_fd(), b"connected", None);
        io.flush();
        let mut got = [0u8; 16];
        assert_eq!(d.recv(&mut got).unwrap(), 9);

        io.watch(&b, 7).unwrap();
        io.watch(&d, 8).unwrap();
        let mut keys = Vec::new();
        io.readable(&mut keys);
        assert_eq!(keys, vec![7], "only b has datagrams waiting");
        let mut seen = Vec::new();
        let from_a = a.local_addr().unwrap();
        // Read until drained, visit after visit, as the pump does.
        for _ in 0..BATCH {
            io.readable(&mut keys);
            if keys.is_empty() {
                break;
            }
            let socks: Vec<ToRead> = keys
                .iter()
                .map(|&k| ToRead {
                    key: k,
                    fd: b.as_raw_fd(),
                    reads: READS_PER_SOCKET,
                    peer: None,
                })
                .collect();
            io.receive(&socks, |key, pkt, from| {
                assert_eq!(key, 7);
                assert_eq!(from, Some(from_a));
                seen.push(u32::from_be_bytes(pkt.try_into().unwrap()));
            });
        }
        let want: Vec<u32> = (0..40).collect();
        assert_eq!(seen, want, "every datagram, in order");

        // A connected socket is read with `recv`: its peer is the source.
        let from_d = d.local_addr().unwrap();
        for i in 0..3u32 {
            d.send_to(&i.to_be_bytes(), c.local_addr().unwrap())
                .unwrap();
        }
        let at_c = [ToRead {
            key: 9,
            fd: c.as_raw_fd(),
            reads: READS_PER_SOCKET,
            peer: Some(from_d),
        }];
        let mut heard = Vec::new();
        for _ in 0..4 {
            io.receive(&at_c, |key, pkt, from| {
                assert_eq!((key, from), (9, Some(from_d)));
                heard.push(u32::from_be_bytes(pkt.try_into().unwrap()));
            });
        }
        assert_eq!(heard, vec![0, 1, 2], "each datagram once, in order");

        // A watched socket (registered with the ring where there is one) sends too.
        io.send(b.as_raw_fd(), b"watched", Some(a.local_addr().unwrap()));
        io.flush();
        assert_eq!(a.recv(&mut got).unwrap(), 7);
        assert_eq!(&got[..7], b"watched");
        // Forgotten and closed, its port is free again: the ring's table let it go.
        let port = b.local_addr().unwrap();
        io.forget(&b);
        drop(b);
        UdpSocket::bind(port).expect("the port of a forgotten socket is free");
        assert_eq!(io.send_errors, 0);
    }

    #[test]
    fn a_socket_left_in_the_ring_s_table_keeps_its_port() {
        // Why the pump forgets a leg's socket before dropping it.
        if resolve(MediaIo::IoUring).0 != MediaIo::IoUring {
            return;
        }
        let mut io = RtpIo::new(MediaIo::IoUring).unwrap();
        let (a, _) = pair();
        let port = a.local_addr().unwrap();
        io.watch(&a, 1).unwrap();
        if io.fixed_of(a.as_raw_fd()) == 0 {
            return; // no table on this kernel: nothing held
        }
        drop(a);
        assert!(UdpSocket::bind(port).is_err(), "the table still holds it");
    }

    /// With a ring, the watched set is asked only while no poll on it is armed, or once
    /// that poll says something is ready; a datagram on a watched socket is named.
    #[test]
    fn the_watched_set_is_asked_once_its_poll_says_something_is_ready() {
        if resolve(MediaIo::IoUring).0 != MediaIo::IoUring {
            return;
        }
        let mut io = RtpIo::new(MediaIo::IoUring).unwrap();
        let (a, b) = pair();
        io.watch(&b, 7).unwrap();
        let mut keys = Vec::new();
        io.readable(&mut keys);
        assert!(keys.is_empty());
        assert_eq!(io.set.state, SetPoll::Queued);
        io.flush();
        assert_eq!(io.set.state, SetPoll::Armed, "submitted with the flush");
        io.readable(&mut keys);
        assert!(keys.is_empty());
        assert_eq!(io.set.state, SetPoll::Armed, "quiet: not asked");
        a.send_to(b"stranger", b.local_addr().unwrap()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while keys.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
            io.flush();
            io.readable(&mut keys);
        }
        assert_eq!(keys, vec![7]);
        // Asked, and armed again for the next.
        assert_eq!(io.set.state, SetPoll::Queued);
        io.flush();
        // Still unread: level-triggered, the new poll completes at once.
        std::thread::sleep(std::time::Duration::from_millis(1));
        io.readable(&mut keys);
        assert_eq!(keys, vec![7]);
    }

    #[test]
    fn the_plain_path_sends_and_receives() {
        round_trip(MediaIo::Sendto);
    }

    #[test]
    fn the_ring_sends_and_receives_in_batches() {
        match resolve(MediaIo::IoUring) {
            (MediaIo::IoUring, _) => round_trip(MediaIo::IoUring),
            (_, why) => eprintln!("io_uring unavailable here, skipped: {why:?}"),
        }
    }

    #[test]
    fn a_failed_send_is_counted_not_fatal() {
        for path in [MediaIo::Sendto, resolve(MediaIo::Auto).0] {
            let mut io = RtpIo::new(path).unwrap();
            let (a, _b) = pair();
            // An IPv6 destination from an IPv4 socket fails in the kernel.
            io.send(a.as_raw_fd(), b"x", Some("[::1]:9".parse().unwrap()));
            io.flush();
            assert_eq!((io.sent, io.send_errors), (0, 1), "{path:?}");
        }
    }

    #[test]
    fn connect_none_receives_from_anyone_again() {
        // A port bound by number stays bound when the association is dissolved (as the
        // RTP ports are); one the kernel picked would be given up.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let a = UdpSocket::bind(port).unwrap();
        a.set_nonblocking(true).unwrap();
        let (_, b) = pair();
        let (c, _) = pair();
        connect(&a, Some(b.local_addr().unwrap())).unwrap();
        c.send_to(b"x", a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 4];
        assert!(
            a.recv(&mut buf).is_err(),
            "a connected socket hears only its peer"
        );
        connect(&a, None).unwrap();
        c.send_to(b"y", a.local_addr().unwrap()).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), 1);
    }
}
