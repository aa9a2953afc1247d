/*
 * fuzz_replay — runs a libFuzzer target over files and directories without libFuzzer, so
 * the corpus (and any crash input) is exercised by every ordinary build and by ctest.
 *   fuzz_replay PATH...    (a directory's regular files are replayed in name order)
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            perror(argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += replay_file(argv[i]) != 0;
            files++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, NULL);
        if (n < 0) {
            perror(argv[i]);
            bad++;
            continue;
        }
        char **names = calloc((size_t)n, sizeof *names);
        int m = 0;
        for (int j = 0; j < n; j++) {
            if (ents[j]->d_name[0] != '.' && names) {
                size_t len = strlen(argv[i]) + strlen(ents[j]->d_name) + 2;
                names[m] = malloc(len);
                if (names[m])
                    snprintf(names[m++], len, "%s/%s", argv[i], ents[j]->d_name);
            }
            free(ents[j]);
        }
        free(ents);
        if (names)
            qsort(names, (size_t)m, sizeof *names, cmp);
        for (int j = 0; j < m; j++) {
            bad += replay_file(names[j]) != 0;
            files++;
            free(names[j]);
        }
        free(names);
    }
    printf("fuzz_replay: %d inputs replayed, %d unreadable\n", files, bad);
    if (files == 0)
        return 1;
    return bad ? 1 : 0;
}
