//! Work that yields the cores to answering OpenIM: the queue's deliveries and the instance stock's
//! builds run on threads at a lower scheduling priority than the threads that answer. When the
//! cores are busy, answers come first; idle cores go to the background.

/// The nice value of background threads (0 is the default, 19 the lowest priority).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]; `what` names the thread in the
/// warning when it cannot.
pub fn lower_priority(what: &str) {
    // Linux: each thread has its own nice value; `None` (0) lowers only this one.
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        tracing::warn!(%error, "{what} keeps the default priority");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = what;
}
