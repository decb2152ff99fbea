/*
 * A test target: threads blocked in nanosleep, in read() on a pipe, in
 * pthread_cond_wait, plus a ticker that counts and records its longest gap.
 * It prints one line, "READY pid marker_address pipe_write_fd", then serves
 * commands on stdin:
 *   t        -> "TICKS n held_us": ticks so far, and the ticker's longest gap less its
 *               CPU waits (its sleep plus the longest time it was held stopped)
 *   r        -> resets held_us; prints "OK"
 *   p        -> writes "hello" to the pipe; the reader thread prints "PIPE n errno"
 *   c        -> signals the condition variable; the waiter prints "COND"
 *   k        -> "WORK batches corrupt": a worker redoes the same register-heavy computation
 *               and counts any batch whose result differs (registers or FPU state damaged)
 *   q        -> exits
 * Environment: TARGET_WORKER adds the worker; TARGET_MIB=n holds n MiB of data resident;
 * TARGET_TRUNCATED_MAP maps a one-page file over three pages (the last two read as SIGBUS).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static char marker[64] = "SNAPSHOTDUMP-MARKER-0123456789abcdef";
static int pipefd[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int signalled;
static volatile unsigned long ticks;
static volatile long max_gap_us;

static long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec ts = {3600, 0};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    for (;;) {
        char buf[64];
        ssize_t n = read(pipefd[0], buf, sizeof buf);
        printf("PIPE %zd %d\n", n, n < 0 ? errno : 0);
        fflush(stdout);
    }
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!signalled)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    printf("COND\n");
    fflush(stdout);
    return NULL;
}

static volatile unsigned long batches, corrupt;

static unsigned long batch(void) {
    unsigned long x = 1;
    double f = 1.0;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        f = f * 1.0000001 + (double)(x >> 60);
    }
    return x ^ (unsigned long)f;
}

static void *worker(void *arg) {
    (void)arg;
    unsigned long expected = batch();
    for (;;) {
        if (batch() != expected)
            corrupt++;
        batches++;
    }
    return NULL;
}

/* Time this thread spent runnable but waiting for a CPU (schedstat's run_delay), in us. */
static long run_delay_us(int fd) {
    char text[96];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = 0;
    unsigned long long on_cpu = 0, waited = 0;
    sscanf(text, "%llu %llu", &on_cpu, &waited);
    return (long)(waited / 1000);
}

/* The longest gap between ticks, less the time the ticker waited for a CPU: what is
 * left is its own sleep plus any time it was held stopped.  On a 2-core machine with
 * a busy worker, CPU waits would otherwise swamp a pause of a millisecond. */
static void *ticker(void *arg) {
    (void)arg;
    int schedstat = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    long last = now_us(), last_delay = run_delay_us(schedstat);
    for (;;) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
        long now = now_us(), delay = run_delay_us(schedstat);
        long held = (now - last) - (delay - last_delay);
        if (held > max_gap_us)
            max_gap_us = held;
        last = now;
        last_delay = delay;
        ticks++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int extra = argc > 1 ? atoi(argv[1]) : 0;
    pthread_t t;
    if (pipe(pipefd) != 0)
        return 1;
    pthread_create(&t, NULL, sleeper, NULL);
    pthread_setname_np(t, "sleeper");
    pthread_create(&t, NULL, reader, NULL);
    pthread_setname_np(t, "reader");
    pthread_create(&t, NULL, waiter, NULL);
    pthread_setname_np(t, "waiter");
    pthread_create(&t, NULL, ticker, NULL);
    pthread_setname_np(t, "ticker");
    if (getenv("TARGET_WORKER")) {
        pthread_create(&t, NULL, worker, NULL);
        pthread_setname_np(t, "worker");
    }
    for (int i = 0; i < extra; i++)
        pthread_create(&t, NULL, sleeper, NULL);
    if (getenv("TARGET_MIB")) {
        size_t size = strtoul(getenv("TARGET_MIB"), NULL, 10) << 20;
        unsigned long *data = malloc(size);
        for (size_t i = 0; i < size / sizeof *data; i++)
            data[i] = i * 2654435761u + 1;
    }
    if (getenv("TARGET_TRUNCATED_MAP")) {
        long page = sysconf(_SC_PAGESIZE);
        char *contents = malloc((size_t)page);
        memset(contents, 'T', (size_t)page);
        FILE *file = tmpfile();
        if (!file || fwrite(contents, 1, (size_t)page, file) != (size_t)page || fflush(file) != 0)
            return 3;
        if (mmap(NULL, 3 * page, PROT_READ, MAP_PRIVATE, fileno(file), 0) == MAP_FAILED)
            return 4;
    }
    printf("READY %d %p %d\n", getpid(), (void *)marker, pipefd[1]);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 't') {
            printf("TICKS %lu %ld\n", ticks, max_gap_us);
        } else if (line[0] == 'p') {
            if (write(pipefd[1], "hello", 5) != 5)
                return 2;
            continue;
        } else if (line[0] == 'c') {
            pthread_mutex_lock(&lock);
            signalled = 1;
            pthread_cond_signal(&cond);
            pthread_mutex_unlock(&lock);
            continue;
        } else if (line[0] == 'r') {
            max_gap_us = 0;
            printf("OK\n");
        } else if (line[0] == 'k') {
            printf("WORK %lu %lu\n", batches, corrupt);
        } else if (line[0] == 'q') {
            return 0;
        }
        fflush(stdout);
    }
    return 0;
}
