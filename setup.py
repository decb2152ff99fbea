# setuptools needs this file only for cffi_modules, which pyproject.toml cannot express.
from setuptools import setup

setup(
    cffi_modules=[
        "build_cffi.py:minidump_ffi",
        "build_cffi.py:windows_ffi",
        "build_cffi.py:linux_ffi",
    ]
)
