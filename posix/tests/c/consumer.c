/*
 * A shmlane consumer in C, for the interop test (posix/tests/c_interop.rs):
 * opens the ring a Rust `Sender::create` made at NAME, claims the consumer
 * role as shmlane-posix does (its OFD lock bytes, then the ring's state,
 * waits bits, pid and claim wake-up), receives every message until the
 * sender closes, and prints "messages N bytes B sum S" (S: the sum of all
 * payload bytes). It polls (never sleeps) and wakes a sleeping producer.
 * Every value read from the ring is checked; a bad one is exit code 3.
 *
 * usage: consumer NAME [hold]
 * (hold: claim the role, say "claimed", then read nothing until killed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shmlane.h"

/* shmlane-posix's lock bytes (posix/src/lock.rs). */
#define LOCK_CONSUMER 1
#define LOCK_PRESENCE 3

static int fail(const char *what) {
    fprintf(stderr, "consumer: %s\n", what);
    return 3;
}

static int ofd_lock(int fd, short kind, off_t byte) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = kind;
    lock.l_whence = SEEK_SET;
    lock.l_start = byte;
    lock.l_len = 1;
    return fcntl(fd, F_OFD_SETLK, &lock);
}

static _Atomic uint32_t *u32_at(unsigned char *base, size_t offset) {
    return (_Atomic uint32_t *)(void *)(base + offset);
}

static _Atomic uint64_t *u64_at(unsigned char *base, size_t offset) {
    return (_Atomic uint64_t *)(void *)(base + offset);
}

static void futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* After moving the read position: wake the producer if it sleeps on its
 * word (the fence pairs with its announcement's). */
static void wake_sleeper(_Atomic uint32_t *word) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(word, memory_order_relaxed) & SHMLANE_SLEEPING) {
        atomic_fetch_add_explicit(word, 1, memory_order_acq_rel);
        futex_wake(word);
    }
}

int main(int argc, char **argv) {
    int hold = argc == 3 && strcmp(argv[2], "hold") == 0;
    if (argc != 2 && !hold) {
        fprintf(stderr, "usage: consumer NAME [hold]\n");
        return 2;
    }
    int fd = shm_open(argv[1], O_RDWR | O_NOFOLLOW, 0);
    if (fd < 0)
        return fail("shm_open");
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)SHMLANE_HEADER_SIZE)
        return fail("too small for a header");
    size_t size = (size_t)st.st_size;
    unsigned char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return fail("mmap");
    /* Present, like every shmlane handle; then the role's lock, before the
     * role is claimed. */
    if (ofd_lock(fd, F_RDLCK, LOCK_PRESENCE) != 0)
        return fail("presence lock");
    if (ofd_lock(fd, F_WRLCK, LOCK_CONSUMER) != 0)
        return fail("consumer lock (role taken?)");

    if (atomic_load_explicit(u32_at(base, SHMLANE_OFF_INIT), memory_order_acquire) != SHMLANE_INIT_READY)
        return fail("not initialised");
    if (atomic_load_explicit(u64_at(base, SHMLANE_OFF_MAGIC), memory_order_relaxed) != SHMLANE_MAGIC)
        return fail("bad magic");
    if (atomic_load_explicit(u32_at(base, SHMLANE_OFF_VERSION), memory_order_relaxed) != SHMLANE_LAYOUT_VERSION)
        return fail("another layout version");
    if (atomic_load_explicit(u32_at(base, SHMLANE_OFF_HEADER_SIZE), memory_order_relaxed) != SHMLANE_HEADER_SIZE)
        return fail("another header size");
    uint64_t capacity = atomic_load_explicit(u64_at(base, SHMLANE_OFF_CAPACITY), memory_order_relaxed);
    uint64_t max_message = atomic_load_explicit(u64_at(base, SHMLANE_OFF_MAX_MESSAGE), memory_order_relaxed);
    if (capacity < SHMLANE_MIN_CAPACITY || (capacity & (capacity - 1)) != 0 ||
        capacity > size - SHMLANE_HEADER_SIZE)
        return fail("bad capacity");
    if (max_message > capacity / 2)
        return fail("bad max_message");
    uint32_t shift = (uint32_t)__builtin_ctzll(capacity);
    unsigned char *data = base + SHMLANE_OFF_DATA;

    /* Claim: state, waits (never sleeps, wakes a sleeper), pid, wake-up. */
    uint32_t idle = SHMLANE_STATE_IDLE;
    if (!atomic_compare_exchange_strong_explicit(u32_at(base, SHMLANE_OFF_CONSUMER_STATE), &idle,
                                                 SHMLANE_STATE_ACTIVE, memory_order_acq_rel,
                                                 memory_order_acquire))
        return fail("consumer role taken");
    atomic_fetch_or_explicit(u32_at(base, SHMLANE_OFF_WAITS),
                             (SHMLANE_WAITS_SET | SHMLANE_WAITS_WAKES) << SHMLANE_WAITS_CONSUMER_SHIFT,
                             memory_order_relaxed);
    atomic_store_explicit(u32_at(base, SHMLANE_OFF_CONSUMER_PID), (uint32_t)getpid(), memory_order_release);
    _Atomic uint32_t *producer_wait = u32_at(base, SHMLANE_OFF_PRODUCER_WAIT);
    atomic_fetch_add_explicit(producer_wait, 2, memory_order_acq_rel);
    futex_wake(producer_wait);

    if (hold) {
        printf("claimed\n");
        fflush(stdout);
        for (;;)
            pause();
    }

    _Atomic uint64_t *read_position = u64_at(base, SHMLANE_OFF_READ_POSITION);
    uint64_t read = atomic_load_explicit(read_position, memory_order_relaxed);
    uint64_t messages = 0, bytes = 0, sum = 0;
    int seen_closed = 0;
    for (;;) {
        uint64_t offset = read & (capacity - 1);
        uint64_t word = atomic_load_explicit(u64_at(data, offset), memory_order_acquire);
        uint32_t kind = (uint32_t)(word >> 32);
        uint64_t len = word & 0xffffffffu;
        uint64_t last_lap = read - capacity;
        if (kind == shmlane_record_kind(SHMLANE_KIND_MESSAGE, read, shift)) {
            uint64_t record = shmlane_record_size(len);
            if (len > max_message || offset + record > capacity)
                return fail("record length out of bounds");
            const unsigned char *payload = data + offset + SHMLANE_RECORD_HEADER;
            for (uint64_t i = 0; i < len; i++)
                sum += payload[i];
            messages++;
            bytes += len;
            read += record;
            atomic_store_explicit(read_position, read, memory_order_release);
            wake_sleeper(producer_wait);
            seen_closed = 0;
        } else if (kind == shmlane_record_kind(SHMLANE_KIND_PADDING, read, shift)) {
            if (offset == 0 || len != capacity - offset)
                return fail("bad padding");
            read += len; /* released with the record after it */
        } else if (word == 0 || kind == shmlane_record_kind(SHMLANE_KIND_MESSAGE, last_lap, shift) ||
                   kind == shmlane_record_kind(SHMLANE_KIND_PADDING, last_lap, shift)) {
            uint32_t state = atomic_load_explicit(u32_at(base, SHMLANE_OFF_PRODUCER_STATE), memory_order_acquire);
            if (state == SHMLANE_STATE_CLOSED) {
                if (seen_closed) {
                    uint64_t write = atomic_load_explicit(u64_at(base, SHMLANE_OFF_WRITE_POSITION),
                                                          memory_order_acquire);
                    if (write != read)
                        return fail("closed with unread bytes");
                    break;
                }
                seen_closed = 1; /* look once more: its last record */
            } else if (state > SHMLANE_STATE_CLOSED) {
                return fail("bad producer state");
            } else {
                sched_yield();
            }
        } else {
            return fail("unknown record kind");
        }
    }
    /* Close: the role, then the producer's word. */
    atomic_store_explicit(u32_at(base, SHMLANE_OFF_CONSUMER_STATE), SHMLANE_STATE_CLOSED, memory_order_release);
    atomic_fetch_add_explicit(producer_wait, 2, memory_order_acq_rel);
    futex_wake(producer_wait);
    printf("messages %llu bytes %llu sum %llu\n", (unsigned long long)messages,
           (unsigned long long)bytes, (unsigned long long)sum);
    return 0;
}
