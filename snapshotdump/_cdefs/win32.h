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
