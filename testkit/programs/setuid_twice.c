/* Calls tmpshm_shm_open(NAME, O_CREAT|O_RDWR, 0600) twice in one process, unlinking the object
 * between the two calls, and prints "ok" after both; a failure prints the call and its errno
 * and exits 1. Run set-user-ID by another user, it shows that libtmpshm ignores TMPSHM_DIR at
 * every call of a secure-execution process, not only at the first (the library asks whether
 * the process is one once, and keeps the answer).
 *
 *   setuid_twice NAME */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tmpshm.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: setuid_twice NAME\n");
        return 2;
    }
    for (int i = 0; i < 2; i++) {
        int fd = tmpshm_shm_open(argv[1], O_CREAT | O_RDWR, 0600);
        if (fd < 0) {
            printf("tmpshm_shm_open #%d: %s\n", i + 1, strerror(errno));
            return 1;
        }
        close(fd);
        if (i == 0 && tmpshm_shm_unlink(argv[1]) != 0) {
            printf("tmpshm_shm_unlink: %s\n", strerror(errno));
            return 1;
        }
    }
    printf("ok\n");
    return 0;
}
