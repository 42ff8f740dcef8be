//! The label sets of the metric families, typed: a family takes only its own labels, named
//! and ordered as Reloader's dashboards read them, and a value is a `&'static str` from a
//! closed list (a kind, a result, a verb), never a tenant's text.

use prometheus_client::encoding::EncodeLabelSet;

/// `{success}`: `reloader_reload_executed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Success {
    pub(crate) success: bool,
}

/// `{result}`: reconciles, webhook requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByResult {
    pub(crate) result: &'static str,
}

/// `{workload_kind,result}`: `reloader_action_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Action {
    pub(crate) workload_kind: &'static str,
    pub(crate) result: &'static str,
}

/// `{workload_kind}`: `reloader_action_latency_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByWorkloadKind {
    pub(crate) workload_kind: &'static str,
}

/// `{kind}`: workloads scanned and matched.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByKind {
    pub(crate) kind: &'static str,
}

/// `{reason}`: skips, dropped alerts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByReason {
    pub(crate) reason: &'static str,
}

/// `{type}`: `reloader_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByType {
    pub(crate) r#type: &'static str,
}

/// `{event_type,resource_type}`: `reloader_events_received_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceEvent {
    pub(crate) event_type: &'static str,
    pub(crate) resource_type: &'static str,
}

/// `{event_type,resource_type,result}`: `reloader_events_processed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Processed {
    #[prometheus(flatten)]
    pub(crate) event: SourceEvent,
    pub(crate) result: &'static str,
}

/// `{source_kind}`: `hashroll_rollout_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BySourceKind {
    pub(crate) source_kind: &'static str,
}

/// `{verb}`: `hashroll_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByVerb {
    pub(crate) verb: &'static str,
}

/// `{resource}`: `hashroll_watch_restarts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ByResource {
    pub(crate) resource: &'static str,
}

/// `{scope,webhook}`: `hashroll_mode`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Mode {
    pub(crate) scope: &'static str,
    pub(crate) webhook: &'static str,
}
