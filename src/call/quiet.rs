//! A quiet caller's socket tells its media thread when the next datagram comes, by a
//! queued real-time signal (`O_ASYNC` with `F_SETSIG`), instead of being read or polled.
//!
//! Why: a caller who sends nothing (no media, DTX, one-way audio, the load bench's
//! silent callers) must still be heard as soon as it speaks or presses a key. Reading
//! its socket to find out is a system call for nothing (2 % of a media thread's CPU at
//! 2,500 silent callers read every fifth visit). A poll armed on it, io_uring's or
//! epoll's, waits on the socket's wait queue, and the sends hotline makes on that same
//! socket wake that queue as each datagram's buffer is freed: every frame sent took
//! the queue's lock with interrupts off, to wake nobody (4 % of the media thread, perf
//! at 2,500 silent callers, 2026-12-05: more than the reads it saved). With `O_ASYNC`,
//! a datagram arriving raises one signal and a send pays a bit test.
//!
//! The signal goes to the media thread that owns the leg (`F_SETOWN_EX` with a thread
//! id), which blocks it and takes it from a `signalfd` once a visit, with the
//! descriptor it names: no handler runs, and no other thread sees it. Where the queue
//! of pending signals is full (`RLIMIT_SIGPENDING`), the kernel raises `SIGIO`
//! instead, without a descriptor: every watched leg is then read again. A signal may
//! name a socket that was let go since, or whose number a new call's socket took: the
//! first is ignored, the second costs that leg one read.
//!
//! Our own code over libc: `F_SETSIG` and `F_SETOWN_EX` are Linux's alone, and neither
//! the `libc` crate (on glibc) nor the crates that wrap `fcntl` name them.
use std::collections::HashMap;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `fcntl` commands from `<asm-generic/fcntl.h>`, the same on every Linux architecture
/// hotline builds for.
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex`.
#[repr(C)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// The signal a watched socket raises: one of the real-time signals glibc leaves to
/// programs. Nothing in hotline handles it; blocked in the media threads, which alone
/// are sent it, it is only ever read from their `signalfd`.
fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

/// Signals taken from the `signalfd` per read.
const TAKE: usize = 64;

/// One media thread's watched sockets. Made on the thread that takes the signals.
pub struct QuietWatch {
    signals: OwnedFd,
    tid: libc::pid_t,
    /// Watched descriptors: the leg each names, and its file flags before `O_ASYNC`.
    watched: HashMap<RawFd, (u64, libc::c_int)>,
    taken: Vec<libc::signalfd_siginfo>,
}

impl QuietWatch {
    /// Blocks the watch's signals in the calling thread and opens the `signalfd` it
    /// reads them from.
    pub fn new() -> std::io::Result<QuietWatch> {
        // SAFETY: sigset_t is plain data, filled by sigemptyset and sigaddset below.
        let mut set: libc::sigset_t = unsafe { zeroed() };
        // SAFETY: `set` is a valid sigset_t; the signals are valid numbers.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal());
            libc::sigaddset(&mut set, libc::SIGIO);
        }
        // SAFETY: `set` is initialised; the old mask is not asked for.
        let e = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if e != 0 {
            return Err(std::io::Error::from_raw_os_error(e));
        }
        // SAFETY: `set` is initialised; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(QuietWatch {
            // SAFETY: signalfd returned a descriptor that nothing else owns.
            signals: unsafe { OwnedFd::from_raw_fd(fd) },
            // SAFETY: gettid cannot fail.
            tid: unsafe { libc::gettid() },
            watched: HashMap::new(),
            // SAFETY: signalfd_siginfo is plain data; the kernel overwrites what is read.
            taken: (0..TAKE).map(|_| unsafe { zeroed() }).collect(),
        })
    }

    /// Watches `fd`, leg `id`'s socket, until a datagram comes to it. False where the
    /// kernel refuses (the leg reads its socket instead). A datagram already waiting
    /// raises nothing: read the socket once after this.
    pub fn watch(&mut self, fd: RawFd, id: u64) -> bool {
        let owner = OwnerEx {
            kind: F_OWNER_TID,
            pid: self.tid,
        };
        // SAFETY: fcntl on a descriptor the caller holds open; F_SETOWN_EX reads one
        // f_owner_ex from the pointer.
        let flags = unsafe {
            if libc::fcntl(fd, F_SETOWN_EX, &owner as *const OwnerEx) < 0
                || libc::fcntl(fd, F_SETSIG, signal()) < 0
            {
                return false;
            }
            libc::fcntl(fd, libc::F_GETFL)
        };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) } < 0 {
            return false;
        }
        self.watched.insert(fd, (id, flags));
        true
    }

    /// Stops watching `fd` (its caller spoke, or its socket is about to be let go).
    pub fn unwatch(&mut self, fd: RawFd) {
        if let Some((_, flags)) = self.watched.remove(&fd) {
            restore(fd, flags);
        }
    }

    /// The legs whose socket had a datagram since the last call, each watched no more,
    /// into `out`.
    pub fn woken(&mut self, out: &mut Vec<u64>) {
        out.clear();
        let mut overflowed = false;
        loop {
            let room = self.taken.len() * size_of::<libc::signalfd_siginfo>();
            // SAFETY: `taken` has room for `room` bytes of signalfd_siginfo.
            let n = unsafe {
                libc::read(
                    self.signals.as_raw_fd(),
                    self.taken.as_mut_ptr().cast(),
                    room,
                )
            };
            if n <= 0 {
                // EAGAIN: none left. Anything else: nothing to be done here but read
                // the sockets again, as after an overflow.
                if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock
                {
                    overflowed = true;
                }
                break;
            }
            let got = n as usize / size_of::<libc::signalfd_siginfo>();
            for s in &self.taken[..got] {
                if s.ssi_signo as libc::c_int == libc::SIGIO {
                    overflowed = true;
                } else if let Some((id, flags)) = self.watched.remove(&s.ssi_fd) {
                    restore(s.ssi_fd, flags);
                    out.push(id);
                }
            }
            if got < self.taken.len() {
                break;
            }
        }
        if overflowed {
            for (fd, (id, flags)) in self.watched.drain() {
                restore(fd, flags);
                out.push(id);
            }
        }
    }

    /// Sockets watched now.
    #[cfg(test)]
    fn watching(&self) -> usize {
        self.watched.len()
    }
}

fn restore(fd: RawFd, flags: libc::c_int) {
    // SAFETY: fcntl on a descriptor still open (a leg unwatches before it lets go).
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    /// Waits up to a second for the watch to name legs.
    fn woken_within_a_second(w: &mut QuietWatch) -> Vec<u64> {
        let until = Instant::now() + Duration::from_secs(1);
        let mut out = Vec::new();
        while Instant::now() < until {
            w.woken(&mut out);
            if !out.is_empty() {
                return out;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out
    }

    fn pair() -> (UdpSocket, UdpSocket) {
        let quiet = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
        caller
            .connect(quiet.local_addr().expect("addr"))
            .expect("connect");
        quiet
            .connect(caller.local_addr().expect("addr"))
            .expect("connect");
        (quiet, caller)
    }

    #[test]
    fn a_watched_socket_names_its_leg_when_a_datagram_comes_and_its_sends_raise_nothing() {
        let mut w = QuietWatch::new().expect("watch");
        let (quiet, caller) = pair();
        assert!(w.watch(quiet.as_raw_fd(), 7));
        assert_eq!(w.watching(), 1);
        // Its own sends are not arrivals.
        for _ in 0..20 {
            quiet.send(b"frame").expect("send");
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut out = vec![99];
        w.woken(&mut out);
        assert!(out.is_empty(), "{out:?}");
        caller.send(b"hello").expect("send");
        assert_eq!(woken_within_a_second(&mut w), [7]);
        assert_eq!(w.watching(), 0, "named once, then watched no more");
        // Unwatched, its next datagram raises nothing; the flags are as before.
        caller.send(b"again").expect("send");
        std::thread::sleep(Duration::from_millis(20));
        w.woken(&mut out);
        assert!(out.is_empty(), "{out:?}");
        // SAFETY: fcntl on an open socket.
        let flags = unsafe { libc::fcntl(quiet.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_ASYNC, 0);
    }

    #[test]
    fn a_socket_unwatched_before_it_goes_raises_nothing_and_an_overflow_wakes_every_leg() {
        let mut w = QuietWatch::new().expect("watch");
        let (a, caller_a) = pair();
        let (b, _caller_b) = pair();
        let (c, _caller_c) = pair();
        assert!(w.watch(a.as_raw_fd(), 1));
        w.unwatch(a.as_raw_fd());
        caller_a.send(b"late").expect("send");
        std::thread::sleep(Duration::from_millis(20));
        let mut out = Vec::new();
        w.woken(&mut out);
        assert!(out.is_empty(), "{out:?}");
        // SIGIO is what the kernel raises when the signal queue is full: the watch
        // cannot tell whose, and wakes them all.
        assert!(w.watch(b.as_raw_fd(), 2) && w.watch(c.as_raw_fd(), 3));
        // SAFETY: a signal to this thread, which blocks it.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::gettid(),
                libc::SIGIO,
            )
        };
        let mut out = woken_within_a_second(&mut w);
        out.sort_unstable();
        assert_eq!(out, [2, 3]);
        assert_eq!(w.watching(), 0);
    }
}
