/*
 * A program on the system's own shm_open, for the interop tests (never run under LD_PRELOAD).
 *   native write NAME TEXT          create (or open) NAME, size it 4096, write TEXT at 0
 *   native poke NAME OFFSET TEXT    open existing NAME read-write, write TEXT at OFFSET
 *   native read NAME                print what NAME holds up to the first NUL
 *   native unlink NAME
 * Prints the result on stdout; a failure prints "ERR <errno>" and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE 4096

static int fail(void)
{
    printf("ERR %d\n", errno);
    return 1;
}

static char *map(int fd, int prot)
{
    char *p = mmap(NULL, SIZE, prot, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: native write|poke|read|unlink NAME ...\n");
        return 2;
    }
    const char *cmd = argv[1], *name = argv[2];
    if (!strcmp(cmd, "write") && argc == 4) {
        int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
        if (fd < 0 || ftruncate(fd, SIZE) < 0)
            return fail();
        char *p = map(fd, PROT_READ | PROT_WRITE);
        if (!p)
            return fail();
        memcpy(p, argv[3], strlen(argv[3]) + 1);
    } else if (!strcmp(cmd, "poke") && argc == 5) {
        int fd = shm_open(name, O_RDWR, 0);
        if (fd < 0)
            return fail();
        char *p = map(fd, PROT_READ | PROT_WRITE);
        long off = strtol(argv[3], NULL, 10);
        if (!p || off < 0 || off + strlen(argv[4]) >= SIZE)
            return fail();
        memcpy(p + off, argv[4], strlen(argv[4]));
    } else if (!strcmp(cmd, "read") && argc == 3) {
        int fd = shm_open(name, O_RDONLY, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
            return fail();
        if (st.st_size < SIZE) {
            printf("SHORT %lld\n", (long long)st.st_size);
            return 1;
        }
        char *p = map(fd, PROT_READ);
        if (!p)
            return fail();
        printf("%.*s\n", (int)strnlen(p, SIZE), p);
        return 0;
    } else if (!strcmp(cmd, "unlink") && argc == 3) {
        if (shm_unlink(name) < 0)
            return fail();
    } else {
        fprintf(stderr, "native: bad arguments\n");
        return 2;
    }
    printf("ok\n");
    return 0;
}
