/* The target of tests/wine/test_watch_crash_windows.py (snapshotdump watch --crash on
 * Windows).  It prints "READY pid", then obeys one command a line: "crash" writes through
 * NULL, an access violation nobody handles; "handled" touches a no-access page, an access
 * violation its own vectored handler resolves, as a GC's or a JIT's does, and goes on;
 * "exit" returns 0.  Built with mingw-w64 by scripts/wine-tests or by the test itself. */
#include <windows.h>
#include <stdio.h>
#include <string.h>

static char *guarded;

static LONG CALLBACK unguard(EXCEPTION_POINTERS *info)
{
    EXCEPTION_RECORD *record = info->ExceptionRecord;
    if (record->ExceptionCode == EXCEPTION_ACCESS_VIOLATION && record->NumberParameters >= 2
        && (char *)record->ExceptionInformation[1] == guarded) {
        DWORD old;
        VirtualProtect(guarded, 4096, PAGE_READWRITE, &old);
        return EXCEPTION_CONTINUE_EXECUTION;
    }
    return EXCEPTION_CONTINUE_SEARCH;
}

int main(void)
{
    char line[64];
    setvbuf(stdout, NULL, _IONBF, 0);
    guarded = VirtualAlloc(NULL, 4096, MEM_COMMIT | MEM_RESERVE, PAGE_NOACCESS);
    AddVectoredExceptionHandler(1, unguard);
    printf("READY %lu\n", GetCurrentProcessId());
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "crash", 5) == 0) {
            printf("CRASHING %lu\n", GetCurrentThreadId());
            *(volatile int *)0 = 42;
        } else if (strncmp(line, "handled", 7) == 0) {
            guarded[0] = 7;
            printf("HANDLED %d\n", guarded[0]);
        } else if (strncmp(line, "exit", 4) == 0) {
            return 0;
        }
    }
    return 3;
}
