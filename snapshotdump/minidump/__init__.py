"""The minidump file format: constants, a streaming file writer, and one module per stream."""
