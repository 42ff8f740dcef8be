//! Who may write (`--enable-ha`): every replica serves the webhook and keeps its caches
//! warm; only the holder of a coordination.k8s.io Lease patches workloads and writes Events.
//! Expiry is judged by this replica's own clock (the lease's resourceVersion not changing for
//! a lease duration), never by comparing clocks across machines.
//!
//! A leader stops writing before its lease can expire, whatever happens to it: each renewal
//! makes it the writer until a deadline on the monotonic clock (the renew deadline, by
//! default 2/3 of the lease duration, after the renewal was *sent*), and [`Leadership::is_leader`] checks that deadline at the
//! moment of every write. Every Lease call has a deadline (1/3 of the duration), so a hung
//! apiserver call cannot keep the loop from noticing. A leader frozen (SIGSTOP, a stalled
//! VM) past its deadline finds itself a follower the instant it runs again, before its
//! election loop has even woken up; the patches it then sends carry resourceVersions, so
//! one checked in the instant before a freeze fails with a conflict if the new leader wrote
//! the workload meanwhile.
//!
//! Our own code rather than kube-lease-manager 0.13.1: that crate reports leadership as a
//! `watch` flag flipped by its own task, so a process resumed after a freeze reads `true`
//! until that task runs: it cannot give the deadline-at-write guarantee above. The election
//! itself (get, create or replace with the resourceVersion read) is small.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::core::sync::Recover;

/// Whether this replica may write now.
#[derive(Debug)]
pub(crate) struct Leadership {
    leader: AtomicBool,
    tx: watch::Sender<bool>,
    /// with HA: writing is allowed only before this (monotonic clock); None: always
    valid_until: std::sync::Mutex<Option<std::time::Instant>>,
    ha: bool,
    /// SIGTERM: no new write, the election loop ends
    stopping: AtomicBool,
    /// writes under way (see [`Leadership::write`])
    in_flight: std::sync::atomic::AtomicUsize,
}

/// A write under way: counted until dropped, so a stop can wait for it.
pub(crate) struct WriteGuard<'a>(&'a Leadership);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Leadership {
    /// Without HA: always the writer.
    pub(crate) fn always() -> Arc<Leadership> {
        let (tx, _) = watch::channel(true);
        Arc::new(Leadership {
            leader: AtomicBool::new(true),
            tx,
            valid_until: std::sync::Mutex::new(None),
            ha: false,
            stopping: AtomicBool::new(false),
            in_flight: Default::default(),
        })
    }
    fn follower() -> Arc<Leadership> {
        let (tx, _) = watch::channel(false);
        Arc::new(Leadership {
            leader: AtomicBool::new(false),
            tx,
            valid_until: std::sync::Mutex::new(None),
            ha: true,
            stopping: AtomicBool::new(false),
            in_flight: Default::default(),
        })
    }
    /// Whether this replica may write now: it leads, and (with HA) its last renewal is
    /// still surely valid on the monotonic clock.
    pub(crate) fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
            && self.within_deadline()
    }

    /// Counts a write under way (whoever leads); a stop waits for it to end.
    pub(crate) fn write(&self) -> WriteGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        WriteGuard(self)
    }

    /// The stop: no new write from now on; waits (at most `grace`) for the writes under
    /// way to end. Whether they did.
    pub(crate) async fn stop(&self, grace: Duration) -> bool {
        self.stopping.store(true, Ordering::Release);
        let _ = self.tx.send(false);
        let now = Instant::now();
        let end = now.checked_add(grace).unwrap_or(now);
        while self.in_flight.load(Ordering::Acquire) > 0 {
            if Instant::now() > end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
    fn within_deadline(&self) -> bool {
        if !self.ha {
            return true;
        }
        let until = *self.valid_until.lock().recover();
        until.is_some_and(|t| std::time::Instant::now() < t)
    }
    /// A renewal sent at `sent` holds for `validity`.
    fn renewed(&self, sent: std::time::Instant, validity: Duration) {
        *self.valid_until.lock().recover() = sent.checked_add(validity);
    }
    /// Changes of leadership (true: became the writer).
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
    /// A renewal sent at `sent` succeeded. Leading again after the last renewal's deadline
    /// passed is a new leadership even when the flag never dropped (the loop had not woken
    /// in between): what was not written meanwhile was dropped by the writers, so the
    /// subscribers hear `true` again and reconcile.
    fn renewal_succeeded(&self, sent: std::time::Instant, validity: Duration) {
        let lapsed = !self.within_deadline();
        self.renewed(sent, validity);
        let was = self.leader.swap(true, Ordering::AcqRel);
        if !was || lapsed {
            let _ = self.tx.send(true);
        }
    }
    fn set(&self, v: bool) {
        if self.leader.swap(v, Ordering::AcqRel) != v {
            let _ = self.tx.send(v);
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LeaseConfig {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) identity: String,
    pub(crate) duration: Duration,
    /// how long a holder writes after a renewal was sent (`--leader-election-renew-deadline`;
    /// 2/3 of `duration` by default)
    pub(crate) renew_deadline: Duration,
    /// the loop's period (`--leader-election-retry-period`; 1/4 of `duration` by default)
    pub(crate) retry_period: Duration,
    /// the owner the Lease is created with (`--owner-deployment`)
    pub(crate) owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
}

/// The whole seconds a Lease announces for `d`: rounded up, so another replica never waits
/// less than the holder trusts its lease (2/3 of `d`); at least 1, at most `i32::MAX`.
fn lease_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Starts the election loop; returns the leadership it maintains.
pub(crate) fn start(client: Client, cfg: LeaseConfig) -> Arc<Leadership> {
    let l = Leadership::follower();
    tokio::spawn(elect(client, cfg, l.clone()));
    l
}

async fn elect(client: Client, cfg: LeaseConfig, l: Arc<Leadership>) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let retry = cfg.retry_period;
    // what we last saw of someone else's lease, and when (our clock)
    let mut observed: Option<(String, Instant)> = None;
    let validity = cfg.renew_deadline;
    // a call that outlives the renew deadline could not keep the leadership anyway
    let call_deadline = (cfg.duration / 3).min(cfg.renew_deadline);
    loop {
        if l.stopping.load(Ordering::Acquire) {
            return;
        }
        // a deadline passed while we were not running (frozen, starved): a follower now, so
        // that leading again is a new leadership (and reconciles)
        if l.leader.load(Ordering::Acquire) && !l.within_deadline() {
            tracing::warn!(lease = %cfg.name, "lease renewal overdue: stopped writing");
            l.set(false);
        }
        let sent = std::time::Instant::now();
        let result =
            match tokio::time::timeout(call_deadline, step(&api, &cfg, &mut observed)).await {
                Ok(r) => r,
                Err(_) => Err(StepError::Timeout(call_deadline)),
            };
        match result {
            Ok(true) => {
                if !l.leader.load(Ordering::Acquire) {
                    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired the lease: this replica writes");
                } else if !l.within_deadline() {
                    tracing::info!(lease = %cfg.name, "renewed the lease after its deadline: writing again, reconciling");
                }
                l.renewal_succeeded(sent, validity);
            }
            Ok(false) => {
                if l.is_leader() {
                    tracing::warn!(lease = %cfg.name, "lost the lease: stopped writing");
                }
                l.set(false);
            }
            Err(e) => {
                // writing stays allowed only while our last renewal is surely still valid
                // (is_leader checks that by itself); the flag follows
                if l.leader.load(Ordering::Acquire) && !l.within_deadline() {
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

/// Hands the lease back if this replica holds it (SIGTERM), so another takes over at once
/// instead of after the lease duration: holder cleared, duration 1 s, with the
/// resourceVersion read (a lease someone else took meanwhile is left alone).
pub(crate) async fn release(client: Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let work = async {
        let Some(mut lease) = api.get_opt(&cfg.name).await? else {
            return Ok::<bool, kube::Error>(false);
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        api.replace(&cfg.name, &crate::k8s::api::post_params(), &lease)
            .await?;
        Ok(true)
    };
    match tokio::time::timeout(cfg.duration / 3, work).await {
        Ok(Ok(true)) => tracing::info!(lease = %cfg.name, "released the lease"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            tracing::warn!(lease = %cfg.name, error = %e, "cannot release the lease; it expires by itself")
        }
        Err(_) => {
            tracing::warn!(lease = %cfg.name, "releasing the lease timed out; it expires by itself")
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One round: Ok(true) when we hold the lease after it.
async fn step(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Option<(String, Instant)>,
) -> Result<bool, StepError> {
    let spec = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(lease_seconds(cfg.duration)),
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
                owner_references: cfg.owner.clone().map(|o| vec![o]),
                ..Default::default()
            },
            spec: Some(spec(0, None)),
        };
        return match api.create(&crate::k8s::api::post_params(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
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
    match api
        .replace(&cfg.name, &crate::k8s::api::post_params(), &lease)
        .await
    {
        Ok(_) => {
            *observed = None;
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_lease_announces_at_least_the_time_its_holder_trusts() {
        for (d, want) in [
            (Duration::from_millis(1900), 2),
            (Duration::from_secs(15), 15),
            (Duration::from_millis(200), 1),
            (Duration::ZERO, 1),
            (Duration::from_secs(u64::MAX), i32::MAX),
        ] {
            assert_eq!(lease_seconds(d), want, "{d:?}");
        }
        for ms in [1000u64, 1001, 1900, 2500, 4000, 15_000] {
            let d = Duration::from_millis(ms);
            let announced = Duration::from_secs(lease_seconds(d) as u64);
            assert!(announced >= d * 2 / 3 && announced >= d, "{d:?}");
        }
    }
    use super::*;

    #[test]
    fn leading_again_after_a_lapsed_deadline_is_announced_as_new_leadership() {
        let l = Leadership::follower();
        let mut rx = l.subscribe();
        let long = Duration::from_secs(60);
        // first acquisition: announced
        l.renewal_succeeded(std::time::Instant::now(), long);
        assert!(rx.has_changed().unwrap());
        assert!(*rx.borrow_and_update());
        // a renewal in time: nothing new to announce
        l.renewal_succeeded(std::time::Instant::now(), long);
        assert!(!rx.has_changed().unwrap());
        // the deadline passes with the flag still up (the loop did not wake): not a writer
        l.renewed(std::time::Instant::now(), Duration::ZERO);
        assert!(l.leader.load(Ordering::Acquire) && !l.is_leader());
        // the next renewal makes it the writer again, and says so
        l.renewal_succeeded(std::time::Instant::now(), long);
        assert!(l.is_leader());
        assert!(rx.has_changed().unwrap(), "a lapse must end in a reconcile");
        assert!(*rx.borrow_and_update());
    }

    #[test]
    fn leadership_ends_at_its_deadline_without_the_loop() {
        let l = Leadership::follower();
        assert!(!l.is_leader());
        l.renewed(std::time::Instant::now(), Duration::from_millis(50));
        l.set(true);
        assert!(l.is_leader());
        std::thread::sleep(Duration::from_millis(80));
        // nobody set it false: the deadline alone ends it
        assert!(!l.is_leader());
        l.renewed(std::time::Instant::now(), Duration::from_secs(60));
        assert!(l.is_leader());
        // without HA there is no deadline
        assert!(Leadership::always().is_leader());
    }

    #[tokio::test]
    async fn a_stop_waits_for_the_write_under_way_and_allows_no_new_one() {
        let l = Leadership::always();
        let g = l.write();
        let l2 = l.clone();
        let stop = tokio::spawn(async move { l2.stop(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!l.is_leader(), "no new write once stopping");
        assert!(!stop.is_finished(), "waits for the write under way");
        drop(g);
        assert!(stop.await.unwrap());
        // a write that never ends: the stop gives up after its grace
        let l = Leadership::always();
        let _g = l.write();
        assert!(!l.stop(Duration::from_millis(50)).await);
    }
}
