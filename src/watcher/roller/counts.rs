//! What the roller counts: Reloader's event metrics for each source change, and the
//! gauges read at each scrape.

use tokio::time::Instant;

use super::Roller;
use crate::services::metrics::{ByKind, Processed, SourceEvent};
use crate::watcher::queue::Task;
use crate::watcher::workloads::WorkloadKey;

impl Roller {
    /// Counts a source change for Reloader's event metrics: seen, handled (queued, or
    /// skipped when no workload tracks the source), and the workloads it reaches by kind.
    pub(crate) fn count_change(
        &self,
        change: &crate::cache::SourceChange,
        affected: &[WorkloadKey],
    ) {
        use crate::cache::ChangeKind;
        let m = &self.state.metrics;
        let event = match change.kind {
            ChangeKind::Created => "add",
            ChangeKind::Data | ChangeKind::Meta => "update",
            ChangeKind::Deleted => "delete",
        };
        let resource = change.source.kind.as_str();
        let seen = SourceEvent {
            event_type: event,
            resource_type: resource,
        };
        m.events_received.get_or_create(&seen).inc();
        let result = if affected.is_empty() {
            m.skip("not_tracked");
            "skipped"
        } else {
            "queued"
        };
        m.events_processed
            .get_or_create(&Processed {
                event: seen,
                result,
            })
            .inc();
        for k in affected {
            m.workloads_scanned
                .get_or_create(&ByKind {
                    kind: k.kind.as_str(),
                })
                .inc();
        }
    }

    /// Counts for the gauges.
    pub(crate) fn update_gauges(&self) {
        let (sources, workloads) = self.store().counts();
        let oldest = self.queue().oldest(Task::Check, Instant::now());
        self.state
            .metrics
            .oldest_pending_check
            .set(oldest.unwrap_or_default().as_secs_f64());
        let (held, waiting) = self.safe.counts();
        let for_slot = self.slots().queued();
        self.state.metrics.rollouts_held.set(held as i64);
        self.state
            .metrics
            .rollouts_waiting
            .set((waiting + for_slot) as i64);
        self.state.metrics.sources_tracked.set(sources as i64);
        self.state.metrics.workloads_tracked.set(workloads as i64);
    }
}
