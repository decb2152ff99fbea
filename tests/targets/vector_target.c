/* A single-threaded target that keeps live values in AVX registers and checks them, so
 * that code injected into it (always into this one thread) must give back its whole
 * vector state.  SIGUSR1 prints "BAD wrong-results LOOPS rounds".  Built with -mavx.
 * With VECTOR_DONTFORK set, two separate 64 KiB ranges are marked MADV_DONTFORK, so that
 * a clone is made on top of a chain of undo frames (see _linux/dont_fork.py). */
#define _GNU_SOURCE
#include <immintrin.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile long bad, loops;

static void on_usr1(int sig) {
    (void)sig;
    char text[64];
    int length = snprintf(text, sizeof text, "BAD %ld LOOPS %ld\n", bad, loops);
    if (write(1, text, (size_t)length) < 0) bad++;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    if (getenv("VECTOR_DONTFORK")) {
        /* Three chunks, the outer two DONTFORK: two ranges the middle one keeps apart. */
        char *chunks = mmap(NULL, 3 << 16, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunks == MAP_FAILED) return 7;
        memset(chunks, 0x5a, 3 << 16);
        if (madvise(chunks, 1 << 16, MADV_DONTFORK) ||
            madvise(chunks + (2 << 16), 1 << 16, MADV_DONTFORK)) return 8;
    }
    printf("READY %d 0\n", (int)getpid());
    fflush(stdout);
    for (;;) {
        __m256d a = _mm256_set1_pd(1.0), b = _mm256_set1_pd(2.0);
        const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0);
        double x = 3.0, y = 6.0;
        for (int i = 0; i < 1000000; i++) {
            a = _mm256_add_pd(a, one);
            b = _mm256_add_pd(b, two);
            x += 1.0;
            y += 2.0;
            __asm__ volatile("" : "+x"(a), "+x"(b), "+x"(x), "+x"(y));  /* stay in registers */
        }
        double av[4], bv[4];
        _mm256_storeu_pd(av, a);
        _mm256_storeu_pd(bv, b);
        for (int k = 0; k < 4; k++) bad += bv[k] != 2.0 * av[k];
        bad += y != 2.0 * x;
        loops++;
    }
}
