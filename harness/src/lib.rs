//! The harness of hashroll, apart from production: the local control plane (`plane`),
//! hashroll started against it (`launch`) and the one MutatingWebhookConfiguration used
//! outside the manifests (`webhook_config`), and third-party controllers some tests need
//! (`argo`), the Secrets Store CSI Driver's CRDs (`csi`), and tools built from their Go modules (`tools`: helm, promtool). The e2e tests, `make bench` and `make demo`
//! use it; the production binary does not depend on it.
#![forbid(unsafe_code)]

pub mod argo;
pub mod argocd;
mod controller;
pub mod csi;
pub mod flux;
pub mod launch;
pub mod node;
pub mod plane;
pub mod tools;
pub mod webhook_config;
