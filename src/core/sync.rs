//! The lock-poison rule: a lock whose holder panicked is taken as it is.
//!
//! Every lock here guards data that each write leaves whole: a map entry put or removed, a
//! counter set, a value swapped for a new one. None is mid-update across a point that can
//! panic, so the data a panic leaves behind is data some write finished, and a memo, a
//! cache or a set of names read from it is still true. Refusing it would turn one panic
//! (already logged where it happened) into a panic at every later use of the lock: the
//! webhook would stop admitting and the watcher stop rolling over a value that is fine.

use std::sync::LockResult;

/// Takes a lock's guard whether or not an earlier holder panicked.
pub(crate) trait Recover<G> {
    /// The guard, poisoned or not (see the module doc for why that is right here).
    fn recover(self) -> G;
}

impl<G> Recover<G> for LockResult<G> {
    fn recover(self) -> G {
        self.unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::Recover;

    #[test]
    fn a_poisoned_lock_gives_its_data() {
        let m = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let mut g = m.lock().recover();
            *g = 2;
            panic!("holder panics");
        });
        assert!(m.is_poisoned());
        assert_eq!(*m.lock().recover(), 2);
    }
}
