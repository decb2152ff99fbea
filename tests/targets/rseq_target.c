/*
 * A target whose only thread spins inside an rseq critical section, as per-CPU
 * allocators do.  The kernel must send a thread that was stopped inside the section to
 * its abort handler, so the section never sees its descriptor cleared while it runs.
 * It prints "READY pid"; SIGUSR1 makes it print "RSEQ loops aborts broken", where
 * "broken" counts the times the section carried on after the kernel had cleared it
 * (a debugger that put the thread back without aborting it).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <unistd.h>

static volatile unsigned long loops, aborts, broken;

static void report(int sig) {
    (void)sig;
    char text[96];
    int n = snprintf(text, sizeof text, "RSEQ %lu %lu %lu\n", loops, aborts, broken);
    if (write(1, text, (size_t)n) != n)
        _exit(3);
}

int main(void) {
    if (__rseq_size == 0) {
        printf("NORSEQ (glibc did not register rseq)\n");
        return 1;
    }
    struct rseq *area = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
    volatile uint64_t *descriptor = (volatile uint64_t *)&area->rseq_cs;
    signal(SIGUSR1, report);
    printf("READY %d\n", getpid());
    fflush(stdout);
    for (;;) {
        __asm__ __volatile__ goto(
            "leaq 3f(%%rip), %%rax\n\t"
            "movq %%rax, (%[descriptor])\n\t"
            "1:\n\t"                                /* start_ip */
            "incq (%[loops])\n\t"
            "cmpq $0, (%[descriptor])\n\t"
            "je %l[cleared]\n\t"
            "jmp 1b\n\t"
            "2:\n\t"                                /* post-commit: never reached */
            ".pushsection .data.rel.local, \"aw\"\n\t"
            ".balign 32\n\t"
            "3:\n\t"
            ".long 0, 0\n\t"
            ".quad 1b, 2b - 1b, 4f\n\t"
            ".popsection\n\t"
            ".long 0x53053053\n\t"                  /* RSEQ_SIG, just before the abort ip */
            "4:\n\t"
            "jmp %l[aborted]\n\t"
            :
            : [descriptor] "r"(descriptor), [loops] "r"(&loops)
            : "rax", "memory", "cc"
            : cleared, aborted);
        continue;
    cleared:
        broken++;
        continue;
    aborted:
        aborts++;
    }
}
