/*
 * Three kinds of shared memory in one process, then its mappings.
 *   1. System V: shmget + shmat
 *   2. POSIX:    shm_open + ftruncate + mmap   (libc's, or tmpshm's under LD_PRELOAD)
 *   3. a plain file: open + ftruncate + mmap
 * Usage: sysv_posix_file NAME PLAIN_FILE. Prints /proc/self/maps, then
 * "sysv_posix_file ok: sysv posix file". Every call is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE 4096

static void die(const char *what)
{
    fprintf(stderr, "sysv_posix_file: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *map_fd(int fd, const char *what)
{
    if (ftruncate(fd, SIZE) < 0)
        die(what);
    void *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die(what);
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sysv_posix_file NAME PLAIN_FILE\n");
        return 2;
    }
    const char *name = argv[1], *plain = argv[2];

    int id = shmget(IPC_PRIVATE, SIZE, IPC_CREAT | 0600);
    if (id < 0)
        die("shmget");
    char *sysv = shmat(id, NULL, 0);
    if (sysv == (void *)-1)
        die("shmat");
    /* Removed once detached: nothing is left behind even if we die. */
    if (shmctl(id, IPC_RMID, NULL) < 0)
        die("shmctl(IPC_RMID)");
    strcpy(sysv, "sysv");

    int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
    if (fd < 0)
        die("shm_open");
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags < 0 || !(fdflags & FD_CLOEXEC)) {
        fprintf(stderr, "sysv_posix_file: shm_open's fd lacks FD_CLOEXEC\n");
        return 1;
    }
    char *posix = map_fd(fd, "ftruncate/mmap of the shm_open fd");
    strcpy(posix, "posix");

    int pf = open(plain, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (pf < 0)
        die("open of the plain file");
    char *file = map_fd(pf, "ftruncate/mmap of the plain file");
    strcpy(file, "file");

    /* A second, read-only shm_open of the same name sees the same bytes. */
    int again = shm_open(name, O_RDONLY, 0);
    if (again < 0)
        die("shm_open(O_RDONLY)");
    char back[8] = {0};
    if (pread(again, back, 5, 0) != 5)
        die("pread");
    if (memcmp(back, "posix", 5) != 0) {
        fprintf(stderr, "sysv_posix_file: reopened object holds %.5s, not posix\n", back);
        return 1;
    }

    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        die("/proc/self/maps");
    char line[4096 + 256];
    while (fgets(line, sizeof line, maps))
        fputs(line, stdout);
    fclose(maps);

    if (shm_unlink(name) < 0)
        die("shm_unlink");
    if (shm_unlink(name) == 0 || errno != ENOENT) {
        fprintf(stderr, "sysv_posix_file: a second shm_unlink did not fail with ENOENT\n");
        return 1;
    }
    if (unlink(plain) < 0)
        die("unlink of the plain file");
    printf("sysv_posix_file ok: %s %s %s\n", sysv, posix, file);
    return 0;
}
