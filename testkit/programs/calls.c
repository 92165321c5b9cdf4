/* Makes the shm_open/shm_unlink/sem_open calls its arguments name and prints what each
 * returned, one line per call:
 *
 *   calls [env] [loaded] [open:NAME] [excl:NAME] [rdonly:NAME] [unlink:NAME] [sem:NAME] [semunlink:NAME]
 *
 *   env          prints pid=..., then TMPSHM_DIR=, TMPSHM_CROSS_USER=, TMPSHM_NAMES=,
 *                TMPSHM_TRACE= and LD_PRELOAD= as the program sees them ("(unset)" if unset)
 *   loaded       prints "preload mapped: yes" or "no": whether libtmpshm_preload is mapped
 *   open:NAME    shm_open(NAME, O_CREAT|O_RDWR, 0600)
 *   excl:NAME    shm_open(NAME, O_CREAT|O_EXCL|O_RDWR, 0640)
 *   rdonly:NAME  shm_open(NAME, O_RDONLY, 0)
 *   unlink:NAME  shm_unlink(NAME)
 *   sem:NAME     sem_open(NAME, O_CREAT, 0600, 1), then sem_wait, sem_post, sem_close
 *   semunlink:NAME  sem_unlink(NAME)
 *
 * Results: "shm_open NAME = ok" or "shm_open NAME = -1 ENOENT (No such file or directory)".
 * Exits 0 unless an argument is not understood. */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *errno_name(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOSPC: return "ENOSPC";
    default: return "E?";
    }
}

static void failed(const char *call, const char *name, const char *ret) {
    int e = errno;
    printf("%s %s = %s %s (%s)\n", call, name, ret, errno_name(e), strerror(e));
}

int main(int argc, char **argv) {
    /* Line by line, even into a pipe, so that stdout and stderr interleave as they happened. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        char *name = strchr(arg, ':');
        if (strcmp(arg, "env") == 0) {
            static const char *const vars[] = {"TMPSHM_DIR",   "TMPSHM_CROSS_USER",
                                               "TMPSHM_NAMES", "TMPSHM_TRACE",
                                               "LD_PRELOAD"};
            printf("pid=%ld\n", (long)getpid());
            for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
                const char *value = getenv(vars[v]);
                printf("%s=%s\n", vars[v], value ? value : "(unset)");
            }
            continue;
        }
        if (strcmp(arg, "loaded") == 0) {
            char line[4096];
            int mapped = 0;
            FILE *maps = fopen("/proc/self/maps", "r");
            while (maps != NULL && fgets(line, sizeof line, maps) != NULL)
                if (strstr(line, "libtmpshm_preload") != NULL)
                    mapped = 1;
            if (maps != NULL)
                fclose(maps);
            printf("preload mapped: %s\n", mapped ? "yes" : "no");
            continue;
        }
        if (name == NULL) {
            fprintf(stderr, "calls: what is %s?\n", arg);
            return 2;
        }
        *name++ = '\0';
        if (strcmp(arg, "open") == 0 || strcmp(arg, "excl") == 0 || strcmp(arg, "rdonly") == 0) {
            int fd;
            if (strcmp(arg, "open") == 0)
                fd = shm_open(name, O_CREAT | O_RDWR, 0600);
            else if (strcmp(arg, "excl") == 0)
                fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0640);
            else
                fd = shm_open(name, O_RDONLY, 0);
            if (fd < 0) {
                failed("shm_open", name, "-1");
            } else {
                printf("shm_open %s = ok\n", name);
                close(fd);
            }
        } else if (strcmp(arg, "unlink") == 0) {
            if (shm_unlink(name) != 0)
                failed("shm_unlink", name, "-1");
            else
                printf("shm_unlink %s = ok\n", name);
        } else if (strcmp(arg, "sem") == 0) {
            sem_t *s = sem_open(name, O_CREAT, 0600, 1);
            if (s == SEM_FAILED) {
                failed("sem_open", name, "SEM_FAILED");
            } else {
                int v = -1;
                if (sem_wait(s) != 0 || sem_getvalue(s, &v) != 0 || v != 0 || sem_post(s) != 0) {
                    fprintf(stderr, "calls: the semaphore %s does not count (value %d)\n", name, v);
                    return 1;
                }
                printf("sem_open %s = ok\n", name);
                sem_close(s);
            }
        } else if (strcmp(arg, "semunlink") == 0) {
            if (sem_unlink(name) != 0)
                failed("sem_unlink", name, "-1");
            else
                printf("sem_unlink %s = ok\n", name);
        } else {
            fprintf(stderr, "calls: what is %s?\n", arg);
            return 2;
        }
    }
    return 0;
}
