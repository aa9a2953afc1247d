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
 * A stream starting with 0x80 negotiates memcached's binary protocol (kvs_bin.c); for those
 * the chunk byte's low two bits also pick the options binary replies depend on: none, -C
 * (no CAS), -S (SASL, with a password table so PLAIN can succeed) or -F (no flush).
 *
 * Build and run: scripts/fuzz.sh [seconds]. Without libFuzzer, fuzz_replay.c replays the
 * corpus (the ctest test test_kvs_fuzz_replay).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_auth.h"
#include "kvs_proto.h"
#include "kvs_settings.h"
#include "kvs_store.h"

/* Small limits so a short input reaches eviction and the size limit. */
#define FUZZ_MEM_LIMIT (2u << 20)
#define FUZZ_ITEM_MAX (64u << 10)
#define FUZZ_HASHPOWER 8u
#define FUZZ_NOW 1700000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The options a binary stream runs with (see the header comment). */
static void binary_options(struct kvs_settings *set, struct kvs_ctx *ctx, size_t chunk,
                           struct kvs_auth **auth) {
    static const char db[] = "u:p\nalice:s3cret\n";
    unsigned bad;
    switch (chunk & 3) {
    case 1: set->use_cas = false; break;
    case 2:
        set->sasl = true;
        if (kvs_auth_parse(&kvs_alloc_libc, db, sizeof db - 1, auth, &bad))
            abort();
        ctx->auth_sasl = *auth;
        break;
    case 3: set->flush_enabled = false; break;
    default: break;
    }
}

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
    struct kvs_settings set;
    kvs_settings_default(&set);
    struct kvs_auth *auth = NULL;
    if (size > 0 && data[0] == 0x80)
        binary_options(&set, &ctx, chunk, &auth);
    ctx.settings = &set;
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
    /* (curr_items may exceed total_items: `stats reset` zeroes the latter, as memcached) */
    if (st.malloced > FUZZ_MEM_LIMIT + 64u * (1u << 20))
        abort();
    kvs_proto_fini(&p);
    kvs_buf_fini(&in);
    kvs_buf_fini(&out);
    kvs_store_destroy(store);
    kvs_auth_free(auth);
    return 0;
}
