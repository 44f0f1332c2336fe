//! The ops HTTP's connection table: at most `max` connections, and when a new one
//! comes with the table full, the oldest idle one (no request in progress: waiting
//! for a head, or kept alive) is closed to make room.
//!
//! Why not leave the newcomer in the kernel's accept queue, as a semaphore would: a
//! client that opens thousands of idle connections would then hold every slot for
//! the header timeout while the queue behind it grows, and an operator's `/healthz`
//! would wait behind all of them for minutes. Closing the oldest idle connection
//! keeps memory bounded by `max` and lets a real request in at once.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

pub struct Conns {
    max: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, (CancellationToken, Arc<AtomicUsize>)>>,
    /// Idle connections closed to make room, since start.
    pub evicted: AtomicU64,
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    id: u64,
    table: Arc<Conns>,
    /// Fires when the connection is closed to make room.
    pub close: CancellationToken,
    /// Requests in progress on it.
    pub busy: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.table.open.lock() {
            open.remove(&self.id);
        }
    }
}

/// Counts a request in progress on its connection for as long as it lives.
pub struct Busy(Arc<AtomicUsize>);

impl Busy {
    pub fn new(n: Arc<AtomicUsize>) -> Busy {
        n.fetch_add(1, Ordering::Relaxed);
        Busy(n)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conns {
    pub fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            max: max.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            evicted: AtomicU64::new(0),
        })
    }

    /// A place for a new connection, or none when every connection is busy.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= self.max {
            let oldest_idle = open
                .iter()
                .find(|(_, (_, busy))| busy.load(Ordering::Relaxed) == 0)
                .map(|(id, _)| *id)?;
            if let Some((close, _)) = open.remove(&oldest_idle) {
                close.cancel();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        let busy = Arc::new(AtomicUsize::new(0));
        open.insert(id, (close.clone(), busy.clone()));
        Some(Slot {
            id,
            table: self.clone(),
            close,
            busy,
        })
    }

    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let t = Conns::new(2);
        let a = t.admit().unwrap();
        let b = t.admit().unwrap();
        let _working = Busy::new(a.busy.clone());
        let c = t.admit().unwrap();
        assert!(!a.close.is_cancelled(), "a is busy");
        assert!(b.close.is_cancelled(), "b was the oldest idle one");
        assert_eq!(t.open(), 2);
        let _also = Busy::new(c.busy.clone());
        assert!(t.admit().is_none(), "every connection is busy");
        drop(c);
        assert_eq!(t.open(), 1);
    }
}
