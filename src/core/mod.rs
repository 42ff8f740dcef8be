//! The pure core: no I/O, no async. What a workload uses, what it tracks, what its record
//! and roll token are, and the patch that writes them.

pub mod digest;
pub mod gate;
pub mod health;
pub mod kind;
pub mod limits;
pub mod lists;
pub mod names;
pub mod patch;
pub mod policy;
pub mod record;
pub mod refs;
pub mod selector;
pub mod source;
pub mod stamp;
pub(crate) mod sync;
pub mod syntax;
pub mod template;
pub mod window;
pub mod workload;
