"""What users install is what runs: the README's first command on a fresh clone, and no child
process of ours ever imports code from the caller's working folder."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import snapshotdump

from .conftest import require, require_tool
from .support import Target, obj2yaml, package_env, parse_with_minidump_package

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux backend")

# Imported instead of the real package, it leaves a file where it ran and stops the importer.
PLANTED_INIT = textwrap.dedent("""\
    import os
    with open(os.path.join(os.getcwd(), "PLANTED-CODE-RAN"), "a") as f:
        f.write(f"pid {os.getpid()}\\n")
    raise SystemExit("the planted snapshotdump package was imported")
    """)


def _plant(folder: pathlib.Path) -> None:
    package = folder / "snapshotdump"
    for sub in ("", "_linux"):
        (package / sub).mkdir(parents=True, exist_ok=True)
        (package / sub / "__init__.py").write_text(PLANTED_INIT)
    for module in ("_linux/tracer.py", "_demo_target.py", "__main__.py"):
        (package / module).write_text(PLANTED_INIT)


def test_no_child_process_imports_the_working_folder(tmp_path: pathlib.Path,
                                                     c_binary: pathlib.Path) -> None:
    """capture() and the demo, run from a folder holding a snapshotdump/ package, never import
    it: neither the tracer helper nor the demo target."""
    work = tmp_path / "work"
    work.mkdir()
    _plant(work)
    scripts = tmp_path / "elsewhere"
    scripts.mkdir()
    script = scripts / "dump_from_here.py"
    script.write_text(textwrap.dedent("""\
        import sys
        import snapshotdump
        from snapshotdump import cli
        with snapshotdump.capture(int(sys.argv[1])) as snap:
            result = snap.write_dump(sys.argv[2])
        print("DUMPED", result.threads, flush=True)
        sys.exit(cli.main(["demo", "-o", sys.argv[3]]))
        """))
    demo_folder = tmp_path / "demo"
    demo_folder.mkdir()
    target = Target([str(c_binary)])
    try:
        result = subprocess.run(
            [sys.executable, str(script), str(target.pid), str(tmp_path / "a.dmp"),
             str(demo_folder)], cwd=work, env=package_env(), capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=120, check=False)
        target.assert_untouched()
    finally:
        target.close()
    assert not (work / "PLANTED-CODE-RAN").exists(), (work / "PLANTED-CODE-RAN").read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DUMPED" in result.stdout
    obj2yaml(tmp_path / "a.dmp")
    [demo_dump] = demo_folder.glob("*.dmp")
    obj2yaml(demo_dump)


def test_the_helper_refuses_to_run_another_version(c_target: Target,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that does not run the caller's package and version answers with an error."""
    from snapshotdump._linux import snapshot as linux_snapshot

    linux_snapshot.HELPERS.close_all()
    monkeypatch.setattr(linux_snapshot, "__version__", "0.0.0.upgraded")
    try:
        with pytest.raises(snapshotdump.SnapshotError,
                           match=r"helper cannot run: .*version .*0\.0\.0\.upgraded"):
            snapshotdump.capture(c_target.pid)
    finally:
        linux_snapshot.HELPERS.close_all()


def _source_checkout() -> pathlib.Path:
    source = os.environ.get("SNAPSHOTDUMP_SOURCE")
    root = pathlib.Path(source) if source else pathlib.Path(__file__).resolve().parents[1]
    require((root / ".git").exists(), f"{root} is not a git checkout to clone "
                                      "(scripts/test sets SNAPSHOTDUMP_SOURCE)")
    return root


def test_readme_first_command_on_a_fresh_clone(tmp_path: pathlib.Path) -> None:
    """`pip install . && snapshotdump demo`, exactly as the README has it, from the root of a
    fresh clone (which holds a snapshotdump/ folder), in a clean venv."""
    readme = (_source_checkout() / "README.md").read_text()
    command = "pip install . && snapshotdump demo"
    assert f"\n{command}  " in readme, "the README's first command changed: update this test"
    git = require_tool("git")
    clone = tmp_path / "clone"
    subprocess.run([git, "clone", "-q", str(_source_checkout()), str(clone)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "VIRTUAL_ENV", "SNAPSHOTDUMP"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    bash = shutil.which("bash") or "/bin/bash"
    result = subprocess.run([bash, "-c", command], cwd=clone, env=env, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo: wrote " in result.stdout, result.stdout
    [dump] = clone.glob("*.dmp")
    obj2yaml(dump)
    parsed = parse_with_minidump_package(dump)
    assert len(parsed.threads.threads) == 4  # the demo target's main thread and three more
    # The installed command, not the clone, ran: the clone holds no generated binding.
    assert not list((clone / "snapshotdump" / "_bindings").glob("_*_ffi.py"))


def test_installed_metadata_version_and_license() -> None:
    """One version (snapshotdump/_version.py, which pyproject.toml reads), and the MIT
    license pyproject.toml declares, shipped as a LICENSE file."""
    from importlib import metadata

    try:
        distribution = metadata.distribution("snapshotdump")
    except metadata.PackageNotFoundError:
        require(False, "snapshotdump is not installed (scripts/test installs the wheel)")
        raise
    assert distribution.version == snapshotdump.__version__
    root = pathlib.Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert not re.search(r'^version = "', pyproject, re.M), "a second, literal version"
    assert distribution.metadata["License"] == "MIT"
    shipped = [f for f in distribution.files or [] if f.name == "LICENSE"]
    assert shipped, "the wheel carries no LICENSE file"
    text = shipped[0].read_text()
    assert text.startswith("MIT License") and text == (root / "LICENSE").read_text()


def test_every_python_child_is_started_through_spawn() -> None:
    """Future children too: only snapshotdump/_spawn.py may name the interpreter, so every
    Python child of ours starts isolated, on the package's own files."""
    package = pathlib.Path(snapshotdump.__file__ or "").resolve().parent
    offenders = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if path.name != "_spawn.py"
                 and re.search(r"sys\.executable|sys\._base_executable|\"-m\"|'-m'",
                               path.read_text(encoding="utf-8"))]
    assert offenders == [], offenders
