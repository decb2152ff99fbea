/*
 * A consistency target: a thread sweeps two hot regions page by page, writing the
 * sweep number g at the start of each page, over and over.  A dump taken at one
 * instant holds one cut: pages [0,k) hold g and [k,N) hold g-1.  A copy made while
 * the target runs tears it (numbers far apart, or out of order).
 * One hot region is on the heap (HOT_PAGES pages), one on a thread's own stack
 * (STACK_PAGES pages).  Beside them: a MADV_DONTFORK region, a MADV_DONTDUMP region
 * and an idle region, each starting with a marker, and a PROT_NONE guard region; a
 * "doomed" region and a "zap" region, filled with 'D' and 'Z', for the commands below.
 * It prints "READY pid idle_address", then
 * "ADDRS hot hot_pages stack_hot stack_pages dontfork dontdump idle guard doomed zap"
 * (hex addresses), then serves: t -> "TICKS sweeps 0"; r -> "OK"; q -> exits;
 *   m -> maps a new 1 MiB region starting "NEWMAP-MARKER"; prints "OK address"
 *   u -> unmaps the doomed region; z -> MADV_DONTNEED on the zap region (it reads 0 then);
 *   both print "OK 0".
 *   v -> moves the "moving" region (mremap) to a new address, then writes "MOVED-MARKER"
 *        at its start; prints "OK new_address".
 * With SWEEP_UFFD set it registers the idle region with a userfaultfd of its own first;
 * with SWEEP_SECCOMP set it runs under an allow-everything seccomp filter.
 * The last ADDRS fields: the moving region, and a memfd_secret page holding "SECRET"
 * (0 where memfd_secret is not available).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096
#define HOT_PAGES 2048
#define STACK_PAGES 16
#define REGION (1 << 20)

static const char marker[] = "SNAPSHOTDUMP-MARKER-0123456789abcdef";
static volatile unsigned long sweeps;
static volatile unsigned long *volatile stack_hot;

/* One thread sweeps both regions in turn (one spinning CPU, not two). */
static void *sweeper(void *arg) {
    volatile unsigned long *heap = arg;
    volatile unsigned long local[STACK_PAGES * PAGE / sizeof(unsigned long) + PAGE];
    /* Page-aligned inside the array, so that page i of the region is one page. */
    volatile unsigned long *region =
        (volatile unsigned long *)(((unsigned long)local + PAGE - 1) & ~(unsigned long)(PAGE - 1));
    const unsigned long step = PAGE / sizeof(unsigned long);
    for (unsigned long i = 0; i < STACK_PAGES; i++)
        region[i * step] = 0;
    stack_hot = region;
    for (unsigned long g = 1;; g++) {
        for (unsigned long i = 0; i < HOT_PAGES; i++)
            heap[i * step] = g;
        for (unsigned long i = 0; i < STACK_PAGES; i++)
            region[i * step] = g;
        sweeps = g;
    }
    return NULL;
}

static char *region(const char *text, int advice) {
    char *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        exit(3);
    memset(p, 'x', REGION);
    strcpy(p, text);
    if (advice >= 0 && madvise(p, REGION, advice) != 0)
        exit(4);
    return p;
}

int main(void) {
    char *hot = mmap(NULL, (size_t)HOT_PAGES * PAGE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hot == MAP_FAILED)
        return 3;
    memset(hot, 0, (size_t)HOT_PAGES * PAGE);
    char *dontfork = region("DONTFORK-MARKER-5e1f", MADV_DONTFORK);
    char *dontdump = region("DONTDUMP-MARKER-7a2c", MADV_DONTDUMP);
    char *idle = region(marker, -1);
    char *guard = mmap(NULL, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED)
        return 3;
    char *doomed = region("DOOMED-MARKER", -1);
    char *zap = region("ZAPPED-MARKER", -1);
    char *moving = region("MOVING-MARKER", -1);
    char *secret = NULL;
    int secret_fd = (int)syscall(447 /* memfd_secret */, 0);
    if (secret_fd >= 0 && ftruncate(secret_fd, PAGE) == 0) {
        secret = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, secret_fd, 0);
        if (secret == MAP_FAILED)
            secret = NULL;
        else
            strcpy(secret, "SECRET");
    }
    if (getenv("SWEEP_SECCOMP")) {
        struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
        struct sock_fprog program = {1, allow};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program))
            return 6;
    }
    if (getenv("SWEEP_UFFD")) {
        int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
        struct uffdio_api api = {.api = UFFD_API};
        struct uffdio_register reg = {.range = {(unsigned long)idle, REGION},
                                      .mode = UFFDIO_REGISTER_MODE_MISSING};
        if (fd < 0 || ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg))
            return 5;
    }
    pthread_t t;
    pthread_create(&t, NULL, sweeper, hot);
    while (!stack_hot || sweeps < 2)
        usleep(1000);
    printf("READY %d %p\n", getpid(), (void *)idle);
    printf("ADDRS %p %d %p %d %p %p %p %p %p %p %p %p\n", (void *)hot, HOT_PAGES,
           (void *)stack_hot, STACK_PAGES, (void *)dontfork, (void *)dontdump, (void *)idle,
           (void *)guard, (void *)doomed, (void *)zap, (void *)moving, (void *)secret);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 't')
            printf("TICKS %lu 0\n", sweeps);
        else if (line[0] == 'r')
            printf("OK\n");
        else if (line[0] == 'q')
            return 0;
        else if (line[0] == 'm')
            printf("OK %p\n", (void *)region("NEWMAP-MARKER", -1));
        else if (line[0] == 'u')
            printf("OK %d\n", munmap(doomed, REGION));
        else if (line[0] == 'v') {
            /* A free address two regions long, and the region moved into its middle. */
            char *room = mmap(NULL, 3 * REGION, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            munmap(room, 3 * REGION);
            char *moved = mremap(moving, REGION, REGION, MREMAP_MAYMOVE | MREMAP_FIXED,
                                 room + REGION);
            if (moved != MAP_FAILED)
                strcpy(moved, "MOVED-MARKER");
            printf("OK %p\n", moved == MAP_FAILED ? NULL : (void *)moved);
        } else if (line[0] == 'z')
            printf("OK %d\n", madvise(zap, REGION, MADV_DONTNEED));
        fflush(stdout);
    }
    return 0;
}
