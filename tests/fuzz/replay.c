/*
 * Standalone driver for the fuzz targets when libFuzzer is not in use: feeds
 * every file of the corpus directories given as arguments to
 * LLVMFuzzerTestOneInput once, so each crash ever found stays a regression
 * test. Exits non-zero if a directory is unreadable or holds no file.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int count = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        if (d == NULL) {
            fprintf(stderr, "cannot open corpus %s\n", argv[i]);
            return 1;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            char *buf = NULL;
            size_t len = 0;
            fa_error err = FA_ERROR_INIT;
            if (e->d_name[0] == '.')
                continue;
            (void)snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (fa_file_read(&buf, &len, path, 64u * 1024 * 1024, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                closedir(d);
                return 1;
            }
            /* Copy into an exact-size buffer so ASan sees overreads. */
            uint8_t *exact = malloc(len > 0 ? len : 1);
            if (exact == NULL) {
                free(buf);
                closedir(d);
                return 1;
            }
            memcpy(exact, buf, len);
            (void)LLVMFuzzerTestOneInput(exact, len);
            free(exact);
            free(buf);
            count++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", count);
    return count > 0 ? 0 : 1;
}
