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
