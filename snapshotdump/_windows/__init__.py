"""The Windows backend: PSS snapshots written by DbgHelp's MiniDumpWriteDump."""
