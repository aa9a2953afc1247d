/*
 * fuzz_kvs_proto — libFuzzer target for eleos-kvs's protocol parser and store.
 *
 * Each input is one client's byte stream. The first byte picks how the stream is cut into
 * reads (1..255 bytes, 0 = all at once), exercising every partial-line and partial-value
 * path of kvs_proto_feed. A fresh store (small -m, small -I so eviction and "too large"
 * are reached) is made per input, so every crash reproduces from its input alone.
 * Invariants checked: feed never consumes more than it was given, an aborted connection
 * stops consuming, and the store's accounting stays consistent.
 *
 * Build and run: scripts/fuzz.sh [seconds]. Without libFuzzer, fuzz_replay.c replays the
 * corpus (the ctest test test_kvs_fuzz_replay).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_proto.h"
#include "kvs_store.h"

/* Small limits so a short input reaches eviction and the size limit. */
#define FUZZ_MEM_LIMIT (2u << 20)
#define FUZZ_ITEM_MAX (64u << 10)
#define FUZZ_HASHPOWER 8u
#define FUZZ_NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    size_t chunk = data[0];
    data++;
    size--;
    struct kvs_store_config cfg;
    kvs_store_config_default(&cfg);
    cfg.mem_limit = FUZZ_MEM_LIMIT;
    cfg.item_size_max = FUZZ_ITEM_MAX;
    cfg.hashpower = FUZZ_HASHPOWER;
    cfg.now = FUZZ_NOW;
    struct kvs_store *store;
    if (kvs_store_create(&cfg, &store))
        abort();
    struct kvs_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.store = store;
    ctx.alloc = &kvs_alloc_libc;
    struct kvs_thread_stats stats;
    memset(&stats, 0, sizeof stats);
    struct kvs_proto p;
    kvs_proto_init(&p, &ctx, &stats);
    struct kvs_buf in, out;
    kvs_buf_init(&in, &kvs_alloc_libc);
    kvs_buf_init(&out, &kvs_alloc_libc);
    for (size_t off = 0; off < size && !p.close;) {
        size_t k = chunk && size - off > chunk ? chunk : size - off;
        if (kvs_buf_append(&in, data + off, k))
            abort();
        off += k;
        /* The clock moves with the stream, so expiry and delayed flush are reached. */
        kvs_store_clock_set(store, FUZZ_NOW + (int64_t)(off >> 6));
        size_t used = kvs_proto_feed(&p, in.data, in.len, &out);
        if (used > in.len)
            abort();
        kvs_buf_consume(&in, used);
        out.len = 0; /* "sent" */
    }
    struct kvs_store_stats st;
    kvs_store_stats(store, &st);
    if (st.curr_items > st.total_items || st.malloced > FUZZ_MEM_LIMIT + 64u * (1u << 20))
        abort();
    kvs_proto_fini(&p);
    kvs_buf_fini(&in);
    kvs_buf_fini(&out);
    kvs_store_destroy(store);
    return 0;
}
