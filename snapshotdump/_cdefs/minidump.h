/*
 * The minidump file format (minidumpapiset.h), shared by the DbgHelp binding and
 * the Linux writer.  Compiled by build_cffi.py with packed=True: the SDK wraps
 * these in #pragma pack(4), which cffi's out-of-line mode cannot express, so
 * every padding byte that pack(4) would insert is written out by hand.
 * tests/test_layout.py proves each size and offset against MSVC's layout.
 *
 * Only fixed-width types: the layout must not depend on the host's C ABI
 * (long is 8 bytes on Linux x64, wchar_t is 4).
 */
typedef uint8_t   BYTE;
typedef uint8_t   UCHAR;
typedef uint16_t  WORD;
typedef uint16_t  USHORT;
typedef char16_t  WCHAR;
typedef uint32_t  DWORD;
typedef uint32_t  ULONG;
typedef uint32_t  ULONG32;
typedef uint32_t  RVA;
typedef int32_t   BOOL;
typedef int32_t   LONG;
typedef int32_t   HRESULT;
typedef uint64_t  ULONG64;
typedef uint64_t  DWORD64;
typedef uint64_t  ULONGLONG;
typedef int64_t   LONGLONG;
typedef uint64_t  RVA64;
typedef void     *HANDLE;
typedef void     *PVOID;
typedef uintptr_t ULONG_PTR;
typedef size_t    SIZE_T;

typedef struct _M128A { ULONGLONG Low; LONGLONG High; } M128A;

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
typedef struct _CONTEXT {
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
