/* glibc entry points Python's os module lacks.  ptrace and prctl are variadic in glibc. */
typedef int pid_t;
struct iovec { void *iov_base; size_t iov_len; };
long ptrace(int request, ...);
int prctl(int option, ...);
long syscall(long number, ...);
