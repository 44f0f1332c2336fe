//! RTP ports: each call takes an even port from the configured range (RFC 3550 §11:
//! RTP on even, RTCP on the next odd port) and gives it back when it ends.
use std::collections::VecDeque;
use std::net::UdpSocket;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct PortPool {
    ip: IpAddr,
    free: Arc<Mutex<VecDeque<u16>>>,
}

/// A bound, non-blocking RTP socket whose port returns to the pool when dropped.
pub struct RtpPort {
    pub socket: UdpSocket,
    pub port: u16,
    pool: PortPool,
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
    pub fn new(ip: IpAddr, lo: u16, hi: u16) -> PortPool {
        let first = lo + (lo % 2);
        let free = (first..hi).step_by(2).collect();
        PortPool {
            ip,
            free: Arc::new(Mutex::new(free)),
        }
    }

    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Binds the next free port; ports another program holds are skipped.
    pub fn take(&self) -> Option<RtpPort> {
        let tries = self.available();
        for _ in 0..tries {
            let port = self.free.lock().ok()?.pop_front()?;
            let bound = UdpSocket::bind(SocketAddr::new(self.ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s));
            match bound {
                Ok(socket) => {
                    return Some(RtpPort {
                        socket,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_even_and_come_back() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41001, 41010);
        assert_eq!(pool.available(), 4);
        let a = pool.take().unwrap();
        assert_eq!(a.port % 2, 0);
        assert_eq!(pool.available(), 3);
        drop(a);
        assert_eq!(pool.available(), 4);
    }
}
