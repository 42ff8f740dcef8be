//! The one MutatingWebhookConfiguration the tests, the bench and the demo register (the
//! manifests keep their own, for a cluster): hashroll's webhook at a URL, for the kinds it
//! stamps, with `failurePolicy: Ignore` as in production.

use base64::Engine;

/// Which namespaces the webhook is called for.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// every namespace but kube-system and hashroll (as the manifests)
    AllButSystem,
    /// this namespace only (tests side by side in one plane)
    Only(&'a str),
}

/// A configuration to register.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig<'a> {
    pub name: &'a str,
    /// `https://127.0.0.1:PORT/mutate`
    pub url: &'a str,
    /// the CA that signed the serving certificate; none leaves the caBundle to hashroll
    /// (`--self-managed-certs`)
    pub ca_pem: Option<&'a str>,
    pub scope: Scope<'a>,
}

impl WebhookConfig<'_> {
    /// The YAML of the configuration.
    pub fn yaml(&self) -> String {
        let ca = match self.ca_pem {
            Some(pem) => format!(
                "\n    caBundle: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
            None => String::new(),
        };
        let (op, values) = match self.scope {
            Scope::AllButSystem => ("NotIn", r#""kube-system", "hashroll""#.to_string()),
            Scope::Only(ns) => ("In", format!("{ns:?}")),
        };
        format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
- name: stamp.hashroll.dev
  admissionReviewVersions: ["v1"]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 5
  reinvocationPolicy: IfNeeded
  clientConfig:
    url: {url}{ca}
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: {op}
      values: [{values}]
  rules:
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["deployments", "daemonsets", "statefulsets"]
    scope: Namespaced
  - apiGroups: ["batch"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["cronjobs", "jobs"]
    scope: Namespaced
  - apiGroups: ["argoproj.io"]
    apiVersions: ["v1alpha1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["rollouts"]
    scope: Namespaced
"#,
            name = self.name,
            url = self.url,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_ca_shape_the_yaml() {
        let all = WebhookConfig {
            name: "h",
            url: "https://127.0.0.1:1/mutate",
            ca_pem: Some("PEM"),
            scope: Scope::AllButSystem,
        }
        .yaml();
        assert!(all.contains("operator: NotIn"), "{all}");
        assert!(all.contains("caBundle: UEVN"), "{all}");
        let one = WebhookConfig {
            ca_pem: None,
            scope: Scope::Only("ns1"),
            ..WebhookConfig {
                name: "h",
                url: "u",
                ca_pem: None,
                scope: Scope::AllButSystem,
            }
        }
        .yaml();
        assert!(
            one.contains("operator: In\n") && one.contains(r#"values: ["ns1"]"#),
            "{one}"
        );
        assert!(!one.contains("caBundle"), "{one}");
    }
}
