//! The Prometheus registry: what Reloader users already scrape plus hashroll's own.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod by_namespace;
mod labels;
mod verb;

use by_namespace::ByNamespace;
#[cfg(test)]
use by_namespace::MAX_NAMESPACES;

pub(crate) use labels::*;
pub(crate) use verb::api_verb;

fn latency_histogram() -> Histogram {
    // Reloader's buckets for its action latency, so a dashboard's quantiles read the same
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

fn reconcile_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub(crate) struct Metrics {
    registry: Registry,
    /// `reloader_reload_executed_total{success}`
    pub(crate) reloads: Family<Success, Counter>,
    /// `reloader_reload_executed_total_by_namespace{success,namespace}`, kept only when
    /// [`Metrics::count_by_namespace`] is on
    by_namespace: ByNamespace,
    /// `reloader_action_total{workload_kind,result}`: roll writes
    pub(crate) actions: Family<Action, Counter>,
    /// `reloader_action_latency_seconds{workload_kind}`: from the change seen to the roll
    /// written (the coalesce window included)
    pub(crate) action_latency: HistogramFamily<ByWorkloadKind>,
    /// `reloader_reconcile_total{result}` and `..._duration_seconds{result}`: one check
    /// (or resume) of one workload
    pub(crate) reconciles: Family<ByResult, Counter>,
    pub(crate) reconcile_duration: HistogramFamily<ByResult>,
    /// `reloader_skipped_total{reason}`
    pub(crate) skipped: Family<ByReason, Counter>,
    /// `reloader_workqueue_depth`, `reloader_workqueue_adds_total`,
    /// `reloader_workqueue_latency_seconds`
    pub(crate) queue_depth: Gauge,
    pub(crate) queue_adds: Counter,
    pub(crate) queue_latency: Histogram,
    /// `reloader_errors_total{type}`, `reloader_retries_total`
    pub(crate) errors: Family<ByType, Counter>,
    pub(crate) retries: Counter,
    /// `reloader_events_received_total{event_type,resource_type}` and
    /// `reloader_events_processed_total{event_type,resource_type,result}`
    pub(crate) events_received: Family<SourceEvent, Counter>,
    pub(crate) events_processed: Family<Processed, Counter>,
    /// `reloader_workloads_scanned_total{kind}`, `reloader_workloads_matched_total{kind}`
    pub(crate) workloads_scanned: Family<ByKind, Counter>,
    pub(crate) workloads_matched: Family<ByKind, Counter>,
    /// `hashroll_webhook_requests_total{result}`
    pub(crate) webhook_requests: Family<ByResult, Counter>,
    pub(crate) webhook_duration: Histogram,
    /// admission requests whose headers were read and whose answer is not yet sent
    pub(crate) webhook_in_flight: Gauge,
    pub(crate) sources_cached: Gauge,
    pub(crate) sources_tracked: Gauge,
    pub(crate) workloads_tracked: Gauge,
    pub(crate) pending_rolls: Gauge,
    /// `hashroll_oldest_pending_check_seconds`: how long the oldest queued check (a change
    /// not yet rolled, retries included) has waited
    pub(crate) oldest_pending_check: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) patch_duration: Histogram,
    /// `hashroll_held_rolls_total`: rolls put off by the flap breaker
    pub(crate) held_rolls: Counter,
    /// `hashroll_rollouts_held`: workloads whose roll is held after a failed rollout of an
    /// earlier wave of the same change
    pub(crate) rollouts_held: Gauge,
    /// `hashroll_rollouts_waiting`: workloads whose roll waits (an earlier wave still
    /// rolling, or a pause switch)
    pub(crate) rollouts_waiting: Gauge,
    /// `hashroll_rollout_failures_total{source_kind}`: failed rollouts that held later waves
    pub(crate) rollout_failures: Family<BySourceKind, Counter>,
    /// `hashroll_jobs_awaiting_recreate`: opted-in Jobs deleted for a roll whose new Job
    /// could not be created yet (kept in memory and retried)
    pub(crate) jobs_awaiting_recreate: Gauge,
    /// `hashroll_api_requests_total{verb}`: requests to the apiserver (get, list, watch,
    /// create, update, patch, delete), what a start or a quiet hour costs the control plane
    pub(crate) api_requests: Family<ByVerb, Counter>,
    /// `hashroll_watch_restarts_total{resource}`
    pub(crate) watch_restarts: Family<ByResource, Counter>,
    /// `hashroll_leader` (1 on the replica that writes), `hashroll_caches_synced` (1 once
    /// the watches listed everything)
    pub(crate) leader: Gauge,
    pub(crate) caches_synced: Gauge,
    /// `hashroll_mode{scope,webhook}`: 1 for the mode this process runs in
    pub(crate) mode: Family<Mode, Gauge>,
    /// `process_resident_memory_bytes`, read from `/proc/self/status` at each scrape
    pub(crate) resident_memory: Gauge,
    /// `hashroll_alerts_sent_total`, `hashroll_alerts_dropped_total{reason}`: alert
    /// messages (and `--webhook-url` posts)
    pub(crate) alerts: AlertCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            reloads: Family::<Success, Counter>::default(),
            by_namespace: Default::default(),
            actions: Family::<Action, Counter>::default(),
            action_latency: HistogramFamily::<ByWorkloadKind>::new_with_constructor(
                latency_histogram,
            ),
            reconciles: Family::<ByResult, Counter>::default(),
            reconcile_duration: HistogramFamily::<ByResult>::new_with_constructor(
                reconcile_histogram,
            ),
            skipped: Family::<ByReason, Counter>::default(),
            queue_depth: Gauge::default(),
            queue_adds: Counter::default(),
            queue_latency: reconcile_histogram(),
            errors: Family::<ByType, Counter>::default(),
            retries: Counter::default(),
            events_received: Family::<SourceEvent, Counter>::default(),
            events_processed: Family::<Processed, Counter>::default(),
            workloads_scanned: Family::<ByKind, Counter>::default(),
            workloads_matched: Family::<ByKind, Counter>::default(),
            webhook_requests: Family::<ByResult, Counter>::default(),
            webhook_duration: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            webhook_in_flight: Gauge::default(),
            sources_cached: Gauge::default(),
            sources_tracked: Gauge::default(),
            workloads_tracked: Gauge::default(),
            pending_rolls: Gauge::default(),
            oldest_pending_check: Gauge::<f64, std::sync::atomic::AtomicU64>::default(),
            patch_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            held_rolls: Counter::default(),
            rollouts_held: Gauge::default(),
            rollouts_waiting: Gauge::default(),
            rollout_failures: Family::<BySourceKind, Counter>::default(),
            jobs_awaiting_recreate: Gauge::default(),
            api_requests: Family::<ByVerb, Counter>::default(),
            watch_restarts: Family::<ByResource, Counter>::default(),
            leader: Gauge::default(),
            caches_synced: Gauge::default(),
            mode: Family::<Mode, Gauge>::default(),
            resident_memory: Gauge::default(),
            alerts: AlertCounters::default(),
        };
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.registry = registry;
        m.zero_series();
        m
    }

    /// Every metric under its name and help text: the one table (prefix `reloader_` for
    /// Reloader's names, `hashroll_` for hashroll's own, none for the process's).
    fn register(&self, registry: &mut Registry) {
        macro_rules! table {
            ($reg:ident; $($name:literal, $help:literal, $metric:expr;)*) => {
                $( $reg.register($name, $help, $metric.clone()); )*
            };
        }
        let rl = registry.sub_registry_with_prefix("reloader");
        table!(rl;
            "reload_executed", "Reloads executed, by success", self.reloads;
            "action", "Roll writes, by workload kind and result", self.actions;
            "action_latency_seconds", "Time from a change seen to its roll written, by workload kind", self.action_latency;
            "reconcile", "Checks of one workload, by result", self.reconciles;
            "reconcile_duration_seconds", "Time to check one workload, by result", self.reconcile_duration;
            "skipped", "Changes and checks that rolled nothing, by reason", self.skipped;
            "workqueue_depth", "Checks and resumes waiting in the queue", self.queue_depth;
            "workqueue_adds", "Checks and resumes put in the queue", self.queue_adds;
            "workqueue_latency_seconds", "Time from queued to worked (the coalesce window and rate limit included)", self.queue_latency;
            "errors", "Failed writes, by type", self.errors;
            "retries", "Writes retried after a failure", self.retries;
            "events_received", "Source changes seen, by event and resource type", self.events_received;
            "events_processed", "Source changes handled, by event and resource type and result", self.events_processed;
            "workloads_scanned", "Workloads looked at for a source change, by kind", self.workloads_scanned;
            "workloads_matched", "Workloads a check decided to roll, by kind", self.workloads_matched;
        );
        let hr = registry.sub_registry_with_prefix("hashroll");
        table!(hr;
            "webhook_requests", "Admission requests, by result", self.webhook_requests;
            "webhook_duration_seconds", "Time to answer an admission request", self.webhook_duration;
            "webhook_requests_in_flight", "Admission requests read and not yet answered", self.webhook_in_flight;
            "sources_cached", "ConfigMaps and Secrets in the digest cache", self.sources_cached;
            "sources_tracked", "Sources tracked by at least one workload", self.sources_tracked;
            "workloads_tracked", "Workloads that track at least one source", self.workloads_tracked;
            "pending_rolls", "Rolls decided but not yet written", self.pending_rolls;
            "oldest_pending_check_seconds", "How long the oldest queued check (a change not yet rolled) has waited", self.oldest_pending_check;
            "patch_duration_seconds", "Latency of roll patches", self.patch_duration;
            "held_rolls", "Rolls put off by the minimum interval between rolls (the flap breaker)", self.held_rolls;
            "rollouts_held", "Workloads whose roll is held after a failed rollout of an earlier wave of the same change", self.rollouts_held;
            "rollouts_waiting", "Workloads whose roll waits for an earlier wave or a pause switch", self.rollouts_waiting;
            "rollout_failures", "Failed rollouts that held the later waves of a change", self.rollout_failures;
            "jobs_awaiting_recreate", "Opted-in Jobs deleted for a roll whose new Job is not created yet", self.jobs_awaiting_recreate;
            "api_requests", "Requests sent to the apiserver, by verb", self.api_requests;
            "watch_restarts", "Watch streams restarted after an error", self.watch_restarts;
            "leader", "1 on the replica that writes (holds the Lease, or runs alone)", self.leader;
            "caches_synced", "1 once the watches have listed every source and workload", self.caches_synced;
            "mode", "1 for the mode that runs: scope cluster or namespaced (--namespaced), webhook on or off", self.mode;
            "alerts_sent", "Alert messages (and --webhook-url posts) delivered", self.alerts.sent;
            "alerts_dropped", "Alert messages (and --webhook-url posts) dropped, by reason", self.alerts.dropped;
        );
        table!(registry;
            "process_resident_memory_bytes", "Resident memory of the process", self.resident_memory;
        );
    }

    /// The series that exist from the start, at 0, as in Reloader (a rate() over a missing
    /// series says nothing): both outcomes of a reload, every type of error (the labels of
    /// the watcher's WriteError).
    fn zero_series(&self) {
        for success in [true, false] {
            self.reloads.get_or_create(&Success { success }).inc_by(0);
        }
        for t in [
            "conflict",
            "gone",
            "get",
            "patch",
            "create",
            "delete",
            "source",
            "not_leader",
        ] {
            self.errors.get_or_create(&ByType { r#type: t }).inc_by(0);
        }
    }

    /// Reads what is read at scrape time (the process's resident memory).
    pub(crate) fn refresh_process(&self) {
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse::<i64>().ok()
            })
            .map(|kib| kib.saturating_mul(1024));
        if let Some(b) = rss {
            self.resident_memory.set(b);
        }
    }

    /// Says which mode runs (`hashroll_mode`): `scope` is `cluster` or `namespaced`.
    pub(crate) fn set_mode(&self, scope: &'static str, webhook: bool) {
        let webhook = if webhook { "on" } else { "off" };
        self.mode.get_or_create(&Mode { scope, webhook }).set(1);
    }

    /// Turns on `reloader_reload_executed_total_by_namespace` (Reloader's
    /// `METRICS_COUNT_BY_NAMESPACE=enabled`).
    pub(crate) fn count_by_namespace(&self, on: bool) {
        self.by_namespace.turn_on(on);
    }

    pub(crate) fn webhook_result(&self, result: &'static str) {
        self.webhook_requests
            .get_or_create(&ByResult { result })
            .inc();
    }

    /// A roll of a workload of `kind` in `namespace` written (or refused).
    pub(crate) fn reload(&self, success: bool, kind: &'static str, namespace: &str) {
        self.reloads.get_or_create(&Success { success }).inc();
        let result = if success { "success" } else { "error" };
        self.actions
            .get_or_create(&Action {
                workload_kind: kind,
                result,
            })
            .inc();
        self.by_namespace.count(success, namespace);
    }

    pub(crate) fn skip(&self, reason: &'static str) {
        self.skipped.get_or_create(&ByReason { reason }).inc();
    }

    /// A watch began: its restart series exists from now on, at 0.
    pub(crate) fn watch_started(&self, resource: &'static str) {
        self.watch_restarts
            .get_or_create(&ByResource { resource })
            .inc_by(0);
    }

    pub(crate) fn watch_restart(&self, resource: &'static str) {
        self.watch_restarts
            .get_or_create(&ByResource { resource })
            .inc();
    }

    /// Puts one series (label values `x`) in every family and turns the by-namespace count
    /// on, so the exposition shows every metric with its labels (for the reference page).
    /// The destructuring is exhaustive: a new field is a compile error here until it is
    /// touched or named as unlabelled.
    #[cfg(test)]
    pub(crate) fn touch_every_family(&self) {
        let Metrics {
            registry: _,
            reloads,
            by_namespace,
            actions,
            action_latency,
            reconciles,
            reconcile_duration,
            skipped,
            queue_depth: _,
            queue_adds: _,
            queue_latency: _,
            errors,
            retries: _,
            events_received,
            events_processed,
            workloads_scanned,
            workloads_matched,
            webhook_requests,
            webhook_duration: _,
            webhook_in_flight: _,
            sources_cached: _,
            sources_tracked: _,
            workloads_tracked: _,
            pending_rolls: _,
            oldest_pending_check: _,
            patch_duration: _,
            held_rolls: _,
            rollouts_held: _,
            rollouts_waiting: _,
            rollout_failures,
            jobs_awaiting_recreate: _,
            api_requests,
            watch_restarts,
            leader: _,
            caches_synced: _,
            mode,
            resident_memory: _,
            alerts,
        } = self;
        let x = "x";
        let _ = reloads.get_or_create(&Success { success: true });
        by_namespace.turn_on(true);
        by_namespace.count(true, x);
        let _ = actions.get_or_create(&Action {
            workload_kind: x,
            result: x,
        });
        let _ = action_latency.get_or_create(&ByWorkloadKind { workload_kind: x });
        let _ = reconciles.get_or_create(&ByResult { result: x });
        let _ = reconcile_duration.get_or_create(&ByResult { result: x });
        let _ = skipped.get_or_create(&ByReason { reason: x });
        let _ = errors.get_or_create(&ByType { r#type: x });
        let event = SourceEvent {
            event_type: x,
            resource_type: x,
        };
        let _ = events_received.get_or_create(&event);
        let _ = events_processed.get_or_create(&Processed { event, result: x });
        let _ = workloads_scanned.get_or_create(&ByKind { kind: x });
        let _ = workloads_matched.get_or_create(&ByKind { kind: x });
        let _ = webhook_requests.get_or_create(&ByResult { result: x });
        let _ = rollout_failures.get_or_create(&BySourceKind { source_kind: x });
        let _ = api_requests.get_or_create(&ByVerb { verb: x });
        let _ = watch_restarts.get_or_create(&ByResource { resource: x });
        let _ = alerts.dropped.get_or_create(&ByReason { reason: x });
        let _ = mode.get_or_create(&Mode {
            scope: x,
            webhook: x,
        });
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        encode(&mut s, &self.registry).expect("writing to a String");
        self.by_namespace.render_into(&mut s);
        s
    }
}

/// The counters of one alert sender (`services::alert`).
#[derive(Clone, Default)]
pub(crate) struct AlertCounters {
    pub(crate) sent: Counter,
    /// by `reason`: `queue_full`, `failed`
    pub(crate) dropped: Family<ByReason, Counter>,
}

impl AlertCounters {
    /// One notice dropped, for `reason`.
    pub(crate) fn drop_one(&self, reason: &'static str) {
        self.dropped.get_or_create(&ByReason { reason }).inc();
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn renders_reloader_names() {
        let m = Metrics::new();
        let text = m.render();
        // both success series from the start
        assert!(
            text.contains("reloader_reload_executed_total{success=\"false\"} 0"),
            "{text}"
        );
        assert!(!text.contains("by_namespace"), "off unless asked: {text}");
        m.reload(true, "Deployment", "ns1");
        m.webhook_result("patched");
        let text = m.render();
        for want in [
            "reloader_reload_executed_total{success=\"true\"} 1",
            "reloader_action_total{workload_kind=\"Deployment\",result=\"success\"} 1",
            "hashroll_webhook_requests_total{result=\"patched\"} 1",
            "# TYPE reloader_workqueue_depth gauge",
            "# TYPE reloader_retries counter",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }

    #[test]
    fn by_namespace_is_bounded_and_keeps_reloaders_name() {
        let m = Metrics::new();
        m.count_by_namespace(true);
        for i in 0..MAX_NAMESPACES + 5 {
            m.reload(true, "Deployment", &format!("ns{i}"));
        }
        m.reload(false, "Deployment", "ns0");
        let text = m.render();
        assert!(text.contains(
            "reloader_reload_executed_total_by_namespace{success=\"true\",namespace=\"ns0\"} 1"
        ));
        assert!(text.contains(
            "reloader_reload_executed_total_by_namespace{success=\"true\",namespace=\"_other\"} 5"
        ));
        // a new (success, namespace) pair past the bound is counted under _other too
        assert!(text.contains(
            "reloader_reload_executed_total_by_namespace{success=\"false\",namespace=\"_other\"} 1"
        ));
        assert!(
            text.trim_end().ends_with("# EOF"),
            "the exposition still ends with EOF"
        );
        assert_eq!(
            text.matches("# TYPE reloader_reload_executed_total_by_namespace")
                .count(),
            1
        );
    }
}
