/*
 * tmpshm.h - POSIX shared memory and named semaphores in userspace, the illumos way, for C.
 *
 * Objects are plain files <dir>/.SHMD<name>, created under the lock file <dir>/.SHML<name>;
 * semaphores are <dir>/.SEMD<name> (under <dir>/.SEML<name>), each holding one process-shared
 * sem_t of the system's libc, on which its sem_wait, sem_post... work as ever (processes that
 * share a semaphore must use the same libc ABI);
 * where <dir> is $TMPSHM_DIR (an absolute path), else /tmp, read at every call.
 * TMPSHM_CROSS_USER=1 accepts objects owned by other users, and objects other users may both
 * read and write (both refused with EPERM otherwise). A set-user-ID or set-group-ID program
 * ignores both variables. No function allocates memory, on any path.
 *
 * Two libraries; pick the one that fits:
 *
 *   libtmpshm (libtmpshm.so.0; in the build tree target/release/libtmpshm_c.so and
 *   libtmpshm_c.a): link it to call the tmpshm_* functions below, on purpose. It exports only
 *   those: the program's own shm_open, sem_open... still reach the system's.
 *       cc prog.c -ltmpshm                     (installed: libtmpshm.so -> libtmpshm.so.0)
 *       cc prog.c -Ltarget/release -ltmpshm_c -Wl,-rpath,DIR
 *                                              (build tree: DIR/libtmpshm.so.0 -> libtmpshm_c.so)
 *
 *   libtmpshm_preload.so: preload it to run an unmodified program on tmpshm (or use
 *   `tmpshm exec`, which does it for you). It exports only shm_open, shm_unlink, sem_open,
 *   sem_close and sem_unlink, which then replace the system's for the whole program. They
 *   behave as the tmpshm_* functions, except for the names, which follow
 *   glibc's rules since they stand in for glibc's calls: leading slashes are dropped ("x",
 *   "/x" and "//x" are one object), a name shm_open refuses gives ENOENT to shm_unlink.
 *   TMPSHM_NAMES=strict applies illumos's rule below instead. This header declares nothing
 *   for it: the program keeps using <sys/mman.h>.
 *       TMPSHM_DIR=/tmp LD_PRELOAD=/path/to/libtmpshm_preload.so ./program
 */
#ifndef TMPSHM_H
#define TMPSHM_H

#include <semaphore.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * shm_open(3) on tmpshm. oflag is O_RDONLY or O_RDWR with any of O_CREAT, O_EXCL, O_TRUNC
 * (O_CLOEXEC and O_NOFOLLOW are accepted and always implied); mode (permission bits only)
 * applies to a new object, minus the umask. The name is '/' followed by at least one byte,
 * none of them '/'. Returns a new file descriptor with FD_CLOEXEC set, or -1 with errno set:
 *   EINVAL       NULL or invalid name (empty, no leading '/', another '/', "/" alone);
 *                access mode O_WRONLY; a flag outside the list above; O_EXCL without
 *                O_CREAT; O_TRUNC with O_RDONLY; mode bits outside 0777 with O_CREAT;
 *                something other than a regular file at the data or lock path;
 *                $TMPSHM_DIR is not an absolute path
 *   ENAMETOOLONG ".SHMD" + the name exceeds the file system's NAME_MAX (250 bytes after the
 *                '/' where it is 255), or the path exceeds PATH_MAX
 *   ENOENT       no such object and no O_CREAT
 *   EEXIST       O_CREAT|O_EXCL and the object exists
 *   EACCES       the object's mode refuses the access; the lock file exists and may not be
 *                opened; the directory is not writable (creation); with cross-user sharing,
 *                someone holds a file lease on the file, or it is a running program (tmpshm
 *                never waits for either)
 *   EPERM        the object or lock file is owned by another user (without cross-user
 *                sharing); it has more than one hard link; without cross-user sharing,
 *                other users may both read and write the object (e.g. mode 0666 or 0664),
 *                or the lock file is busy and other users may open it
 *   ELOOP        a symbolic link at the data or lock path (never followed)
 *   ENOSYS       creating, where the directory's file system has no flock(2), which the
 *                creation lock needs
 *   EIO          internal error (a caught panic)
 *   and EMFILE, ENFILE, ENOSPC, EROFS, ENOTDIR as open(2). Never EINTR: interrupted calls
 *   are retried.
 */
int tmpshm_shm_open(const char *name, int oflag, mode_t mode);

/*
 * shm_unlink(3) on tmpshm: removes the name; the memory lives on while any fd or mapping
 * does. Takes the same names as tmpshm_shm_open. Returns 0, or -1 with errno set:
 *   EINVAL       NULL or invalid name; a directory at the path; $TMPSHM_DIR is not absolute
 *   ENAMETOOLONG ".SHMD" + the name exceeds the file system's NAME_MAX
 *   ENOENT       no such object
 *   EACCES       the object belongs to another user in a sticky directory, or the directory
 *                is not writable
 *   EIO          internal error (a caught panic)
 *   and EROFS, ENOTDIR, EBUSY as unlink(2).
 */
int tmpshm_shm_unlink(const char *name);

/*
 * sem_open(3) on tmpshm: the semaphore's address (the same for every open of it in this
 * process until it is closed as often), or SEM_FAILED with errno set. mode (minus the umask)
 * and value are used only with O_CREAT; no file descriptor stays open. errno:
 *   EEXIST       O_CREAT|O_EXCL and the semaphore exists
 *   ENOENT       no such semaphore and no O_CREAT
 *   EINVAL       NULL or invalid name; with O_CREAT, value above SEM_VALUE_MAX or mode bits
 *                outside 0777; the file is not a semaphore (not sizeof(sem_t) bytes) or not
 *                a regular file
 *   EMFILE       1024 semaphores open in this process, or as open(2)
 *   ENOSYS       creating, where the file system has no flock(2), or where the libc has no
 *                process-shared semaphores (Apple's has no sem_init)
 *   EACCES, EPERM, ELOOP, ENAMETOOLONG, ENOSPC, ENFILE, EIO   as for tmpshm_shm_open
 */
sem_t *tmpshm_sem_open(const char *name, int oflag, mode_t mode, unsigned int value);

/*
 * sem_close(3) for an address tmpshm_sem_open returned: 0, or -1 with errno set (EINVAL: not
 * an open semaphore of this process). The process's last close of a semaphore unmaps it.
 */
int tmpshm_sem_close(sem_t *sem);

/*
 * sem_unlink(3) on tmpshm: 0, or -1 with errno set, as tmpshm_shm_unlink. Open handles keep
 * working.
 */
int tmpshm_sem_unlink(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* TMPSHM_H */
