/*
 * eleos-pserver's trust boundary (docs/design.md §5, rule 2), driven through its ECALLs in sgx mode.
 *
 * The enclave side (apps/pserver/enclave_*.c) must take from the host only integers and
 * set-up values it copies and checks: a set-up struct or stats buffer inside the enclave, a
 * shared RPC area inside it, out-of-range sizes and a mode that contradicts the enclave are
 * refused, and so are an I/O queue executor out of range, one named without the queue, and
 * the queue together with the RPC client; a connection is a descriptor, and a value that is
 * no descriptor (the old API took a host pointer here and followed it) is refused without
 * being dereferenced; and a host that rewrites its set-up struct afterwards changes nothing
 * the enclave uses.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "pserver_server.h"
#include "unit/sim_testutil.h"

static struct eleos_enclave *enc;

static long ecall(eleos_enclave_fn fn, void *arg) {
    long ret = 0;
    REQUIRE(eleos_enclave_ecall(enc, fn, arg, &ret) == 0);
    return ret;
}

static void refuses_bad_setup(void) {
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, 16 * MiB);
    enc = sim_test_create(&cfg);
    struct ps_setup su = {.mode = PS_MODE_SGX, .table_bytes = 1 * MiB};

    CHECK_EQ(ecall(ps_enclave_serve, (void *)(uintptr_t)3), -EINVAL); /* before set-up */
    struct ps_setup *inside = eleos_enclave_malloc(enc, sizeof *inside);
    REQUIRE(inside);
    *inside = su;
    CHECK_EQ(ecall(ps_enclave_setup, inside), -EINVAL); /* argument in enclave memory */
    CHECK_EQ(ecall(ps_enclave_setup, NULL), -EINVAL);
    su.mode = PS_MODE_NATIVE; /* the host claims there is no enclave */
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.mode = (enum ps_mode)77;
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.mode = PS_MODE_SGX;
    su.table_bytes = 0;
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.table_bytes = 12; /* not whole entries */
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.table_bytes = UINT64_MAX & ~7ull;
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    /* RPC on: the RPC area must be host memory. */
    su = (struct ps_setup){.mode = PS_MODE_ELEOS, .rpc_on = true, .table_bytes = 1 * MiB,
                           .rpc_area = inside, .rpc_area_size = 4096};
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.rpc_area = NULL;
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    /* The I/O queue: an executor that exists, named only with the queue on, and not
     * together with the RPC client (whose area is valid here). */
    static char area[4096];
    su = (struct ps_setup){.mode = PS_MODE_SGX, .table_bytes = 1 * MiB, .ioq_exec = 1};
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.ioq_on = true;
    su.ioq_exec = ELEOS_IOQ_NEXEC;
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su.ioq_exec = UINT32_MAX;
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    su = (struct ps_setup){.mode = PS_MODE_ELEOS, .rpc_on = true, .table_bytes = 1 * MiB,
                           .rpc_area = area, .rpc_area_size = sizeof area, .ioq_on = true};
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EINVAL);
    eleos_enclave_free(enc, inside);
}

static void serves_by_descriptor_only(void) {
    struct ps_setup su = {.mode = PS_MODE_SGX, .table_bytes = 1 * MiB};
    CHECK_EQ(ecall(ps_enclave_setup, &su), 0);
    CHECK(strcmp(su.out_table, "flat") == 0 && strcmp(su.out_io, "exit") == 0);
    CHECK_EQ(ecall(ps_enclave_setup, &su), -EBUSY);
    /* A host rewriting its copy now: the enclave read it once and keeps its own. */
    su.table_bytes = 8;
    su.mode = PS_MODE_NATIVE;

    /* Not descriptors: a negative int and what a host pointer would look like. */
    CHECK_EQ(ecall(ps_enclave_serve, (void *)(uintptr_t)-1), -EBADF);
    CHECK_EQ(ecall(ps_enclave_serve, &su), -EBADF);

    /* A real connection: the replies are written in the socket's buffer, so the whole
     * exchange fits before the ECALL runs; the server closes its end when we have shut
     * down ours. key 1000 and key 0 are distinct entries of a 1 MiB table (with the host's
     * rewritten 8-byte table they would be one). */
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct { struct ps_header h; uint64_t k; } req[3] = {
        {{PS_OP_INC, 1}, 0}, {{PS_OP_INC, 1}, 0}, {{PS_OP_GET, 1}, 1000}};
    REQUIRE(send(sv[0], req, sizeof req, 0) == (ssize_t)sizeof req);
    REQUIRE(shutdown(sv[0], SHUT_WR) == 0);
    CHECK_EQ(ecall(ps_enclave_serve, (void *)(uintptr_t)sv[1]), 0);
    uint64_t rep[3];
    CHECK_EQ(recv(sv[0], rep, sizeof rep, MSG_WAITALL), (ssize_t)sizeof rep);
    CHECK(rep[0] == 1 && rep[1] == 1 && rep[2] == 0);
    close(sv[0]);

    /* A second connection sees the first one's increments. */
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct { struct ps_header h; uint64_t k; } get = {{PS_OP_GET, 1}, 0};
    REQUIRE(send(sv[0], &get, sizeof get, 0) == (ssize_t)sizeof get);
    REQUIRE(shutdown(sv[0], SHUT_WR) == 0);
    CHECK_EQ(ecall(ps_enclave_serve, (void *)(uintptr_t)sv[1]), 0);
    uint64_t v = 0;
    CHECK_EQ(recv(sv[0], &v, 8, MSG_WAITALL), 8);
    CHECK_EQ(v, 2);
    close(sv[0]);
}

static void stats_only_to_host_memory(void) {
    struct ps_stats *inside = eleos_enclave_malloc(enc, sizeof *inside);
    REQUIRE(inside);
    CHECK_EQ(ecall(ps_enclave_stats, inside), -EINVAL);
    CHECK_EQ(ecall(ps_enclave_stats, NULL), -EINVAL);
    eleos_enclave_free(enc, inside);
    struct ps_stats st;
    memset(&st, 0xff, sizeof st);
    CHECK_EQ(ecall(ps_enclave_stats, &st), 0);
    CHECK_EQ(st.batches, 4);
    CHECK_EQ(st.keys, 2);
    CHECK_EQ(st.host_faults, 2); /* the two values that were no descriptors */
    CHECK(!st.rpc && !st.suvm);
}

TEST_MAIN(TEST_CASE(refuses_bad_setup), TEST_CASE(serves_by_descriptor_only),
          TEST_CASE(stats_only_to_host_memory))
