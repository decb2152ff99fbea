"""The Linux backend: threads stopped with ptrace, and a copy-on-write clone of the target."""
