//! The pure core: no I/O, no async. What a workload uses, what it tracks, what its record
//! and roll token are, and the patch that writes them.

pub mod digest;
pub(crate) mod gate;
pub(crate) mod health;
pub(crate) mod kind;
pub mod limits;
pub mod lists;
pub mod names;
pub(crate) mod patch;
pub mod policy;
pub mod record;
pub mod refs;
pub mod selector;
pub(crate) mod source;
pub(crate) mod stamp;
pub(crate) mod sync;
pub mod syntax;
pub(crate) mod template;
pub(crate) mod window;
pub(crate) mod workload;
