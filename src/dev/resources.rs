//! What a dev run cost the clnrm process itself, for the dashboard (docs/reference.md §7):
//! resident memory from procfs and CPU time from the process CPU clock. Not the
//! containers' use (the engine's), and nothing here prints.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The process's CPU time and the wall clock at one moment; the start of a run.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSample {
    cpu: Duration,
    at: Instant,
}

impl ResourceSample {
    /// Now, or `None` where the process CPU clock cannot be read.
    pub fn now() -> Option<ResourceSample> {
        Some(ResourceSample {
            cpu: process_cpu_time()?,
            at: Instant::now(),
        })
    }

    /// What the process used from this sample until now. Memory is the resident
    /// set now, at the end of the run, when it is highest.
    pub fn until_now(&self) -> RunResources {
        let wall = self.at.elapsed();
        let cpu = process_cpu_time()
            .map(|now| now.saturating_sub(self.cpu))
            .unwrap_or_default();
        RunResources::new(resident_bytes(), cpu, wall)
    }
}

/// Resident memory and CPU use of the clnrm process during one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RunResources {
    /// Resident set size at the end of the run, in MiB (0 if procfs is unreadable).
    pub rss_mb: f64,
    /// CPU time (user + system, all threads) spent during the run.
    pub cpu_ms: f64,
    /// `cpu_ms` against the run's wall time, in percent of one core.
    pub cpu_percent: f64,
    /// The run's wall time the CPU use is measured over (run start to results).
    pub wall_ms: f64,
}

impl RunResources {
    pub fn new(rss_bytes: Option<u64>, cpu: Duration, wall: Duration) -> RunResources {
        let cpu_ms = cpu.as_secs_f64() * 1000.0;
        let wall_ms = wall.as_secs_f64() * 1000.0;
        RunResources {
            rss_mb: rss_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
            cpu_ms,
            cpu_percent: if wall_ms > 0.0 {
                100.0 * cpu_ms / wall_ms
            } else {
                0.0
            },
            wall_ms,
        }
    }
}

/// The resident set of this process, from `/proc/self/stat`.
fn resident_bytes() -> Option<u64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some(stat.rss.saturating_mul(procfs::page_size()))
}

/// CPU time of the whole process: nanosecond resolution, where procfs' ticks
/// (10 ms) would round a 20 ms run to nothing.
fn process_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_burns_cpu_reports_it_with_the_resident_memory() {
        let start = ResourceSample::now().expect("the process CPU clock is readable");
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = start.until_now();
        assert!(used.cpu_ms >= 10.0, "{used:?}");
        assert!(used.wall_ms >= 30.0, "{used:?}");
        assert!(
            used.cpu_percent > 20.0 && used.cpu_percent <= 100.0 * 64.0,
            "{used:?}"
        );
        assert!(used.rss_mb > 1.0, "{used:?}");
    }

    #[test]
    fn cpu_percent_is_of_the_wall_time() {
        let used = RunResources::new(
            Some(64 * 1024 * 1024),
            Duration::from_millis(20),
            Duration::from_millis(80),
        );
        assert_eq!(used.rss_mb, 64.0);
        assert_eq!(used.cpu_percent, 25.0);
        assert_eq!(
            RunResources::new(None, Duration::ZERO, Duration::ZERO).cpu_percent,
            0.0
        );
    }
}
