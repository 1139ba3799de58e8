/*
 * A shmlane producer in C, for the interop test (posix/tests/c_interop.rs):
 * opens the ring a Rust `Receiver::create` made at NAME, claims the
 * producer role as shmlane-posix does (its OFD lock bytes, then the ring's
 * state, waits bits, pid and claim wake-up), sends COUNT messages drawn from
 * the xorshift generator seeded with SEED (length = next % 2041, bytes
 * fill, fill + 1, ... with fill = next mod 256: the test's generator),
 * waiting (polling) for room, and closes. It never sleeps and wakes a
 * sleeping consumer. Every value read from the ring is checked; a bad one
 * is exit code 3.
 *
 * usage: producer NAME COUNT SEED | producer NAME hold
 * (hold: claim the role, say "claimed", then send nothing until killed)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shmlane.h"

/* shmlane-posix's lock bytes (posix/src/lock.rs). */
#define LOCK_PRODUCER 0
#define LOCK_PRESENCE 3

static int fail(const char *what) {
    fprintf(stderr, "producer: %s\n", what);
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

static void wake_sleeper(_Atomic uint32_t *word) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(word, memory_order_relaxed) & SHMLANE_SLEEPING) {
        atomic_fetch_add_explicit(word, 1, memory_order_acq_rel);
        futex_wake(word);
    }
}

static uint64_t next(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv) {
    int hold = argc == 3 && strcmp(argv[2], "hold") == 0;
    if (argc != 4 && !hold) {
        fprintf(stderr, "usage: producer NAME COUNT SEED | producer NAME hold\n");
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
    if (ofd_lock(fd, F_RDLCK, LOCK_PRESENCE) != 0)
        return fail("presence lock");
    if (ofd_lock(fd, F_WRLCK, LOCK_PRODUCER) != 0)
        return fail("producer lock (role taken?)");

    if (atomic_load_explicit(u32_at(base, SHMLANE_OFF_INIT), memory_order_acquire) != SHMLANE_INIT_READY)
        return fail("not initialised");
    if (atomic_load_explicit(u64_at(base, SHMLANE_OFF_MAGIC), memory_order_relaxed) != SHMLANE_MAGIC ||
        atomic_load_explicit(u32_at(base, SHMLANE_OFF_VERSION), memory_order_relaxed) != SHMLANE_LAYOUT_VERSION ||
        atomic_load_explicit(u32_at(base, SHMLANE_OFF_HEADER_SIZE), memory_order_relaxed) != SHMLANE_HEADER_SIZE)
        return fail("not a ring of this layout");
    uint64_t capacity = atomic_load_explicit(u64_at(base, SHMLANE_OFF_CAPACITY), memory_order_relaxed);
    uint64_t max_message = atomic_load_explicit(u64_at(base, SHMLANE_OFF_MAX_MESSAGE), memory_order_relaxed);
    if (capacity < SHMLANE_MIN_CAPACITY || (capacity & (capacity - 1)) != 0 ||
        capacity > size - SHMLANE_HEADER_SIZE || max_message > capacity / 2)
        return fail("bad capacity or max_message");
    uint32_t shift = (uint32_t)__builtin_ctzll(capacity);
    uint64_t mask = capacity - 1;
    unsigned char *data = base + SHMLANE_OFF_DATA;

    /* Claim: state, waits (never sleeps, wakes a sleeper), pid, wake-up. */
    uint32_t idle = SHMLANE_STATE_IDLE;
    if (!atomic_compare_exchange_strong_explicit(u32_at(base, SHMLANE_OFF_PRODUCER_STATE), &idle,
                                                 SHMLANE_STATE_ACTIVE, memory_order_acq_rel,
                                                 memory_order_acquire))
        return fail("producer role taken");
    atomic_fetch_or_explicit(u32_at(base, SHMLANE_OFF_WAITS),
                             (SHMLANE_WAITS_SET | SHMLANE_WAITS_WAKES) << SHMLANE_WAITS_PRODUCER_SHIFT,
                             memory_order_relaxed);
    atomic_store_explicit(u32_at(base, SHMLANE_OFF_PRODUCER_PID), (uint32_t)getpid(), memory_order_release);
    _Atomic uint32_t *consumer_wait = u32_at(base, SHMLANE_OFF_CONSUMER_WAIT);
    atomic_fetch_add_explicit(consumer_wait, 2, memory_order_acq_rel);
    futex_wake(consumer_wait);
    if (hold) {
        printf("claimed\n");
        fflush(stdout);
        for (;;)
            pause();
    }

    uint64_t count = strtoull(argv[2], NULL, 10);
    uint64_t state = strtoull(argv[3], NULL, 10);
    _Atomic uint64_t *write_position = u64_at(base, SHMLANE_OFF_WRITE_POSITION);
    _Atomic uint64_t *read_position = u64_at(base, SHMLANE_OFF_READ_POSITION);
    uint64_t write = atomic_load_explicit(write_position, memory_order_relaxed);
    for (uint64_t n = 0; n < count; n++) {
        uint64_t len = next(&state) % 2041;
        unsigned char fill = (unsigned char)next(&state);
        if (len > max_message)
            return fail("message longer than the ring's maximum");
        uint64_t record = shmlane_record_size(len);
        uint64_t tail = capacity - (write & mask);
        uint64_t pad = record <= tail ? 0 : tail;
        uint64_t needed = pad + record;
        /* Room: what the consumer released (Acquire: it is done reading). */
        uint64_t read;
        for (;;) {
            read = atomic_load_explicit(read_position, memory_order_acquire);
            uint64_t used = write - read;
            if (used > capacity)
                return fail("read position outside the window");
            if (capacity - used >= needed)
                break;
            if (atomic_load_explicit(u32_at(base, SHMLANE_OFF_CONSUMER_STATE), memory_order_acquire) ==
                SHMLANE_STATE_CLOSED)
                return fail("the consumer closed");
            sched_yield();
        }
        uint64_t start = write + pad;
        unsigned char *payload = data + (start & mask) + SHMLANE_RECORD_HEADER;
        for (uint64_t i = 0; i < len; i++)
            payload[i] = (unsigned char)(fill + i);
        uint64_t message = ((uint64_t)shmlane_record_kind(SHMLANE_KIND_MESSAGE, start, shift) << 32) | len;
        uint64_t first = message;
        if (pad != 0) {
            /* The message starts the next lap; the padding record publishes it. */
            atomic_store_explicit(u64_at(data, start & mask), message, memory_order_relaxed);
            first = ((uint64_t)shmlane_record_kind(SHMLANE_KIND_PADDING, write, shift) << 32) | pad;
        }
        uint64_t end = write + needed;
        /* The word after the record reads "nothing yet": 0, if there is room for it. */
        if (capacity - (end - read) >= SHMLANE_RECORD_HEADER)
            atomic_store_explicit(u64_at(data, end & mask), 0, memory_order_relaxed);
        atomic_store_explicit(u64_at(data, write & mask), first, memory_order_release);
        atomic_store_explicit(write_position, end, memory_order_release);
        write = end;
        wake_sleeper(consumer_wait);
    }
    /* Close: the role, then the consumer's word. */
    atomic_store_explicit(u32_at(base, SHMLANE_OFF_PRODUCER_STATE), SHMLANE_STATE_CLOSED, memory_order_release);
    atomic_fetch_add_explicit(consumer_wait, 2, memory_order_acq_rel);
    futex_wake(consumer_wait);
    return 0;
}
