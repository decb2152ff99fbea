/*
 * Benchmark target: N MiB resident, a ticker thread that records its longest gap.
 * Commands on stdin:  r -> reset the longest gap;  g -> "GAP us";
 *                     f -> "FORK us": how long its own fork() takes (the clone's floor).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile long max_gap_us;

static long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void *ticker(void *arg) {
    (void)arg;
    long last = now_us();
    for (;;) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
        long now = now_us();
        if (now - last > max_gap_us)
            max_gap_us = now - last;
        last = now;
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    char *memory = malloc(mib << 20);
    /* every page resident, private and holding data (no page is all zeros) */
    for (size_t i = 0; i < (mib << 20); i += sizeof(size_t))
        *(size_t *)(memory + i) = i * 2654435761u + 1;
    pthread_t t;
    pthread_create(&t, NULL, ticker, NULL);
    printf("READY %d\n", getpid());
    fflush(stdout);
    char line[32];
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 'r') {
            max_gap_us = 0;
            printf("OK\n");
        } else if (line[0] == 'g') {
            printf("GAP %ld\n", max_gap_us);
        } else if (line[0] == 'f') {
            long start = now_us();
            pid_t child = fork();
            if (child == 0)
                _exit(0);
            long took = now_us() - start;
            waitpid(child, NULL, 0);
            printf("FORK %ld\n", took);
        }
        fflush(stdout);
    }
    return memory[0];
}
