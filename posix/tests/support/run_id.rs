//! The one tag every test name carries (shared by the posix tests, the
//! examples' tests and the message-queue unit tests, which include this
//! file by path).

/// A tag for the names this test process creates: its pid and the time it
/// started. The pid alone is not enough: pids repeat (a fresh container
/// numbers its processes the same way each run), and a queue or segment an
/// earlier run left behind — in an IPC namespace or `/dev/shm` that outlives
/// the container — would collide with this run's.
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}-{:x}",
            std::process::id(),
            nanos as u64 & 0xffff_ffff_ffff
        )
    })
}
