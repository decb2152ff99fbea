/* A target that installs a seccomp filter which kills the whole process on clone() and
 * wait4() -- the calls a capture injects -- for tests/reliability/test_seccomp.py.
 *
 *   seccomp_target race DELAY_US   a thread installs the filter (TSYNC: every thread)
 *                                  DELAY_US after READY, racing an immediate capture
 *   seccomp_target later           installs it when told "s" on stdin (answers "OK")
 *
 * It exits 0 when stdin closes; SIGSYS is what a capture that ignored the filter causes.
 */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long delay_us;

static void install(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_wait4, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog program = {sizeof code / sizeof code[0], code};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program))
        perror("seccomp");
}

static void *racer(void *unused) {
    (void)unused;
    struct timespec pause = {0, delay_us * 1000};
    nanosleep(&pause, NULL);
    install();
    return NULL;
}

int main(int argc, char **argv) {
    int later = argc > 1 && strcmp(argv[1], "later") == 0;
    delay_us = argc > 2 ? atol(argv[2]) : 0;
    pthread_t thread;
    if (!later) pthread_create(&thread, NULL, racer, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("READY %d 0\n", (int)getpid());
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 's') {
            install();
            printf("OK\n");
        }
    }
    return 0;
}
