//! A media thread's legs, kept in the slots they are sent in.
//!
//! A visit walks one slot's legs in order. Before, the slot held ids and each leg was
//! looked up in a hash table of boxed legs: per leg and frame, a probe of the table's
//! buckets and a pointer to chase, both cold since the leg's last frame (the load of
//! the box pointer was half the visit loop's own samples in perf, 2026-12-03). Here a
//! slot is a vector of the legs themselves, walked front to back; an index by id serves
//! what comes by id (commands, datagrams read) and is touched only then.
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Leg ids are a counter we hand out: a multiply spreads them over the table's buckets
/// and control bytes, where SipHash's defence against chosen keys buys nothing for ids
/// we hand out ourselves.
#[derive(Default, Clone, Copy)]
struct LegIdHasher(u64);

impl std::hash::Hasher for LegIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(FIB);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(FIB);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// 2^64 / φ: consecutive ids land far apart.
const FIB: u64 = 0x9E37_79B9_7F4A_7C15;

/// Legs of type `T` by slot (`N` slots), each with its id.
pub struct Wheel<T, const N: usize> {
    slots: [Vec<(u64, T)>; N],
    /// id → (slot, position in it).
    at: HashMap<u64, (u32, u32), BuildHasherDefault<LegIdHasher>>,
}

impl<T, const N: usize> Default for Wheel<T, N> {
    fn default() -> Self {
        Wheel {
            slots: std::array::from_fn(|_| Vec::new()),
            at: HashMap::default(),
        }
    }
}

impl<T, const N: usize> Wheel<T, N> {
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The slot with the fewest legs (the first of those).
    pub fn emptiest(&self) -> usize {
        (0..N).min_by_key(|&s| self.slots[s].len()).unwrap_or(0)
    }

    /// The first slot with fewer than `room` legs, else the one with the fewest.
    pub fn first_with_room(&self, room: usize) -> usize {
        (0..N)
            .find(|&s| self.slots[s].len() < room)
            .unwrap_or_else(|| self.emptiest())
    }

    /// Whether `slot` (taken modulo the slots) has no legs.
    pub fn slot_is_empty(&self, slot: usize) -> bool {
        self.slots[slot % N].is_empty()
    }

    /// Puts a leg in `slot` (taken modulo the slots); one already under `id` is
    /// replaced and returned.
    pub fn insert(&mut self, id: u64, slot: usize, leg: T) -> Option<T> {
        let old = self.remove(id);
        let slot = slot % N;
        self.at
            .insert(id, (slot as u32, self.slots[slot].len() as u32));
        self.slots[slot].push((id, leg));
        old
    }

    /// Takes a leg out; the slot's last leg takes its place.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let (slot, pos) = self.at.remove(&id)?;
        let v = &mut self.slots[slot as usize];
        let (_, leg) = v.swap_remove(pos as usize);
        if let Some((moved, _)) = v.get(pos as usize)
            && let Some(p) = self.at.get_mut(moved)
        {
            p.1 = pos;
        }
        Some(leg)
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        let &(slot, pos) = self.at.get(&id)?;
        self.slots[slot as usize].get(pos as usize).map(|(_, l)| l)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let &(slot, pos) = self.at.get(&id)?;
        self.slots[slot as usize]
            .get_mut(pos as usize)
            .map(|(_, l)| l)
    }

    /// The legs sent in `slot`, in the order a visit walks them.
    pub fn slot_mut(&mut self, slot: usize) -> &mut [(u64, T)] {
        &mut self.slots[slot % N]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Legs fill the first slot with room, then the next; when every slot is full they
    /// go to the emptiest; a slot emptied by hang-ups is filled first again.
    #[test]
    fn legs_fill_a_slot_before_the_next() {
        let mut w: Wheel<u64, 3> = Wheel::default();
        for id in 0..5u64 {
            let slot = w.first_with_room(2);
            w.insert(id, slot, id);
        }
        let lens = |w: &mut Wheel<u64, 3>| (0..3).map(|s| w.slot_mut(s).len()).collect::<Vec<_>>();
        assert_eq!(lens(&mut w), [2, 2, 1]);
        assert!(!w.slot_is_empty(2));
        w.insert(5, w.first_with_room(2), 5);
        // All full: the emptiest (the first of equals).
        w.insert(6, w.first_with_room(2), 6);
        assert_eq!(lens(&mut w), [3, 2, 2]);
        for id in [2, 3] {
            w.remove(id);
        }
        assert!(w.slot_is_empty(1));
        assert_eq!(w.first_with_room(2), 1);
    }

    /// Every leg is found under its id, in its slot, after any mix of inserts and
    /// removals (a removal moves another leg into the hole).
    #[test]
    fn legs_are_found_by_id_and_walked_by_slot_through_removals() {
        let mut w: Wheel<u64, 3> = Wheel::default();
        for id in 0..30u64 {
            let slot = w.emptiest();
            assert!(w.insert(id, slot, id * 10).is_none());
        }
        assert_eq!(
            (
                w.len(),
                w.slot_mut(0).len(),
                w.slot_mut(1).len(),
                w.slot_mut(2).len()
            ),
            (30, 10, 10, 10)
        );
        // Out of the middle, the front and the back of slots, and one not there.
        for id in [0u64, 4, 29, 13, 14, 15, 27, 99] {
            assert_eq!(w.remove(id), (id < 30).then_some(id * 10));
        }
        assert_eq!(w.len(), 23);
        for id in 0..30u64 {
            let gone = [0, 4, 29, 13, 14, 15, 27].contains(&id);
            assert_eq!(w.get(id).copied(), (!gone).then_some(id * 10), "leg {id}");
        }
        let mut walked: Vec<u64> = (0..3)
            .flat_map(|s| w.slot_mut(s).iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .collect();
        walked.sort_unstable();
        assert_eq!(walked.len(), 23);
        assert!(walked.iter().all(|&id| w.get(id) == Some(&(id * 10))));
        if let Some(l) = w.get_mut(7) {
            *l = 1;
        }
        assert_eq!(w.get(7), Some(&1));
        // The same id again replaces, and lands where it is put.
        assert_eq!(w.insert(7, 2, 2), Some(1));
        assert_eq!(w.len(), 23);
        assert!(w.slot_mut(2).iter().any(|&(id, l)| id == 7 && l == 2));
        // The emptiest slot takes the next leg.
        let (e, others) = (w.emptiest(), (0..3).map(|s| w.slot_mut(s).len()).min());
        assert_eq!(Some(w.slot_mut(e).len()), others);
        while let Some(&(id, _)) = w.slot_mut(1).first() {
            w.remove(id);
        }
        assert_eq!(w.emptiest(), 1);
        assert!(!w.is_empty());
    }
}
