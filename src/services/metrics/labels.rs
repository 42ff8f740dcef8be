//! The label sets of the metric families, typed: a family takes only its own labels, named
//! and ordered as Reloader's dashboards read them, and a value is a `&'static str` from a
//! closed list (a kind, a result, a verb), never a tenant's text.

use prometheus_client::encoding::EncodeLabelSet;

/// `{success}`: `reloader_reload_executed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Success {
    pub success: bool,
}

/// `{result}`: reconciles, webhook requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByResult {
    pub result: &'static str,
}

/// `{workload_kind,result}`: `reloader_action_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Action {
    pub workload_kind: &'static str,
    pub result: &'static str,
}

/// `{workload_kind}`: `reloader_action_latency_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByWorkloadKind {
    pub workload_kind: &'static str,
}

/// `{kind}`: workloads scanned and matched.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByKind {
    pub kind: &'static str,
}

/// `{reason}`: skips, dropped alerts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByReason {
    pub reason: &'static str,
}

/// `{type}`: `reloader_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByType {
    pub r#type: &'static str,
}

/// `{event_type,resource_type}`: `reloader_events_received_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceEvent {
    pub event_type: &'static str,
    pub resource_type: &'static str,
}

/// `{event_type,resource_type,result}`: `reloader_events_processed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Processed {
    #[prometheus(flatten)]
    pub event: SourceEvent,
    pub result: &'static str,
}

/// `{source_kind}`: `hashroll_rollout_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BySourceKind {
    pub source_kind: &'static str,
}

/// `{verb}`: `hashroll_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByVerb {
    pub verb: &'static str,
}

/// `{resource}`: `hashroll_watch_restarts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByResource {
    pub resource: &'static str,
}
