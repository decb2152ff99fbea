/* A target for snapshotdump watch: each trigger's condition on command, from stdin.
 *
 * Prints "READY pid marker_address", then serves one command per line:
 *   t            -> "TICKS n max_gap_us" (a ticker thread proves the process runs on)
 *   r            -> "OK"
 *   burn SECONDS -> burns one core for SECONDS, then idles; "BURNED" when done
 *   grow MIB     -> allocates and touches MIB more; "GREW rss_kib"
 *   threads N    -> starts N more threads that sleep; "THREADS n"
 *   fds N        -> opens N more fds on /dev/null; "FDS n"
 *   usr1         -> "USR1 count" (SIGUSR1 received so far, counted by a handler)
 *   handled-segv -> dereferences NULL under its own SIGSEGV handler and goes on; "RECOVERED"
 *   reset-segv   -> a SA_RESETHAND SIGSEGV handler returns: the retried access dies of SEGV
 *   crash        -> dereferences NULL (SIGSEGV at the default action)
 *   thread-abort -> a new thread calls abort() (SIGABRT, raised in that thread)
 *   exit         -> exits with status 0
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char marker[64] = "SNAPSHOTDUMP-MARKER-0123456789abcdef";
static volatile unsigned long ticks;
static volatile sig_atomic_t usr1_count;
static sigjmp_buf recover;
static volatile int *volatile null_pointer;

static void *ticker(void *arg) {
    (void)arg;
    for (;;) { ticks++; usleep(1000); }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void *aborter(void *arg) {
    (void)arg;
    abort();
}

static void on_usr1(int sig) { (void)sig; usr1_count++; }
static void on_segv_recover(int sig) { (void)sig; siglongjmp(recover, 1); }
static void on_segv_once(int sig) {
    (void)sig;
    static const char text[] = "RESETHAND\n";
    if (write(1, text, sizeof text - 1) < 0) _exit(3);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long value = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &value) == 1) break;
    if (f) fclose(f);
    return value;
}

int main(void) {
    pthread_t thread;
    struct sigaction action;
    char line[128];
    static int threads = 2, fds = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr1;
    action.sa_flags = SA_RESTART; /* a signal must not end the fgets() loop */
    sigaction(SIGUSR1, &action, NULL);
    pthread_create(&thread, NULL, ticker, NULL);
    printf("READY %d %p\n", getpid(), (void *)marker);
    while (fgets(line, sizeof line, stdin)) {
        long n = 0;
        if (line[0] == 't' && line[1] == '\n') {
            printf("TICKS %lu 0\n", ticks);
        } else if (line[0] == 'r' && line[1] == '\n') {
            printf("OK\n");
        } else if (sscanf(line, "burn %ld", &n) == 1) {
            double end = now() + n;
            volatile unsigned long spin = 0;
            while (now() < end) spin++;
            printf("BURNED\n");
        } else if (sscanf(line, "grow %ld", &n) == 1) {
            size_t size = (size_t)n << 20;
            char *block = malloc(size);
            for (size_t i = 0; block && i < size; i += 4096) block[i] = 1;
            printf("GREW %ld\n", rss_kib());
        } else if (sscanf(line, "threads %ld", &n) == 1) {
            for (long i = 0; i < n; i++) pthread_create(&thread, NULL, sleeper, NULL);
            threads += (int)n;
            printf("THREADS %d\n", threads);
        } else if (sscanf(line, "fds %ld", &n) == 1) {
            for (long i = 0; i < n; i++) if (open("/dev/null", O_RDONLY) >= 0) fds++;
            printf("FDS %d\n", fds);
        } else if (strcmp(line, "usr1\n") == 0) {
            printf("USR1 %d\n", (int)usr1_count);
        } else if (strcmp(line, "handled-segv\n") == 0) {
            action.sa_handler = on_segv_recover;
            sigaction(SIGSEGV, &action, NULL);
            if (sigsetjmp(recover, 1) == 0) *null_pointer = 1;
            printf("RECOVERED\n");
        } else if (strcmp(line, "reset-segv\n") == 0) {
            action.sa_handler = on_segv_once;
            action.sa_flags = SA_RESETHAND;
            sigaction(SIGSEGV, &action, NULL);
            *null_pointer = 1;
            printf("SURVIVED\n");
        } else if (strcmp(line, "crash\n") == 0) {
            *null_pointer = 1;
            printf("SURVIVED\n");
        } else if (strcmp(line, "thread-abort\n") == 0) {
            pthread_create(&thread, NULL, aborter, NULL);
            pthread_join(thread, NULL);
        } else if (strcmp(line, "exit\n") == 0) {
            return 0;
        }
    }
    return 0;
}
