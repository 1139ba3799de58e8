//! The death notice: a blocked side learns that its peer's process ended
//! within the time the kernel takes to say so, with no periodic wake-ups.
//!
//! A process that ends makes its pidfd (`pidfd_open`) readable. A futex
//! wait cannot also wait on a file descriptor, so one thread per process,
//! started the first time a side asks to watch its peer, waits in
//! `epoll_wait` on a pidfd per watched peer. When one becomes readable it
//! marks that side's [`Watch`] fired, moves the count of the word the side
//! sleeps on (adding 2, which keeps the sleeper bit, as a close does) and
//! wakes it with a futex wake. The side then checks its peer's role lock,
//! the ground truth: an OFD lock is released when the last descriptor of
//! its open file description closes, which the kernel does before it makes
//! the pidfd readable.
//!
//! The invariant: a fired watch is never missed by a side about to sleep.
//! The thread stores the flag, then moves the word; the side reads the flag
//! after taking its ticket (the word's value) and sleeps only while the
//! word still holds the ticket. Either it sees the flag, or its futex wait
//! sees the word moved (or is queued when the wake comes).
//!
//! An idle thread: it sleeps in `epoll_wait` with no timeout, and does
//! nothing per message. The watches are the fast path's business only in
//! that a side about to sleep reads one flag.
//!
//! After `fork`, the child has no such thread (threads do not survive a
//! fork): a child that watches gets a thread of its own, and watches it
//! inherited from its parent are forgotten, never unregistered from the
//! parent's epoll instance, which the child shares.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustix::event::epoll;
use rustix::thread::futex;
use shmlane_core::AtomicU32;

/// A watch on one peer process: fired once the process ended (or, if the
/// pid was reused before the watch began, once that other process ended:
/// the side confirms with the role lock either way). Unregisters when
/// dropped.
pub(crate) struct Watch {
    watcher: &'static Watcher,
    key: u64,
    fired: Arc<AtomicBool>,
}

impl Watch {
    /// Whether the watched process ended. One load.
    pub(crate) fn fired(&self) -> bool {
        // SeqCst: pairs with the thread's store, then its move of the
        // word (see the module doc).
        self.fired.load(SeqCst)
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("fired", &self.fired())
            .finish_non_exhaustive()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.watcher.owner != std::process::id() {
            // Inherited over a fork: the epoll instance is the parent's
            // too, and its lock may have been held at the fork.
            return;
        }
        let entry = self.watcher.entries().map.remove(&self.key);
        if let Some(entry) = entry {
            // After removal, under the lock, the thread can no longer reach
            // the word. Closing the pidfd (dropping the entry) takes it out
            // of the interest list as well; deleting first keeps that true
            // even for a pidfd someone dup'ed.
            let _ = epoll::delete(&self.watcher.epoll, &entry.pidfd);
        }
    }
}

/// The word a watched side sleeps on, as the thread reaches it.
struct Word(*const AtomicU32);

// SAFETY: the pointer is only dereferenced by the watch thread while the
// entry is in the map, and `Watcher::watch`'s contract keeps the word alive
// until the entry's `Watch` removes it.
unsafe impl Send for Word {}

struct Entry {
    pidfd: OwnedFd,
    word: Word,
    fired: Arc<AtomicBool>,
    /// The sending end of the side's direct doorbell, rung on fire.
    bell: Option<OwnedFd>,
}

#[derive(Default)]
struct Entries {
    next: u64,
    map: HashMap<u64, Entry>,
}

/// The watch thread of one process and its watches.
struct Watcher {
    epoll: OwnedFd,
    /// The process that made it (see the module doc on `fork`).
    owner: u32,
    entries: Mutex<Entries>,
}

/// The current process's watcher, if one was started.
static CURRENT: Mutex<Option<&'static Watcher>> = Mutex::new(None);

/// A lock that survives a panic elsewhere: the maps stay consistent (every
/// change is one insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watcher {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        lock(&self.entries)
    }

    /// This process's watcher, started on first use.
    fn current() -> io::Result<&'static Watcher> {
        let mut current = lock(&CURRENT);
        let me = std::process::id();
        if let Some(watcher) = current.filter(|w| w.owner == me) {
            return Ok(watcher);
        }
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        // Leaked: one per process, living as long as it (its thread never
        // returns).
        let watcher: &'static Watcher = Box::leak(Box::new(Watcher {
            epoll,
            owner: me,
            entries: Mutex::new(Entries::default()),
        }));
        std::thread::Builder::new()
            .name("shmlane-watch".into())
            .spawn(move || watcher.run())?;
        *current = Some(watcher);
        Ok(watcher)
    }

    fn run(&self) -> ! {
        let mut events = Vec::with_capacity(16);
        loop {
            events.clear();
            // No timeout: this thread wakes only when a watched process ends.
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(_) => continue, // EINTR
            }
            for event in &events {
                self.fire(event.data.u64());
            }
        }
    }

    /// Marks the watch `key` fired and wakes its side, if it still exists.
    fn fire(&self, key: u64) {
        let entries = self.entries();
        let Some(entry) = entries.map.get(&key) else {
            return; // dropped meanwhile
        };
        // SeqCst, the flag first: see the module doc.
        entry.fired.store(true, SeqCst);
        // SAFETY: the entry is in the map, so its Watch lives, and the
        // contract of `watch` keeps the word valid until then.
        let word = unsafe { &*entry.word.0 };
        word.fetch_add(2, SeqCst);
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
        if let Some(bell) = &entry.bell {
            crate::ready::ring_direct(std::os::fd::AsFd::as_fd(bell));
        }
        // The registration is one-shot (EPOLLONESHOT): a process ends once.
    }
}

/// Watches the process behind `pidfd`: when it ends, the returned watch
/// fires and whoever sleeps on `word` is woken (see the module doc), and
/// `bell`, the sending end of the side's direct doorbell if it has one, is
/// rung.
///
/// # Safety
///
/// `word` must stay valid (mapped, not reused for anything but this
/// eventcount) until the returned [`Watch`] is dropped.
pub(crate) unsafe fn watch(
    pidfd: OwnedFd,
    word: &AtomicU32,
    bell: Option<OwnedFd>,
) -> io::Result<Watch> {
    let watcher = Watcher::current()?;
    let fired = Arc::new(AtomicBool::new(false));
    let mut entries = watcher.entries();
    let key = entries.next;
    entries.next += 1;
    // Registered under the lock: an event for a process already gone comes
    // at once, and the thread then waits for the entry to be in the map.
    epoll::add(
        &watcher.epoll,
        &pidfd,
        epoll::EventData::new_u64(key),
        epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
    )?;
    entries.map.insert(
        key,
        Entry {
            pidfd,
            word: Word(word),
            fired: Arc::clone(&fired),
            bell,
        },
    );
    Ok(Watch {
        watcher,
        key,
        fired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child process that exits when its stdin closes.
    fn child() -> std::process::Child {
        std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn pidfd_of(child: &std::process::Child) -> OwnedFd {
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap()
    }

    #[test]
    fn a_watch_fires_and_moves_the_word_when_its_process_ends_and_not_before() {
        let word = AtomicU32::new(1);
        let mut child = child();
        // SAFETY: `word` outlives the watch (declared before it).
        let watch = unsafe { watch(pidfd_of(&child), &word, None) }.unwrap();
        assert!(!watch.fired());
        assert_eq!(word.load(SeqCst), 1);
        drop(child.stdin.take()); // cat exits
        child.wait().unwrap();
        // Sleep on the word as a side would: the thread's move of it ends
        // the wait (at once, if it came first).
        while word.load(SeqCst) == 1 {
            let _ = futex::wait(&word, futex::Flags::empty(), 1, None);
        }
        assert!(watch.fired());
        assert_eq!(word.load(SeqCst), 3, "moved by 2: the sleeper bit stays");
    }

    #[test]
    fn a_dropped_watch_is_forgotten_and_others_still_fire() {
        let (a, b) = (AtomicU32::new(0), AtomicU32::new(0));
        let (mut first, mut second) = (child(), child());
        // SAFETY: both words outlive their watches.
        let dropped = unsafe { watch(pidfd_of(&first), &a, None) }.unwrap();
        // SAFETY: as above.
        let kept = unsafe { watch(pidfd_of(&second), &b, None) }.unwrap();
        drop(dropped);
        drop(first.stdin.take());
        first.wait().unwrap();
        drop(second.stdin.take());
        second.wait().unwrap();
        while b.load(SeqCst) == 0 {
            let _ = futex::wait(&b, futex::Flags::empty(), 0, None);
        }
        assert!(kept.fired());
        // The first watch's word was never touched: its entry (and pidfd)
        // was gone before its process ended.
        assert_eq!(a.load(SeqCst), 0);
    }
}
