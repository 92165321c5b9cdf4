/*
 * Linking libtmpshm leaves a program's own shm_open alone: tmpshm_shm_open makes the object
 * $TMPSHM_DIR/.SHMD<name>, shm_open makes the system's /dev/shm/<name>, and they are two
 * different objects. Usage: abi_and_native NAME (one leading '/'). Prints "abi_and_native ok"
 * or what failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpshm.h"

static int failures;

static void fail(const char *what)
{
    printf("FAIL %s: errno %d (%s)\n", what, errno, strerror(errno));
    failures++;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("TMPSHM_DIR");
    if (argc != 2 || argv[1][0] != '/' || !dir) {
        fprintf(stderr, "usage: TMPSHM_DIR=DIR abi_and_native /NAME\n");
        return 2;
    }
    const char *name = argv[1];
    char ours[4096], theirs[4096];
    snprintf(ours, sizeof ours, "%s/.SHMD%s", dir, name + 1);
    snprintf(theirs, sizeof theirs, "/dev/shm/%s", name + 1);

    int t = tmpshm_shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (t < 0) {
        fail("tmpshm_shm_open");
        return 1;
    }
    int n = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (n < 0) {
        fail("shm_open (O_EXCL: it must not see tmpshm's object)");
        return 1;
    }
    if (pwrite(t, "tmpshm", 6, 0) != 6 || pwrite(n, "system", 6, 0) != 6)
        fail("pwrite");
    if (!exists(ours))
        fail(ours);
    if (!exists(theirs))
        fail(theirs);
    struct stat st, sn;
    if (fstat(t, &st) < 0 || fstat(n, &sn) < 0)
        fail("fstat");
    else if (st.st_dev == sn.st_dev && st.st_ino == sn.st_ino)
        fail("one file for both calls");

    int again = shm_open(name, O_RDONLY, 0);
    char back[7] = {0};
    if (again < 0 || pread(again, back, 6, 0) != 6 || strcmp(back, "system") != 0)
        fail("shm_open reopens the system's object");
    if (again >= 0)
        close(again);

    if (shm_unlink(name) < 0)
        fail("shm_unlink");
    if (exists(theirs))
        fail("shm_unlink left /dev/shm");
    if (!exists(ours))
        fail("shm_unlink removed tmpshm's object");
    if (tmpshm_shm_unlink(name) < 0)
        fail("tmpshm_shm_unlink");
    if (exists(ours))
        fail("tmpshm_shm_unlink left the file");
    close(t);
    close(n);
    if (failures)
        return 1;
    printf("abi_and_native ok\n");
    return 0;
}
