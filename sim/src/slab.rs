//! A slab of in-flight items addressed by small integer keys, so that events stay small
//! (a key, not a TLP) and no allocation happens per event once the slab has grown.

/// Key of an item in a [`Slab`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(u32);

impl Key {
    /// The key as a number (for models that hand opaque tokens back).
    pub fn raw(self) -> u32 {
        self.0
    }

    /// A key from a number [`Key::raw`] gave; a number no slab handed out finds nothing.
    pub fn from_raw(raw: u64) -> Key {
        Key(u32::try_from(raw).unwrap_or(u32::MAX))
    }
}

/// Items in flight, reusing freed slots.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `item` and returns its key.
    pub fn insert(&mut self, item: T) -> Key {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(item);
                Key(i)
            }
            None => {
                self.slots.push(Some(item));
                Key((self.slots.len() - 1) as u32)
            }
        }
    }

    /// The key the next [`Slab::insert`] will return.
    pub fn next_key(&self) -> Key {
        Key(self.free.last().copied().unwrap_or(self.slots.len() as u32))
    }

    /// The item at `key`, if present.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slots.get(key.0 as usize)?.as_ref()
    }

    /// The item at `key`, if present.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots.get_mut(key.0 as usize)?.as_mut()
    }

    /// Removes and returns the item at `key`.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let item = self.slots.get_mut(key.0 as usize)?.take()?;
        self.free.push(key.0);
        Some(item)
    }

    /// Items stored.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// No item stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_and_stale_keys_find_nothing() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None, "double remove is harmless");
        let c = s.insert("c");
        assert_eq!(c, a, "slot reused");
        assert_eq!((s.get(b), s.get(c), s.len()), (Some(&"b"), Some(&"c"), 2));
    }
}
