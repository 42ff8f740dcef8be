//! Whether an UPDATE changes a workload's pod template (the roll token aside): what decides
//! if an update keeps the running pods.

use serde_json::Value;

/// Whether the pod template differs between two objects, ignoring the roll token (and
/// treating an empty annotation map like a missing one). The tests' form: the webhook
/// compares the pod templates it has read ([`templates_differ`]).
#[cfg(test)]
pub(crate) fn template_changed(
    kind: super::kind::WorkloadKind,
    old: &Value,
    new: &Value,
    token_annotation: &str,
) -> bool {
    let path = kind.row().template;
    let at = super::workload::at;
    templates_differ(at(old, path), at(new, path), token_annotation)
}

/// Drops, at every depth, what means the same as a field left out: `null`, `{}` and `[]`.
/// A controller that writes a workload back through its typed client adds them (Go's
/// `creationTimestamp: null`, `resources: {}`); they are not a change of the template.
fn drop_empty(v: &mut Value) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                drop_empty(x);
            }
            m.retain(|_, x| !empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// [`template_changed`] given the two pod templates.
pub(crate) fn templates_differ(
    old: Option<&Value>,
    new: Option<&Value>,
    token_annotation: &str,
) -> bool {
    // the common case: equal as sent, token included
    if old == new {
        return false;
    }
    let norm = |t: Option<&Value>| -> Value {
        let mut t = t.cloned().unwrap_or(Value::Null);
        if let Some(ann) = t
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
        {
            ann.remove(token_annotation);
        }
        drop_empty(&mut t);
        t
    };
    norm(old) != norm(new)
}
