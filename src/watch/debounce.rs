//! The debounce core: a pure state machine that turns timestamped changes into
//! batches. It never reads the clock; callers hand it the time, so tests drive
//! it by hand and the watcher thread drives it with `Instant::now()`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The debounce used when none is given (`--debounce-ms`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);

/// Below this the debounce is likely to split one save into several runs.
pub const MIN_SENSIBLE_DEBOUNCE_MS: u64 = 50;
/// Above this a save feels unanswered.
pub const MAX_SENSIBLE_DEBOUNCE_MS: u64 = 2000;

/// The cap used when none is given: four debounce windows. A constant stream of
/// events releases a batch at the latest this long after its first event.
pub fn default_max_wait(debounce: Duration) -> Duration {
    debounce.saturating_mul(4)
}

/// A warning for a `--debounce-ms` outside 50..=2000, worded for the user.
pub fn debounce_warning(ms: u64) -> Option<String> {
    if ms < MIN_SENSIBLE_DEBOUNCE_MS {
        Some(format!(
            "--debounce-ms {ms} is below {MIN_SENSIBLE_DEBOUNCE_MS}: one save may \
             arrive as several events and start several runs"
        ))
    } else if ms > MAX_SENSIBLE_DEBOUNCE_MS {
        Some(format!(
            "--debounce-ms {ms} is above {MAX_SENSIBLE_DEBOUNCE_MS}: every save \
             waits at least that long before its tests run"
        ))
    } else {
        None
    }
}

/// The changes one run answers: every relevant path that changed between the
/// batch's first event and its release, with the times the dev timing panel
/// reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Changed paths, relative to the project root, `/`-separated. A path may
    /// name a file that no longer exists (deleted or renamed away) or a folder
    /// (created, moved in or out); the consumer checks the file system.
    pub paths: BTreeSet<String>,
    /// The watcher lost events (kernel queue overflow): the consumer should
    /// rediscover and re-run as if everything changed.
    pub rescan: bool,
    /// When the first event of the batch reached clnrm (notify's callback).
    /// The timing panel's total runs from here.
    pub first_event_at: Instant,
    /// When the last event of the batch reached clnrm.
    pub last_event_at: Instant,
    /// When the debouncer took in the first event (after the channel hop and
    /// the ignore rules).
    pub detected_at: Instant,
    /// When the batch was released to the consumer.
    pub released_at: Instant,
    /// Estimated time from the first change on disk (the file's modification
    /// time) to `first_event_at`; zero when it cannot be measured (a deleted
    /// file, a clock step).
    pub detect: Duration,
    /// How many relevant raw events the batch gathered (before deduplication).
    pub events: usize,
}

impl ChangeBatch {
    /// Time spent waiting for the file system to settle: first event to release.
    pub fn debounce_time(&self) -> Duration {
        self.released_at
            .saturating_duration_since(self.first_event_at)
    }
}

/// One relevant change as it reaches the debouncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// When notify handed the event to clnrm.
    pub event_at: Instant,
    /// When the debouncer took it in.
    pub detected_at: Instant,
    /// Estimated delay from the change on disk to `event_at` (zero if unknown).
    pub detect: Duration,
}

impl Arrival {
    /// An arrival whose event, reception and detection happen at one instant.
    pub fn at(now: Instant) -> Self {
        Arrival {
            event_at: now,
            detected_at: now,
            detect: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
struct Pending {
    paths: BTreeSet<String>,
    rescan: bool,
    first_event_at: Instant,
    last_event_at: Instant,
    detected_at: Instant,
    detect: Duration,
    events: usize,
}

/// Trailing-edge debounce with a cap.
///
/// A batch opens with its first change and is released once `debounce` has
/// passed without a new change, or once `max_wait` has passed since its first
/// change, whichever comes first.
#[derive(Debug)]
pub struct Debouncer {
    debounce: Duration,
    max_wait: Duration,
    pending: Option<Pending>,
}

impl Debouncer {
    /// A debouncer; `max_wait` is raised to at least `debounce`.
    pub fn new(debounce: Duration, max_wait: Duration) -> Self {
        Debouncer {
            debounce,
            max_wait: max_wait.max(debounce),
            pending: None,
        }
    }

    /// The quiet period that releases a batch.
    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// The longest a batch waits after its first change.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Records a change of `path` that happened at `now`.
    pub fn push(&mut self, path: impl Into<String>, now: Instant) {
        self.push_arrival(path, Arrival::at(now));
    }

    /// Records a change of `path` with its full timing.
    pub fn push_arrival(&mut self, path: impl Into<String>, arrival: Arrival) {
        self.pending_for(arrival).paths.insert(path.into());
    }

    /// Records that events were lost: the batch is marked `rescan`.
    pub fn push_rescan(&mut self, arrival: Arrival) {
        self.pending_for(arrival).rescan = true;
    }

    fn pending_for(&mut self, arrival: Arrival) -> &mut Pending {
        let pending = self.pending.get_or_insert_with(|| Pending {
            paths: BTreeSet::new(),
            rescan: false,
            first_event_at: arrival.event_at,
            last_event_at: arrival.event_at,
            detected_at: arrival.detected_at,
            detect: arrival.detect,
            events: 0,
        });
        if arrival.event_at < pending.first_event_at {
            pending.first_event_at = arrival.event_at;
            pending.detect = arrival.detect;
        }
        pending.last_event_at = pending.last_event_at.max(arrival.event_at);
        pending.detected_at = pending.detected_at.min(arrival.detected_at);
        pending.events += 1;
        pending
    }

    /// Whether a batch is open.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When the open batch is due, if one is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| {
            let quiet = p.last_event_at + self.debounce;
            let cap = p.first_event_at + self.max_wait;
            quiet.min(cap)
        })
    }

    /// Releases the open batch if it is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<ChangeBatch> {
        let due = self.next_deadline()?;
        if now < due {
            return None;
        }
        let p = self.pending.take()?;
        Some(ChangeBatch {
            paths: p.paths,
            rescan: p.rescan,
            first_event_at: p.first_event_at,
            last_event_at: p.last_event_at,
            detected_at: p.detected_at,
            released_at: now,
            detect: p.detect,
            events: p.events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn names(batch: &ChangeBatch) -> Vec<&str> {
        batch.paths.iter().map(String::as_str).collect()
    }

    #[test]
    fn nothing_pending_means_no_deadline_and_no_batch() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(300 * MS, 1200 * MS);
        assert_eq!(d.next_deadline(), None);
        assert!(d.poll(t0 + 10_000 * MS).is_none());
    }

    #[test]
    fn a_single_change_is_released_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(300 * MS, 1200 * MS);
        d.push("a.clnrm.toml", t0);
        assert_eq!(d.next_deadline(), Some(t0 + 300 * MS));
        assert!(d.poll(t0 + 299 * MS).is_none());
        let batch = d.poll(t0 + 300 * MS).expect("due at the deadline");
        assert_eq!(names(&batch), ["a.clnrm.toml"]);
        assert_eq!(batch.first_event_at, t0);
        assert_eq!(batch.released_at, t0 + 300 * MS);
        assert_eq!(batch.debounce_time(), 300 * MS);
        assert_eq!(batch.events, 1);
        assert!(!d.is_pending());
        assert!(d.poll(t0 + 5000 * MS).is_none(), "released only once");
    }

    #[test]
    fn each_change_pushes_the_trailing_edge_back() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(300 * MS, 1200 * MS);
        for i in 0..10 {
            d.push("a.clnrm.toml", t0 + i * 20 * MS);
        }
        d.push("b.clnrm.toml", t0 + 200 * MS);
        assert_eq!(d.next_deadline(), Some(t0 + 500 * MS));
        assert!(d.poll(t0 + 499 * MS).is_none());
        let batch = d.poll(t0 + 500 * MS).unwrap();
        assert_eq!(names(&batch), ["a.clnrm.toml", "b.clnrm.toml"]);
        assert_eq!(batch.events, 11);
        assert_eq!(batch.first_event_at, t0);
        assert_eq!(batch.last_event_at, t0 + 200 * MS);
    }

    #[test]
    fn a_constant_stream_is_released_by_the_cap() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(300 * MS, 1200 * MS);
        let mut released = Vec::new();
        // An event every 50 ms for 3 s, polling in between.
        for i in 0..60u32 {
            let now = t0 + i * 50 * MS;
            if let Some(b) = d.poll(now) {
                released.push(b);
            }
            d.push(format!("f{i}"), now);
        }
        assert_eq!(released.len(), 2, "{released:?}");
        assert_eq!(released[0].released_at, t0 + 1200 * MS);
        assert_eq!(released[0].paths.len(), 24, "events at 0..1150 ms");
        assert_eq!(released[1].first_event_at, t0 + 1200 * MS);
        assert_eq!(released[1].released_at, t0 + 2400 * MS);
    }

    #[test]
    fn the_next_batch_starts_fresh_after_a_release() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(100 * MS, 400 * MS);
        d.push("a", t0);
        assert!(d.poll(t0 + 100 * MS).is_some());
        d.push("b", t0 + 150 * MS);
        let b = d.poll(t0 + 250 * MS).unwrap();
        assert_eq!(names(&b), ["b"]);
        assert_eq!(b.first_event_at, t0 + 150 * MS);
        assert!(!b.rescan);
    }

    #[test]
    fn timing_keeps_the_first_event_and_its_detect_delay() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(100 * MS, 400 * MS);
        d.push_arrival(
            "a",
            Arrival {
                event_at: t0 + 10 * MS,
                detected_at: t0 + 12 * MS,
                detect: 3 * MS,
            },
        );
        // A late-delivered event that happened earlier becomes the first.
        d.push_arrival(
            "b",
            Arrival {
                event_at: t0 + 5 * MS,
                detected_at: t0 + 13 * MS,
                detect: 2 * MS,
            },
        );
        let b = d.poll(t0 + 200 * MS).unwrap();
        assert_eq!(b.first_event_at, t0 + 5 * MS);
        assert_eq!(b.last_event_at, t0 + 10 * MS);
        assert_eq!(b.detected_at, t0 + 12 * MS);
        assert_eq!(b.detect, 2 * MS);
    }

    #[test]
    fn a_rescan_opens_a_batch_without_paths() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(100 * MS, 400 * MS);
        d.push_rescan(Arrival::at(t0));
        let b = d.poll(t0 + 100 * MS).unwrap();
        assert!(b.rescan);
        assert!(b.paths.is_empty());
    }

    #[test]
    fn max_wait_is_never_shorter_than_the_debounce() {
        let d = Debouncer::new(300 * MS, 10 * MS);
        assert_eq!(d.max_wait(), 300 * MS);
        assert_eq!(default_max_wait(300 * MS), 1200 * MS);
    }

    #[test]
    fn debounce_warnings_outside_50_to_2000() {
        assert!(debounce_warning(49).unwrap().contains("below 50"));
        assert!(debounce_warning(50).is_none());
        assert!(debounce_warning(300).is_none());
        assert!(debounce_warning(2000).is_none());
        assert!(debounce_warning(2001).unwrap().contains("above 2000"));
        assert!(debounce_warning(0).is_some());
    }
}
