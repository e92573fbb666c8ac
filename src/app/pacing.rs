//! How often live data is redrawn. Two bounds, the larger wins:
//!
//! * the cap the user sets (Settings → "Live redraws per second"), which a
//!   busy broker cannot push past;
//! * a CPU budget: the window measures what a frame costs the process and
//!   spaces live redraws so that they take at most [`CPU_BUDGET`] of one
//!   core. On a GPU a frame costs a millisecond or two and the cap decides;
//!   under software rendering (VMs, remote desktops, containers) a frame of
//!   a full window can cost 100 ms and the budget slows the redraws down.
//!
//! The user's own input is always answered at once: egui repaints on every
//! event whatever is asked here. What a view animates on its own (a glow, an
//! age, a countdown) asks through [`repaint_after`], so it keeps to the same
//! pace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The share of one core that live redraws may take.
pub const CPU_BUDGET: f64 = 0.10;
/// Live redraws come at least this often, whatever a frame costs.
pub const SLOWEST: Duration = Duration::from_secs(1);

/// The wait between live redraws now, shared with the worker's wake-up
/// call and the views.
#[derive(Clone, Debug)]
pub struct Pace {
    /// The user's cap, frames per second.
    fps: Arc<AtomicU32>,
    /// The wait in µs the last measurement asks for (cap and budget).
    wait_us: Arc<AtomicU64>,
}

static VIEWS_WAIT_US: AtomicU64 = AtomicU64::new(200_000);

impl Pace {
    pub fn new(fps: u32) -> Pace {
        let pace = Pace {
            fps: Arc::new(AtomicU32::new(fps)),
            wait_us: Arc::new(AtomicU64::new(0)),
        };
        pace.update(Duration::ZERO);
        pace
    }

    /// The user's cap changed.
    pub fn set(&self, fps: u32) {
        self.fps.store(fps, Ordering::Relaxed);
        self.update(Duration::ZERO);
    }

    /// The wait for a frame that costs `frame_cpu`: the cap's, or longer
    /// when the CPU budget asks for it (at most [`SLOWEST`]).
    pub fn wait_for(fps: u32, frame_cpu: Duration) -> Duration {
        let cap = Duration::from_millis(1000 / u64::from(fps.clamp(1, 60)));
        let budget = frame_cpu.div_f64(CPU_BUDGET);
        cap.max(budget).min(SLOWEST.max(cap))
    }

    /// Sets the wait from the measured cost of a frame.
    pub fn update(&self, frame_cpu: Duration) {
        let wait = Pace::wait_for(self.fps.load(Ordering::Relaxed), frame_cpu);
        let us = wait.as_micros() as u64;
        self.wait_us.store(us, Ordering::Relaxed);
        VIEWS_WAIT_US.store(us, Ordering::Relaxed);
    }

    /// The wait between two live redraws.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.wait_us.load(Ordering::Relaxed))
    }
}

/// Asks for a redraw after `after`, but not sooner than the pace allows.
pub fn repaint_after(ctx: &egui::Context, after: Duration) {
    let wait = Duration::from_micros(VIEWS_WAIT_US.load(Ordering::Relaxed));
    ctx.request_repaint_after(after.max(wait));
}

/// The CPU time this process has used so far, when the platform says.
pub fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: plain FFI call filling a local struct.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a local.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The CPU a frame costs the process, averaged over a second or more of
/// frames (what egui lays out and what the renderer draws, since most of
/// the process's CPU is the window's).
#[derive(Debug, Default)]
pub struct FrameCost {
    since: Option<(Instant, Duration)>,
    frames: u32,
    per_frame: Duration,
}

impl FrameCost {
    /// Counts a frame; returns the cost per frame once a new average is in.
    pub fn frame(&mut self, now: Instant, cpu: Option<Duration>) -> Option<Duration> {
        let cpu = cpu?;
        self.frames += 1;
        let (at, cpu0) = *self.since.get_or_insert((now, cpu));
        if now.saturating_duration_since(at) < Duration::from_secs(1) || self.frames < 2 {
            return None;
        }
        self.per_frame = cpu.saturating_sub(cpu0) / self.frames;
        self.since = Some((now, cpu));
        self.frames = 0;
        Some(self.per_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_decides_when_frames_are_cheap_and_the_budget_when_they_are_not() {
        // A GPU: 2 ms frames, the cap of 5 per second decides.
        assert_eq!(
            Pace::wait_for(5, Duration::from_millis(2)),
            Duration::from_millis(200)
        );
        // Software rendering: 80 ms frames take 10 % of a core at 800 ms.
        assert_eq!(
            Pace::wait_for(5, Duration::from_millis(80)),
            Duration::from_millis(800)
        );
        // Never slower than once a second...
        assert_eq!(Pace::wait_for(5, Duration::from_millis(400)), SLOWEST);
        // ...unless the user asked for less.
        assert_eq!(
            Pace::wait_for(1, Duration::from_millis(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            Pace::wait_for(60, Duration::ZERO),
            Duration::from_millis(16)
        );
    }

    #[test]
    fn a_frames_cost_is_averaged_over_a_second() {
        let mut cost = FrameCost::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(cost.frame(t0, Some(ms(0))), None);
        assert_eq!(cost.frame(t0 + ms(500), Some(ms(30))), None);
        // Three frames in the first second used 60 ms: 20 ms each.
        assert_eq!(cost.frame(t0 + ms(1000), Some(ms(60))), Some(ms(20)));
        // One frame is not an average; two frames later used 90 ms.
        assert_eq!(cost.frame(t0 + ms(2000), Some(ms(90))), None);
        assert_eq!(cost.frame(t0 + ms(3000), Some(ms(150))), Some(ms(45)));
        assert_eq!(cost.frame(t0, None), None);
    }
}
