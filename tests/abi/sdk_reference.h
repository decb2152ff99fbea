/*
 * Reference declarations in the Windows SDK's own style, for tests/test_layout.py.
 * Compiled with clang -target x86_64-pc-windows-msvc, which implements MSVC's
 * record layout: native Windows types (long and wchar_t are 4 and 2 bytes there),
 * #pragma pack(4) around the minidump structs exactly as minidumpapiset.h has it,
 * and DECLSPEC_ALIGN(16) on M128A and CONTEXT as in winnt.h.  No padding is
 * written out by hand here: the compiler decides it, and the test compares
 * its answer with what cffi computes from snapshotdump/_cdefs.
 */
#define DECLSPEC_ALIGN(x) __declspec(align(x))
#define WINAPI __stdcall
typedef unsigned char BYTE, UCHAR;
typedef unsigned short WORD, USHORT;
typedef wchar_t WCHAR;
typedef unsigned long DWORD, ULONG, ULONG32, RVA;
typedef int BOOL;
typedef long LONG, HRESULT;
typedef unsigned __int64 ULONG64, DWORD64, ULONGLONG, RVA64;
typedef __int64 LONGLONG;
typedef void *HANDLE, *PVOID;
typedef unsigned __int64 ULONG_PTR, SIZE_T;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned __int64 uint64_t;
typedef __int64 int64_t;

/* winnt.h: natural alignment */
typedef struct DECLSPEC_ALIGN(16) _M128A { ULONGLONG Low; LONGLONG High; } M128A;

typedef struct _XSAVE_FORMAT {
    WORD  ControlWord;
    WORD  StatusWord;
    BYTE  TagWord;
    BYTE  Reserved1;
    WORD  ErrorOpcode;
    DWORD ErrorOffset;
    WORD  ErrorSelector;
    WORD  Reserved2;
    DWORD DataOffset;
    WORD  DataSelector;
    WORD  Reserved3;
    DWORD MxCsr;
    DWORD MxCsr_Mask;
    M128A FloatRegisters[8];
    M128A XmmRegisters[16];
    BYTE  Reserved4[96];
} XSAVE_FORMAT;

/* The x64 CONTEXT of winnt.h.  MSVC aligns it to 16 (DECLSPEC_ALIGN(16)). */
typedef struct DECLSPEC_ALIGN(16) _CONTEXT {
    DWORD64 P1Home; DWORD64 P2Home; DWORD64 P3Home;
    DWORD64 P4Home; DWORD64 P5Home; DWORD64 P6Home;
    DWORD ContextFlags;
    DWORD MxCsr;
    WORD SegCs; WORD SegDs; WORD SegEs; WORD SegFs; WORD SegGs; WORD SegSs;
    DWORD EFlags;
    DWORD64 Dr0; DWORD64 Dr1; DWORD64 Dr2; DWORD64 Dr3; DWORD64 Dr6; DWORD64 Dr7;
    DWORD64 Rax; DWORD64 Rcx; DWORD64 Rdx; DWORD64 Rbx;
    DWORD64 Rsp; DWORD64 Rbp; DWORD64 Rsi; DWORD64 Rdi;
    DWORD64 R8;  DWORD64 R9;  DWORD64 R10; DWORD64 R11;
    DWORD64 R12; DWORD64 R13; DWORD64 R14; DWORD64 R15;
    DWORD64 Rip;
    XSAVE_FORMAT FltSave;
    M128A VectorRegister[26];
    DWORD64 VectorControl;
    DWORD64 DebugControl;
    DWORD64 LastBranchToRip;
    DWORD64 LastBranchFromRip;
    DWORD64 LastExceptionToRip;
    DWORD64 LastExceptionFromRip;
} CONTEXT;


#pragma pack(push, 4)
/* minidumpapiset.h */
typedef struct _VS_FIXEDFILEINFO {
    DWORD dwSignature; DWORD dwStrucVersion;
    DWORD dwFileVersionMS; DWORD dwFileVersionLS;
    DWORD dwProductVersionMS; DWORD dwProductVersionLS;
    DWORD dwFileFlagsMask; DWORD dwFileFlags; DWORD dwFileOS;
    DWORD dwFileType; DWORD dwFileSubtype;
    DWORD dwFileDateMS; DWORD dwFileDateLS;
} VS_FIXEDFILEINFO;

typedef struct _MINIDUMP_LOCATION_DESCRIPTOR { ULONG32 DataSize; RVA Rva; } MINIDUMP_LOCATION_DESCRIPTOR;
typedef struct _MINIDUMP_LOCATION_DESCRIPTOR64 { ULONG64 DataSize; RVA64 Rva; } MINIDUMP_LOCATION_DESCRIPTOR64;

typedef struct _MINIDUMP_MEMORY_DESCRIPTOR {
    ULONG64 StartOfMemoryRange;
    MINIDUMP_LOCATION_DESCRIPTOR Memory;
} MINIDUMP_MEMORY_DESCRIPTOR;

typedef struct _MINIDUMP_MEMORY_DESCRIPTOR64 {
    ULONG64 StartOfMemoryRange;
    ULONG64 DataSize;
} MINIDUMP_MEMORY_DESCRIPTOR64;

typedef struct _MINIDUMP_HEADER {
    ULONG32 Signature;
    ULONG32 Version;
    ULONG32 NumberOfStreams;
    RVA StreamDirectoryRva;
    ULONG32 CheckSum;
    ULONG32 TimeDateStamp;
    ULONG64 Flags;
} MINIDUMP_HEADER;

typedef struct _MINIDUMP_DIRECTORY {
    ULONG32 StreamType;
    MINIDUMP_LOCATION_DESCRIPTOR Location;
} MINIDUMP_DIRECTORY;

typedef struct _MINIDUMP_STRING { ULONG32 Length; WCHAR Buffer[]; } MINIDUMP_STRING;

typedef struct _MINIDUMP_THREAD {
    ULONG32 ThreadId;
    ULONG32 SuspendCount;
    ULONG32 PriorityClass;
    ULONG32 Priority;
    ULONG64 Teb;
    MINIDUMP_MEMORY_DESCRIPTOR Stack;
    MINIDUMP_LOCATION_DESCRIPTOR ThreadContext;
} MINIDUMP_THREAD;

typedef struct _MINIDUMP_THREAD_LIST {
    ULONG32 NumberOfThreads;
    MINIDUMP_THREAD Threads[];
} MINIDUMP_THREAD_LIST;

typedef struct _MINIDUMP_MODULE {
    ULONG64 BaseOfImage;
    ULONG32 SizeOfImage;
    ULONG32 CheckSum;
    ULONG32 TimeDateStamp;
    RVA ModuleNameRva;
    VS_FIXEDFILEINFO VersionInfo;
    MINIDUMP_LOCATION_DESCRIPTOR CvRecord;
    MINIDUMP_LOCATION_DESCRIPTOR MiscRecord;
    ULONG64 Reserved0;
    ULONG64 Reserved1;
} MINIDUMP_MODULE;

typedef struct _MINIDUMP_MODULE_LIST {
    ULONG32 NumberOfModules;
    MINIDUMP_MODULE Modules[];
} MINIDUMP_MODULE_LIST;

typedef struct _MINIDUMP_MEMORY_LIST {
    ULONG32 NumberOfMemoryRanges;
    MINIDUMP_MEMORY_DESCRIPTOR MemoryRanges[];
} MINIDUMP_MEMORY_LIST;

typedef struct _MINIDUMP_MEMORY64_LIST {
    ULONG64 NumberOfMemoryRanges;
    RVA64 BaseRva;
    MINIDUMP_MEMORY_DESCRIPTOR64 MemoryRanges[];
} MINIDUMP_MEMORY64_LIST;

typedef union _CPU_INFORMATION {
    struct {
        ULONG32 VendorId[3];
        ULONG32 VersionInformation;
        ULONG32 FeatureInformation;
        ULONG32 AMDExtendedCpuFeatures;
    } X86CpuInfo;
    struct {
        ULONG64 ProcessorFeatures[2];
    } OtherCpuInfo;
} CPU_INFORMATION;

typedef struct _MINIDUMP_SYSTEM_INFO {
    USHORT ProcessorArchitecture;
    USHORT ProcessorLevel;
    USHORT ProcessorRevision;
    UCHAR NumberOfProcessors;
    UCHAR ProductType;
    ULONG32 MajorVersion;
    ULONG32 MinorVersion;
    ULONG32 BuildNumber;
    ULONG32 PlatformId;
    RVA CSDVersionRva;
    USHORT SuiteMask;
    USHORT Reserved2;
    CPU_INFORMATION Cpu;
} MINIDUMP_SYSTEM_INFO;

typedef struct _MINIDUMP_MISC_INFO {
    ULONG32 SizeOfInfo;
    ULONG32 Flags1;
    ULONG32 ProcessId;
    ULONG32 ProcessCreateTime;
    ULONG32 ProcessUserTime;
    ULONG32 ProcessKernelTime;
} MINIDUMP_MISC_INFO;

typedef struct _MINIDUMP_MISC_INFO_2 {
    ULONG32 SizeOfInfo;
    ULONG32 Flags1;
    ULONG32 ProcessId;
    ULONG32 ProcessCreateTime;
    ULONG32 ProcessUserTime;
    ULONG32 ProcessKernelTime;
    ULONG32 ProcessorMaxMhz;
    ULONG32 ProcessorCurrentMhz;
    ULONG32 ProcessorMhzLimit;
    ULONG32 ProcessorMaxIdleState;
    ULONG32 ProcessorCurrentIdleState;
} MINIDUMP_MISC_INFO_2;

typedef struct _MINIDUMP_MEMORY_INFO {
    ULONG64 BaseAddress;
    ULONG64 AllocationBase;
    ULONG32 AllocationProtect;
    ULONG32 __alignment1;
    ULONG64 RegionSize;
    ULONG32 State;
    ULONG32 Protect;
    ULONG32 Type;
    ULONG32 __alignment2;
} MINIDUMP_MEMORY_INFO;

typedef struct _MINIDUMP_MEMORY_INFO_LIST {
    ULONG SizeOfHeader;
    ULONG SizeOfEntry;
    ULONG64 NumberOfEntries;
} MINIDUMP_MEMORY_INFO_LIST;

typedef struct _MINIDUMP_THREAD_INFO {
    ULONG32 ThreadId;
    ULONG32 DumpFlags;
    ULONG32 DumpError;
    ULONG32 ExitStatus;
    ULONG64 CreateTime;
    ULONG64 ExitTime;
    ULONG64 KernelTime;
    ULONG64 UserTime;
    ULONG64 StartAddress;
    ULONG64 Affinity;
} MINIDUMP_THREAD_INFO;

typedef struct _MINIDUMP_THREAD_INFO_LIST {
    ULONG SizeOfHeader;
    ULONG SizeOfEntry;
    ULONG NumberOfEntries;
} MINIDUMP_THREAD_INFO_LIST;

typedef struct _MINIDUMP_HANDLE_DESCRIPTOR_2 {
    ULONG64 Handle;
    RVA TypeNameRva;
    RVA ObjectNameRva;
    ULONG32 Attributes;
    ULONG32 GrantedAccess;
    ULONG32 HandleCount;
    ULONG32 PointerCount;
    RVA ObjectInfoRva;
    ULONG32 Reserved0;
} MINIDUMP_HANDLE_DESCRIPTOR_2;

typedef struct _MINIDUMP_HANDLE_DATA_STREAM {
    ULONG32 SizeOfHeader;
    ULONG32 SizeOfDescriptor;
    ULONG32 NumberOfDescriptors;
    ULONG32 Reserved;
} MINIDUMP_HANDLE_DATA_STREAM;

typedef struct _MINIDUMP_THREAD_NAME {
    ULONG ThreadId;
    RVA64 RvaOfThreadName;
} MINIDUMP_THREAD_NAME;

typedef struct _MINIDUMP_THREAD_NAME_LIST {
    ULONG NumberOfThreadNames;
    MINIDUMP_THREAD_NAME ThreadNames[];
} MINIDUMP_THREAD_NAME_LIST;

typedef struct _MINIDUMP_EXCEPTION {
    ULONG32 ExceptionCode;
    ULONG32 ExceptionFlags;
    ULONG64 ExceptionRecord;
    ULONG64 ExceptionAddress;
    ULONG32 NumberParameters;
    ULONG32 __unusedAlignment;
    ULONG64 ExceptionInformation[15];
} MINIDUMP_EXCEPTION;

typedef struct _MINIDUMP_EXCEPTION_STREAM {
    ULONG32 ThreadId;
    ULONG32 __alignment;
    MINIDUMP_EXCEPTION ExceptionRecord;
    MINIDUMP_LOCATION_DESCRIPTOR ThreadContext;
} MINIDUMP_EXCEPTION_STREAM;


#pragma pack(pop)

/* kernel32 and advapi32, natural (MSVC default) alignment. */
typedef const WCHAR *LPCWSTR;
typedef WCHAR *LPWSTR;
typedef DWORD *PDWORD;
typedef HANDLE *PHANDLE;
typedef union _LARGE_INTEGER { struct { DWORD LowPart; LONG HighPart; }; LONGLONG QuadPart; } LARGE_INTEGER;

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

typedef char *LPSTR;
typedef DWORD (WINAPI *LPTHREAD_START_ROUTINE)(PVOID lpThreadParameter);
/* psapi.h */
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

/* tlhelp32.h */
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

/* minwinbase.h */
typedef struct _EXCEPTION_DEBUG_INFO {
    EXCEPTION_RECORD ExceptionRecord;
    DWORD dwFirstChance;
} EXCEPTION_DEBUG_INFO;

typedef struct _CREATE_THREAD_DEBUG_INFO {
    HANDLE hThread;
    PVOID lpThreadLocalBase;
    LPTHREAD_START_ROUTINE lpStartAddress;
} CREATE_THREAD_DEBUG_INFO;

typedef struct _CREATE_PROCESS_DEBUG_INFO {
    HANDLE hFile;
    HANDLE hProcess;
    HANDLE hThread;
    PVOID lpBaseOfImage;
    DWORD dwDebugInfoFileOffset;
    DWORD nDebugInfoSize;
    PVOID lpThreadLocalBase;
    LPTHREAD_START_ROUTINE lpStartAddress;
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
    LPSTR lpDebugStringData;
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
void * WINAPI LoadLibraryExW(LPCWSTR lpLibFileName, HANDLE hFile, DWORD dwFlags);
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

/*
 * The Process Snapshotting API (processsnapshot.h), natural alignment.
 * mingw-w64 ships no processsnapshot.h: declared from Microsoft's documentation.
 */
typedef HANDLE HPSS;
typedef HANDLE HPSSWALK;
typedef DWORD PSS_CAPTURE_FLAGS;
typedef DWORD PSS_QUERY_INFORMATION_CLASS;
typedef DWORD PSS_WALK_INFORMATION_CLASS;
typedef DWORD PSS_DUPLICATE_FLAGS;
typedef DWORD PSS_PROCESS_FLAGS;
typedef DWORD PSS_THREAD_FLAGS;
typedef DWORD PSS_HANDLE_FLAGS;
typedef DWORD PSS_OBJECT_TYPE;

typedef struct {
    DWORD ExitStatus;
    void *PebBaseAddress;
    ULONG_PTR AffinityMask;
    LONG BasePriority;
    DWORD ProcessId;
    DWORD ParentProcessId;
    PSS_PROCESS_FLAGS Flags;
    FILETIME CreateTime;
    FILETIME ExitTime;
    FILETIME KernelTime;
    FILETIME UserTime;
    DWORD PriorityClass;
    ULONG_PTR PeakVirtualSize;
    ULONG_PTR VirtualSize;
    DWORD PageFaultCount;
    ULONG_PTR PeakWorkingSetSize;
    ULONG_PTR WorkingSetSize;
    ULONG_PTR QuotaPeakPagedPoolUsage;
    ULONG_PTR QuotaPagedPoolUsage;
    ULONG_PTR QuotaPeakNonPagedPoolUsage;
    ULONG_PTR QuotaNonPagedPoolUsage;
    ULONG_PTR PagefileUsage;
    ULONG_PTR PeakPagefileUsage;
    ULONG_PTR PrivateUsage;
    DWORD ExecuteFlags;
    WCHAR ImageFileName[260];
} PSS_PROCESS_INFORMATION;

typedef struct { HANDLE VaCloneHandle; } PSS_VA_CLONE_INFORMATION;
typedef struct { DWORD AuxPagesCaptured; } PSS_AUXILIARY_PAGES_INFORMATION;
typedef struct { DWORD RegionCount; } PSS_VA_SPACE_INFORMATION;
typedef struct { DWORD HandlesCaptured; } PSS_HANDLE_INFORMATION;
typedef struct { DWORD ThreadsCaptured; DWORD ContextLength; } PSS_THREAD_INFORMATION;
typedef struct { HANDLE SectionHandle; DWORD Size; } PSS_HANDLE_TRACE_INFORMATION;

typedef struct {
    uint64_t TotalCycleCount;
    uint64_t TotalWallClockPeriod;
    uint64_t VaCloneCycleCount;
    uint64_t VaCloneWallClockPeriod;
    uint64_t VaSpaceCycleCount;
    uint64_t VaSpaceWallClockPeriod;
    uint64_t AuxPagesCycleCount;
    uint64_t AuxPagesWallClockPeriod;
    uint64_t HandlesCycleCount;
    uint64_t HandlesWallClockPeriod;
    uint64_t ThreadsCycleCount;
    uint64_t ThreadsWallClockPeriod;
} PSS_PERFORMANCE_COUNTERS;

typedef struct {
    void *Address;
    MEMORY_BASIC_INFORMATION BasicInformation;
    FILETIME CaptureTime;
    void *PageContents;
    DWORD PageSize;
} PSS_AUXILIARY_PAGE_ENTRY;

typedef struct {
    void *BaseAddress;
    void *AllocationBase;
    DWORD AllocationProtect;
    ULONG_PTR RegionSize;
    DWORD State;
    DWORD Protect;
    DWORD Type;
    DWORD TimeDateStamp;
    DWORD SizeOfImage;
    void *ImageBase;
    DWORD CheckSum;
    WORD MappedFileNameLength;
    const WCHAR *MappedFileName;
} PSS_VA_SPACE_ENTRY;

typedef struct {
    HANDLE Handle;
    PSS_HANDLE_FLAGS Flags;
    PSS_OBJECT_TYPE ObjectType;
    FILETIME CaptureTime;
    DWORD Attributes;
    DWORD GrantedAccess;
    DWORD HandleCount;
    DWORD PointerCount;
    DWORD PagedPoolCharge;
    DWORD NonPagedPoolCharge;
    FILETIME CreationTime;
    WORD TypeNameLength;
    const WCHAR *TypeName;
    WORD ObjectNameLength;
    const WCHAR *ObjectName;
    union {
        struct {
            DWORD ExitStatus;
            void *PebBaseAddress;
            ULONG_PTR AffinityMask;
            LONG BasePriority;
            DWORD ProcessId;
            DWORD ParentProcessId;
            DWORD Flags;
        } Process;
        struct {
            DWORD ExitStatus;
            void *TebBaseAddress;
            DWORD ProcessId;
            DWORD ThreadId;
            ULONG_PTR AffinityMask;
            int Priority;
            int BasePriority;
            void *Win32StartAddress;
        } Thread;
        struct {
            LONG CurrentCount;
            BOOL Abandoned;
            DWORD OwnerProcessId;
            DWORD OwnerThreadId;
        } Mutant;
        struct {
            BOOL ManualReset;
            BOOL Signaled;
        } Event;
        struct {
            void *BaseAddress;
            DWORD AllocationAttributes;
            LARGE_INTEGER MaximumSize;
        } Section;
        struct {
            LONG CurrentCount;
            LONG MaximumCount;
        } Semaphore;
    } TypeSpecificInformation;
} PSS_HANDLE_ENTRY;

typedef struct {
    DWORD ExitStatus;
    void *TebBaseAddress;
    DWORD ProcessId;
    DWORD ThreadId;
    ULONG_PTR AffinityMask;
    int Priority;
    int BasePriority;
    void *LastSyscallFirstArgument;
    WORD LastSyscallNumber;
    FILETIME CreateTime;
    FILETIME ExitTime;
    FILETIME KernelTime;
    FILETIME UserTime;
    void *Win32StartAddress;
    FILETIME CaptureTime;
    PSS_THREAD_FLAGS Flags;
    WORD SuspendCount;
    WORD SizeOfContextRecord;
    CONTEXT *ContextRecord;
} PSS_THREAD_ENTRY;

typedef struct {
    void *Context;
    void *(WINAPI *AllocRoutine)(void *Context, DWORD Size);
    void (WINAPI *FreeRoutine)(void *Context, void *Address);
} PSS_ALLOCATOR;

DWORD WINAPI PssCaptureSnapshot(HANDLE ProcessHandle, PSS_CAPTURE_FLAGS CaptureFlags,
                                DWORD ThreadContextFlags, HPSS *SnapshotHandle);
DWORD WINAPI PssFreeSnapshot(HANDLE ProcessHandle, HPSS SnapshotHandle);
DWORD WINAPI PssQuerySnapshot(HPSS SnapshotHandle, PSS_QUERY_INFORMATION_CLASS InformationClass,
                              void *Buffer, DWORD BufferLength);
DWORD WINAPI PssWalkSnapshot(HPSS SnapshotHandle, PSS_WALK_INFORMATION_CLASS InformationClass,
                             HPSSWALK WalkMarkerHandle, void *Buffer, DWORD BufferLength);
DWORD WINAPI PssDuplicateSnapshot(HANDLE SourceProcessHandle, HPSS SnapshotHandle,
                                  HANDLE TargetProcessHandle, HPSS *TargetSnapshotHandle,
                                  PSS_DUPLICATE_FLAGS Flags);
DWORD WINAPI PssWalkMarkerCreate(const PSS_ALLOCATOR *Allocator, HPSSWALK *WalkMarkerHandle);
DWORD WINAPI PssWalkMarkerFree(HPSSWALK WalkMarkerHandle);
DWORD WINAPI PssWalkMarkerGetPosition(HPSSWALK WalkMarkerHandle, ULONG_PTR *Position);
DWORD WINAPI PssWalkMarkerSetPosition(HPSSWALK WalkMarkerHandle, ULONG_PTR Position);
DWORD WINAPI PssWalkMarkerSeekToBeginning(HPSSWALK WalkMarkerHandle);

#pragma pack(push, 4)
typedef struct _MINIDUMP_EXCEPTION_INFORMATION {
    DWORD ThreadId;
    EXCEPTION_POINTERS *ExceptionPointers;
    BOOL ClientPointers;
} MINIDUMP_EXCEPTION_INFORMATION;

typedef struct _MINIDUMP_USER_STREAM {
    ULONG32 Type;
    ULONG BufferSize;
    PVOID Buffer;
} MINIDUMP_USER_STREAM;

typedef struct _MINIDUMP_USER_STREAM_INFORMATION {
    ULONG UserStreamCount;
    MINIDUMP_USER_STREAM *UserStreamArray;
} MINIDUMP_USER_STREAM_INFORMATION;

typedef struct _MINIDUMP_THREAD_CALLBACK {
    ULONG ThreadId;
    HANDLE ThreadHandle;
    CONTEXT Context;
    ULONG SizeOfContext;
    ULONG64 StackBase;
    ULONG64 StackEnd;
} MINIDUMP_THREAD_CALLBACK;

typedef struct _MINIDUMP_THREAD_EX_CALLBACK {
    ULONG ThreadId;
    HANDLE ThreadHandle;
    CONTEXT Context;
    ULONG SizeOfContext;
    ULONG64 StackBase;
    ULONG64 StackEnd;
    ULONG64 BackingStoreBase;
    ULONG64 BackingStoreEnd;
} MINIDUMP_THREAD_EX_CALLBACK;

typedef struct _MINIDUMP_INCLUDE_THREAD_CALLBACK { ULONG ThreadId; } MINIDUMP_INCLUDE_THREAD_CALLBACK;

typedef struct _MINIDUMP_MODULE_CALLBACK {
    WCHAR *FullPath;
    ULONG64 BaseOfImage;
    ULONG SizeOfImage;
    ULONG CheckSum;
    ULONG TimeDateStamp;
    VS_FIXEDFILEINFO VersionInfo;
    PVOID CvRecord;
    ULONG SizeOfCvRecord;
    PVOID MiscRecord;
    ULONG SizeOfMiscRecord;
} MINIDUMP_MODULE_CALLBACK;

typedef struct _MINIDUMP_INCLUDE_MODULE_CALLBACK { ULONG64 BaseOfImage; } MINIDUMP_INCLUDE_MODULE_CALLBACK;

typedef struct _MINIDUMP_IO_CALLBACK {
    HANDLE Handle;
    ULONG64 Offset;
    PVOID Buffer;
    ULONG BufferBytes;
} MINIDUMP_IO_CALLBACK;

typedef struct _MINIDUMP_READ_MEMORY_FAILURE_CALLBACK {
    ULONG64 Offset;
    ULONG Bytes;
    HRESULT FailureStatus;
} MINIDUMP_READ_MEMORY_FAILURE_CALLBACK;

typedef struct _MINIDUMP_VM_QUERY_CALLBACK { ULONG64 Offset; } MINIDUMP_VM_QUERY_CALLBACK;

typedef struct _MINIDUMP_VM_PRE_READ_CALLBACK {
    ULONG64 Offset;
    PVOID Buffer;
    ULONG Size;
} MINIDUMP_VM_PRE_READ_CALLBACK;

typedef struct _MINIDUMP_VM_POST_READ_CALLBACK {
    ULONG64 Offset;
    PVOID Buffer;
    ULONG Size;
    ULONG Completed;
    HRESULT Status;
} MINIDUMP_VM_POST_READ_CALLBACK;

typedef struct _MINIDUMP_CALLBACK_INPUT {
    ULONG ProcessId;
    HANDLE ProcessHandle;
    ULONG CallbackType;
    union {
        HRESULT Status;
        MINIDUMP_THREAD_CALLBACK Thread;
        MINIDUMP_THREAD_EX_CALLBACK ThreadEx;
        MINIDUMP_MODULE_CALLBACK Module;
        MINIDUMP_INCLUDE_THREAD_CALLBACK IncludeThread;
        MINIDUMP_INCLUDE_MODULE_CALLBACK IncludeModule;
        MINIDUMP_IO_CALLBACK Io;
        MINIDUMP_READ_MEMORY_FAILURE_CALLBACK ReadMemoryFailure;
        ULONG SecondaryFlags;
        MINIDUMP_VM_QUERY_CALLBACK VmQuery;
        MINIDUMP_VM_PRE_READ_CALLBACK VmPreRead;
        MINIDUMP_VM_POST_READ_CALLBACK VmPostRead;
    };
} MINIDUMP_CALLBACK_INPUT;

/* One 52-byte union in the SDK: Status overlaps ModuleWriteFlags (offset 0). */
typedef struct _MINIDUMP_CALLBACK_OUTPUT {
    union {
        ULONG ModuleWriteFlags;
        ULONG ThreadWriteFlags;
        ULONG SecondaryFlags;
        struct { ULONG64 MemoryBase; ULONG MemorySize; };
        struct { BOOL CheckCancel; BOOL Cancel; };
        HANDLE Handle;
        struct { MINIDUMP_MEMORY_INFO VmRegion; BOOL Continue; };
        struct { HRESULT VmQueryStatus; MINIDUMP_MEMORY_INFO VmQueryResult; };
        struct { HRESULT VmReadStatus; ULONG VmReadBytesCompleted; };
        HRESULT Status;
    };
} MINIDUMP_CALLBACK_OUTPUT;

typedef BOOL (WINAPI *MINIDUMP_CALLBACK_ROUTINE)(PVOID CallbackParam,
                                                MINIDUMP_CALLBACK_INPUT *CallbackInput,
                                                MINIDUMP_CALLBACK_OUTPUT *CallbackOutput);

typedef struct _MINIDUMP_CALLBACK_INFORMATION {
    MINIDUMP_CALLBACK_ROUTINE CallbackRoutine;
    PVOID CallbackParam;
} MINIDUMP_CALLBACK_INFORMATION;

BOOL WINAPI MiniDumpWriteDump(HANDLE hProcess, DWORD ProcessId, HANDLE hFile, DWORD DumpType,
                              MINIDUMP_EXCEPTION_INFORMATION *ExceptionParam,
                              MINIDUMP_USER_STREAM_INFORMATION *UserStreamParam,
                              MINIDUMP_CALLBACK_INFORMATION *CallbackParam);
#pragma pack(pop)

/*
 * Breakpad's Linux extensions (google_breakpad/common/minidump_format.h).
 * Breakpad compiles these without pack(4), so GCC's natural alignment applies:
 * the padding is spelled out.
 */
typedef struct _MD_CV_INFO_ELF {
    ULONG32 CvSignature;         /* 'BpEL' */
    UCHAR BuildId[];
} MD_CV_INFO_ELF;

typedef struct _MD_RAW_LINK_MAP64 {
    ULONG64 Addr;
    RVA Name;
    ULONG32 _natural_padding;
    ULONG64 Ld;
} MD_RAW_LINK_MAP64;

typedef struct _MD_RAW_DEBUG64 {
    ULONG32 Version;
    RVA Map;
    ULONG32 DsoCount;
    ULONG32 _natural_padding;
    ULONG64 Brk;
    ULONG64 LdBase;
    ULONG64 Dynamic;
} MD_RAW_DEBUG64;
