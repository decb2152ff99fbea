/* A target that counts every signal it gets, for the reliability tests.
 *
 *   signal_target                  READY PID 0, then answers commands on stdin:
 *     c  COUNTS usr1 term rt eintr badfp       r  reset the heartbeat's longest gap
 *     l  RTLOG n v0 v1 ... (sival_int of each SIGRTMIN, in arrival order)
 *     g  GAP longest-heartbeat-gap-in-us      v SECONDS  a new thread vforks (state D)
 *     t  TICKS heartbeats 0
 *   signal_target send PID SIG N   queue N signals (sival 0..N-1); N = 0: until killed,
 *                                  every ~0.5 ms; prints SENT count on SIGTERM or at the end.
 *
 * The main thread sits in read() (SA_RESTART handlers: any EINTR is a bug of the tracer's),
 * a second thread keeps values in vector registers and checks them (a restored FPU state
 * gone wrong shows as badfp), a third beats every millisecond and records its longest gap.
 * With SIGNAL_DONTFORK set, two separate 1 MiB ranges of written memory are marked
 * MADV_DONTFORK, the first one's address the READY line's third field
 * (tests/reliability/test_tracer_kill.py: the marks stay).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_SIZE 4000000
static volatile long usr1, term, rt, eintr_seen, badfp;
static int *rt_log;
static volatile long rt_logged;
static volatile long longest_gap_us, beats, last_beat_us;

static void on_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    if (sig == SIGUSR1) usr1++;
    else if (sig == SIGTERM) term++;
    else if (sig == SIGRTMIN) {
        if (rt < LOG_SIZE) rt_log[rt] = info->si_value.sival_int;
        rt++;
        rt_logged = rt;
    }
}

static long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

static void *heartbeat(void *unused) {
    (void)unused;
    long last = now_us();
    last_beat_us = last;
    struct timespec ms = {0, 1000000};
    for (;;) {
        nanosleep(&ms, NULL);
        long now = now_us();
        if (now - last > longest_gap_us) longest_gap_us = now - last;
        last = now;
        last_beat_us = now;
        beats++;
    }
    return NULL;
}

static void *vectors(void *unused) {
    (void)unused;
    double a = 0.0, b = 0.0;
    for (unsigned long i = 1;; i++) {
        a += 1.0;
        b += 2.0;
        if (b != 2.0 * a) badfp++;
        if (i % 1000000 == 0) { a = 0.0; b = 0.0; }
        if (i % 4096 == 0) sched_yield();
    }
    return NULL;
}

/* A vfork parent: the thread sits in state D until its child ends, *seconds* later. */
static void *vfork_parent(void *seconds) {
    pid_t child = vfork();
    if (child == 0) {
        struct timespec wait = {(long)seconds, 0};
        syscall(SYS_nanosleep, &wait, NULL);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("VFORKED\n");
    return NULL;
}

static volatile sig_atomic_t stop_sending;
static void on_term(int sig) { (void)sig; stop_sending = 1; }

static int sender(pid_t pid, int sig, long count) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    long sent = 0;
    struct timespec pace = {0, 500000};
    for (long i = 0; (count == 0 && !stop_sending) || i < count; i++) {
        union sigval value;
        value.sival_int = (int)sent;
        if (sigqueue(pid, sig, value) == 0) sent++;
        else if (errno != EAGAIN) break;
        if (count == 0) nanosleep(&pace, NULL);
    }
    printf("SENT %ld\n", sent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "send") == 0) {
        int sig = strcmp(argv[3], "rt") == 0 ? SIGRTMIN : atoi(argv[3]);
        return sender((pid_t)atol(argv[2]), sig, atol(argv[4]));
    }
    rt_log = calloc(LOG_SIZE, sizeof *rt_log);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGRTMIN, &sa, NULL);
    /* Only the main thread takes the counted signals: handlers never run concurrently,
     * so the log's order is the order of delivery. */
    sigset_t counted, old;
    sigemptyset(&counted);
    sigaddset(&counted, SIGUSR1);
    sigaddset(&counted, SIGTERM);
    sigaddset(&counted, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &counted, &old);
    pthread_t thread;
    pthread_create(&thread, NULL, heartbeat, NULL);
    pthread_create(&thread, NULL, vectors, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned long kept = 0;
    if (getenv("SIGNAL_DONTFORK")) {
        /* Three chunks, the outer two DONTFORK: two ranges the middle one keeps apart. */
        char *region = mmap(NULL, 3 << 20, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) return 7;
        memset(region, 0x5a, 3 << 20);
        if (madvise(region, 1 << 20, MADV_DONTFORK) ||
            madvise(region + (2 << 20), 1 << 20, MADV_DONTFORK)) return 8;
        kept = (unsigned long)region;
    }
    printf("READY %d %lx\n", (int)getpid(), kept);
    char line[64];
    for (;;) {
        ssize_t got = read(0, line, sizeof line - 1);
        if (got < 0 && errno == EINTR) { eintr_seen++; continue; }
        if (got <= 0) return 0;
        line[got] = 0;
        if (line[0] == 'c') {
            printf("COUNTS %ld %ld %ld %ld %ld\n", usr1, term, rt, eintr_seen, badfp);
        } else if (line[0] == 'g') {
            /* A gap still open counts too: the heartbeat may not have run since a pause. */
            long open_gap = now_us() - last_beat_us;
            printf("GAP %ld\n", open_gap > longest_gap_us ? open_gap : longest_gap_us);
        } else if (line[0] == 'r') {
            longest_gap_us = 0;
            printf("OK\n");
        } else if (line[0] == 'l') {
            long n = rt_logged < LOG_SIZE ? rt_logged : LOG_SIZE;
            printf("RTLOG %ld", n);
            for (long i = 0; i < n; i++) printf(" %d", rt_log[i]);
            printf("\n");
        } else if (line[0] == 'v') {
            pthread_t parent;
            pthread_create(&parent, NULL, vfork_parent, (void *)atol(line + 1));
            pthread_detach(parent);
            printf("OK\n");
        } else if (line[0] == 't') {
            printf("TICKS %ld 0\n", beats);  /* for tests/support.Target.assert_untouched */
        }
    }
}
