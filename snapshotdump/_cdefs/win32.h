/* kernel32 and advapi32, natural (MSVC default) alignment. */
typedef const WCHAR *LPCWSTR;
typedef WCHAR *LPWSTR;
typedef DWORD *PDWORD;
typedef HANDLE *PHANDLE;
typedef int64_t LARGE_INTEGER;

typedef struct _FILETIME { DWORD dwLowDateTime; DWORD dwHighDateTime; } FILETIME;

typedef struct _MEMORY_BASIC_INFORMATION {
    PVOID BaseAddress;
    PVOID AllocationBase;
    DWORD AllocationProtect;
    WORD PartitionId;
    SIZE_T RegionSize;
    DWORD State;
    DWORD Protect;
    DWORD Type;
} MEMORY_BASIC_INFORMATION;

typedef struct _EXCEPTION_RECORD {
    DWORD ExceptionCode;
    DWORD ExceptionFlags;
    struct _EXCEPTION_RECORD *ExceptionRecord;
    PVOID ExceptionAddress;
    DWORD NumberParameters;
    ULONG_PTR ExceptionInformation[15];
} EXCEPTION_RECORD;

typedef struct _EXCEPTION_POINTERS {
    EXCEPTION_RECORD *ExceptionRecord;
    CONTEXT *ContextRecord;
} EXCEPTION_POINTERS;

/* psapi.h: what K32GetProcessMemoryInfo fills (the watch's memory trigger). */
typedef struct _PROCESS_MEMORY_COUNTERS {
    DWORD cb;
    DWORD PageFaultCount;
    SIZE_T PeakWorkingSetSize;
    SIZE_T WorkingSetSize;
    SIZE_T QuotaPeakPagedPoolUsage;
    SIZE_T QuotaPagedPoolUsage;
    SIZE_T QuotaPeakNonPagedPoolUsage;
    SIZE_T QuotaNonPagedPoolUsage;
    SIZE_T PagefileUsage;
    SIZE_T PeakPagefileUsage;
} PROCESS_MEMORY_COUNTERS;

/* tlhelp32.h: one process of a Toolhelp snapshot (thread count, executable name). */
typedef struct _PROCESSENTRY32W {
    DWORD dwSize;
    DWORD cntUsage;
    DWORD th32ProcessID;
    ULONG_PTR th32DefaultHeapID;
    DWORD th32ModuleID;
    DWORD cntThreads;
    DWORD th32ParentProcessID;
    LONG pcPriClassBase;
    DWORD dwFlags;
    WCHAR szExeFile[260];
} PROCESSENTRY32W;

/* minwinbase.h: the debug events the watch's Windows crash trigger reads. */
typedef struct _EXCEPTION_DEBUG_INFO {
    EXCEPTION_RECORD ExceptionRecord;
    DWORD dwFirstChance;
} EXCEPTION_DEBUG_INFO;

typedef struct _CREATE_THREAD_DEBUG_INFO {
    HANDLE hThread;
    PVOID lpThreadLocalBase;
    PVOID lpStartAddress;
} CREATE_THREAD_DEBUG_INFO;

typedef struct _CREATE_PROCESS_DEBUG_INFO {
    HANDLE hFile;
    HANDLE hProcess;
    HANDLE hThread;
    PVOID lpBaseOfImage;
    DWORD dwDebugInfoFileOffset;
    DWORD nDebugInfoSize;
    PVOID lpThreadLocalBase;
    PVOID lpStartAddress;
    PVOID lpImageName;
    WORD fUnicode;
} CREATE_PROCESS_DEBUG_INFO;

typedef struct _EXIT_THREAD_DEBUG_INFO { DWORD dwExitCode; } EXIT_THREAD_DEBUG_INFO;
typedef struct _EXIT_PROCESS_DEBUG_INFO { DWORD dwExitCode; } EXIT_PROCESS_DEBUG_INFO;

typedef struct _LOAD_DLL_DEBUG_INFO {
    HANDLE hFile;
    PVOID lpBaseOfDll;
    DWORD dwDebugInfoFileOffset;
    DWORD nDebugInfoSize;
    PVOID lpImageName;
    WORD fUnicode;
} LOAD_DLL_DEBUG_INFO;

typedef struct _UNLOAD_DLL_DEBUG_INFO { PVOID lpBaseOfDll; } UNLOAD_DLL_DEBUG_INFO;

typedef struct _OUTPUT_DEBUG_STRING_INFO {
    char *lpDebugStringData;
    WORD fUnicode;
    WORD nDebugStringLength;
} OUTPUT_DEBUG_STRING_INFO;

typedef struct _RIP_INFO { DWORD dwError; DWORD dwType; } RIP_INFO;

typedef struct _DEBUG_EVENT {
    DWORD dwDebugEventCode;
    DWORD dwProcessId;
    DWORD dwThreadId;
    union {
        EXCEPTION_DEBUG_INFO Exception;
        CREATE_THREAD_DEBUG_INFO CreateThread;
        CREATE_PROCESS_DEBUG_INFO CreateProcessInfo;
        EXIT_THREAD_DEBUG_INFO ExitThread;
        EXIT_PROCESS_DEBUG_INFO ExitProcess;
        LOAD_DLL_DEBUG_INFO LoadDll;
        UNLOAD_DLL_DEBUG_INFO UnloadDll;
        OUTPUT_DEBUG_STRING_INFO DebugString;
        RIP_INFO RipInfo;
    } u;
} DEBUG_EVENT;

typedef struct _LUID { DWORD LowPart; LONG HighPart; } LUID;
typedef struct _LUID_AND_ATTRIBUTES { LUID Luid; DWORD Attributes; } LUID_AND_ATTRIBUTES;
typedef struct _TOKEN_PRIVILEGES {
    DWORD PrivilegeCount;
    LUID_AND_ATTRIBUTES Privileges[1];
} TOKEN_PRIVILEGES;

/* kernel32.dll */
void * WINAPI LoadLibraryExW(LPCWSTR lpLibFileName, HANDLE hFile, DWORD dwFlags);
HANDLE WINAPI OpenProcess(DWORD dwDesiredAccess, BOOL bInheritHandle, DWORD dwProcessId);
BOOL   WINAPI CloseHandle(HANDLE hObject);
DWORD  WINAPI GetLastError(void);
void   WINAPI SetLastError(DWORD dwErrCode);
HANDLE WINAPI CreateFileW(LPCWSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                          void *lpSecurityAttributes, DWORD dwCreationDisposition,
                          DWORD dwFlagsAndAttributes, HANDLE hTemplateFile);
DWORD  WINAPI FormatMessageW(DWORD dwFlags, const void *lpSource, DWORD dwMessageId,
                             DWORD dwLanguageId, LPWSTR lpBuffer, DWORD nSize, void *Arguments);
DWORD  WINAPI GetProcessId(HANDLE Process);
BOOL   WINAPI QueryFullProcessImageNameW(HANDLE hProcess, DWORD dwFlags, LPWSTR lpExeName,
                                         PDWORD lpdwSize);
HANDLE WINAPI GetCurrentProcess(void);
DWORD  WINAPI GetCurrentProcessId(void);
DWORD  WINAPI GetCurrentThreadId(void);
BOOL   WINAPI GetProcessHandleCount(HANDLE hProcess, PDWORD pdwHandleCount);
BOOL   WINAPI GetExitCodeProcess(HANDLE hProcess, PDWORD lpExitCode);
BOOL   WINAPI IsWow64Process(HANDLE hProcess, BOOL *Wow64Process);
BOOL   WINAPI QueryPerformanceFrequency(LARGE_INTEGER *lpFrequency);
BOOL   WINAPI GetFileSizeEx(HANDLE hFile, LARGE_INTEGER *lpFileSize);
BOOL   WINAPI FlushFileBuffers(HANDLE hFile);
HANDLE WINAPI ReOpenFile(HANDLE hOriginalFile, DWORD dwDesiredAccess, DWORD dwShareMode,
                         DWORD dwFlagsAndAttributes);
void * WINAPI LocalFree(void *hMem);
BOOL   WINAPI GetProcessTimes(HANDLE hProcess, FILETIME *lpCreationTime, FILETIME *lpExitTime,
                               FILETIME *lpKernelTime, FILETIME *lpUserTime);
BOOL   WINAPI K32GetProcessMemoryInfo(HANDLE Process, PROCESS_MEMORY_COUNTERS *ppsmemCounters,
                                       DWORD cb);
HANDLE WINAPI CreateToolhelp32Snapshot(DWORD dwFlags, DWORD th32ProcessID);
BOOL   WINAPI Process32FirstW(HANDLE hSnapshot, PROCESSENTRY32W *lppe);
BOOL   WINAPI Process32NextW(HANDLE hSnapshot, PROCESSENTRY32W *lppe);
DWORD  WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
HANDLE WINAPI OpenThread(DWORD dwDesiredAccess, BOOL bInheritHandle, DWORD dwThreadId);
BOOL   WINAPI GetThreadContext(HANDLE hThread, CONTEXT *lpContext);
BOOL   WINAPI DebugActiveProcess(DWORD dwProcessId);
BOOL   WINAPI DebugActiveProcessStop(DWORD dwProcessId);
BOOL   WINAPI DebugSetProcessKillOnExit(BOOL KillOnExit);
BOOL   WINAPI WaitForDebugEvent(DEBUG_EVENT *lpDebugEvent, DWORD dwMilliseconds);
BOOL   WINAPI ContinueDebugEvent(DWORD dwProcessId, DWORD dwThreadId, DWORD dwContinueStatus);

/* advapi32.dll */
BOOL WINAPI OpenProcessToken(HANDLE ProcessHandle, DWORD DesiredAccess, PHANDLE TokenHandle);
BOOL WINAPI LookupPrivilegeValueW(LPCWSTR lpSystemName, LPCWSTR lpName, LUID *lpLuid);
BOOL WINAPI AdjustTokenPrivileges(HANDLE TokenHandle, BOOL DisableAllPrivileges,
                                  TOKEN_PRIVILEGES *NewState, DWORD BufferLength,
                                  TOKEN_PRIVILEGES *PreviousState, PDWORD ReturnLength);
BOOL WINAPI ConvertStringSecurityDescriptorToSecurityDescriptorW(
    LPCWSTR StringSecurityDescriptor, DWORD StringSDRevision, void **SecurityDescriptor,
    PDWORD SecurityDescriptorSize);
BOOL WINAPI GetSecurityDescriptorDacl(void *pSecurityDescriptor, BOOL *lpbDaclPresent,
                                      void **pDacl, BOOL *lpbDaclDefaulted);
DWORD WINAPI SetSecurityInfo(HANDLE handle, DWORD ObjectType, DWORD SecurityInfo, void *psidOwner,
                             void *psidGroup, void *pDacl, void *pSacl);
