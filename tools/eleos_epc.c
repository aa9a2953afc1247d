/*
 * eleos-epc: the platform EPC's status, as the sgx_epc misc cgroup shows it (misc.capacity,
 * misc.current, misc.max), and setting an enclave's max.
 *
 *   eleos-epc [-p NAME]                     list the platform and its enclaves
 *   eleos-epc [-p NAME] set-max ID SIZE     SIZE in bytes with optional K/M/G, or "max"
 *
 * NAME defaults as for enclaves: $ELEOS_EPC_PLATFORM, else "default". The table is host
 * memory: what it lists is what the enclaves' processes (or anyone) wrote there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eleos/enclave.h"

#define MAX_ENTRIES 128

static int usage(void) {
    fprintf(stderr, "usage: eleos-epc [-p NAME]\n"
                    "       eleos-epc [-p NAME] set-max ID SIZE|max\n");
    return 2;
}

/* Bytes with an optional K/M/G suffix; "max" is 0 (unlimited). -1 if malformed. */
static long long parse_size(const char *s) {
    if (strcmp(s, "max") == 0)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
              : *end == 'G' || *end == 'g' ? 30 : 0;
    if (errno || end == s || v < 0 || (shift && end[1]) || (!shift && *end) ||
        v > (1ll << 40))
        return -1;
    return v << shift;
}

static void page_col(uint64_t pages, uint64_t cap) {
    if (pages >= cap)
        printf(" %10s", "max");
    else
        printf(" %10llu", (unsigned long long)pages);
}

static int list(const char *name) {
    struct eleos_epc_platform_info info;
    static struct eleos_epc_platform_entry ent[MAX_ENTRIES];
    size_t n = 0;
    int r = eleos_epc_platform_read(name, &info, ent, MAX_ENTRIES, &n);
    if (r) {
        const char *env = getenv("ELEOS_EPC_PLATFORM");
        fprintf(stderr, "eleos-epc: platform %s: %s\n",
                name ? name : env && *env ? env : "default", strerror(-r));
        return 1;
    }
    printf("capacity %llu pages (%llu KiB), used %llu, enclaves %u, generation %llu, "
           "overcommits %llu\n",
           (unsigned long long)info.capacity, (unsigned long long)info.capacity * 4,
           (unsigned long long)info.used, info.enclaves, (unsigned long long)info.generation,
           (unsigned long long)info.overcommits);
    printf("%8s %8s %-16s %10s %10s %10s %10s %10s\n", "ID", "PID", "NAME", "CURRENT", "MAX",
           "COMMITS", "FAULTS", "EVICTIONS");
    for (size_t i = 0; i < n && i < MAX_ENTRIES; i++) {
        const struct eleos_epc_platform_entry *e = &ent[i];
        printf("%8llu %8u %-16.16s %10llu", (unsigned long long)e->id, e->pid, e->name,
               (unsigned long long)e->current);
        page_col(e->max, info.capacity);
        printf(" %10llu %10llu %10llu%s\n", (unsigned long long)e->commits,
               (unsigned long long)e->faults, (unsigned long long)e->evictions,
               e->alive ? "" : "  (dead)");
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *name = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:h")) != -1) {
        if (opt == 'p')
            name = optarg;
        else
            return usage();
    }
    if (optind == argc)
        return list(name);
    if (argc - optind != 3 || strcmp(argv[optind], "set-max") != 0)
        return usage();
    char *end;
    unsigned long long id = strtoull(argv[optind + 1], &end, 10);
    long long bytes = parse_size(argv[optind + 2]);
    if (*end || end == argv[optind + 1] || bytes < 0)
        return usage();
    int r = eleos_epc_platform_set_max(name, id, (uint64_t)bytes);
    if (r) {
        fprintf(stderr, "eleos-epc: set-max %llu: %s\n", id, strerror(-r));
        return 1;
    }
    return 0;
}
