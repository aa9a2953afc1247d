/*
 * The platform EPC: several enclaves in one process and in several processes share one
 * capacity, which is never exceeded under load; a process killed with SIGKILL gives its pages
 * back; a per-enclave max holds under load (the enclave reclaims, it is not lost); reclaim
 * takes pages from the enclave over its fair share first; data stays correct after heavy
 * cross-enclave reclaim; a corrupted table is refused cleanly and a rewritten one does not
 * crash the emulator; shares follow enclaves coming and going.
 *
 * Multi-process cases re-execute this program (/proc/self/exe) as helper processes: "load"
 * pages through a working set and verifies it, "hold" fills pages and waits to be killed.
 * Each case uses a platform named after this process, so nothing here meets another test.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim_testutil.h"

#define PAGE 4096u
#define CAP_PAGES 512u            /* every platform of this test: 2 MiB                     */
#define WAIT_BOUND_MS 20000       /* upper bound on waiting for a helper or the reclaimer   */

static char plat_name[64];

static const char *platform(const char *tag) {
    snprintf(plat_name, sizeof plat_name, "t-plat-%d-%s", (int)getpid(), tag);
    return plat_name;
}

static struct eleos_enclave *enclave_on(const char *plat, uint64_t epc, const char *name) {
    struct eleos_enclave_config cfg;
    /* 0: no limit of its own (the capacity) */
    sim_test_config(&cfg, 64 * MiB, epc ? epc : (uint64_t)CAP_PAGES * PAGE);
    cfg.epc_platform = plat;
    cfg.epc_platform_capacity = (uint64_t)CAP_PAGES * PAGE;
    cfg.name = name;
    return sim_test_create(&cfg);
}

static uint64_t pattern(uint64_t page, uint64_t salt) {
    uint64_t x = page * 0x9e3779b97f4a7c15ull + salt;
    x ^= x >> 29;
    return x * 0xbf58476d1ce4e5b9ull;
}

/* A working set of pages in one enclave, each page holding pattern(page, salt) in its first
 * word and its index in its last. */
struct ws {
    struct eleos_enclave *e;
    uint8_t *base;
    size_t pages;
    uint64_t salt;
    size_t rounds;   /* random touches for `touch` */
    uint64_t seed;
};

static long ws_fill(void *arg) {
    struct ws *w = arg;
    for (size_t i = 0; i < w->pages; i++) {
        uint64_t *p = (uint64_t *)(w->base + i * PAGE);
        p[0] = pattern(i, w->salt);
        p[PAGE / 8 - 1] = i;
    }
    return 0;
}

/* Counts pages whose contents are wrong. */
static long ws_verify(void *arg) {
    struct ws *w = arg;
    long bad = 0;
    for (size_t i = 0; i < w->pages; i++) {
        uint64_t *p = (uint64_t *)(w->base + i * PAGE);
        bad += p[0] != pattern(i, w->salt) || p[PAGE / 8 - 1] != i;
    }
    return bad;
}

/* Random read-modify-write touches; counts pages found wrong. */
static long ws_touch(void *arg) {
    struct ws *w = arg;
    long bad = 0;
    uint64_t x = w->seed | 1;
    for (size_t r = 0; r < w->rounds; r++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t i = x % w->pages;
        uint64_t *p = (uint64_t *)(w->base + i * PAGE);
        bad += p[PAGE / 8 - 1] != i;
        p[PAGE / 8 - 1] = i;
    }
    return bad;
}

static void ws_init(struct ws *w, struct eleos_enclave *e, size_t pages, uint64_t salt) {
    memset(w, 0, sizeof *w);
    w->e = e;
    w->pages = pages;
    w->salt = salt;
    w->base = eleos_enclave_aligned_alloc(e, PAGE, pages * PAGE);
    REQUIRE(w->base);
    long ret = -1;
    REQUIRE(eleos_enclave_ecall(e, ws_fill, w, &ret) == 0 && ret == 0);
}

static long ecall_ret(struct eleos_enclave *e, eleos_enclave_fn fn, void *arg) {
    long ret = -1;
    if (eleos_enclave_ecall(e, fn, arg, &ret) != 0)
        return -1000;
    return ret;
}

static int64_t ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct eleos_epc_status status_of(struct eleos_enclave *e) {
    struct eleos_epc_status s;
    REQUIRE(eleos_enclave_epc_status(e, &s) == 0);
    return s;
}

/* --- one process ----------------------------------------------------------------------------- */

/* Three enclaves of one process, each with a working set of 3/4 of the platform: the
 * platform never holds more than its capacity, and every enclave's data survives the
 * reclaim the others cause. */
static void test_several_enclaves_one_process(void) {
    const char *plat = platform("one");
    struct eleos_enclave *e[3];
    struct ws w[3];
    for (int i = 0; i < 3; i++) {
        e[i] = enclave_on(plat, 0, "many");
        ws_init(&w[i], e[i], CAP_PAGES * 3 / 4, 100 + (uint64_t)i);
    }
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 3; i++) {
            w[i].rounds = 3000;
            w[i].seed = (uint64_t)(round * 3 + i + 1);
            CHECK_EQ(ecall_ret(e[i], ws_touch, &w[i]), 0);
            struct eleos_epc_status s = status_of(e[i]);
            CHECK(s.used <= s.capacity);
            CHECK_EQ(s.capacity, CAP_PAGES);
            CHECK_EQ(s.enclaves, 3);
        }
    }
    struct eleos_epc_platform_info info;
    size_t found = 0;
    CHECK_EQ(eleos_epc_platform_read(plat, &info, NULL, 0, &found), 0);
    CHECK_EQ(found, 3);
    CHECK_EQ(info.overcommits, 0);
    uint64_t sum = 0, evictions = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ecall_ret(e[i], ws_verify, &w[i]), 0);
    /* One instant: nothing runs in the enclaves while their counters are read. */
    for (int i = 0; i < 3; i++) {
        struct eleos_enclave_stats st;
        eleos_enclave_stats(e[i], &st);
        sum += st.epc_resident;
        evictions += st.epc_evictions;
        CHECK(!eleos_enclave_is_lost(e[i]));
    }
    CHECK(sum <= CAP_PAGES);
    CHECK(evictions > CAP_PAGES); /* the platform, not the enclaves' own limits, reclaimed */
    for (int i = 0; i < 3; i++)
        eleos_enclave_destroy(e[i]);
    /* The last enclave gone, the platform's table is gone too. */
    CHECK_EQ(eleos_epc_platform_read(plat, &info, NULL, 0, &found), -ENOENT);
}

/* A holds most of the platform; B then pages in less than its fair share: every page B
 * needs comes from A (over its share), none from B. */
static void test_fair_reclaim(void) {
    const char *plat = platform("fair");
    struct eleos_enclave *a = enclave_on(plat, 0, "hog");
    struct eleos_enclave *b = enclave_on(plat, 0, "small");
    struct ws wa, wb;
    ws_init(&wa, a, CAP_PAGES - 40, 7);
    struct eleos_enclave_stats sa0;
    eleos_enclave_stats(a, &sa0);
    ws_init(&wb, b, CAP_PAGES / 2 - 40, 8);
    struct eleos_enclave_stats sa, sb;
    eleos_enclave_stats(a, &sa);
    eleos_enclave_stats(b, &sb);
    /* The hog pays. The small one may lose a page or two only through the liveness
     * fallback (a fault that waited PLAT_SELF_FALLBACK_NS evicts one of its own): under
     * ASan on a loaded CI machine the reclaimer holding the hog's lock was once descheduled
     * that long (1 eviction). */
    CHECK(sb.epc_evictions <= 8);
    CHECK(sa.epc_evictions - sa0.epc_evictions >= (CAP_PAGES / 2 - 40) - 40);
    CHECK(sa.epc_resident + sb.epc_resident <= CAP_PAGES);
    CHECK_EQ(ecall_ret(a, ws_verify, &wa), 0);
    CHECK_EQ(ecall_ret(b, ws_verify, &wb), 0);
    eleos_enclave_destroy(b);
    eleos_enclave_destroy(a);
}

struct limit_load {
    struct ws w;
    atomic_bool stop;
    long bad;
};

static void *limit_loader(void *arg) {
    struct limit_load *l = arg;
    while (!atomic_load(&l->stop)) {
        long r = ecall_ret(l->w.e, ws_touch, &l->w);
        if (r != 0)
            l->bad += r < 0 ? 1 : r;
        l->w.seed += 7;
    }
    return NULL;
}

/* A limit set at run time holds while a thread pages through 4x of it; lowering it shrinks
 * the enclave without a fault of its own (the reclaimer); the enclave is never lost. */
static void test_max_enforced_under_load(void) {
    const char *plat = platform("max");
    struct eleos_enclave *e = enclave_on(plat, 0, "limited");
    struct limit_load l = {.bad = 0};
    ws_init(&l.w, e, 256, 9);
    l.w.rounds = 500;
    CHECK_EQ(eleos_enclave_epc_set_max(e, 64 * PAGE), 0);
    CHECK_EQ(eleos_enclave_epc_set_max(e, 4 * PAGE), -EINVAL);
    /* The 256 pages resident go down to the new limit without a fault (the reclaimer). */
    int64_t end = ms_now() + WAIT_BOUND_MS;
    while (status_of(e).current > 64 && ms_now() < end)
        usleep(1000);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, limit_loader, &l) == 0);
    uint64_t worst = 0;
    for (int i = 0; i < 2000; i++) {
        struct eleos_epc_status s = status_of(e);
        worst = s.current > worst ? s.current : worst;
        CHECK_EQ(s.max, 64);
    }
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    CHECK(worst <= 64);
    CHECK_EQ(l.bad, 0);
    CHECK(!eleos_enclave_is_lost(e));
    /* Raise it, fill, then lower it from outside as the tool does: the reclaimer brings the
     * enclave down while nothing in it runs. */
    CHECK_EQ(eleos_enclave_epc_set_max(e, 0), 0);
    CHECK_EQ(ecall_ret(e, ws_verify, &l.w), 0);
    struct eleos_epc_status s = status_of(e);
    CHECK(s.current >= 256);
    CHECK_EQ(eleos_epc_platform_set_max(plat, s.id, 32 * PAGE), 0);
    CHECK_EQ(eleos_epc_platform_set_max(plat, s.id + 1000, 32 * PAGE), -ENOENT);
    end = ms_now() + WAIT_BOUND_MS;
    while (status_of(e).current > 32 && ms_now() < end)
        usleep(1000);
    CHECK(status_of(e).current <= 32);
    CHECK_EQ(ecall_ret(e, ws_verify, &l.w), 0);
    eleos_enclave_destroy(e);
}

/* Shares: one enclave may hold the capacity (or its max); two split it; one with a small max
 * leaves the rest to the other. The generation moves each time. */
static void test_shares_and_generation(void) {
    const char *plat = platform("share");
    struct eleos_enclave *a = enclave_on(plat, 0, "a");
    uint64_t g0 = eleos_enclave_epc_generation(a);
    CHECK_EQ(eleos_enclave_epc_share(a), CAP_PAGES);
    struct eleos_enclave *b = enclave_on(plat, 0, "b");
    uint64_t g1 = eleos_enclave_epc_generation(a);
    CHECK(g1 != g0);
    CHECK_EQ(eleos_enclave_epc_share(a), CAP_PAGES / 2);
    CHECK_EQ(eleos_enclave_epc_share(b), CAP_PAGES / 2);
    CHECK_EQ(eleos_enclave_epc_set_max(b, 100 * PAGE), 0);
    CHECK(eleos_enclave_epc_generation(a) != g1);
    CHECK_EQ(eleos_enclave_epc_share(b), 100);
    CHECK_EQ(eleos_enclave_epc_share(a), CAP_PAGES - 100);
    uint64_t g2 = eleos_enclave_epc_generation(a);
    eleos_enclave_destroy(b);
    CHECK(eleos_enclave_epc_generation(a) != g2);
    CHECK_EQ(eleos_enclave_epc_share(a), CAP_PAGES);
    /* An explicit capacity that differs from the platform's is refused; none joins. */
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, (uint64_t)CAP_PAGES * PAGE);
    cfg.epc_platform = plat;
    cfg.epc_platform_capacity = 2ull * CAP_PAGES * PAGE;
    struct eleos_enclave *c = NULL;
    CHECK_EQ(eleos_enclave_create(&cfg, &c), -EEXIST);
    cfg.epc_platform_capacity = 0;
    CHECK_EQ(eleos_enclave_create(&cfg, &c), 0);
    CHECK_EQ(status_of(c).capacity, CAP_PAGES);
    eleos_enclave_destroy(c);
    cfg.epc_platform = "../etc";
    CHECK_EQ(eleos_enclave_create(&cfg, &c), -EINVAL);
    eleos_enclave_destroy(a);
}

/* --- a rewritten table ----------------------------------------------------------------------- */

static uint8_t *map_table(const char *plat, int *fd) {
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/eleos-epc-%s", plat);
    *fd = open(path, O_RDWR);
    REQUIRE(*fd >= 0);
    uint8_t *m = mmap(NULL, 256 + 128 * 128, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    REQUIRE(m != MAP_FAILED);
    return m;
}

/* Garbage in the header: new enclaves and the tool get -EBADMSG, the running enclave goes on.
 * Garbage in the slots (its own max 0, a huge current and used, foreign owners): the running
 * enclave keeps paging correctly, within what a sane limit allows. */
static void test_corrupt_table(void) {
    const char *plat = platform("corrupt");
    struct eleos_enclave *e = enclave_on(plat, 0, "victim");
    struct ws w;
    ws_init(&w, e, 300, 11);
    int fd;
    uint8_t *m = map_table(plat, &fd);
    uint8_t saved[256];
    memcpy(saved, m, sizeof saved);
    memset(m, 0xa5, 64);
    struct eleos_enclave_config cfg;
    sim_test_config(&cfg, 64 * MiB, (uint64_t)CAP_PAGES * PAGE);
    cfg.epc_platform = plat;
    struct eleos_enclave *e2 = NULL;
    CHECK_EQ(eleos_enclave_create(&cfg, &e2), -EBADMSG);
    CHECK(e2 == NULL);
    struct eleos_epc_platform_info info;
    size_t found;
    CHECK_EQ(eleos_epc_platform_read(plat, &info, NULL, 0, &found), -EBADMSG);
    w.rounds = 2000;
    w.seed = 5;
    CHECK_EQ(ecall_ret(e, ws_touch, &w), 0);
    memcpy(m, saved, sizeof saved);
    /* Now the slots: every word of every slot rewritten, then paging goes on. */
    for (int round = 0; round < 3; round++) {
        for (size_t off = 256; off < 256 + 128 * 128; off += 8) {
            uint64_t v = round == 0 ? 0 : round == 1 ? ~0ull : off * 0x9e3779b97f4a7c15ull;
            memcpy(m + off, &v, 8);
        }
        uint64_t huge = ~0ull >> 1;
        memcpy(m + 40, &huge, 8); /* used */
        w.seed = (uint64_t)round + 100;
        w.rounds = 200; /* each fault may wait out the fallback: the table lies about room */
        CHECK_EQ(ecall_ret(e, ws_touch, &w), 0);
        CHECK(!eleos_enclave_is_lost(e));
    }
    CHECK_EQ(ecall_ret(e, ws_verify, &w), 0);
    munmap(m, 256 + 128 * 128);
    close(fd);
    eleos_enclave_destroy(e);
}

/* --- several processes ----------------------------------------------------------------------- */

/* Helper "load <platform> <pages> <rounds> <salt>": pages through a working set, verifies it,
 * exits 0 if every page read back right. */
static int helper_load(char **argv) {
    struct eleos_enclave *e = enclave_on(argv[2], 0, "load");
    struct ws w;
    ws_init(&w, e, strtoul(argv[3], NULL, 10), strtoull(argv[5], NULL, 10));
    w.rounds = strtoul(argv[4], NULL, 10);
    w.seed = w.salt * 31 + 1;
    long bad = ecall_ret(e, ws_touch, &w);
    bad += ecall_ret(e, ws_verify, &w);
    eleos_enclave_destroy(e);
    return bad == 0 ? 0 : 1;
}

/* Helper "hold <platform> <pages>": fills pages, writes one byte to stdout, sleeps. */
static int helper_hold(char **argv) {
    struct eleos_enclave *e = enclave_on(argv[2], 0, "hold");
    struct ws w;
    ws_init(&w, e, strtoul(argv[3], NULL, 10), 3);
    if (write(STDOUT_FILENO, "r", 1) != 1)
        return 1;
    for (;;)
        pause();
}

static pid_t spawn(const char *mode, const char *plat, const char *a, const char *b,
                   const char *c, int *out_fd) {
    int pfd[2] = {-1, -1};
    if (out_fd)
        REQUIRE(pipe(pfd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (out_fd) {
            dup2(pfd[1], STDOUT_FILENO);
            close(pfd[0]);
        }
        execl("/proc/self/exe", "test_sim_platform", mode, plat, a, b, c, (char *)NULL);
        _exit(127);
    }
    if (out_fd) {
        close(pfd[1]);
        *out_fd = pfd[0];
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int st;
    int64_t end = ms_now() + WAIT_BOUND_MS * 3;
    while (ms_now() < end) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Two processes, each paging through 3/4 of the platform, sampled from a third: the
 * platform's used pages and the sum of its enclaves' never exceed the capacity. */
static void test_two_processes_never_exceed(void) {
    const char *plat = platform("two");
    /* This process holds the platform open (an idle enclave of its own) so that the table
     * outlives either helper and can be sampled throughout. */
    struct eleos_enclave *mine = enclave_on(plat, 16 * PAGE, "sampler");
    char pages[16];
    snprintf(pages, sizeof pages, "%u", CAP_PAGES * 3 / 4);
    pid_t a = spawn("load", plat, pages, "20000", "1", NULL);
    pid_t b = spawn("load", plat, pages, "20000", "2", NULL);
    struct eleos_epc_platform_entry ent[8];
    unsigned samples = 0, both = 0, steady = 0;
    int st, rc_a = -1, rc_b = -1;
    int64_t end = ms_now() + WAIT_BOUND_MS * 3;
    while ((rc_a < 0 || rc_b < 0) && ms_now() < end) {
        if (rc_a < 0 && waitpid(a, &st, WNOHANG) == a)
            rc_a = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (rc_b < 0 && waitpid(b, &st, WNOHANG) == b)
            rc_b = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        struct eleos_epc_platform_info info;
        size_t n = 0;
        if (eleos_epc_platform_read(plat, &info, ent, 8, &n) != 0)
            break;
        /* used is one counter: every sample checks it. The enclaves' counts are read one
         * after another while pages move between them, so their sum is checked only on
         * samples where a second read found every count unchanged. */
        struct eleos_epc_platform_info info2;
        struct eleos_epc_platform_entry ent2[8];
        size_t n2 = 0;
        bool same = eleos_epc_platform_read(plat, &info2, ent2, 8, &n2) == 0 && n2 == n;
        uint64_t sum = 0;
        for (size_t i = 0; i < n && i < 8; i++) {
            sum += ent[i].current;
            same = same && ent2[i].current == ent[i].current;
        }
        CHECK(info.used <= info.capacity);
        if (same) {
            CHECK(sum <= info.capacity);
            steady++;
        }
        CHECK_EQ(info.overcommits, 0);
        samples++;
        both += n == 3;
        usleep(200);
    }
    if (rc_a < 0)
        rc_a = wait_exit(a);
    if (rc_b < 0)
        rc_b = wait_exit(b);
    CHECK_EQ(rc_a, 0);
    CHECK_EQ(rc_b, 0);
    CHECK(samples > 10);
    CHECK(both > 0); /* the two helpers overlapped */
    fprintf(stderr, "two processes: %u samples, %u with steady counts (sum checked)\n", samples,
            steady);
    eleos_enclave_destroy(mine);
}

/* A helper holds most of the platform and is killed with SIGKILL: its pages come back, and
 * this process can then use the whole capacity without anyone over it. */
static void test_killed_process_pages_return(void) {
    const char *plat = platform("kill");
    struct eleos_enclave *mine = enclave_on(plat, 0, "survivor");
    int fd;
    char pages[16];
    snprintf(pages, sizeof pages, "%u", CAP_PAGES - 64);
    pid_t h = spawn("hold", plat, pages, "", "", &fd);
    char c;
    REQUIRE(read(fd, &c, 1) == 1);
    close(fd);
    struct eleos_epc_platform_info info;
    size_t n;
    REQUIRE(eleos_epc_platform_read(plat, &info, NULL, 0, &n) == 0);
    CHECK_EQ(n, 2);
    CHECK(info.used >= CAP_PAGES - 64);
    kill(h, SIGKILL);
    CHECK_EQ(wait_exit(h), 128 + SIGKILL);
    struct ws w;
    ws_init(&w, mine, CAP_PAGES - 40, 21); /* needs the dead helper's pages */
    CHECK_EQ(ecall_ret(mine, ws_verify, &w), 0);
    struct eleos_enclave_stats st;
    eleos_enclave_stats(mine, &st);
    CHECK_EQ(st.epc_evictions, 0); /* nothing of ours had to go */
    struct eleos_epc_platform_entry ent[4];
    REQUIRE(eleos_epc_platform_read(plat, &info, ent, 4, &n) == 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(ent[0].pid, (uint32_t)getpid());
    CHECK_EQ(info.used, ent[0].current);
    CHECK_EQ(info.overcommits, 0);
    eleos_enclave_destroy(mine);
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "load") == 0)
        return helper_load(argv);
    if (argc == 6 && strcmp(argv[1], "hold") == 0)
        return helper_hold(argv);
    static const struct harness_case cases[] = {
        TEST_CASE(test_several_enclaves_one_process),
        TEST_CASE(test_fair_reclaim),
        TEST_CASE(test_max_enforced_under_load),
        TEST_CASE(test_shares_and_generation),
        TEST_CASE(test_corrupt_table),
        TEST_CASE(test_two_processes_never_exceed),
        TEST_CASE(test_killed_process_pages_return),
    };
    return harness_run(__FILE__, cases, sizeof cases / sizeof cases[0]);
}
