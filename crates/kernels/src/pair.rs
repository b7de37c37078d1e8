//! A second thread for batch-1 kernels that starts work in well under a microsecond.
//!
//! Batch-1 layers take 1–20 µs; waking a rayon worker costs a few microseconds, about as much as
//! the work it would take over. Here one persistent helper thread spins on an atomic for
//! [`SPIN`] after its last job (so back-to-back layers find it awake) and then parks. Work is
//! split in chunks that the caller and the helper claim with one `fetch_add` each: if the helper
//! is asleep or descheduled (a loaded machine), the caller claims every chunk itself and never
//! waits for it — it only waits for a chunk the helper has already started.
//!
//! Only one caller at a time uses the helper; a concurrent caller runs its chunks alone.
//! Costs: the spinning keeps the second core busy for up to [`SPIN`] after the last call.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before it parks.
pub const SPIN: Duration = Duration::from_micros(100);

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const TAKEN: u8 = 2;
const FINISHED: u8 = 3;

struct Helper {
    state: AtomicU8,
    job: AtomicPtr<()>,
    busy: AtomicBool,
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
}

struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    chunks: usize,
    next: AtomicUsize,
}

impl Job<'_> {
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.chunks {
                return;
            }
            (self.f)(i);
        }
    }
}

fn helper() -> Option<&'static Helper> {
    static H: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *H.get_or_init(|| {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return None;
        }
        let h: &'static Helper = Box::leak(Box::new(Helper {
            state: AtomicU8::new(IDLE),
            job: AtomicPtr::new(std::ptr::null_mut()),
            busy: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            thread: OnceLock::new(),
        }));
        let handle =
            std::thread::Builder::new().name("deepshrink-pair".into()).spawn(move || serve(h)).ok()?;
        h.thread.set(handle.thread().clone()).ok()?;
        Some(h)
    })
}

fn serve(h: &'static Helper) {
    loop {
        let mut last = Instant::now();
        let mut spins = 0u32;
        loop {
            if h.state.load(Acquire) == POSTED
                && h.state.compare_exchange(POSTED, TAKEN, Acquire, Relaxed).is_ok()
            {
                // SAFETY: the poster keeps the job alive until it sees FINISHED (see `Wait`).
                let job = unsafe { &*(h.job.load(Relaxed) as *const Job) };
                job.work();
                h.state.store(FINISHED, Release);
                last = Instant::now();
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && last.elapsed() > SPIN {
                break;
            }
        }
        h.sleeping.store(true, SeqCst);
        if h.state.load(SeqCst) != POSTED && h.thread.get().is_some() {
            std::thread::park();
        }
        h.sleeping.store(false, SeqCst);
    }
}

/// Waits (also on unwind) until the helper has let go of the job, then frees the helper.
struct Wait(&'static Helper);

impl Drop for Wait {
    fn drop(&mut self) {
        let h = self.0;
        if h.state.compare_exchange(POSTED, IDLE, AcqRel, Acquire).is_err() {
            while h.state.load(Acquire) != FINISHED {
                std::hint::spin_loop();
            }
            h.state.store(IDLE, Relaxed);
        }
        h.busy.store(false, Release);
    }
}

/// Runs `f(i)` for every `i` in `0..chunks`, on the calling thread and the helper.
fn for_each(chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    let job = Job { f, chunks, next: AtomicUsize::new(0) };
    let h = match helper() {
        Some(h) if chunks > 1 && h.busy.compare_exchange(false, true, Acquire, Relaxed).is_ok() => h,
        _ => return job.work(),
    };
    let _wait = Wait(h);
    h.job.store(&job as *const Job as *mut (), Relaxed);
    h.state.store(POSTED, SeqCst);
    if h.sleeping.load(SeqCst) {
        if let Some(t) = h.thread.get() {
            t.unpark();
        }
    }
    job.work();
}

struct SendPtr(*mut f32);
// SAFETY: used only to hand out disjoint chunks of one `&mut [f32]`, each to one thread.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Calls `f(offset, chunk)` on consecutive chunks of `y` of `chunk` elements (the last may be
/// shorter), split between the calling thread and the helper thread.
pub fn pair_chunks_mut(y: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let (len, chunk) = (y.len(), chunk.max(1));
    let p = SendPtr(y.as_mut_ptr());
    let run = |i: usize| {
        let start = i * chunk;
        let n = chunk.min(len - start);
        // SAFETY: every `i < len.div_ceil(chunk)` is claimed exactly once, so the chunks handed
        // out are disjoint and inside `y`, which outlives the call.
        f(start, unsafe { std::slice::from_raw_parts_mut(p.at(start), n) })
    };
    for_each(len.div_ceil(chunk), &run);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_once_and_concurrent_callers() {
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for n in [0usize, 1, 7, 100, 1001] {
                        let mut y = vec![0.0f32; n];
                        pair_chunks_mut(&mut y, 1 + t * 3, |o, c| {
                            for (k, v) in c.iter_mut().enumerate() {
                                *v += (o + k) as f32;
                            }
                        });
                        assert!(y.iter().enumerate().all(|(i, v)| *v == i as f32));
                        std::thread::sleep(SPIN * (t as u32 % 3));
                    }
                });
            }
        });
    }

    #[test]
    fn the_helper_takes_chunks() {
        if helper().is_none() {
            return;
        }
        let caller = std::thread::current().id();
        let others = AtomicUsize::new(0);
        // Other tests may hold the helper for a moment; then the call runs alone. Retry.
        for _ in 0..100 {
            let mut y = vec![0.0f32; 16];
            pair_chunks_mut(&mut y, 1, |_, _| {
                if std::thread::current().id() != caller {
                    others.fetch_add(1, Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            });
            if others.load(Relaxed) > 0 {
                return;
            }
        }
        panic!("the helper thread ran no chunk in 100 calls");
    }
}
