//! Who may write (`--enable-ha`): every replica serves the webhook and keeps its caches
//! warm; only the holder of a coordination.k8s.io Lease patches workloads and writes Events.
//! Expiry is judged by this replica's own clock (the lease's resourceVersion not changing for
//! a lease duration), never by comparing clocks across machines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// Whether this replica may write now.
#[derive(Debug)]
pub struct Leadership {
    leader: AtomicBool,
    tx: watch::Sender<bool>,
}

impl Leadership {
    /// Without HA: always the writer.
    pub fn always() -> Arc<Leadership> {
        let (tx, _) = watch::channel(true);
        Arc::new(Leadership {
            leader: AtomicBool::new(true),
            tx,
        })
    }
    fn follower() -> Arc<Leadership> {
        let (tx, _) = watch::channel(false);
        Arc::new(Leadership {
            leader: AtomicBool::new(false),
            tx,
        })
    }
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }
    /// Changes of leadership (true: became the writer).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
    fn set(&self, v: bool) {
        if self.leader.swap(v, Ordering::AcqRel) != v {
            let _ = self.tx.send(v);
        }
    }
}

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Starts the election loop; returns the leadership it maintains.
pub fn start(client: Client, cfg: LeaseConfig) -> Arc<Leadership> {
    let l = Leadership::follower();
    tokio::spawn(elect(client, cfg, l.clone()));
    l
}

async fn elect(client: Client, cfg: LeaseConfig, l: Arc<Leadership>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let retry = cfg.duration / 4;
    // what we last saw of someone else's lease, and when (our clock)
    let mut observed: Option<(String, Instant)> = None;
    let mut last_renew = Instant::now();
    loop {
        let result = step(&api, &cfg, &mut observed).await;
        match result {
            Ok(true) => {
                last_renew = Instant::now();
                if !l.is_leader() {
                    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired the lease: this replica writes");
                }
                l.set(true);
            }
            Ok(false) => {
                if l.is_leader() {
                    tracing::warn!(lease = %cfg.name, "lost the lease: stopped writing");
                }
                l.set(false);
            }
            Err(e) => {
                // keep writing only while our last renewal is surely still valid
                if l.is_leader() && last_renew.elapsed() > cfg.duration * 2 / 3 {
                    tracing::warn!(lease = %cfg.name, error = %e, "cannot renew the lease: stopped writing");
                    l.set(false);
                } else {
                    tracing::debug!(lease = %cfg.name, error = %e, "lease call failed");
                }
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// One round: Ok(true) when we hold the lease after it.
async fn step(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Option<(String, Instant)>,
) -> Result<bool, kube::Error> {
    let spec = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs().max(1) as i32),
        acquire_time: acquire.or_else(|| Some(now())),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..Default::default()
            },
            spec: Some(spec(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let rv = lease.metadata.resource_version.clone().unwrap_or_default();
    let transitions = current.lease_transitions.unwrap_or(0);
    let mine = current.holder_identity.as_deref() == Some(cfg.identity.as_str());
    if !mine {
        let held = current
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let duration =
            Duration::from_secs(current.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        let expired = match observed {
            Some((seen_rv, at)) if *seen_rv == rv => at.elapsed() > duration,
            _ => {
                *observed = Some((rv.clone(), Instant::now()));
                false
            }
        };
        if held && !expired {
            return Ok(false);
        }
        lease.spec = Some(spec(transitions + 1, None));
    } else {
        lease.spec = Some(spec(transitions, current.acquire_time));
    }
    // the update carries the resourceVersion we read: a concurrent writer wins, we lose
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => {
            *observed = None;
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
