//! What a reply lane does when the database refuses replies, kept apart from the lane that
//! obeys it: the decision (`next_step`), each reply's requeue count (`Requeues`, so nothing is
//! requeued forever), and the tasks held back behind a requeued reply (`Holds`, so a later reply
//! of a task never overtakes an earlier one that was handed back to the broker).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::store::fault::Fault;

/// Attempts of one group of replies in place (the first and the retries) before a transient
/// failure hands them on: split into single replies, or requeued.
pub const ATTEMPTS_IN_PLACE: u32 = 3;

/// Times one reply is requeued for a transient failure; failing once more, it is parked in the
/// dead-letter queue with the last error (`dlq replay` brings it back once the cause is fixed).
pub const MAX_REQUEUES: u32 = 5;

/// Longest that later replies of a task wait behind a requeued one of the same task. The
/// broker puts a requeued message back at its place in the queue, so it normally comes back at
/// once.
pub const HOLD_FOR: Duration = Duration::from_secs(5);

/// Most replies whose requeues a lane remembers (the oldest are forgotten first).
const REMEMBERED: usize = 10_000;

/// What to do next with a group of replies the database refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try the same group again here after this pause.
    RetryAfter(Duration),
    /// Apply the group's replies one by one, in order, each starting at this attempt number,
    /// so that one bad reply does not hold back the others.
    Split { start_at: u32 },
    /// Hand the reply back to the broker, for later.
    Requeue,
    /// Move the reply to the dead-letter queue with the error as the reason.
    Park,
}

/// The step after attempt number `attempt` (from 1) of a group of `replies` failed with
/// `fault`; `requeues` is how often a single reply has already been requeued.
pub fn next_step(fault: Fault, replies: usize, attempt: u32, requeues: u32) -> Step {
    match fault {
        Fault::Transient if attempt < ATTEMPTS_IN_PLACE => {
            Step::RetryAfter(Duration::from_millis(100 << attempt.min(8)))
        }
        // The group had its retries: each reply gets one more try alone.
        Fault::Transient if replies > 1 => Step::Split {
            start_at: ATTEMPTS_IN_PLACE,
        },
        Fault::Transient if requeues < MAX_REQUEUES => Step::Requeue,
        Fault::Transient => Step::Park,
        // One of them is bad: find which, and let the others through.
        Fault::Permanent if replies > 1 => Step::Split { start_at: 1 },
        Fault::Permanent => Step::Park,
    }
}

/// Names one message by its body, to count its requeues and recognise it when it comes back.
pub fn fingerprint(body: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

/// How often each reply has been requeued by this lane. Kept in memory: a bridge that
/// restarts starts counting again, which only lengthens the bound.
#[derive(Debug, Default)]
pub struct Requeues {
    counts: HashMap<u64, u32>,
    order: VecDeque<u64>,
}

impl Requeues {
    /// How often the reply was requeued.
    pub fn of(&self, reply: u64) -> u32 {
        self.counts.get(&reply).copied().unwrap_or(0)
    }

    /// Counts one more requeue of the reply.
    pub fn record(&mut self, reply: u64) {
        let count = self.counts.entry(reply).or_insert(0);
        if *count == 0 {
            self.order.push_back(reply);
        }
        *count += 1;
        while self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.counts.remove(&oldest);
            }
        }
    }

    /// Forgets a reply that was applied or parked.
    pub fn forget(&mut self, reply: u64) {
        if self.counts.remove(&reply).is_some() {
            self.order.retain(|r| *r != reply);
        }
    }
}

/// Tasks with a requeued reply outstanding: their later replies are requeued behind it until
/// it comes back.
///
/// The broker puts requeued messages back at their places, so with one bridge the held reply
/// comes back before any reply requeued behind it. If one of those comes back first, the held
/// reply was taken by another bridge: the hold ends then (or after `HOLD_FOR`), as order across
/// bridges is not promised anyway.
#[derive(Debug, Default)]
pub struct Holds {
    held: HashMap<String, Hold>,
}

#[derive(Debug)]
struct Hold {
    reply: u64,
    since: Instant,
    behind: Vec<u64>,
}

impl Holds {
    /// Holds `task` behind its requeued `reply`; an existing hold (an earlier reply) stays.
    pub fn hold(&mut self, task: &str, reply: u64, now: Instant) {
        self.held
            .retain(|_, hold| now.duration_since(hold.since) < HOLD_FOR);
        self.held.entry(task.to_string()).or_insert(Hold {
            reply,
            since: now,
            behind: Vec::new(),
        });
    }

    /// Whether `reply` of `task` may be applied now; if not, it is to be requeued and is
    /// remembered as waiting behind the held reply.
    pub fn admit(&mut self, task: &str, reply: u64, now: Instant) -> bool {
        let Some(hold) = self.held.get_mut(task) else {
            return true;
        };
        let back = hold.reply == reply || hold.behind.contains(&reply);
        if back || now.duration_since(hold.since) >= HOLD_FOR {
            self.held.remove(task);
            return true;
        }
        hold.behind.push(reply);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retried_in_place_with_a_growing_pause() {
        assert_eq!(
            next_step(Fault::Transient, 5, 1, 0),
            Step::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(
            next_step(Fault::Transient, 1, 2, 0),
            Step::RetryAfter(Duration::from_millis(400))
        );
    }

    #[test]
    fn a_group_that_keeps_failing_is_split_then_each_reply_requeued() {
        let last = ATTEMPTS_IN_PLACE;
        assert_eq!(
            next_step(Fault::Transient, 5, last, 0),
            Step::Split { start_at: last }
        );
        // Alone, on the attempt it starts at after such a split: no retry in place.
        assert_eq!(next_step(Fault::Transient, 1, last, 0), Step::Requeue);
        assert_eq!(
            next_step(Fault::Transient, 1, last, MAX_REQUEUES - 1),
            Step::Requeue
        );
    }

    #[test]
    fn a_reply_requeued_too_often_is_parked() {
        assert_eq!(
            next_step(Fault::Transient, 1, ATTEMPTS_IN_PLACE, MAX_REQUEUES),
            Step::Park
        );
    }

    #[test]
    fn permanent_failures_are_never_retried_nor_requeued() {
        assert_eq!(
            next_step(Fault::Permanent, 7, 1, 0),
            Step::Split { start_at: 1 }
        );
        for attempt in 1..=ATTEMPTS_IN_PLACE {
            assert_eq!(next_step(Fault::Permanent, 1, attempt, 0), Step::Park);
        }
    }

    #[test]
    fn every_path_ends() {
        // Following the steps for a reply that always fails transiently ends in Park after a
        // bounded number of attempts.
        let mut requeues = 0;
        let mut attempts = 0;
        loop {
            let mut attempt = 1;
            let step = loop {
                attempts += 1;
                match next_step(Fault::Transient, 1, attempt, requeues) {
                    Step::RetryAfter(_) => attempt += 1,
                    other => break other,
                }
            };
            match step {
                Step::Requeue => requeues += 1,
                Step::Park => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(attempts, ATTEMPTS_IN_PLACE * (MAX_REQUEUES + 1));
    }

    #[test]
    fn requeues_are_counted_per_reply_and_forgotten() {
        let mut requeues = Requeues::default();
        let (a, b) = (fingerprint(b"a"), fingerprint(b"b"));
        assert_ne!(a, b);
        requeues.record(a);
        requeues.record(a);
        requeues.record(b);
        assert_eq!((requeues.of(a), requeues.of(b)), (2, 1));
        requeues.forget(a);
        assert_eq!((requeues.of(a), requeues.of(b)), (0, 1));
    }

    #[test]
    fn requeue_memory_is_bounded() {
        let mut requeues = Requeues::default();
        for n in 0..(REMEMBERED as u64 + 10) {
            requeues.record(n);
        }
        assert_eq!(requeues.counts.len(), REMEMBERED);
        assert_eq!(requeues.of(0), 0, "the oldest is forgotten first");
        assert_eq!(requeues.of(REMEMBERED as u64 + 9), 1);
    }

    #[test]
    fn later_replies_wait_behind_a_requeued_one_until_it_comes_back() {
        let mut holds = Holds::default();
        let now = Instant::now();
        holds.hold("t", 1, now);
        holds.hold("t", 2, now); // a later requeue keeps the earliest hold
        assert!(!holds.admit("t", 2, now));
        assert!(!holds.admit("t", 3, now));
        assert!(holds.admit("other", 3, now), "other tasks go on");
        assert!(holds.admit("t", 1, now), "the requeued reply itself");
        assert!(holds.admit("t", 4, now), "released once it came back");
    }

    #[test]
    fn a_reply_that_waited_and_comes_back_first_ends_the_hold() {
        // The held reply went to another bridge: the one requeued behind it is back first.
        let mut holds = Holds::default();
        let now = Instant::now();
        holds.hold("t", 1, now);
        assert!(!holds.admit("t", 2, now));
        assert!(holds.admit("t", 2, now));
        assert!(holds.admit("t", 3, now), "released");
    }

    #[test]
    fn a_hold_expires() {
        let mut holds = Holds::default();
        let now = Instant::now();
        holds.hold("t", 1, now);
        assert!(!holds.admit("t", 2, now + HOLD_FOR / 2));
        assert!(holds.admit("t", 3, now + HOLD_FOR));
        assert!(holds.admit("t", 4, now + HOLD_FOR), "released");
    }
}
