//! The fair queue of the slow lane: costly reviews wait per flow (the namespace they were
//! asked in) and are served across flows by deficit round robin on their measured cost, with
//! a bounded queue per flow and a bound on all of them together, as the apiserver's own API
//! Priority and Fairness does for its requests.
//!
//! - **Flow = namespace.** The namespace is the tenancy boundary (RBAC, quotas), and a
//!   review's cost is the namespace's own (its entries are matched against that namespace's
//!   sources). Not the requesting user: every tenant applying through one GitOps tool is one
//!   user, so one flooding tenant would share its flow with all of them; nor namespace+user:
//!   a tenant that makes service accounts in its namespace would multiply its share.
//! - **Deficit round robin, paid after.** A review's cost is known once it is answered, so a
//!   flow is served while its credit is positive and charged the time its review took; each
//!   turn that passes a flow over adds a quantum. A namespace whose reviews take 20 ms gets
//!   a turn every 20 quanta, one whose reviews take 0.5 ms gets every turn: equal time, not
//!   equal counts. A flow with nothing waiting and nothing in service is forgotten (its
//!   debt too, as in classic DRR: the debt only ever orders flows that are waiting).
//! - **Bounded.** At most `per_flow` reviews of one flow wait, at most `total` of all flows,
//!   and at most `running_per_flow` of one flow are in service at once, so the other threads
//!   of the lane are free for the other flows. A review over a bound is refused at once
//!   (the caller answers it without a patch) rather than waiting. The flows held are at most
//!   `total` plus those in service, each with a name of at most [`MAX_FLOW`] bytes.
//!
//! Our own code for a small thing: the crates found (weighted round robin of load
//! balancers, a task queue over a store) neither bound a flow's queue nor charge a measured
//! cost; this is a map of deques and a ring, no threads and no clock (the lane measures), so
//! it is tested here step by step.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The longest flow name kept (a namespace name is at most 63 bytes).
pub(crate) const MAX_FLOW: usize = 63;

/// Credit a flow gets each time its turn passes.
const QUANTUM: Duration = Duration::from_millis(1);

/// The most debt one review can put on a flow: a review that took longer is charged this.
const MAX_CHARGE: Duration = Duration::from_secs(1);

/// An item that can be given up while it waits (its caller went away): it is then dropped
/// instead of served, and its place is free again.
pub(crate) trait Waiting {
    fn abandoned(&self) -> bool;
}

/// Why an item was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// its flow has `per_flow` items waiting
    Flow,
    /// all flows together have `total` items waiting
    All,
}

impl Full {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Full::Flow => "namespace",
            Full::All => "all",
        }
    }
}

/// The bounds of a [`FairQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub per_flow: usize,
    pub total: usize,
    pub running_per_flow: usize,
}

struct Flow<T> {
    waiting: VecDeque<T>,
    running: usize,
    /// in µs: positive, it may be served
    credit: i64,
    /// its name is in the ring
    in_ring: bool,
}

/// Items waiting per flow; see the module doc.
pub(crate) struct FairQueue<T> {
    flows: HashMap<Box<str>, Flow<T>>,
    /// the flows with something waiting, in turn order
    ring: VecDeque<Box<str>>,
    waiting: usize,
    bounds: Bounds,
}

/// A flow's name: a namespace as sent, cut to [`MAX_FLOW`] bytes (at a char boundary).
fn flow_name(flow: &str) -> &str {
    let mut end = flow.len().min(MAX_FLOW);
    while !flow.is_char_boundary(end) {
        end -= 1;
    }
    &flow[..end]
}

impl<T: Waiting> FairQueue<T> {
    pub(crate) fn new(bounds: Bounds) -> FairQueue<T> {
        FairQueue {
            flows: HashMap::new(),
            ring: VecDeque::new(),
            waiting: 0,
            bounds: Bounds {
                per_flow: bounds.per_flow.max(1),
                total: bounds.total.max(1),
                running_per_flow: bounds.running_per_flow.max(1),
            },
        }
    }

    /// Items waiting, all flows.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Flows held (waiting or in service).
    #[cfg(test)]
    pub(crate) fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Queues `item` at the end of its flow, or gives it back with the bound it is over.
    /// Abandoned items of the flow are dropped first, so they hold no place.
    pub(crate) fn push(&mut self, flow: &str, item: T) -> Result<(), (Full, T)> {
        let name = flow_name(flow);
        if let Some(f) = self.flows.get_mut(name)
            && f.waiting.len() >= self.bounds.per_flow
        {
            let before = f.waiting.len();
            f.waiting.retain(|i| !i.abandoned());
            self.waiting -= before - f.waiting.len();
            if f.waiting.len() >= self.bounds.per_flow {
                return Err((Full::Flow, item));
            }
        }
        if self.waiting >= self.bounds.total {
            return Err((Full::All, item));
        }
        let f = self.flows.entry(name.into()).or_insert_with(|| Flow {
            waiting: VecDeque::new(),
            running: 0,
            credit: 0,
            in_ring: false,
        });
        if !f.in_ring {
            f.in_ring = true;
            self.ring.push_back(name.into());
        }
        f.waiting.push_back(item);
        self.waiting += 1;
        Ok(())
    }

    /// The next item to serve and its flow, by deficit round robin among the flows with
    /// fewer than `running_per_flow` in service; `None` when no flow may be served now.
    /// The item counts as in service until [`FairQueue::done`].
    pub(crate) fn pop(&mut self) -> Option<(Box<str>, T)> {
        loop {
            let (name, item) = self.pop_any()?;
            if !item.abandoned() {
                return Some((name, item));
            }
            // given up while it waited: not served, not charged
            self.done(&name, Duration::ZERO);
        }
    }

    fn pop_any(&mut self) -> Option<(Box<str>, T)> {
        let cap = self.bounds.running_per_flow;
        let q = QUANTUM.as_micros() as i64;
        // the turns every flow that may be served would have to pass before the first of
        // them has credit: given to all of them at once, so a pass below serves one
        let rounds = self
            .ring
            .iter()
            .filter_map(|n| self.flows.get(n))
            .filter(|f| f.running < cap)
            .map(|f| if f.credit > 0 { 0 } else { (q - f.credit) / q })
            .min()?;
        if rounds > 1 {
            for n in &self.ring {
                if let Some(f) = self.flows.get_mut(n)
                    && f.running < cap
                {
                    f.credit += (rounds - 1) * q;
                }
            }
        }
        // one pass serves the flow with the fewest rounds left (two when the ring starts
        // with a flow in service up to its share)
        for _ in 0..2 * self.ring.len() {
            let name = self.ring.pop_front()?;
            let Some(f) = self.flows.get_mut(&name) else {
                continue;
            };
            if f.waiting.is_empty() {
                // emptied by a purge of abandoned items
                f.in_ring = false;
                if f.running == 0 {
                    self.flows.remove(&name);
                }
                continue;
            }
            if f.running < cap {
                // its turn: a quantum when it has no credit left, and served if it has now
                if f.credit <= 0 {
                    f.credit += q;
                }
                if f.credit > 0 {
                    let item = f.waiting.pop_front()?;
                    f.running += 1;
                    self.waiting -= 1;
                    if f.waiting.is_empty() {
                        f.in_ring = false;
                    } else {
                        self.ring.push_back(name.clone());
                    }
                    return Some((name, item));
                }
            }
            self.ring.push_back(name);
        }
        None
    }

    /// The item of `flow` served with [`FairQueue::pop`] is done and took `cost`: the flow
    /// is charged it.
    pub(crate) fn done(&mut self, flow: &str, cost: Duration) {
        let Some(f) = self.flows.get_mut(flow) else {
            return;
        };
        f.running = f.running.saturating_sub(1);
        f.credit -= cost.min(MAX_CHARGE).as_micros() as i64;
        if f.running == 0 && f.waiting.is_empty() && !f.in_ring {
            self.flows.remove(flow);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug)]
    struct Item(&'static str, u32, Arc<AtomicBool>);

    impl Waiting for Item {
        fn abandoned(&self) -> bool {
            self.2.load(Ordering::Relaxed)
        }
    }

    fn item(flow: &'static str, n: u32) -> Item {
        Item(flow, n, Arc::new(AtomicBool::new(false)))
    }

    fn bounds(per_flow: usize, total: usize, running_per_flow: usize) -> Bounds {
        Bounds {
            per_flow,
            total,
            running_per_flow,
        }
    }

    /// Serves one at a time, each taking `cost(flow)`; the order served.
    fn serve_all(
        q: &mut FairQueue<Item>,
        cost: impl Fn(&str) -> Duration,
    ) -> Vec<(&'static str, u32)> {
        let mut order = Vec::new();
        while let Some((flow, it)) = q.pop() {
            order.push((it.0, it.1));
            q.done(&flow, cost(&flow));
        }
        order
    }

    #[test]
    fn flows_of_equal_cost_take_turns_whatever_the_order_they_came_in() {
        let mut q = FairQueue::new(bounds(16, 64, 1));
        for n in 0..6 {
            q.push("flood", item("flood", n)).unwrap();
        }
        q.push("calm", item("calm", 0)).unwrap();
        q.push("calm", item("calm", 1)).unwrap();
        let order = serve_all(&mut q, |_| Duration::from_micros(500));
        // the calm flow, last to come, is second served, and again two turns later
        assert_eq!(
            order,
            vec![
                ("flood", 0),
                ("calm", 0),
                ("flood", 1),
                ("calm", 1),
                ("flood", 2),
                ("flood", 3),
                ("flood", 4),
                ("flood", 5)
            ]
        );
        assert_eq!((q.waiting(), q.flows()), (0, 0));
    }

    #[test]
    fn a_costly_flow_gets_equal_time_not_equal_turns() {
        let mut q = FairQueue::new(bounds(64, 256, 1));
        for n in 0..10 {
            q.push("costly", item("costly", n)).unwrap();
            q.push("cheap", item("cheap", n)).unwrap();
        }
        // a costly review takes 5 ms, a cheap one 1 ms: after each costly one, the cheap
        // flow is served about five times before the costly flow's next turn
        let order = serve_all(&mut q, |f| {
            Duration::from_millis(if f == "costly" { 5 } else { 1 })
        });
        let first_two_costly: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, (f, _))| *f == "costly")
            .map(|(i, _)| i)
            .take(2)
            .collect();
        let cheap_between = order[first_two_costly[0]..first_two_costly[1]]
            .iter()
            .filter(|(f, _)| *f == "cheap")
            .count();
        assert!(
            (4..=6).contains(&cheap_between),
            "{cheap_between} cheap between two costly: {order:?}"
        );
        // each flow's own order is kept, and all of it is served
        for flow in ["costly", "cheap"] {
            let own: Vec<u32> = order
                .iter()
                .filter(|(f, _)| *f == flow)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(own, (0..10).collect::<Vec<_>>(), "{flow}");
        }
    }

    #[test]
    fn a_flow_over_its_bound_is_refused_at_once_and_others_still_get_in() {
        let mut q = FairQueue::new(bounds(3, 5, 1));
        for n in 0..3 {
            q.push("flood", item("flood", n)).unwrap();
        }
        let (why, back) = q.push("flood", item("flood", 3)).unwrap_err();
        assert_eq!((why, back.1), (Full::Flow, 3));
        q.push("calm", item("calm", 0)).unwrap();
        q.push("other", item("other", 0)).unwrap();
        // the total is reached: now anyone is refused
        let (why, _) = q.push("calm", item("calm", 1)).unwrap_err();
        assert_eq!(why, Full::All);
        assert_eq!(q.waiting(), 5);
        // a place freed by serving is taken again
        let (flow, _) = q.pop().unwrap();
        assert_eq!(&*flow, "flood");
        q.push("calm", item("calm", 1)).unwrap();
    }

    #[test]
    fn abandoned_items_hold_no_place_and_are_never_served() {
        let mut q = FairQueue::new(bounds(2, 8, 1));
        let a = item("flood", 0);
        let gone = a.2.clone();
        q.push("flood", a).unwrap();
        q.push("flood", item("flood", 1)).unwrap();
        gone.store(true, Ordering::Relaxed);
        // full, but one of the two was given up: the new one takes its place
        q.push("flood", item("flood", 2)).unwrap();
        assert_eq!(q.waiting(), 2);
        let order = serve_all(&mut q, |_| Duration::from_millis(1));
        assert_eq!(order, vec![("flood", 1), ("flood", 2)]);
    }

    #[test]
    fn a_flow_holds_at_most_its_share_of_the_threads() {
        let mut q = FairQueue::new(bounds(16, 64, 1));
        for n in 0..4 {
            q.push("flood", item("flood", n)).unwrap();
        }
        let (f, _) = q.pop().unwrap();
        assert_eq!(&*f, "flood");
        // its one in service: nothing more of it now, however much waits
        assert!(q.pop().is_none());
        q.push("calm", item("calm", 0)).unwrap();
        let (c, it) = q.pop().unwrap();
        assert_eq!((&*c, it.1), ("calm", 0));
        q.done(&c, Duration::from_micros(300));
        q.done(&f, Duration::from_millis(20));
        assert_eq!(&*q.pop().unwrap().0, "flood");
    }

    #[test]
    fn a_debt_of_many_rounds_is_paid_without_looping_round_by_round() {
        let mut q = FairQueue::new(bounds(16, 64, 1));
        q.push("slow", item("slow", 0)).unwrap();
        q.push("slow", item("slow", 1)).unwrap();
        let (f, _) = q.pop().unwrap();
        // far more than the cap of one review's charge
        q.done(&f, Duration::from_secs(3600));
        // alone, it is served again at once (the rounds it owes are given in one step)
        let (f, it) = q.pop().unwrap();
        assert_eq!((&*f, it.1), ("slow", 1));
    }

    #[test]
    fn long_and_multibyte_flow_names_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        assert!(flow_name(&long).len() <= MAX_FLOW);
        assert!(long.starts_with(flow_name(&long)));
        let mut q = FairQueue::new(bounds(1, 8, 1));
        q.push(&long, item("long", 0)).unwrap();
        // the same flow however long the name sent
        assert!(q.push(&format!("{long}x"), item("long", 1)).is_err());
    }
}
