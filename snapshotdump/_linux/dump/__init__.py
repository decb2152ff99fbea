"""The Linux dump writer: a plan of what a dump holds, then one module per stream."""
