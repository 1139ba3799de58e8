/*
 * shmlane.h: the shared-memory layout of a shmlane ring (layout version 6),
 * for programs in other languages that map a ring a Rust peer made.
 *
 * This file describes; the Rust crate shmlane-core defines. A test
 * (core/tests/c_header.rs) compiles this header with the system C compiler
 * and compares every value and offset below with the Rust layout, so the
 * two cannot drift apart unnoticed.
 *
 * A ring is a 384-byte header followed by the data area of `capacity`
 * bytes (a power of two), in a region aligned to 128 bytes (a mapping is).
 * The header is three 128-byte lines, so that the producer's and the
 * consumer's hot words never share what the hardware moves between cores.
 * Every field is an integer in the machine's byte order, accessed only as
 * an atomic of its size (C11 <stdatomic.h>), because two processes write
 * the header concurrently.
 *
 * The record format. A record is an 8-byte header, len | kind << 32 as one
 * uint64_t, then len payload bytes, padded to a multiple of 8. A record
 * never straddles the end of the data area: when one would not fit before
 * the end, the producer first writes a padding record (kind PADDING, len =
 * the bytes to the end), which the consumer skips. The kind carries the lap
 * of the ring the record was written in: bits 8..16 of kind are
 * (position / capacity) mod 256 (see shmlane_record_kind). Payloads are
 * 8-byte aligned (SHMLANE_PAYLOAD_ALIGN).
 *
 * The protocol, as C11 atomics (positions count bytes from 0, wrapping at
 * 2^64; the data offset of position p is p mod capacity). The wait words
 * are eventcounts: bit 0 (SHMLANE_SLEEPING) says a side is (about to be)
 * asleep on the word, the rest counts. The consumer sleeps on the producer
 * line's peer_wait (for messages), the producer on the consumer line's
 * (for room).
 *  - Creation: the creator zeroes the header, stores the identity fields
 *    (relaxed), then init = SHMLANE_INIT_READY, memory_order_release. An
 *    opener loads init with memory_order_acquire, then checks magic,
 *    version, header_size, capacity and max_message before anything else.
 *  - Claiming a role: compare-exchange its state word IDLE -> ACTIVE
 *    (acq_rel; ACTIVE or CLOSED: taken). fetch_or (relaxed) its WAITS_SET
 *    bit, WAITS_SLEEPS if it may sleep and WAITS_WAKES if it wakes a
 *    sleeping peer, shifted by its WAITS_*_SHIFT, into `waits`; if the
 *    peer's bits were set and one side sleeps while the other cannot wake
 *    it, give the role back (clear the bits, ACTIVE -> IDLE) and fail. Store
 *    its pid in its *_pid word (release). Then fetch_add 2 (acq_rel) to the
 *    peer's wait word and futex-wake it. shmlane-posix also holds an
 *    open-file-description lock on the role's byte of the segment for as
 *    long as the role is active (active with its lock free: a dead peer).
 *  - Publishing (producer): write payload and padding; if the ring has room
 *    for the word at the new write position, store 0 there (relaxed);
 *    store the record header with memory_order_release; store the write
 *    position (release). Then atomic_thread_fence(seq_cst) and load the
 *    consumer's wait word (relaxed): if SLEEPING is set, fetch_add 1
 *    (acq_rel: clears the bit, moves the count) and futex-wake it.
 *  - Consuming: load the record header at the read position with
 *    memory_order_acquire. 0, or a kind of the previous lap, means "nothing
 *    yet"; a kind of this lap is a record (check len against max_message
 *    and the room to the end). Copy the payload, store the read position
 *    past the record (release), then the same fence and check of the
 *    producer's wait word.
 *  - Sleeping: fetch_or SLEEPING (relaxed) into the word, keep the value
 *    (the ticket), atomic_thread_fence(seq_cst), look at the ring again; if
 *    there is still nothing to do, futex-wait on the word while it holds the
 *    ticket, else compare-exchange ticket -> ticket + 1 to take the
 *    announcement back.
 *  - Closing: store CLOSED into the role's state word (release), fetch_add 2
 *    (acq_rel) to the peer's wait word and futex-wake it.
 *  - Counting (statistics for tools such as `shmlane stat`; nothing depends
 *    on them): each side keeps four uint64_t counters on its own line
 *    (struct shmlane_counters at SHMLANE_OFF_*_COUNTERS), and only it writes
 *    them, with relaxed stores: the messages it published or consumed
 *    (stored, relaxed, just before each store of its position, which is
 *    the count of ring bytes it moved),
 *    the calls that found the ring full or empty (once per call), the
 *    waits in which it slept (once per call) and the wake-ups it sent
 *    (after each futex-wake of the peer). A side that does not count leaves
 *    them 0; a reader loads them relaxed and trusts them for nothing.
 * Every value read from the header may have been written by a buggy or
 * hostile peer: check it before use, and treat a bad one as an error.
 */
#ifndef SHMLANE_H
#define SHMLANE_H

#include <stddef.h>
#include <stdint.h>

/* Identity. */
#define SHMLANE_MAGIC UINT64_C(0x00454E414C4D4853) /* "SHMLANE\0" in memory order (little-endian) */
#define SHMLANE_LAYOUT_VERSION 6u
#define SHMLANE_INIT_READY 0x52445952u
#define SHMLANE_HEADER_SIZE 384u
#define SHMLANE_LINE_SIZE 128u
#define SHMLANE_REGION_ALIGN 128u
#define SHMLANE_MIN_CAPACITY 64u
#define SHMLANE_PAYLOAD_ALIGN 8u
#define SHMLANE_MAX_MESSAGE 4294967280u

/* Records. */
#define SHMLANE_RECORD_HEADER 8u
#define SHMLANE_KIND_MESSAGE 0x4D530001u
#define SHMLANE_KIND_PADDING 0x4D530002u
#define SHMLANE_KIND_LAP_MASK 0xFF00u

/* Role states. */
#define SHMLANE_STATE_IDLE 0u
#define SHMLANE_STATE_ACTIVE 1u
#define SHMLANE_STATE_CLOSED 2u

/* The `waits` word: each side's bits, shifted. */
#define SHMLANE_WAITS_SET 1u
#define SHMLANE_WAITS_SLEEPS 2u
#define SHMLANE_WAITS_WAKES 4u
#define SHMLANE_WAITS_PRODUCER_SHIFT 0u
#define SHMLANE_WAITS_CONSUMER_SHIFT 4u
#define SHMLANE_WAITS_ALL 0x77u

/* The low bit of a wait word: its side announced that it is (about to be) asleep. */
#define SHMLANE_SLEEPING 1u

/* Offsets within a struct shmlane_counters (each a uint64_t). */
#define SHMLANE_COUNTER_MESSAGES 0u /* messages published (producer) or consumed (consumer) */
#define SHMLANE_COUNTER_STALLS 8u   /* calls that found the ring full (producer) or empty (consumer) */
#define SHMLANE_COUNTER_SLEEPS 16u  /* waits in which the side slept */
#define SHMLANE_COUNTER_WAKES 24u   /* wake-ups it sent its sleeping peer */

/* Offsets in the header (bytes from the start of the region). */
#define SHMLANE_OFF_MAGIC 0u
#define SHMLANE_OFF_VERSION 8u
#define SHMLANE_OFF_HEADER_SIZE 12u
#define SHMLANE_OFF_CAPACITY 16u
#define SHMLANE_OFF_MAX_MESSAGE 24u
#define SHMLANE_OFF_PRODUCER_STATE 32u
#define SHMLANE_OFF_CONSUMER_STATE 36u
#define SHMLANE_OFF_INIT 40u
#define SHMLANE_OFF_WAITS 44u
#define SHMLANE_OFF_PRODUCER_CPU 48u
#define SHMLANE_OFF_CONSUMER_CPU 52u
#define SHMLANE_OFF_PRODUCER_PID 56u
#define SHMLANE_OFF_CONSUMER_PID 60u
#define SHMLANE_OFF_MESSAGE_TYPE 64u
#define SHMLANE_OFF_WRITE_POSITION 128u /* producer line */
#define SHMLANE_OFF_CONSUMER_WAIT 136u  /* producer line's peer_wait: the consumer sleeps here */
#define SHMLANE_OFF_READ_POSITION 256u  /* consumer line */
#define SHMLANE_OFF_PRODUCER_WAIT 264u  /* consumer line's peer_wait: the producer sleeps here */
#define SHMLANE_OFF_PRODUCER_COUNTERS 144u /* producer line: struct shmlane_counters */
#define SHMLANE_OFF_CONSUMER_COUNTERS 272u /* consumer line: struct shmlane_counters */
#define SHMLANE_OFF_DATA 384u

/* The header as a C struct (plain integers: access each field through
 * atomic_* on an _Atomic-qualified pointer to it, or the compiler's
 * __atomic builtins). */
struct shmlane_identity {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t capacity;
    uint64_t max_message;
    uint32_t producer_state;
    uint32_t consumer_state;
    uint32_t init;
    uint32_t waits;
    uint32_t producer_cpu;
    uint32_t consumer_cpu;
    uint32_t producer_pid;
    uint32_t consumer_pid;
    uint64_t message_type;
    uint8_t reserved[SHMLANE_LINE_SIZE - 72];
};

struct shmlane_counters {
    uint64_t messages;
    uint64_t stalls;
    uint64_t sleeps;
    uint64_t wakes;
};

struct shmlane_line {
    uint64_t position;
    uint32_t peer_wait;
    uint32_t reserved0;
    struct shmlane_counters counters;
    uint8_t reserved[SHMLANE_LINE_SIZE - 48];
};

struct shmlane_header {
    struct shmlane_identity identity;
    struct shmlane_line producer;
    struct shmlane_line consumer;
};

_Static_assert(sizeof(struct shmlane_header) == SHMLANE_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct shmlane_header, identity.magic) == SHMLANE_OFF_MAGIC, "magic");
_Static_assert(offsetof(struct shmlane_header, identity.version) == SHMLANE_OFF_VERSION, "version");
_Static_assert(offsetof(struct shmlane_header, identity.header_size) == SHMLANE_OFF_HEADER_SIZE, "header_size");
_Static_assert(offsetof(struct shmlane_header, identity.capacity) == SHMLANE_OFF_CAPACITY, "capacity");
_Static_assert(offsetof(struct shmlane_header, identity.max_message) == SHMLANE_OFF_MAX_MESSAGE, "max_message");
_Static_assert(offsetof(struct shmlane_header, identity.producer_state) == SHMLANE_OFF_PRODUCER_STATE, "producer_state");
_Static_assert(offsetof(struct shmlane_header, identity.consumer_state) == SHMLANE_OFF_CONSUMER_STATE, "consumer_state");
_Static_assert(offsetof(struct shmlane_header, identity.init) == SHMLANE_OFF_INIT, "init");
_Static_assert(offsetof(struct shmlane_header, identity.waits) == SHMLANE_OFF_WAITS, "waits");
_Static_assert(offsetof(struct shmlane_header, identity.producer_cpu) == SHMLANE_OFF_PRODUCER_CPU, "producer_cpu");
_Static_assert(offsetof(struct shmlane_header, identity.consumer_cpu) == SHMLANE_OFF_CONSUMER_CPU, "consumer_cpu");
_Static_assert(offsetof(struct shmlane_header, identity.producer_pid) == SHMLANE_OFF_PRODUCER_PID, "producer_pid");
_Static_assert(offsetof(struct shmlane_header, identity.consumer_pid) == SHMLANE_OFF_CONSUMER_PID, "consumer_pid");
_Static_assert(offsetof(struct shmlane_header, identity.message_type) == SHMLANE_OFF_MESSAGE_TYPE, "message_type");
_Static_assert(offsetof(struct shmlane_header, producer.position) == SHMLANE_OFF_WRITE_POSITION, "write position");
_Static_assert(offsetof(struct shmlane_header, producer.peer_wait) == SHMLANE_OFF_CONSUMER_WAIT, "consumer wait");
_Static_assert(offsetof(struct shmlane_header, consumer.position) == SHMLANE_OFF_READ_POSITION, "read position");
_Static_assert(offsetof(struct shmlane_header, consumer.peer_wait) == SHMLANE_OFF_PRODUCER_WAIT, "producer wait");
_Static_assert(offsetof(struct shmlane_header, producer.counters) == SHMLANE_OFF_PRODUCER_COUNTERS, "producer counters");
_Static_assert(offsetof(struct shmlane_header, consumer.counters) == SHMLANE_OFF_CONSUMER_COUNTERS, "consumer counters");
_Static_assert(offsetof(struct shmlane_counters, messages) == SHMLANE_COUNTER_MESSAGES, "messages");
_Static_assert(offsetof(struct shmlane_counters, stalls) == SHMLANE_COUNTER_STALLS, "stalls");
_Static_assert(offsetof(struct shmlane_counters, sleeps) == SHMLANE_COUNTER_SLEEPS, "sleeps");
_Static_assert(offsetof(struct shmlane_counters, wakes) == SHMLANE_COUNTER_WAKES, "wakes");

/* The kind of a record of kind `base` whose header is at ring position
 * `position`, in a ring of capacity 1 << capacity_shift. */
static inline uint32_t shmlane_record_kind(uint32_t base, uint64_t position, uint32_t capacity_shift) {
    return base | (((uint32_t)(position >> capacity_shift) << 8) & SHMLANE_KIND_LAP_MASK);
}

/* Bytes a record with a len-byte payload occupies. */
static inline uint64_t shmlane_record_size(uint64_t len) {
    return SHMLANE_RECORD_HEADER + ((len + 7) & ~(uint64_t)7);
}

#endif /* SHMLANE_H */
