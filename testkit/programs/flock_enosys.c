/* flock(2) as on a file system that has none (some FUSE and NFS mounts, some Android storage):
 * every call fails with FLOCK_ERRNO, ENOSYS unless the build says otherwise
 * (-DFLOCK_ERRNO=EOPNOTSUPP, -DFLOCK_ERRNO=ENOLCK). Built by cli/tests/portability.rs with
 * `cc -shared -fPIC` and loaded with LD_PRELOAD under the tmpshm binary. */
#include <errno.h>
#include <sys/file.h>

#ifndef FLOCK_ERRNO
#define FLOCK_ERRNO ENOSYS
#endif

int flock(int fd, int operation) {
    (void)fd;
    (void)operation;
    errno = FLOCK_ERRNO;
    return -1;
}
