/*
 * Benchmark target: N MiB resident, a ticker thread that records its longest gap.
 * Commands on stdin:  r -> reset the longest gap;  g -> "GAP us";
 *                     f -> "FORK us": how long its own fork() takes (the clone's floor);
 *                     w RATE -> a writer thread writes one word per page across the memory,
 *                               RATE pages a second (-1: as fast as it can; 0: stops); "OK";
 *                     c -> "COUNT n": the page writes done so far.
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
static volatile long write_rate;
static volatile unsigned long writes;
static char *memory;
static size_t memory_size;

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

static void *writer(void *arg) {
    (void)arg;
    size_t page = 0;
    long next = now_us();
    for (;;) {
        long rate = write_rate;
        if (rate == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            next = now_us();
            continue;
        }
        if (rate > 0) {
            /* bursts of rate/1000 pages every millisecond: the rate, without a busy wait */
            long batch = rate / 1000 > 0 ? rate / 1000 : 1;
            for (long i = 0; i < batch; i++) {
                *(volatile size_t *)(memory + page * 4096) += 1;
                page = (page + 1) % (memory_size / 4096);
                writes++;
            }
            next += 1000 * batch * 1000 / rate;
            long wait = next - now_us();
            if (wait > 0) {
                struct timespec ts = {0, wait * 1000};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        for (int i = 0; i < 4096; i++) {
            *(volatile size_t *)(memory + page * 4096) += 1;
            page = (page + 1) % (memory_size / 4096);
        }
        writes += 4096;
    }
    return NULL;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    memory_size = mib << 20;
    memory = malloc(mib << 20);
    /* every page resident, private and holding data (no page is all zeros) */
    for (size_t i = 0; i < (mib << 20); i += sizeof(size_t))
        *(size_t *)(memory + i) = i * 2654435761u + 1;
    pthread_t t;
    pthread_create(&t, NULL, ticker, NULL);
    pthread_create(&t, NULL, writer, NULL);
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
        } else if (line[0] == 'w') {
            write_rate = strtol(line + 1, NULL, 10);
            printf("OK\n");
        } else if (line[0] == 'c') {
            printf("COUNT %lu\n", writes);
        }
        fflush(stdout);
    }
    return memory[0];
}
