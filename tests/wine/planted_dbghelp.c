/*
 * A dbghelp.dll for tests/wine/test_dll_planting.py to plant next to python.exe.
 * If anything ever loads it, it leaves "<its own path>.loaded" behind and refuses
 * to load, so the planting is seen even when the load itself is reported as failed.
 * Built with mingw-w64: x86_64-w64-mingw32-gcc -shared -o dbghelp.dll planted_dbghelp.c
 */
#include <windows.h>

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    WCHAR path[MAX_PATH + 16];
    DWORD length;
    HANDLE marker;

    (void)reserved;
    if (reason != DLL_PROCESS_ATTACH)
        return TRUE;
    length = GetModuleFileNameW(instance, path, MAX_PATH);
    if (length == 0 || length >= MAX_PATH)
        return FALSE;
    lstrcpyW(path + length, L".loaded");
    marker = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (marker != INVALID_HANDLE_VALUE)
        CloseHandle(marker);
    return FALSE;
}

/* Exported so that a loader resolving MiniDumpWriteDump by name would find it here. */
__declspec(dllexport) BOOL WINAPI MiniDumpWriteDump(void *process, DWORD pid, void *file, DWORD type,
                                                    void *exception, void *streams, void *callback)
{
    (void)process; (void)pid; (void)file; (void)type;
    (void)exception; (void)streams; (void)callback;
    SetLastError(ERROR_ACCESS_DENIED);
    return FALSE;
}
