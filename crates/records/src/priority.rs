//! Background priority for the threads that move records (shipper, collector ingest, rollup
//! flushers), so that in a process that also answers ENUM queries (`tollgate serve`) the
//! answer path is never starved by the record path.
//!
//! On Linux each thread has its own nice value: [`lower_current_thread`] raises the calling
//! thread's by [`BACKGROUND_NICE`] (up to 19). A nice-10 thread gets about a tenth of the CPU a
//! nice-0 thread gets when both want it, and all of it when the answer path is idle, so records
//! are only delayed (they wait in the spool, which is bounded and accounted) when the machine
//! is saturated, never dropped. Raising a nice value needs no privilege; lowering it again
//! would, so a thread is lowered once and stays so.

use std::cell::Cell;

/// How much lower than the process the record path runs.
pub const BACKGROUND_NICE: i32 = 10;

thread_local! {
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Raises the calling thread's nice value by [`BACKGROUND_NICE`] (capped at 19), once per
/// thread; later calls on the same thread do nothing. Returns the thread's nice value, or
/// `None` where it cannot be set (not Linux, or the call failed: the thread keeps its
/// priority, which is only slower for the answer path, never wrong).
pub fn lower_current_thread() -> Option<i32> {
    if LOWERED.with(|l| l.replace(true)) {
        return current_nice();
    }
    set_nice((current_nice()? + BACKGROUND_NICE).min(19))
}

/// The calling thread's nice value.
pub fn current_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        let tid = libc::id_t::try_from(gettid()).ok()?;
        // getpriority returns -1 both for an error and for nice -1: errno tells them apart.
        clear_errno();
        // SAFETY: getpriority takes plain integers and touches no memory of ours.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        if nice == -1 && std::io::Error::last_os_error().raw_os_error().unwrap_or(0) != 0 {
            return None;
        }
        Some(nice)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> Option<i32> {
    let tid = libc::id_t::try_from(gettid()).ok()?;
    // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux
    // PRIO_PROCESS with a thread id sets that thread's nice value only.
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if done == 0 { current_nice() } else { None }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> Option<i32> {
    None
}

#[cfg(target_os = "linux")]
fn gettid() -> libc::pid_t {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(target_os = "linux")]
fn clear_errno() {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life.
    unsafe { *libc::__errno_location() = 0 };
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_lowered_once_and_others_keep_their_priority() {
        let before = current_nice().unwrap();
        let lowered =
            std::thread::spawn(|| (lower_current_thread(), lower_current_thread(), current_nice())).join().unwrap();
        let expected = (before + BACKGROUND_NICE).min(19);
        assert_eq!(lowered, (Some(expected), Some(expected), Some(expected)), "lowered once, not twice");
        assert_eq!(current_nice(), Some(before), "the calling thread is untouched");
    }
}
