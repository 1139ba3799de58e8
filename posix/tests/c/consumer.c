/*
 * A shmlane consumer in C, for the interop test (posix/tests/c_interop.rs):
 * opens the ring a Rust `Sender::create` made at NAME, claims the consumer
 * role as shmlane-posix does (ring.h), receives every message until the
 * sender closes, and prints "messages N bytes B sum S" (S: the sum of all
 * payload bytes). It polls (never sleeps) and wakes a sleeping producer.
 * Every value read from the ring is checked; a bad one is exit status 3.
 *
 * usage: consumer NAME [hold]
 * (hold: claim the role, say "claimed", then read nothing until killed)
 */
#include "ring.h"

int main(int argc, char **argv) {
    int holding = argc == 3 && strcmp(argv[2], "hold") == 0;
    if (argc != 2 && !holding) {
        fprintf(stderr, "usage: consumer NAME [hold]\n");
        return 2;
    }
    struct ring r = open_ring(argv[1], LOCK_CONSUMER);
    /* The producer sleeps (for room) on the consumer line's word. */
    _Atomic uint32_t *producer_wait = u32_at(r.base, SHMLANE_OFF_PRODUCER_WAIT);
    claim(&r, SHMLANE_OFF_CONSUMER_STATE, SHMLANE_WAITS_CONSUMER_SHIFT, SHMLANE_OFF_CONSUMER_PID, producer_wait);
    if (holding)
        hold();

    _Atomic uint64_t *read_position = u64_at(r.base, SHMLANE_OFF_READ_POSITION);
    uint64_t read = atomic_load_explicit(read_position, memory_order_relaxed);
    _Atomic uint64_t *received = u64_at(r.base, SHMLANE_OFF_CONSUMER_COUNTERS + SHMLANE_COUNTER_MESSAGES);
    uint64_t messages = 0, bytes = 0, sum = 0;
    int seen_closed = 0;
    for (;;) {
        uint64_t offset = read & r.mask;
        uint64_t word = atomic_load_explicit(u64_at(r.data, offset), memory_order_acquire);
        uint32_t kind = (uint32_t)(word >> 32);
        uint64_t len = word & 0xffffffffu;
        uint64_t last_lap = read - r.capacity;
        if (kind == shmlane_record_kind(SHMLANE_KIND_MESSAGE, read, r.shift)) {
            uint64_t record = shmlane_record_size(len);
            if (len > r.max_message || offset + record > r.capacity)
                fail("record length out of bounds");
            const unsigned char *payload = r.data + offset + SHMLANE_RECORD_HEADER;
            for (uint64_t i = 0; i < len; i++)
                sum += payload[i];
            messages++;
            bytes += len;
            read += record;
            /* Its count of messages, for anyone looking (statistics: relaxed). */
            atomic_store_explicit(received, messages, memory_order_relaxed);
            atomic_store_explicit(read_position, read, memory_order_release);
            wake_sleeper(producer_wait);
            seen_closed = 0;
        } else if (kind == shmlane_record_kind(SHMLANE_KIND_PADDING, read, r.shift)) {
            if (offset == 0 || len != r.capacity - offset)
                fail("bad padding");
            read += len; /* released with the record after it */
        } else if (word == 0 || kind == shmlane_record_kind(SHMLANE_KIND_MESSAGE, last_lap, r.shift) ||
                   kind == shmlane_record_kind(SHMLANE_KIND_PADDING, last_lap, r.shift)) {
            /* Nothing yet; the producer publishes before it closes. */
            uint32_t state = atomic_load_explicit(u32_at(r.base, SHMLANE_OFF_PRODUCER_STATE), memory_order_acquire);
            if (state == SHMLANE_STATE_CLOSED) {
                if (seen_closed) {
                    uint64_t write = atomic_load_explicit(u64_at(r.base, SHMLANE_OFF_WRITE_POSITION),
                                                          memory_order_acquire);
                    if (write != read)
                        fail("closed with unread bytes");
                    break;
                }
                seen_closed = 1; /* look once more: its last record */
            } else if (state > SHMLANE_STATE_CLOSED) {
                fail("bad producer state");
            } else {
                sched_yield();
            }
        } else {
            fail("unknown record kind");
        }
    }
    close_role(&r, SHMLANE_OFF_CONSUMER_STATE, producer_wait);
    printf("messages %llu bytes %llu sum %llu\n", (unsigned long long)messages, (unsigned long long)bytes,
           (unsigned long long)sum);
    return 0;
}
