/*
 * SUVM access paths: spointer slow paths, bulk copies between SUVM and enclave buffers, and
 * sub-page direct access.
 *
 * Bulk operations pin one page at a time (so they work with any cache size) and never hold
 * more than one pin. A whole-page write to a page that is not cached skips opening the old
 * copy. Sub-page direct access on an uncached page works on the backing store under the
 * page's LOCKED bit, opening and sealing only the sub-pages it touches, without a frame.
 */
#include <errno.h>
#include <string.h>

#include "suvm/suvm_internal.h"

/* Largest sub-page (see check_config): the stack temporary of direct access. */
#define SUBPAGE_MAX 1024u

static int check_range(const struct eleos_suvm *s, uint64_t addr, size_t size) {
    uint64_t end = s->npages * SUVM_PAGE_SIZE;
    if (addr < SUVM_PAGE_SIZE || addr >= end || size > end - addr)
        return -EFAULT;
    return 0;
}

/* --- Spointers ------------------------------------------------------------------------------ */

/*
 * Representation (include/eleos/suvm.h): while linked, _rpage is the SUVM address of the
 * pinned page and _delta turns an SUVM address on it into the frame's enclave address, so
 * the inline fast path is `addr - _rpage < 4096` and `addr + _delta`. set/add keep the
 * invariant "linked => _addr is on the linked page" by unlinking as soon as the address
 * leaves the page; the pin is the only atomic, taken here and dropped in unlink.
 */

static void ptr_clear_link(struct eleos_suvm_ptr *p) {
    p->_rpage = ELEOS_SUVM_PTR_UNLINKED_;
    p->_wpage = ELEOS_SUVM_PTR_UNLINKED_;
    p->_delta = 0;
}

static bool ptr_linked(const struct eleos_suvm_ptr *p) {
    return p->_rpage != ELEOS_SUVM_PTR_UNLINKED_;
}

void eleos_suvm_ptr_init(struct eleos_suvm_ptr *p, struct eleos_suvm *s, uint64_t addr) {
    p->_addr = addr;
    ptr_clear_link(p);
    p->_s = s;
    p->_frame = 0;
}

void eleos_suvm_ptr_unlink_(struct eleos_suvm_ptr *p) {
    if (ptr_linked(p)) {
        suvm_page_unpin(p->_s, p->_frame);
        ptr_clear_link(p);
    }
}

void eleos_suvm_ptr_reset(struct eleos_suvm_ptr *p) {
    eleos_suvm_ptr_unlink_(p);
}

void eleos_suvm_ptr_fini(struct eleos_suvm_ptr *p) {
    eleos_suvm_ptr_unlink_(p);
    p->_s = NULL;
    p->_addr = 0;
}

void eleos_suvm_ptr_mark_dirty(struct eleos_suvm_ptr *p) {
    if (ptr_linked(p) && p->_wpage != p->_rpage) {
        /* Pinned, so the evictor reads dirty only after our unpin (release). */
        atomic_store_explicit(&p->_s->frames[p->_frame].dirty, 1, memory_order_relaxed);
        p->_wpage = p->_rpage;
    }
}

void *eleos_suvm_ptr_link_(struct eleos_suvm_ptr *p, bool write, int *err) {
    struct eleos_suvm *s = p->_s;
    uint64_t a = p->_addr;
    /* Linked elsewhere cannot happen through set/add; a caller that wrote the private
     * fields gets a clean relink rather than a stale frame. */
    if (ptr_linked(p) && a - p->_rpage >= SUVM_PAGE_SIZE)
        eleos_suvm_ptr_unlink_(p);
    if (!ptr_linked(p)) {
        if (!s || check_range(s, a, 1)) {
            *err = -EFAULT;
            return NULL;
        }
        uint32_t f;
        int r = suvm_page_pin(s, a >> SUVM_PAGE_SHIFT, write, &f);
        if (r) {
            *err = r;
            return NULL;
        }
        uint64_t page_addr = a & ~SUVM_PAGE_MASK;
        p->_frame = f;
        p->_rpage = page_addr;
        p->_wpage = write ? page_addr : ELEOS_SUVM_PTR_UNLINKED_;
        p->_delta = (uintptr_t)suvm_frame_addr(s, f) - (uintptr_t)page_addr;
    } else if (write) {
        eleos_suvm_ptr_mark_dirty(p);
    }
    *err = 0;
    return (void *)(uintptr_t)(a + p->_delta);
}

/* --- Bulk ------------------------------------------------------------------------------------ */

enum bulk_op { OP_READ, OP_WRITE, OP_SET, OP_CMP };

static int bulk(struct eleos_suvm *s, uint64_t addr, size_t size, enum bulk_op op,
                uint8_t *rbuf, const uint8_t *wbuf, int c, int *cmp) {
    if (size == 0)
        return 0;
    int r = check_range(s, addr, size);
    if (r)
        return r;
    size_t done = 0;
    while (done < size) {
        uint64_t a = addr + done;
        uint64_t page = a >> SUVM_PAGE_SHIFT;
        size_t off = (size_t)(a & SUVM_PAGE_MASK);
        size_t n = SUVM_PAGE_SIZE - off < size - done ? SUVM_PAGE_SIZE - off : size - done;
        if ((op == OP_WRITE || op == OP_SET) && n == SUVM_PAGE_SIZE) {
            r = suvm_page_overwrite(s, page, op == OP_WRITE ? wbuf + done : NULL, c);
            if (r < 0)
                return r;
            if (r == 0) {
                done += n;
                continue;
            }
        }
        uint32_t f;
        r = suvm_page_pin(s, page, op == OP_WRITE || op == OP_SET, &f);
        if (r)
            return r;
        uint8_t *d = suvm_frame_addr(s, f) + off;
        switch (op) {
        case OP_READ:
            memcpy(rbuf + done, d, n);
            break;
        case OP_WRITE:
            memcpy(d, wbuf + done, n);
            break;
        case OP_SET:
            memset(d, c, n);
            break;
        case OP_CMP: {
            int v = memcmp(d, wbuf + done, n);
            if (v) {
                suvm_page_unpin(s, f);
                *cmp = v;
                return 0;
            }
            break;
        }
        }
        suvm_page_unpin(s, f);
        done += n;
    }
    if (op == OP_CMP)
        *cmp = 0;
    return 0;
}

int eleos_suvm_read(struct eleos_suvm *s, uint64_t addr, void *buf, size_t size) {
    return bulk(s, addr, size, OP_READ, buf, NULL, 0, NULL);
}

int eleos_suvm_write(struct eleos_suvm *s, uint64_t addr, const void *buf, size_t size) {
    return bulk(s, addr, size, OP_WRITE, NULL, buf, 0, NULL);
}

int eleos_suvm_memset(struct eleos_suvm *s, uint64_t addr, int c, size_t size) {
    return bulk(s, addr, size, OP_SET, NULL, NULL, c, NULL);
}

int eleos_suvm_memcmp(struct eleos_suvm *s, uint64_t addr, const void *buf, size_t size,
                      int *result) {
    *result = 0;
    return bulk(s, addr, size, OP_CMP, NULL, buf, 0, result);
}

/* --- Sub-page direct access ----------------------------------------------------------------- */

/* [off, off+n) within one page. */
static int direct_page(struct eleos_suvm *s, uint64_t page, size_t off, uint8_t *rbuf,
                       const uint8_t *wbuf, size_t n) {
    bool write = wbuf != NULL;
    uint32_t w = suvm_page_lock(s, page);
    uint32_t fi = w & PTE_FRAME_MASK;
    if (fi) {
        /* Cached: an ordinary access; LOCKED keeps evictors away as a pin would. */
        struct frame *fr = &s->frames[fi - 1];
        uint8_t *d = suvm_frame_addr(s, fi - 1) + off;
        if (write) {
            memcpy(d, wbuf, n);
            atomic_store_explicit(&fr->dirty, 1, memory_order_relaxed);
        } else {
            memcpy(rbuf, d, n);
        }
        atomic_store_explicit(&fr->ref, 1, memory_order_relaxed);
        suvm_page_unlock(s, page, w);
        suvm_stat_add(s, ST_HITS, 1);
        return 0;
    }
    uint8_t tmp[SUBPAGE_MAX];
    int r = 0;
    size_t sz = s->subsz;
    for (uint32_t sub = (uint32_t)(off / sz); sub <= (off + n - 1) / sz && !r; sub++) {
        size_t lo = sub * sz > off ? sub * sz : off;
        size_t hi = (sub + 1) * sz < off + n ? (sub + 1) * sz : off + n;
        bool whole = lo == sub * sz && hi == (sub + 1) * sz;
        if (!write || !whole) {
            r = suvm_open_sub(s, page, sub, tmp);
            if (r)
                break;
            suvm_stat_add(s, ST_SUB_READS, 1);
        }
        if (write) {
            memcpy(tmp + (lo - sub * sz), wbuf + (lo - off), hi - lo);
            r = suvm_seal_sub(s, page, sub, tmp);
            if (!r)
                suvm_stat_add(s, ST_SUB_WRITES, 1);
        } else {
            memcpy(rbuf + (lo - off), tmp + (lo - sub * sz), hi - lo);
        }
    }
    memset(tmp, 0, sizeof tmp); /* plaintext does not outlive the call on the stack */
    suvm_page_unlock(s, page, s->pt[page].version ? PTE_SEALED : 0);
    return r;
}

static int direct(struct eleos_suvm *s, uint64_t addr, uint8_t *rbuf, const uint8_t *wbuf,
                  size_t size) {
    if (size == 0)
        return 0;
    int r = check_range(s, addr, size);
    if (r)
        return r;
    size_t done = 0;
    while (done < size) {
        uint64_t a = addr + done;
        size_t off = (size_t)(a & SUVM_PAGE_MASK);
        size_t n = SUVM_PAGE_SIZE - off < size - done ? SUVM_PAGE_SIZE - off : size - done;
        r = direct_page(s, a >> SUVM_PAGE_SHIFT, off, rbuf ? rbuf + done : NULL,
                        wbuf ? wbuf + done : NULL, n);
        if (r)
            return r;
        done += n;
    }
    return 0;
}

int eleos_suvm_read_direct(struct eleos_suvm *s, uint64_t addr, void *buf, size_t size) {
    if (s->nsub == 1)
        return eleos_suvm_read(s, addr, buf, size);
    return direct(s, addr, buf, NULL, size);
}

int eleos_suvm_write_direct(struct eleos_suvm *s, uint64_t addr, const void *buf,
                            size_t size) {
    if (s->nsub == 1)
        return eleos_suvm_write(s, addr, buf, size);
    return direct(s, addr, NULL, buf, size);
}
