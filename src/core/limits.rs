//! Bounds on what hashroll reads from tenants' objects. hashroll runs once per cluster and
//! every annotation value, name and list on a workload or a ConfigMap/Secret comes from
//! someone who may be careless or hostile: each value is bounded here before it is used,
//! and a value past a bound is reported as a problem (a warning on the admission response,
//! a Warning Event on the workload), never a crash and never silently.

use std::time::Duration;

/// The longest `pause-period` honoured; a longer one is taken as this.
pub(crate) const MAX_PAUSE_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Entries read from one reload or exclude list; the rest are ignored.
pub(crate) const MAX_LIST_ENTRIES: usize = 64;

/// The longest list entry read (a Kubernetes name is at most 253 characters; a regex entry
/// may be a little longer); a longer entry is skipped.
pub(crate) const MAX_ENTRY_LEN: usize = 512;

/// Compiled size limit of one reload-list regex (the regex crate's default is 10 MiB).
pub(crate) const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Compiled bytes the regex memo keeps before it starts over.
pub const REGEX_MEMO_BYTES: usize = 8 << 20;

/// A regex that compiles past this is not kept in the memo (compiled again when met again,
/// within [`REGEX_COMPILE_BUDGET`]).
pub(crate) const REGEX_MEMO_ONE: usize = 64 * 1024;

/// Compiled bytes one workload's lists may cost when checked (an admission, a watcher's
/// check); entries past it are skipped and reported. Regexes from the memo cost nothing.
pub(crate) const REGEX_COMPILE_BUDGET: usize = 4 << 20;

/// Sources one workload may track; past it the rest are not tracked.
pub(crate) const MAX_TRACKED: usize = 2000;

/// A record of more sources than this, or of more bytes than [`MAX_RECORD_BYTES`], is kept in
/// its compact form: [`RECORD_GROUPS`] group digests instead of one digest per source.
pub(crate) const MAX_RECORD_SOURCES: usize = 64;

/// See [`MAX_RECORD_SOURCES`].
pub(crate) const MAX_RECORD_BYTES: usize = 8 * 1024;

/// Groups of a compact record.
pub(crate) const RECORD_GROUPS: usize = 16;

/// The apiserver's limit on the total size of an object's annotations.
pub(crate) const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
