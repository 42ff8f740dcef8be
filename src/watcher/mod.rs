//! The watcher (rolls workloads when their sources change) comes with the next issue; the
//! source cache it will share with the webhook lives in `crate::cache`.
