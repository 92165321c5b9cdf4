/*
 * Processes share a counter in named shared memory, guarded by a named semaphore, through
 * libtmpshm. Build it against an installed tmpshm:
 *
 *     cc counter.c $(pkg-config --cflags --libs tmpshm) -o counter
 *     TMPSHM_DIR=/dev/shm ./counter 4      # 4 processes, 10000 additions each
 *
 * Prints the total (40000) and removes both names.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tmpshm.h"

#define ROUNDS 10000

static int fail(const char *what)
{
    perror(what);
    return 1;
}

int main(int argc, char **argv)
{
    int procs = argc > 1 ? atoi(argv[1]) : 2;
    int fd = tmpshm_shm_open("/tmpshm-counter", O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        return fail("tmpshm_shm_open");
    if (ftruncate(fd, sizeof(long)) < 0)
        return fail("ftruncate");
    long *counter = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (counter == MAP_FAILED)
        return fail("mmap");
    close(fd);
    sem_t *lock = tmpshm_sem_open("/tmpshm-counter-lock", O_CREAT | O_EXCL, 0600, 1);
    if (lock == SEM_FAILED)
        return fail("tmpshm_sem_open");
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            return fail("fork");
        if (pid == 0) {
            for (int i = 0; i < ROUNDS; i++) {
                while (sem_wait(lock) < 0 && errno == EINTR)
                    ;
                (*counter)++;
                sem_post(lock);
            }
            _exit(0);
        }
    }
    int bad = 0, status;
    while (wait(&status) > 0)
        bad |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    printf("%ld\n", *counter);
    tmpshm_sem_close(lock);
    tmpshm_sem_unlink("/tmpshm-counter-lock");
    tmpshm_shm_unlink("/tmpshm-counter");
    return bad || *counter != (long)procs * ROUNDS;
}
