"""The Linux backend: threads stopped with ptrace, a copy-on-write clone forked from inside the target."""
