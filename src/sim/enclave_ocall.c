/*
 * Host functions of one's own, with buffers: the enclave side of what the SGX SDK's edger8r
 * generates for [in], [out] and [size] (eleos/enclave.h, eleos_ocall_buffers).
 *
 * The host function never sees an enclave address. Its arguments live in an untrusted
 * scratch block of the calling thread: a header (struct eleos_ocall_args), then a copy of
 * the [in] bytes, then room for the [out] bytes. After the call the enclave reads the
 * length the host reported once, checks it against the room it gave, and only then copies
 * that many bytes in; a length beyond the room is -EIO with the caller's buffer untouched.
 *
 * The block is kept per thread (an enclave thread-local holds its address and size, so the
 * enclave relies on no host copy of them) and grows when a call needs more: in steady state
 * a call costs the one OCALL, as the SDK's untrusted-stack allocation (sgx_ocalloc) does.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eleos/enclave.h"

/* Largest [in] or [out] size one call carries. */
#define OCALL_BUF_MAX (1ull << 30)

static _Thread_local void *tl_block;
static _Thread_local size_t tl_size;

/* The calling thread's scratch block, at least size bytes; NULL if it cannot be had. */
static void *scratch(size_t size) {
    if (tl_size >= size)
        return tl_block;
    size_t want = (size + 4095) & ~(size_t)4095;
    void *b = eleos_untrusted_alloc(want);
    if (!b)
        return NULL;
    if (tl_block)
        eleos_untrusted_free(tl_block, tl_size);
    tl_block = b;
    tl_size = want;
    return b;
}

void eleos_ocall_buffers_release(void) {
    if (tl_block)
        eleos_untrusted_free(tl_block, tl_size);
    tl_block = NULL;
    tl_size = 0;
}

/* Runs in host mode: the host's own function on the host's own block. */
static long bridge(void *arg) {
    struct eleos_ocall_args *a = arg;
    return a->fn_(a);
}

int eleos_ocall_buffers(eleos_host_fn fn, void *user, struct eleos_ocall_buf *b, long *ret) {
    if (!fn || !b || (b->in_size && !b->in) || (b->out_size && !b->out) ||
        b->in_size > OCALL_BUF_MAX || b->out_size > OCALL_BUF_MAX)
        return -EINVAL;
    size_t hdr = (sizeof(struct eleos_ocall_args) + 63) & ~(size_t)63;
    char *blk = scratch(hdr + b->in_size + b->out_size);
    if (!blk)
        return -ENOMEM;
    struct eleos_ocall_args a = {
        .in = blk + hdr, .in_size = b->in_size,
        .out = blk + hdr + b->in_size, .out_size = b->out_size,
        .out_len = 0, .user = user, .fn_ = fn,
    };
    int r = eleos_copy_out(blk, &a, sizeof a);
    if (r == 0)
        r = eleos_copy_out(blk + hdr, b->in, b->in_size);
    if (r)
        return r; /* the block is the enclave's own untrusted memory: never */
    long v = eleos_enclave_ocall(bridge, blk);
    /* The one value read back: then checked, then used. */
    size_t len;
    r = eleos_copy_in(&len, blk + offsetof(struct eleos_ocall_args, out_len), sizeof len);
    if (r)
        return r;
    if (len > b->out_size)
        return -EIO;
    r = eleos_copy_in(b->out, blk + hdr + b->in_size, len);
    if (r)
        return r;
    b->out_len = len;
    if (ret)
        *ret = v;
    return 0;
}
