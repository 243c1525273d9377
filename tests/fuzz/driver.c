/*  driver: runs a fuzz target over files, without libFuzzer, so that every
    build (gcc, sanitizers or not) replays the seed corpus as a regression
    test: `fuzz-receive-corpus DIR|FILE...` feeds each file once and says
    how many it ran. With -Dfuzz=true the same target links libFuzzer's
    main instead.
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qt_selftest.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
s_run_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        perror (path);
        return -1;
    }
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    uint8_t *data = (uint8_t *) malloc (size > 0 ? (size_t) size : 1);
    QT_CHECK (data);
    size_t got = fread (data, 1, (size_t) size, file);
    fclose (file);
    LLVMFuzzerTestOneInput (data, got);
    free (data);
    return 0;
}

static int
s_run_path (const char *path, size_t *ran)
{
    struct stat info;
    if (stat (path, &info) != 0) {
        perror (path);
        return -1;
    }
    if (!S_ISDIR (info.st_mode)) {
        (*ran)++;
        return s_run_file (path);
    }
    DIR *dir = opendir (path);
    if (!dir) {
        perror (path);
        return -1;
    }
    int rc = 0;
    for (struct dirent *entry = readdir (dir); entry; entry = readdir (dir)) {
        if (entry->d_name [0] == '.')
            continue;
        char child [4096];
        snprintf (child, sizeof child, "%s/%s", path, entry->d_name);
        rc |= s_run_path (child, ran);
    }
    closedir (dir);
    return rc;
}

int
main (int argc, char *argv [])
{
    size_t ran = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        rc |= s_run_path (argv [i], &ran);
    printf ("%s: %zu inputs run\n", argv [0], ran);
    return rc == 0 && ran > 0 ? 0 : 1;
}
