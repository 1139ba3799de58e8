/*
 * What the C consumer and producer of the interop test share: opening and
 * checking a ring a Rust peer made, holding shmlane-posix's lock bytes,
 * claiming a role, and the wake-ups of the protocol (core/include/shmlane.h
 * describes it). A test helper, not a library: it exits on errors.
 */
#ifndef SHMLANE_TEST_RING_H
#define SHMLANE_TEST_RING_H

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

/* shmlane-posix's lock bytes (posix/src/lock.rs): each role's byte is
 * write-locked while the role is active, the presence byte read-locked by
 * every handle. Open-file-description locks, which the kernel drops when
 * the holder dies: an active role whose lock is free is a dead peer. */
#define LOCK_PRODUCER 0
#define LOCK_CONSUMER 1
#define LOCK_PRESENCE 3

/* A mapped, checked ring. */
struct ring {
    unsigned char *base;
    unsigned char *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t max_message;
    uint32_t shift;
};

/* Exits with status 3: a check failed (never undefined behaviour). */
static void fail(const char *what) {
    fprintf(stderr, "%s\n", what);
    exit(3);
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

/* After moving its position: wake the peer if it announced sleep on
 * `word` (the fence pairs with the one after its announcement). */
static void wake_sleeper(_Atomic uint32_t *word) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(word, memory_order_relaxed) & SHMLANE_SLEEPING) {
        atomic_fetch_add_explicit(word, 1, memory_order_acq_rel);
        futex_wake(word);
    }
}

/* A claim, a close: move the word on (keeping its sleeper bit), wake. */
static void bump_and_wake(_Atomic uint32_t *word) {
    atomic_fetch_add_explicit(word, 2, memory_order_acq_rel);
    futex_wake(word);
}

static void ofd_lock(int fd, short kind, off_t byte, const char *what) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = kind;
    lock.l_whence = SEEK_SET;
    lock.l_start = byte;
    lock.l_len = 1;
    if (fcntl(fd, F_OFD_SETLK, &lock) != 0)
        fail(what);
}

/* Opens the segment `name` (never through a symlink), maps it, takes the
 * presence lock and the role's lock byte, and checks the header. */
static struct ring open_ring(const char *name, off_t role_byte) {
    int fd = shm_open(name, O_RDWR | O_NOFOLLOW, 0);
    if (fd < 0)
        fail("shm_open");
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)SHMLANE_HEADER_SIZE)
        fail("too small for a header");
    size_t size = (size_t)st.st_size;
    unsigned char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        fail("mmap");
    ofd_lock(fd, F_RDLCK, LOCK_PRESENCE, "presence lock");
    ofd_lock(fd, F_WRLCK, role_byte, "role lock (role taken?)");
    if (atomic_load_explicit(u32_at(base, SHMLANE_OFF_INIT), memory_order_acquire) != SHMLANE_INIT_READY)
        fail("not initialised");
    if (atomic_load_explicit(u64_at(base, SHMLANE_OFF_MAGIC), memory_order_relaxed) != SHMLANE_MAGIC ||
        atomic_load_explicit(u32_at(base, SHMLANE_OFF_VERSION), memory_order_relaxed) != SHMLANE_LAYOUT_VERSION ||
        atomic_load_explicit(u32_at(base, SHMLANE_OFF_HEADER_SIZE), memory_order_relaxed) != SHMLANE_HEADER_SIZE)
        fail("not a ring of this layout");
    struct ring r;
    r.base = base;
    r.data = base + SHMLANE_OFF_DATA;
    r.capacity = atomic_load_explicit(u64_at(base, SHMLANE_OFF_CAPACITY), memory_order_relaxed);
    r.max_message = atomic_load_explicit(u64_at(base, SHMLANE_OFF_MAX_MESSAGE), memory_order_relaxed);
    if (r.capacity < SHMLANE_MIN_CAPACITY || (r.capacity & (r.capacity - 1)) != 0 ||
        r.capacity > size - SHMLANE_HEADER_SIZE || r.max_message > r.capacity / 2)
        fail("bad capacity or max_message");
    r.mask = r.capacity - 1;
    r.shift = (uint32_t)__builtin_ctzll(r.capacity);
    return r;
}

/* Claims a role for a side that never sleeps and wakes a sleeping peer:
 * its state IDLE -> ACTIVE, its waits bits, its pid, then the peer's word
 * (`peer_wait`) moved on and woken. */
static void claim(struct ring *r, size_t state_off, uint32_t waits_shift, size_t pid_off,
                  _Atomic uint32_t *peer_wait) {
    uint32_t idle = SHMLANE_STATE_IDLE;
    if (!atomic_compare_exchange_strong_explicit(u32_at(r->base, state_off), &idle, SHMLANE_STATE_ACTIVE,
                                                 memory_order_acq_rel, memory_order_acquire))
        fail("role taken");
    atomic_fetch_or_explicit(u32_at(r->base, SHMLANE_OFF_WAITS),
                             (SHMLANE_WAITS_SET | SHMLANE_WAITS_WAKES) << waits_shift, memory_order_relaxed);
    atomic_store_explicit(u32_at(r->base, pid_off), (uint32_t)getpid(), memory_order_release);
    bump_and_wake(peer_wait);
}

/* Closes a role: CLOSED, then the peer's word moved on and woken. */
static void close_role(struct ring *r, size_t state_off, _Atomic uint32_t *peer_wait) {
    atomic_store_explicit(u32_at(r->base, state_off), SHMLANE_STATE_CLOSED, memory_order_release);
    bump_and_wake(peer_wait);
}

/* For "hold": say the role is claimed, then do nothing until killed. */
static void hold(void) {
    printf("claimed\n");
    fflush(stdout);
    for (;;)
        pause();
}

#endif /* SHMLANE_TEST_RING_H */
