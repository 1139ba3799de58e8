//! Every bad input gets a clear, typed error and leaves nothing behind.

mod support;

use std::os::fd::AsFd;
use std::time::Duration;

use shmlane_core::layout::MAGIC;
use shmlane_core::{Corruption, region_size};
use shmlane_posix::{Error, Options, Receiver, Role, Segment, Sender, WaitMode};

fn name(test: &str) -> String {
    format!("/shmlane-bad-{test}-{}", support::run_id())
}

use support::shm_path;

#[test]
fn invalid_names_are_refused_by_every_constructor() {
    let long = format!("/{}", "x".repeat(255));
    for bad in [
        "",
        "/",
        "noslash",
        "/a/b",
        "/nul\0byte",
        "/.",
        "/..",
        long.as_str(),
    ] {
        let is_invalid = |r: Result<(), Error>| matches!(r, Err(Error::InvalidName { .. }));
        assert!(
            is_invalid(Sender::create(bad, &Options::new()).map(drop)),
            "{bad:?}"
        );
        assert!(
            is_invalid(Sender::open(bad, &Options::new()).map(drop)),
            "{bad:?}"
        );
        assert!(
            is_invalid(Receiver::create(bad, &Options::new()).map(drop)),
            "{bad:?}"
        );
        assert!(
            is_invalid(Receiver::open(bad, &Options::new()).map(drop)),
            "{bad:?}"
        );
        assert!(
            is_invalid(Segment::create(bad, 4096, 0o600).map(drop)),
            "{bad:?}"
        );
        assert!(is_invalid(Segment::unlink(bad)), "{bad:?}");
    }
    // The longest valid name works.
    // (Ending in the run id: two runs of this test at once do not collide.)
    let pid = support::run_id().replace('-', "");
    let longest = format!("/{}{pid}", "y".repeat(254 - pid.len()));
    assert_eq!(longest.len(), 255);
    assert!(Segment::create(&longest, 64, 0o600).is_ok());
    // And the message says what is wrong.
    let err = Sender::create("/a/b", &Options::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid shared-memory segment name \"/a/b\": must not contain '/' after the first character"
    );
}

#[test]
fn bad_capacities_are_refused_before_anything_is_created() {
    let name = name("capacity");
    for capacity in [0, 1, 100, 3000, shmlane_core::MAX_CAPACITY * 2] {
        assert!(
            matches!(
                Sender::create(&name, &Options::new().capacity(capacity)),
                Err(Error::InvalidCapacity { capacity: c }) if c == capacity
            ),
            "{capacity}"
        );
        assert!(!shm_path(&name).exists());
    }
    assert!(matches!(
        Sender::create(&name, &Options::new().capacity(4096).max_message(4096)),
        Err(Error::InvalidMaxMessage {
            max_message: 4096,
            limit: 2040
        })
    ));
    assert!(!shm_path(&name).exists());
}

#[test]
fn a_capacity_beyond_the_memory_limit_is_no_space_not_sigbus() {
    // 1 TiB: a valid ring size, but far beyond /dev/shm here.
    let name = name("huge");
    let result = Receiver::create(&name, &Options::new().capacity(1 << 40));
    assert!(matches!(result, Err(Error::NoSpace { .. })), "{result:?}");
    assert!(!shm_path(&name).exists(), "nothing left behind");
    assert!(matches!(
        Sender::anonymous(&Options::new().capacity(1 << 40)),
        Err(Error::NoSpace { .. })
    ));
}

#[test]
fn oversized_messages_are_refused_on_every_send_path() {
    let name = name("oversized");
    let mut tx = Sender::create(&name, &Options::new().capacity(4096).max_message(100)).unwrap();
    let mut rx = Receiver::open(&name, &Options::new()).unwrap();
    let big = [0u8; 101];
    let too_large = |r: Result<(), Error>| matches!(r, Err(Error::TooLarge { len: 101, max: 100 }));
    assert!(too_large(tx.send(&big)));
    assert!(too_large(tx.try_send(&big)));
    assert!(too_large(tx.send_timeout(&big, Duration::from_millis(1))));
    assert!(too_large(tx.reserve(101).map(drop)));
    assert!(too_large(tx.try_reserve(101).map(drop)));
    assert!(too_large(tx.batch().try_send(&big).map_err(Error::from)));
    // Nothing was sent; the channel still works.
    assert!(matches!(rx.try_recv(&mut [0; 200]), Err(Error::Empty)));
    tx.send(&[1; 100]).unwrap();
    let mut small = [0u8; 99];
    assert!(matches!(
        rx.try_recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 99
        })
    ));
    assert_eq!(rx.recv_vec().unwrap(), [1; 100]);
}

#[test]
fn opening_a_missing_name_is_not_found() {
    assert!(matches!(
        Receiver::open(&name("missing"), &Options::new()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_regular_file_with_other_content_is_not_a_segment_and_is_never_removed() {
    let name = name("foreign");
    std::fs::write(
        shm_path(&name),
        b"some other program's data, long enough to look at",
    )
    .unwrap();
    let result = Receiver::open(&name, &Options::new());
    assert!(matches!(result, Err(Error::TooSmall { .. })), "{result:?}");
    // Big enough for a header, but not ours.
    std::fs::write(shm_path(&name), vec![0xab; 4096]).unwrap();
    let result = Receiver::open(&name, &Options::new());
    assert!(
        matches!(result, Err(Error::NotASegment { .. })),
        "{result:?}"
    );
    // Creating over it refuses instead of deleting it.
    assert!(matches!(
        Sender::create(&name, &Options::new()),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(shm_path(&name)).unwrap(), vec![0xab; 4096]);
    std::fs::remove_file(shm_path(&name)).unwrap();
}

#[test]
fn a_directory_is_not_a_segment() {
    let name = name("dir");
    std::fs::create_dir(shm_path(&name)).unwrap();
    let result = Segment::open(&name);
    std::fs::remove_dir(shm_path(&name)).unwrap();
    assert!(
        matches!(
            result,
            Err(Error::NotASegment { .. }) | Err(Error::Io { .. })
        ),
        "{result:?}"
    );
}

#[test]
fn a_too_small_segment_is_refused() {
    let name = name("small");
    let _seg = Segment::create(&name, 100, 0o600).unwrap();
    let result = Receiver::open(&name, &Options::new());
    assert!(
        matches!(result, Err(Error::TooSmall { size: 100, .. })),
        "{result:?}"
    );
}

#[test]
fn a_segment_that_never_gets_initialised_times_out_as_not_ready() {
    let name = name("uninit");
    let _seg = Segment::create(&name, region_size(4096), 0o600).unwrap();
    let options = Options::new().open_timeout(Duration::from_millis(30));
    assert!(matches!(
        Receiver::open(&name, &options),
        Err(Error::NotReady)
    ));
}

/// Creates a channel, applies `scribble` to the header bytes, and opens.
fn open_after(test: &str, scribble: impl FnOnce(&mut [u8])) -> Result<Receiver, Error> {
    let name = name(test);
    let tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let seg = tx.segment();
    // SAFETY: test only: the mapping is valid for its length; no ring
    // operation runs while we write.
    let bytes = unsafe { std::slice::from_raw_parts_mut(seg.as_ptr().as_ptr(), seg.len()) };
    scribble(bytes);
    let result = Receiver::open(
        &name,
        &Options::new().open_timeout(Duration::from_millis(20)),
    );
    drop(tx);
    result
}

#[test]
fn garbage_in_the_header_is_a_typed_error() {
    let r = open_after("magic", |b| b[..8].copy_from_slice(b"garbage!"));
    assert!(matches!(r, Err(Error::NotASegment { .. })), "{r:?}");
    let r = open_after("version", |b| {
        b[8..12].copy_from_slice(&99u32.to_ne_bytes())
    });
    assert!(
        matches!(r, Err(Error::VersionMismatch { found: 99, .. })),
        "{r:?}"
    );
    let r = open_after("capacity", |b| {
        b[16..24].copy_from_slice(&3u64.to_ne_bytes())
    });
    assert!(
        matches!(r, Err(Error::Corrupt(Corruption::Capacity))),
        "{r:?}"
    );
    let r = open_after("capacity-big", |b| {
        b[16..24].copy_from_slice(&(1u64 << 30).to_ne_bytes())
    });
    assert!(matches!(r, Err(Error::TooSmall { .. })), "{r:?}");
    let r = open_after("max", |b| {
        b[24..32].copy_from_slice(&u64::MAX.to_ne_bytes())
    });
    assert!(
        matches!(r, Err(Error::Corrupt(Corruption::MaxMessage))),
        "{r:?}"
    );
    let r = open_after("state", |b| b[36..40].copy_from_slice(&9u32.to_ne_bytes()));
    assert!(matches!(r, Err(Error::Corrupt(Corruption::State))), "{r:?}");
    let r = open_after("init", |b| b[40..44].copy_from_slice(&0u32.to_ne_bytes()));
    assert!(matches!(r, Err(Error::NotReady)), "{r:?}");
    let r = open_after("write", |b| {
        b[128..136].copy_from_slice(&12345u64.to_ne_bytes())
    });
    assert!(
        matches!(r, Err(Error::Corrupt(Corruption::WritePosition))),
        "{r:?}"
    );
    // Sanity: the offsets used above are the ones the layout pins.
    assert_eq!(u64::from_ne_bytes(*b"SHMLANE\0"), MAGIC);
}

#[test]
fn a_second_sender_or_receiver_is_refused() {
    let name = name("roles");
    let _tx = Sender::create(&name, &Options::new()).unwrap();
    let _rx = Receiver::open(&name, &Options::new()).unwrap();
    assert!(matches!(
        Sender::open(&name, &Options::new()),
        Err(Error::RoleTaken(Role::Producer))
    ));
    assert!(matches!(
        Receiver::open(&name, &Options::new()),
        Err(Error::RoleTaken(Role::Consumer))
    ));
}

#[test]
fn an_unsealed_fd_is_refused() {
    let memfd = rustix::fs::memfd_create("unsealed", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, 4096).unwrap();
    assert!(matches!(
        Receiver::from_fd(memfd, &Options::new()),
        Err(Error::NotSealed)
    ));
    // A named segment's fd cannot be sealed at all.
    let seg = Segment::create(&name("unsealable"), 4096, 0o600).unwrap();
    let fd = seg.fd().as_fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        Sender::from_fd(fd, &Options::new()),
        Err(Error::NotSealed)
    ));
}

#[test]
fn timeouts_end_blocked_calls_and_lose_nothing() {
    for mode in [WaitMode::BusyPoll, WaitMode::SpinThenFutex, WaitMode::Futex] {
        let name = name(&format!("timeouts-{mode:?}"));
        let options = Options::new().capacity(64).wait_mode(mode);
        let mut tx = Sender::create(&name, &options).unwrap();
        let mut rx = Receiver::open(&name, &options).unwrap();
        assert!(matches!(
            rx.recv_timeout(&mut [0; 8], Duration::from_millis(5)),
            Err(Error::TimedOut)
        ));
        assert!(matches!(
            rx.read_timeout(Duration::ZERO),
            Err(Error::TimedOut)
        ));
        tx.send(&[1; 24]).unwrap();
        tx.send(&[2; 24]).unwrap();
        assert!(matches!(
            tx.send_timeout(&[3; 24], Duration::from_millis(5)),
            Err(Error::TimedOut)
        ));
        assert!(matches!(
            tx.reserve_timeout(24, Duration::ZERO),
            Err(Error::TimedOut)
        ));
        assert_eq!(rx.recv_vec().unwrap(), [1; 24]);
        assert_eq!(rx.recv_vec().unwrap(), [2; 24]);
        assert!(matches!(rx.try_recv(&mut [0; 24]), Err(Error::Empty)));
    }
}

#[test]
fn a_clean_close_disconnects_the_peer_in_process() {
    let name = name("close");
    let mut tx = Sender::create(&name, &Options::new()).unwrap();
    let mut rx = Receiver::open(&name, &Options::new()).unwrap();
    tx.send(b"last words").unwrap();
    drop(tx);
    assert_eq!(rx.recv_vec().unwrap(), b"last words");
    assert!(matches!(rx.recv_vec(), Err(Error::Disconnected)));
    assert!(!rx.sender_died(), "closed, not died");
    // The creator's drop removed the name.
    assert!(!shm_path(&name).exists());
}

#[test]
fn messages_of_4_gib_and_more_keep_their_boundaries() {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
    use shmlane_core::{Config, MAX_MESSAGE, Ring, Spin};
    // A 16 GiB ring in a sparse private mapping: only the pages touched
    // (the header and two record headers) ever get memory.
    let capacity = 1usize << 34;
    let len = region_size(capacity);
    // SAFETY: a fresh anonymous mapping chosen by the kernel; unmapped below
    // after every ring on it is dropped.
    let ptr = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .expect("16 GiB of address space");
    {
        let region = std::ptr::NonNull::new(ptr.cast::<u8>()).unwrap();
        // SAFETY: the mapping is valid, zeroed and ours for this scope.
        let ring = unsafe { Ring::create(region, len, Config::new(capacity)) }.unwrap();
        let (mut tx, mut rx) = (
            ring.producer(Spin::new()).unwrap(),
            ring.consumer(Spin::new()).unwrap(),
        );
        // The length field of a record is 32 bits: a longer message is
        // refused, never sent with its length cut to the low 32 bits.
        assert_eq!(tx.max_message(), MAX_MESSAGE);
        for len in [1usize << 32, (1 << 32) + 8, MAX_MESSAGE + 1] {
            assert_eq!(
                tx.reserve(len).map(drop),
                Err(shmlane_core::Error::TooLarge {
                    len,
                    max: MAX_MESSAGE
                })
            );
        }
        // The longest one goes through whole, and the next one after it.
        tx.reserve(MAX_MESSAGE).unwrap().commit(MAX_MESSAGE);
        tx.try_send(b"next").unwrap();
        assert_eq!(rx.read().unwrap().len(), MAX_MESSAGE);
        assert_eq!(&*rx.read().unwrap(), b"next");
    }
    // SAFETY: the mapping made above; nothing refers to it any more.
    unsafe { munmap(ptr, len) }.unwrap();
}

/// Signals that interrupt a blocked call: counted by the handler.
static INTERRUPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_interrupt(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Interrupts thread `tid` with SIGUSR1 (whose handler does not restart
/// system calls) and waits until the handler ran and the thread is back
/// asleep in system call `nr`: an interrupted call that gave up would have
/// returned instead.
fn interrupt(tid: i32, nr: i64) {
    let before = INTERRUPTS.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: tgkill with our own pid, a live thread of ours and a signal
    // whose handler (installed below) only bumps an atomic.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, std::process::id(), tid, libc::SIGUSR1) };
    assert_eq!(r, 0);
    while INTERRUPTS.load(std::sync::atomic::Ordering::SeqCst) == before {
        std::thread::yield_now();
    }
    support::wait_until_asleep_in(tid, nr);
}

#[test]
fn passing_a_descriptor_survives_interrupting_signals() {
    use shmlane_posix::fdpass::{recv_fd, send_fd};
    use std::os::unix::net::UnixStream;
    // SAFETY: a handler that only bumps an atomic (async-signal-safe),
    // without SA_RESTART, so that blocked calls see EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count_interrupt as *const () as usize;
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
    let tid = support::tid;

    // A receive blocked on an empty socket.
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        tx.send(tid()).unwrap();
        recv_fd(&b).map(drop)
    });
    let receiving = rx.recv().unwrap();
    support::wait_until_asleep_in(receiving, libc::SYS_recvmsg);
    interrupt(receiving, libc::SYS_recvmsg);
    let seg = Segment::anonymous(4096).unwrap();
    send_fd(&a, seg.fd()).unwrap();
    assert!(receiver.join().unwrap().is_ok());

    // A send blocked on a full socket.
    let (a, b) = UnixStream::pair().unwrap();
    let mut filled = 0;
    while let Ok(n) = rustix::net::send(&a, &[0; 4096], rustix::net::SendFlags::DONTWAIT) {
        filled += n;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let seg = Segment::anonymous(4096).unwrap();
        seg.seal().unwrap();
        tx.send(tid()).unwrap();
        send_fd(&a, seg.fd())
    });
    let sending = rx.recv().unwrap();
    support::wait_until_asleep_in(sending, libc::SYS_sendmsg);
    interrupt(sending, libc::SYS_sendmsg);
    // Drain exactly the filler; the descriptor then goes through.
    let mut sink = vec![0u8; filled];
    std::io::Read::read_exact(&mut &b, &mut sink).unwrap();
    let fd = recv_fd(&b).unwrap();
    assert!(sender.join().unwrap().is_ok());
    assert_eq!(Segment::from_fd(fd).unwrap().len(), 4096);
}

#[test]
fn a_timeout_too_long_to_add_waits_instead_of_panicking() {
    let name = name("long-timeout");
    let _tx = Sender::create(&name, &Options::new()).unwrap();
    let forever = Options::new().open_timeout(Duration::MAX);
    let rx = Receiver::open(&name, &forever).unwrap();
    let mut rx = rx;
    assert!(matches!(
        rx.recv_timeout(&mut [0; 8], Duration::from_millis(1)),
        Err(Error::TimedOut)
    ));
    drop(rx);
    let (mut tx, fd) = Sender::anonymous(&Options::new()).unwrap();
    let _rx = Receiver::from_fd(fd, &forever).unwrap();
    tx.send_timeout(b"x", Duration::MAX).unwrap();
}

#[test]
fn errors_name_the_object_they_are_about() {
    use shmlane_posix::mqueue::MessageQueue;
    use shmlane_posix::{Framed, Object};

    let dir = std::env::temp_dir();
    let pid = support::run_id();
    let cases: Vec<(Error, Object, &str)> = vec![
        (
            Segment::open(&name("no-such-segment")).unwrap_err(),
            Object::Segment,
            "shared-memory segment",
        ),
        (
            MessageQueue::open(&name("no-such-queue")).unwrap_err(),
            Object::Queue,
            "message queue",
        ),
        (
            Framed::open_fifo_reader(dir.join(format!("no-such-fifo-{pid}")), 64).unwrap_err(),
            Object::Fifo,
            "FIFO",
        ),
        (
            Framed::connect_unix(dir.join(format!("no-such-socket-{pid}")), 64).unwrap_err(),
            Object::Socket,
            "socket",
        ),
    ];
    for (error, object, noun) in cases {
        match &error {
            Error::NotFound { object: found, .. } => assert_eq!(*found, object, "{error}"),
            other => panic!("expected NotFound for a {object}, got {other:?}"),
        }
        let text = error.to_string();
        assert!(text.starts_with(&format!("no {noun} named")), "{text}");
        assert!(
            !text.contains("segment") || object == Object::Segment,
            "{text}"
        );
    }
    let bad = Sender::create("no-slash", &Options::new()).unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("invalid shared-memory segment name"),
        "{bad}"
    );
    let bad = MessageQueue::create("/a/b", &Default::default())
        .map(drop)
        .unwrap_err();
    assert!(
        bad.to_string().starts_with("invalid message queue name"),
        "{bad}"
    );
}

#[test]
fn errors_convert_to_io_errors_of_the_matching_kind() {
    use std::io::ErrorKind;
    let io = |e: Error| std::io::Error::from(e);
    let mut rx = Receiver::create(&name("io-kinds"), &Options::new()).unwrap();
    assert_eq!(
        io(rx.try_recv(&mut [0; 8]).unwrap_err()).kind(),
        ErrorKind::WouldBlock
    );
    let timed_out = rx
        .recv_timeout(&mut [0; 8], Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(io(timed_out).kind(), ErrorKind::TimedOut);
    let missing = Segment::open(&name("io-missing")).unwrap_err();
    let missing = io(missing);
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    // The typed error stays inside, for a caller that wants it back.
    let inner = missing.into_inner().unwrap().downcast::<Error>().unwrap();
    assert!(matches!(*inner, Error::NotFound { .. }));
    let taken = Receiver::open(&name("io-kinds"), &Options::new()).unwrap_err();
    assert_eq!(io(taken).kind(), ErrorKind::ResourceBusy);
    // An I/O error comes back as itself.
    let e = Error::Io {
        op: "test",
        source: std::io::Error::from_raw_os_error(libc_enospc()),
    };
    assert_eq!(io(e).raw_os_error(), Some(libc_enospc()));
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

#[test]
fn a_side_confined_to_one_cpu_says_so_in_the_header_and_a_free_one_does_not() {
    let hint = |name: &str, role: Role| {
        let segment = Segment::open(name).unwrap();
        // SAFETY: the segment stays mapped while `ring` is used; only the
        // identity line is read, through atomics.
        let ring = unsafe { shmlane_core::Ring::attach(segment.as_ptr(), segment.len()) }.unwrap();
        ring.cpu_hint(role)
    };
    let free = name("cpu-free");
    let _rx = Receiver::create(&free, &Options::new()).unwrap();
    let allowed = rustix::thread::sched_getaffinity(None).unwrap();
    if allowed.count() > 1 {
        assert_eq!(hint(&free, Role::Consumer), None);
    }
    // A thread pinned to one CPU (its own affinity; the test's is unchanged).
    let pinned = name("cpu-pinned");
    let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
        .find(|&c| allowed.is_set(c))
        .unwrap();
    let made = std::thread::scope(|s| {
        s.spawn(|| {
            let mut one = rustix::thread::CpuSet::new();
            one.set(cpu);
            rustix::thread::sched_setaffinity(None, &one).unwrap();
            Sender::create(&pinned, &Options::new()).unwrap()
        })
        .join()
        .unwrap()
    });
    assert_eq!(hint(&pinned, Role::Producer), Some(cpu as u32));
    drop(made);
}
