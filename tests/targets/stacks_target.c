/*
 * A target for the unwinder: each thread parks in a distinctively named function, two
 * calls deep, so a stack that names them proves the unwind.  Built with and without frame
 * pointers, and with and without unwind tables, to walk each of CFI, frame pointers and
 * stack scanning.  Prints "READY pid"; exits on end of input.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static int pipefd[2];
static volatile int sink;

#define KEEP __attribute__((noinline)) /* and the store after each call stops a tail call */

KEEP static void sleep_inner_nanosleep(void) {
    struct timespec ts = {3600, 0};
    nanosleep(&ts, NULL);
    sink++;
}

KEEP static void *sleep_outer_thread(void *arg) {
    (void)arg;
    for (;;) {
        sleep_inner_nanosleep();
        sink++;
    }
    return NULL;
}

KEEP static void lock_inner_futex(void) {
    pthread_mutex_lock(&held);
    sink++;
}

KEEP static void *lock_outer_thread(void *arg) {
    (void)arg;
    lock_inner_futex();
    sink++;
    return NULL;
}

KEEP static void read_inner_pipe(void) {
    char byte;
    sink += (int)read(pipefd[0], &byte, 1);
}

KEEP static void *read_outer_thread(void *arg) {
    (void)arg;
    for (;;) {
        read_inner_pipe();
        sink++;
    }
    return NULL;
}

KEEP static void main_waits_for_stdin(void) {
    char byte;
    while (read(0, &byte, 1) == 1)
        sink++;
}

int main(void) {
    pthread_t threads[3];
    if (pipe(pipefd) != 0)
        return 1;
    pthread_mutex_lock(&held);
    pthread_create(&threads[0], NULL, sleep_outer_thread, NULL);
    pthread_create(&threads[1], NULL, lock_outer_thread, NULL);
    pthread_create(&threads[2], NULL, read_outer_thread, NULL);
    pthread_setname_np(threads[0], "sleeper");
    pthread_setname_np(threads[1], "locker");
    pthread_setname_np(threads[2], "reader");
    printf("READY %d\n", (int)getpid());
    fflush(stdout);
    main_waits_for_stdin();
    return 0;
}
