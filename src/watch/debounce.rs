//! The trigger core: a pure state machine that turns timestamped changes into
//! batches (docs/reference.md §7 "Trigger"). It never reads the clock; callers hand it the
//! time, so tests drive it by hand and the watcher thread drives it with
//! `Instant::now()`.
//!
//! A batch holding one file whose last event was a completion (closed after
//! writing, or renamed into place) is released after the short settle window;
//! anything else (a plain modify, a delete, several files as in `git checkout`)
//! waits for the trailing debounce, and every batch for at most the cap.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The debounce used when none is given (`--debounce-ms`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);

/// The settle window used when none is given (`--settle-ms`): long enough to take
/// in the events one save makes after its close or rename (a rename's pair, a
/// formatter's immediate rewrite), short next to a step.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(20);

/// What an event says about its path: whether the change it belongs to is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The file changed with no sign that the writer is done (created, written,
    /// truncated, deleted, moved away without a pair).
    Changed,
    /// The writer is done: the file was closed after writing, or renamed into place.
    Completed,
    /// The file was renamed to another watched name (a temp file moved into place,
    /// a file renamed): it stands for nothing still being written.
    RenamedAway,
}

/// Why a batch was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// One completed file, after the settle window.
    Settle,
    /// The trailing debounce: no completion signal, or many files.
    Debounce,
    /// The cap: events kept coming.
    Cap,
}

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
    /// What released the batch.
    pub trigger: Trigger,
}

impl ChangeBatch {
    /// Time spent waiting for the file system to settle: first event to release.
    pub fn debounce_time(&self) -> Duration {
        self.released_at
            .saturating_duration_since(self.first_event_at)
    }

    /// Takes in a batch released after this one: one run answers both. The
    /// first event (and so the run's clock) stays this batch's.
    pub fn merge(&mut self, later: ChangeBatch) {
        self.paths.extend(later.paths);
        self.rescan |= later.rescan;
        self.last_event_at = self.last_event_at.max(later.last_event_at);
        self.released_at = self.released_at.max(later.released_at);
        self.events += later.events;
        self.trigger = later.trigger;
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
    /// The last signal of each path.
    signals: BTreeMap<String, Signal>,
    rescan: bool,
    first_event_at: Instant,
    last_event_at: Instant,
    detected_at: Instant,
    detect: Duration,
    events: usize,
}

impl Pending {
    /// The one file this batch is about, when it is one completed save: exactly
    /// one path still stands for a change, and its writer is done.
    fn is_one_completed_save(&self) -> bool {
        if self.rescan {
            return false;
        }
        let mut live = self
            .signals
            .values()
            .filter(|signal| **signal != Signal::RenamedAway);
        matches!((live.next(), live.next()), (Some(Signal::Completed), None))
    }
}

/// Completion-triggered release with a trailing-edge debounce and a cap.
///
/// A batch opens with its first change. It is released once `settle` has passed
/// without a new event if it is one completed save; otherwise once `debounce`
/// has passed without a new change; and in any case once `max_wait` has passed
/// since its first change.
#[derive(Debug)]
pub struct Debouncer {
    debounce: Duration,
    /// `None`: completion signals are not trusted, every batch waits the debounce.
    settle: Option<Duration>,
    max_wait: Duration,
    pending: Option<Pending>,
}

impl Debouncer {
    /// A debounce-only debouncer; `max_wait` is raised to at least `debounce`.
    pub fn new(debounce: Duration, max_wait: Duration) -> Self {
        Debouncer {
            debounce,
            settle: None,
            max_wait: max_wait.max(debounce),
            pending: None,
        }
    }

    /// Also releases one completed save after `settle` (never later than the debounce).
    pub fn with_settle(mut self, settle: Option<Duration>) -> Self {
        self.settle = settle.map(|settle| settle.min(self.debounce));
        self
    }

    /// The settle window, if completions trigger runs.
    pub fn settle(&self) -> Option<Duration> {
        self.settle
    }

    /// The quiet period that releases a batch.
    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// The longest a batch waits after its first change.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Records a change of `path` that happened at `now`, with no completion signal.
    pub fn push(&mut self, path: impl Into<String>, now: Instant) {
        self.push_arrival(path, Arrival::at(now));
    }

    /// Records an event of `path` at `now` and what it says about the change.
    pub fn push_signal(&mut self, path: impl Into<String>, signal: Signal, now: Instant) {
        self.push_signal_arrival(path, signal, Arrival::at(now));
    }

    /// Records a change of `path` (no completion signal) with its full timing.
    pub fn push_arrival(&mut self, path: impl Into<String>, arrival: Arrival) {
        self.push_signal_arrival(path, Signal::Changed, arrival);
    }

    /// Records an event of `path` with its full timing and what it says.
    pub fn push_signal_arrival(
        &mut self,
        path: impl Into<String>,
        signal: Signal,
        arrival: Arrival,
    ) {
        let path = path.into();
        let pending = self.pending_for(arrival);
        pending.signals.insert(path.clone(), signal);
        pending.paths.insert(path);
    }

    /// The paths of the open batch (empty when none is open).
    pub fn pending_paths(&self) -> impl Iterator<Item = &str> {
        self.pending
            .iter()
            .flat_map(|p| p.paths.iter().map(String::as_str))
    }

    /// Records that events were lost: the batch is marked `rescan`.
    pub fn push_rescan(&mut self, arrival: Arrival) {
        self.pending_for(arrival).rescan = true;
    }

    fn pending_for(&mut self, arrival: Arrival) -> &mut Pending {
        let pending = self.pending.get_or_insert_with(|| Pending {
            paths: BTreeSet::new(),
            signals: BTreeMap::new(),
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
        self.due().map(|(at, _)| at)
    }

    /// When the open batch is due and what will release it.
    fn due(&self) -> Option<(Instant, Trigger)> {
        let p = self.pending.as_ref()?;
        let cap = p.first_event_at + self.max_wait;
        let (quiet, trigger) = match self.settle {
            Some(settle) if p.is_one_completed_save() => {
                (p.last_event_at + settle, Trigger::Settle)
            }
            _ => (p.last_event_at + self.debounce, Trigger::Debounce),
        };
        Some(if cap < quiet {
            (cap, Trigger::Cap)
        } else {
            (quiet, trigger)
        })
    }

    /// Releases the open batch if it is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<ChangeBatch> {
        let (due, trigger) = self.due()?;
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
            trigger,
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

    /// An event that happened at `event_at`, reached the debouncer at `detected_at`
    /// and took `detect` to be noticed.
    fn arrival(event_at: Instant, detected_at: Instant, detect: Duration) -> Arrival {
        Arrival {
            event_at,
            detected_at,
            detect,
        }
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
        assert_eq!(released[0].trigger, Trigger::Cap);
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
        d.push_arrival("a", arrival(t0 + 10 * MS, t0 + 12 * MS, 3 * MS));
        // A late-delivered event that happened earlier becomes the first.
        d.push_arrival("b", arrival(t0 + 5 * MS, t0 + 13 * MS, 2 * MS));
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

    fn settling(debounce_ms: u32) -> Debouncer {
        Debouncer::new(debounce_ms * MS, 4 * debounce_ms * MS).with_settle(Some(20 * MS))
    }

    #[test]
    fn a_file_closed_after_writing_is_released_after_the_settle_window() {
        let t0 = Instant::now();
        let mut d = settling(300);
        d.push_signal("a.clnrm.toml", Signal::Changed, t0);
        assert_eq!(
            d.next_deadline(),
            Some(t0 + 300 * MS),
            "still being written"
        );
        d.push_signal("a.clnrm.toml", Signal::Completed, t0 + 2 * MS);
        assert_eq!(d.next_deadline(), Some(t0 + 22 * MS));
        assert!(d.poll(t0 + 21 * MS).is_none());
        let batch = d.poll(t0 + 22 * MS).expect("settled");
        assert_eq!(names(&batch), ["a.clnrm.toml"]);
        assert_eq!(batch.trigger, Trigger::Settle);
        assert_eq!(batch.debounce_time(), 22 * MS);
    }

    #[test]
    fn a_temp_file_renamed_into_place_is_one_completed_save() {
        let t0 = Instant::now();
        let mut d = settling(300);
        d.push_signal(".a.clnrm.toml.x1", Signal::Changed, t0);
        d.push_signal(".a.clnrm.toml.x1", Signal::Completed, t0 + MS);
        d.push_signal(".a.clnrm.toml.x1", Signal::Changed, t0 + 2 * MS);
        d.push_signal("a.clnrm.toml", Signal::Completed, t0 + 2 * MS);
        // The rename's pair arrives: the temp name stands for nothing being written.
        d.push_signal(".a.clnrm.toml.x1", Signal::RenamedAway, t0 + 2 * MS);
        let batch = d.poll(t0 + 22 * MS).expect("settled");
        assert_eq!(batch.trigger, Trigger::Settle);
        assert!(batch.paths.contains("a.clnrm.toml"));
    }

    #[test]
    fn a_rewrite_within_the_settle_window_joins_the_save() {
        let t0 = Instant::now();
        let mut d = settling(300);
        d.push_signal("a.clnrm.toml", Signal::Completed, t0);
        // A formatter opens the file again: not done until it closes it.
        d.push_signal("a.clnrm.toml", Signal::Changed, t0 + 10 * MS);
        assert!(d.poll(t0 + 25 * MS).is_none());
        d.push_signal("a.clnrm.toml", Signal::Completed, t0 + 30 * MS);
        let batch = d.poll(t0 + 50 * MS).expect("settled after the rewrite");
        assert_eq!(batch.events, 3);
        assert_eq!(batch.trigger, Trigger::Settle);
    }

    #[test]
    fn many_completed_files_wait_for_the_debounce() {
        let t0 = Instant::now();
        let mut d = settling(300);
        for i in 0..50u32 {
            d.push_signal(format!("t{i}.clnrm.toml"), Signal::Completed, t0 + i * MS);
        }
        assert!(
            d.poll(t0 + 100 * MS).is_none(),
            "a checkout is not one save"
        );
        let batch = d.poll(t0 + 349 * MS).expect("debounced");
        assert_eq!(batch.paths.len(), 50);
        assert_eq!(batch.trigger, Trigger::Debounce);
    }

    #[test]
    fn a_delete_has_no_completion_signal_and_waits_for_the_debounce() {
        let t0 = Instant::now();
        let mut d = settling(300);
        d.push_signal("a.clnrm.toml", Signal::Changed, t0);
        assert!(d.poll(t0 + 299 * MS).is_none());
        assert_eq!(d.poll(t0 + 300 * MS).unwrap().trigger, Trigger::Debounce);
    }

    #[test]
    fn without_a_settle_window_completions_wait_for_the_debounce() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(300 * MS, 1200 * MS).with_settle(None);
        d.push_signal("a.clnrm.toml", Signal::Completed, t0);
        assert_eq!(d.next_deadline(), Some(t0 + 300 * MS));
    }

    #[test]
    fn merged_batches_keep_the_first_clock_and_every_path() {
        let t0 = Instant::now();
        let mut d = settling(300);
        d.push_signal("a", Signal::Completed, t0);
        let mut first = d.poll(t0 + 20 * MS).unwrap();
        d.push_signal("b", Signal::Completed, t0 + 40 * MS);
        let second = d.poll(t0 + 60 * MS).unwrap();
        first.merge(second);
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.first_event_at, t0);
        assert_eq!(first.released_at, t0 + 60 * MS);
        assert_eq!(first.events, 2);
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
