/*
 * The C ABI, linked against libtmpshm: tmpshm_shm_open/tmpshm_shm_unlink set errno like libc,
 * refuse NULL, take illumos's names, and put objects in $TMPSHM_DIR. Prints "abi ok" or what
 * failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpshm.h"

static int failures;

static void expect_err(int rc, int want, const char *what)
{
    if (rc != -1 || errno != want) {
        printf("FAIL %s: rc %d errno %d, want -1 errno %d\n", what, rc, errno, want);
        failures++;
    }
}

int main(void)
{
    const char *dir = getenv("TMPSHM_DIR");
    if (!dir) {
        printf("FAIL TMPSHM_DIR is not set\n");
        return 1;
    }
    expect_err(tmpshm_shm_open(NULL, O_RDWR, 0), EINVAL, "open(NULL)");
    expect_err(tmpshm_shm_unlink(NULL), EINVAL, "unlink(NULL)");
    expect_err(tmpshm_shm_open("abi", O_RDWR, 0), EINVAL, "open(no slash)");
    expect_err(tmpshm_shm_open("//abi", O_RDWR, 0), EINVAL, "open(two slashes)");
    expect_err(tmpshm_shm_unlink("abi"), EINVAL, "unlink(no slash)");
    expect_err(tmpshm_shm_open("/abi", O_RDWR, 0), ENOENT, "open(absent)");
    expect_err(tmpshm_shm_open("/abi", O_WRONLY | O_CREAT, 0600), EINVAL, "open(O_WRONLY)");

    int fd = tmpshm_shm_open("/abi", O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
        printf("FAIL create: errno %d\n", errno);
        return 1;
    }
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags < 0 || !(fdflags & FD_CLOEXEC)) {
        printf("FAIL no FD_CLOEXEC\n");
        failures++;
    }
    if (ftruncate(fd, 100) < 0 || write(fd, "abc", 3) != 3) {
        printf("FAIL ftruncate/write: errno %d\n", errno);
        failures++;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/.SHMDabi", dir);
    struct stat st;
    if (stat(path, &st) < 0 || st.st_size != 100) {
        printf("FAIL %s missing or wrong size\n", path);
        failures++;
    }
    expect_err(tmpshm_shm_open("/abi", O_CREAT | O_EXCL | O_RDWR, 0600), EEXIST, "open(O_EXCL)");
    if (tmpshm_shm_unlink("/abi") != 0) {
        printf("FAIL unlink: errno %d\n", errno);
        failures++;
    }
    expect_err(tmpshm_shm_unlink("/abi"), ENOENT, "unlink(again)");
    close(fd);
    if (failures)
        return 1;
    printf("abi ok\n");
    return 0;
}
