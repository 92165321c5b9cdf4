/*
 * sem_eintr: a signal handler installed without SA_RESTART interrupts sem_wait and
 * sem_timedwait, on a tmpshm semaphore (tmpshm_sem_open, from libtmpshm) and on a glibc one
 * (the libc's own sem_open, in /dev/shm), in the same program. Prints one line per case:
 *
 *   <side> <call> rc=<rc> errno=<EINTR|number> value=<sem_getvalue after>
 *
 * usage: sem_eintr TMPSHM_NAME GLIBC_NAME   (TMPSHM_DIR chooses tmpshm's directory)
 * A side that cannot open its semaphore prints "<side> unavailable errno=<number>".
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tmpshm.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* One wait on `s` (value 0), interrupted by SIGALRM after 100 ms. */
static void interrupted(const char *side, sem_t *s, int timed)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_usec = 100000;
    if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
        perror("setitimer");
        _exit(2);
    }
    int rc;
    if (timed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 60; /* far beyond the alarm: only the signal ends it */
        rc = sem_timedwait(s, &ts);
    } else {
        rc = sem_wait(s);
    }
    int e = rc < 0 ? errno : 0;
    int value = -1;
    sem_getvalue(s, &value);
    if (e == EINTR)
        printf("%s %s rc=%d errno=EINTR value=%d\n", side, timed ? "sem_timedwait" : "sem_wait",
               rc, value);
    else
        printf("%s %s rc=%d errno=%d value=%d\n", side, timed ? "sem_timedwait" : "sem_wait", rc,
               e, value);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: sem_eintr TMPSHM_NAME GLIBC_NAME\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the interrupted call must fail with EINTR */
    if (sigaction(SIGALRM, &sa, NULL) != 0) {
        perror("sigaction");
        return 2;
    }

    sem_t *ours = tmpshm_sem_open(argv[1], O_CREAT | O_EXCL, 0600, 0);
    if (ours == SEM_FAILED) {
        printf("tmpshm unavailable errno=%d\n", errno);
    } else {
        interrupted("tmpshm", ours, 0);
        interrupted("tmpshm", ours, 1);
        tmpshm_sem_close(ours);
        tmpshm_sem_unlink(argv[1]);
    }

    sem_t *theirs = sem_open(argv[2], O_CREAT | O_EXCL, 0600, 0);
    if (theirs == SEM_FAILED) {
        printf("glibc unavailable errno=%d\n", errno);
    } else {
        interrupted("glibc", theirs, 0);
        interrupted("glibc", theirs, 1);
        sem_close(theirs);
        sem_unlink(argv[2]);
    }
    printf("alarms=%d\n", (int)alarms);
    return 0;
}
