//! The Prometheus registry: what Reloader users already scrape plus hashroll's own.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    /// `reloader_reload_executed_total{success}`
    pub reloads: Family<Labels, Counter>,
    /// `hashroll_webhook_requests_total{result}`
    pub webhook_requests: Family<Labels, Counter>,
    pub webhook_duration: Histogram,
    pub sources_cached: Gauge,
    pub sources_tracked: Gauge,
    pub workloads_tracked: Gauge,
    pub pending_rolls: Gauge,
    pub patch_duration: Histogram,
    /// `hashroll_watch_restarts_total{resource}`
    pub watch_restarts: Family<Labels, Counter>,
}

fn l(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let reloads = Family::<Labels, Counter>::default();
        registry.register(
            "reloader_reload_executed",
            "Reloads executed, by success",
            reloads.clone(),
        );
        let hr = registry.sub_registry_with_prefix("hashroll");
        let webhook_requests = Family::<Labels, Counter>::default();
        hr.register(
            "webhook_requests",
            "Admission requests, by result",
            webhook_requests.clone(),
        );
        let webhook_duration = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        hr.register(
            "webhook_duration_seconds",
            "Time to answer an admission request",
            webhook_duration.clone(),
        );
        let sources_cached = Gauge::default();
        hr.register(
            "sources_cached",
            "ConfigMaps and Secrets in the digest cache",
            sources_cached.clone(),
        );
        let sources_tracked = Gauge::default();
        hr.register(
            "sources_tracked",
            "Sources tracked by at least one workload",
            sources_tracked.clone(),
        );
        let workloads_tracked = Gauge::default();
        hr.register(
            "workloads_tracked",
            "Workloads that track at least one source",
            workloads_tracked.clone(),
        );
        let pending_rolls = Gauge::default();
        hr.register(
            "pending_rolls",
            "Rolls decided but not yet written",
            pending_rolls.clone(),
        );
        let patch_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        hr.register(
            "patch_duration_seconds",
            "Latency of roll patches",
            patch_duration.clone(),
        );
        let watch_restarts = Family::<Labels, Counter>::default();
        hr.register(
            "watch_restarts",
            "Watch streams restarted after an error",
            watch_restarts.clone(),
        );
        Metrics {
            registry,
            reloads,
            webhook_requests,
            webhook_duration,
            sources_cached,
            sources_tracked,
            workloads_tracked,
            pending_rolls,
            patch_duration,
            watch_restarts,
        }
    }

    pub fn webhook_result(&self, result: &str) {
        self.webhook_requests
            .get_or_create(&l("result", result))
            .inc();
    }
    pub fn reload(&self, success: bool) {
        self.reloads
            .get_or_create(&l("success", if success { "true" } else { "false" }))
            .inc();
    }
    pub fn watch_restart(&self, resource: &str) {
        self.watch_restarts
            .get_or_create(&l("resource", resource))
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        encode(&mut s, &self.registry).expect("writing to a String");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_reloader_counter_name() {
        let m = Metrics::new();
        m.reload(true);
        m.webhook_result("patched");
        let text = m.render();
        assert!(
            text.contains("reloader_reload_executed_total{success=\"true\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hashroll_webhook_requests_total{result=\"patched\"} 1"),
            "{text}"
        );
    }
}
