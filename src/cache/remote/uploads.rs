//! Background uploads: a bounded pool of threads that `PUT` what the local tier just
//! stored, so a run never waits on the network while its tests run. The queue is
//! bounded too (a producer far ahead of the network waits rather than holding every
//! value in memory). [`Uploads::finish`] waits for what is queued, up to a deadline,
//! before the command exits. Not the decision of what to upload: that is the memo's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::Shared;

/// Threads that upload at once.
const UPLOAD_THREADS: usize = 4;
/// Values waiting for an upload thread before a producer waits.
const QUEUE_LEN: usize = 1024;

struct Job {
    hex: String,
    body: Vec<u8>,
}

/// How many uploads are queued or in flight.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    changed: Condvar,
}

impl InFlight {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn done(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count = count.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Waits until nothing is in flight or `deadline` passes; returns what is left.
    fn wait_until_idle(&self, deadline: Instant) -> usize {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            count = self
                .changed
                .wait_timeout(count, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *count
    }
}

/// The upload pool; its threads start with the first upload.
pub(crate) struct Uploads {
    shared: Arc<Shared>,
    sender: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    in_flight: Arc<InFlight>,
    finished: AtomicBool,
}

impl Uploads {
    pub(crate) fn new(shared: Arc<Shared>) -> Uploads {
        Uploads {
            shared,
            sender: Mutex::new(None),
            workers: Mutex::new(Vec::new()),
            in_flight: Arc::default(),
            finished: AtomicBool::new(false),
        }
    }

    /// Queues `body` for `PUT <base>/ac/<hex>`. Does nothing once the remote's
    /// circuit breaker is open or after [`Uploads::finish`].
    pub(crate) fn enqueue(&self, hex: String, body: Vec<u8>) {
        if !self.shared.breaker.allows() {
            return;
        }
        let sender = {
            let mut slot = self.sender.lock().unwrap_or_else(|e| e.into_inner());
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            slot.get_or_insert_with(|| self.start()).clone()
        };
        self.in_flight.add();
        if sender.send(Job { hex, body }).is_err() {
            self.in_flight.done();
        }
    }

    fn start(&self) -> Sender<Job> {
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(QUEUE_LEN);
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for n in 0..UPLOAD_THREADS {
            let receiver = receiver.clone();
            let shared = self.shared.clone();
            let in_flight = self.in_flight.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("clnrm-upload-{n}"))
                .spawn(move || upload_loop(&receiver, &shared, &in_flight));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => tracing::warn!("cannot start a remote cache upload thread: {e}"),
            }
        }
        sender
    }

    /// Stops taking uploads and waits up to `timeout` for the queued ones. Returns
    /// how many were still queued or in flight when it gave up (0 when all went).
    pub(crate) fn finish(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        {
            let mut slot = self.sender.lock().unwrap_or_else(|e| e.into_inner());
            self.finished.store(true, Ordering::Release);
            drop(slot.take());
        }
        let left = self.in_flight.wait_until_idle(deadline);
        if left == 0 {
            let workers =
                std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
            for worker in workers {
                let _ = worker.join();
            }
        }
        // Threads still uploading past the deadline are left to the process's exit.
        left
    }
}

fn upload_loop(receiver: &Receiver<Job>, shared: &Shared, in_flight: &InFlight) {
    for job in receiver.iter() {
        if shared.breaker.allows() {
            match shared.http.put(&job.hex, &job.body) {
                Ok(()) => shared.counters.uploaded(job.body.len()),
                Err(failure) => shared.failed(&failure),
            }
        }
        in_flight.done();
    }
}
