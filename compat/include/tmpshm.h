/*
 * tmpshm.h - POSIX shm_open/shm_unlink in userspace, the illumos way, for C.
 *
 * Link with -ltmpshm_compat (target/release/libtmpshm_compat.so), or run an unmodified
 * program with LD_PRELOAD=/path/to/libtmpshm_compat.so: the library also exports shm_open
 * and shm_unlink themselves.
 *
 * Objects are plain files <dir>/.SHMD<name> (created under the lock <dir>/.SHML<name>),
 * where <dir> is $TMPSHM_DIR (an absolute path), else /tmp, read at every call.
 * TMPSHM_CROSS_USER=1 allows objects owned by other users (refused with EPERM otherwise).
 */
#ifndef TMPSHM_H
#define TMPSHM_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * shm_open(3) on tmpshm. Returns a new file descriptor with FD_CLOEXEC set, or -1 with
 * errno set:
 *   EINVAL       NULL or invalid name (empty, no leading '/', another '/', "/" alone);
 *                access mode other than O_RDONLY/O_RDWR; a flag other than O_CREAT,
 *                O_EXCL, O_TRUNC (O_CLOEXEC, O_NOFOLLOW are implied); O_EXCL without
 *                O_CREAT; O_TRUNC with O_RDONLY; mode bits outside 0777 with O_CREAT;
 *                something other than a regular file at the object's path
 *   ENAMETOOLONG ".SHMD" + the name exceeds the file system's NAME_MAX
 *   ENOENT       no such object and no O_CREAT
 *   EEXIST       O_CREAT|O_EXCL and the object exists
 *   EACCES       the object's mode refuses the access
 *   EPERM        owned by another user (without TMPSHM_CROSS_USER=1), or hard-linked
 *   ELOOP        a symbolic link at the object's path (never followed)
 *   EIO          internal error (a caught panic)
 *   and EMFILE, ENFILE, ENOSPC, EROFS, ENOTDIR as open(2).
 */
int tmpshm_shm_open(const char *name, int oflag, mode_t mode);

/*
 * shm_unlink(3) on tmpshm. Returns 0, or -1 with errno set: EINVAL (NULL or invalid name),
 * ENAMETOOLONG, ENOENT, EACCES (another user's object), EIO (a caught panic).
 */
int tmpshm_shm_unlink(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* TMPSHM_H */
