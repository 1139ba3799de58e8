/*
 * A shmlane producer in C, for the interop test (posix/tests/c_interop.rs):
 * opens the ring a Rust `Receiver::create` made at NAME, claims the
 * producer role as shmlane-posix does (ring.h), sends COUNT messages drawn
 * from the xorshift generator seeded with SEED (length = next % 2041, bytes
 * fill, fill + 1, ... with fill = next mod 256: the test's generator),
 * waiting (polling) for room, and closes. It never sleeps and wakes a
 * sleeping consumer. Every value read from the ring is checked; a bad one
 * is exit status 3.
 *
 * usage: producer NAME COUNT SEED | producer NAME hold
 * (hold: claim the role, say "claimed", then send nothing until killed)
 */
#include "ring.h"

static uint64_t next(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv) {
    int holding = argc == 3 && strcmp(argv[2], "hold") == 0;
    if (argc != 4 && !holding) {
        fprintf(stderr, "usage: producer NAME COUNT SEED | producer NAME hold\n");
        return 2;
    }
    struct ring r = open_ring(argv[1], LOCK_PRODUCER);
    /* The consumer sleeps (for messages) on the producer line's word. */
    _Atomic uint32_t *consumer_wait = u32_at(r.base, SHMLANE_OFF_CONSUMER_WAIT);
    claim(&r, SHMLANE_OFF_PRODUCER_STATE, SHMLANE_WAITS_PRODUCER_SHIFT, SHMLANE_OFF_PRODUCER_PID, consumer_wait);
    if (holding)
        hold();

    uint64_t count = strtoull(argv[2], NULL, 10);
    uint64_t state = strtoull(argv[3], NULL, 10);
    _Atomic uint64_t *write_position = u64_at(r.base, SHMLANE_OFF_WRITE_POSITION);
    _Atomic uint64_t *read_position = u64_at(r.base, SHMLANE_OFF_READ_POSITION);
    _Atomic uint64_t *sent = u64_at(r.base, SHMLANE_OFF_PRODUCER_COUNTERS + SHMLANE_COUNTER_MESSAGES);
    uint64_t write = atomic_load_explicit(write_position, memory_order_relaxed);
    for (uint64_t n = 0; n < count; n++) {
        uint64_t len = next(&state) % 2041;
        unsigned char fill = (unsigned char)next(&state);
        if (len > r.max_message)
            fail("message longer than the ring's maximum");
        /* Where it goes: after padding to the end, if it does not fit there. */
        uint64_t record = shmlane_record_size(len);
        uint64_t tail = r.capacity - (write & r.mask);
        uint64_t pad = record <= tail ? 0 : tail;
        uint64_t needed = pad + record;
        /* Room: what the consumer released (acquire: it is done reading). */
        uint64_t read;
        for (;;) {
            read = atomic_load_explicit(read_position, memory_order_acquire);
            uint64_t used = write - read;
            if (used > r.capacity)
                fail("read position outside the window");
            if (r.capacity - used >= needed)
                break;
            if (atomic_load_explicit(u32_at(r.base, SHMLANE_OFF_CONSUMER_STATE), memory_order_acquire) ==
                SHMLANE_STATE_CLOSED)
                fail("the consumer closed");
            sched_yield();
        }
        uint64_t start = write + pad;
        unsigned char *payload = r.data + (start & r.mask) + SHMLANE_RECORD_HEADER;
        for (uint64_t i = 0; i < len; i++)
            payload[i] = (unsigned char)(fill + i);
        uint64_t message = ((uint64_t)shmlane_record_kind(SHMLANE_KIND_MESSAGE, start, r.shift) << 32) | len;
        uint64_t first = message;
        if (pad != 0) {
            /* The message starts the next lap; the padding record publishes it. */
            atomic_store_explicit(u64_at(r.data, start & r.mask), message, memory_order_relaxed);
            first = ((uint64_t)shmlane_record_kind(SHMLANE_KIND_PADDING, write, r.shift) << 32) | pad;
        }
        uint64_t end = write + needed;
        /* The word after the record reads "nothing yet": 0, if there is room for it. */
        if (r.capacity - (end - read) >= SHMLANE_RECORD_HEADER)
            atomic_store_explicit(u64_at(r.data, end & r.mask), 0, memory_order_relaxed);
        atomic_store_explicit(u64_at(r.data, write & r.mask), first, memory_order_release);
        /* Its count of messages, for anyone looking (statistics: relaxed). */
        atomic_store_explicit(sent, n + 1, memory_order_relaxed);
        atomic_store_explicit(write_position, end, memory_order_release);
        write = end;
        wake_sleeper(consumer_wait);
    }
    close_role(&r, SHMLANE_OFF_PRODUCER_STATE, consumer_wait);
    return 0;
}
