/* shm_open + ftruncate + mmap of an 8 MiB object, every page written, then a second process
 * (a fork that opens the object again by name) checks every page. Where the object's file
 * system has less room, the first write past it dies of SIGBUS (Docker's 64 MiB /dev/shm).
 *
 *   shm_big NAME
 *
 * Prints "created NAME", with TMPSHM_DIR set also "file DIR/.SHMD<NAME> present", then
 * "child checked N pages" and "ok"; errors go to stderr with the call and strerror, exit 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (8u << 20)

static int fail(const char *what, const char *name) {
    fprintf(stderr, "shm_big: %s %s: %s\n", what, name, strerror(errno));
    return 1;
}

static int check(const char *name, size_t page) {
    int fd = shm_open(name, O_RDONLY, 0);
    if (fd < 0)
        return fail("child shm_open", name);
    unsigned char *p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return fail("child mmap", name);
    close(fd);
    for (size_t i = 0; i < SIZE; i += page) {
        if (p[i] != (unsigned char)(i / page) || p[i + page - 1] != 0xa5) {
            fprintf(stderr, "shm_big: page %zu holds %u\n", i / page, p[i]);
            return 1;
        }
    }
    printf("child checked %zu pages\n", (size_t)SIZE / page);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: shm_big NAME\n");
        return 2;
    }
    const char *name = argv[1];
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        return fail("shm_open", name);
    printf("created %s\n", name);
    const char *dir = getenv("TMPSHM_DIR");
    if (dir != NULL) {
        char path[4096];
        struct stat st;
        const char *bare = name;
        while (*bare == '/')
            bare++;
        snprintf(path, sizeof path, "%s/.SHMD%s", dir, bare);
        printf("file %s %s\n", path, stat(path, &st) == 0 ? "present" : "absent");
    }
    if (ftruncate(fd, SIZE) != 0)
        return fail("ftruncate", name);
    unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return fail("mmap", name);
    close(fd);
    for (size_t i = 0; i < SIZE; i += page) {
        memset(p + i, 0xa5, page);
        p[i] = (unsigned char)(i / page);
    }
    printf("wrote %zu pages\n", (size_t)SIZE / page);
    pid_t child = fork();
    if (child < 0)
        return fail("fork", name);
    if (child == 0)
        _exit(check(name, page));
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "shm_big: the child failed (status %#x)\n", status);
        return 1;
    }
    munmap(p, SIZE);
    if (shm_unlink(name) != 0)
        return fail("shm_unlink", name);
    printf("ok\n");
    return 0;
}
