"""The base install is the client alone: `import fadewatch` needs no server packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import fadewatch

SERVER_ONLY = ("fastapi", "sqlalchemy", "alembic", "dash", "plotly", "uvicorn", "pydantic", "torch")


def _run_without(modules, code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter where importing any of `modules` fails."""
    blocker = textwrap.dedent(f"""
        import sys
        BLOCKED = {tuple(modules)!r}
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is not installed", name=name)
                return None
        sys.meta_path.insert(0, Blocker())
    """)
    return subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=60)


def test_import_fadewatch_with_only_the_base_install():
    proc = _run_without(SERVER_ONLY, textwrap.dedent("""
        import fadewatch, sys
        print(sorted(m for m in BLOCKED if m in sys.modules))
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_protocol_needs_neither_pydantic_nor_http():
    """fadewatch.protocol is what the hook, server and dashboard share: numpy only."""
    proc = _run_without(("pydantic", "httpx", "fastapi", "click", "torch"), textwrap.dedent("""
        import sys
        import fadewatch.protocol
        from fadewatch.protocol import answers, limits, metrics, names
        assert metrics.metric(metrics.ENTROPY_MEAN).bad == "down"
        print(sorted(m for m in BLOCKED if m in sys.modules))
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cli_without_server_extra_says_what_to_install():
    proc = _run_without(SERVER_ONLY, "from fadewatch.cli import main; main(['server'])")
    assert proc.returncode != 0
    assert "pip install 'fadewatch[server]'" in proc.stderr


def test_public_surface_is_declared():
    for name in fadewatch.__all__:
        assert hasattr(fadewatch, name), name


def test_cli_help_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "fadewatch.cli", "--help"], capture_output=True, text=True, timeout=60)
    for command in ("server", "db", "token"):
        assert command in proc.stdout




def test_every_source_package_is_in_the_distribution():
    """A folder with an __init__.py that pyproject.toml does not list would be missing from the wheel."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {folder: name for name, folder in tool["package-dir"].items()}
    found = set()
    for folder, name in folders.items():
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root / folder).parts
            found.add(".".join((name, *parts)))
    assert found <= set(tool["packages"]), sorted(found - set(tool["packages"]))


def _source_tree(tmp_path):
    """What the package is built from, copied: the build sees nothing else of the checkout."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    (src / "scripts").mkdir()
    shutil.copy(root / "scripts" / "build_backend.py", src / "scripts" / "build_backend.py")
    for folder in ("client", "server", "dashboard", "migrations"):
        shutil.copytree(root / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def _pip(*args) -> list[str]:
    """Run pip offline on the environment's own setuptools; the lines that name a warning."""
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-build-isolation", "--no-index"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "Warning:" in line]


def test_wheel_builds_without_packaging_warnings_and_carries_its_data(tmp_path):
    """The license as an SPDX string, every package listed (the data-only assets folder too)."""
    import zipfile

    assert _pip("wheel", "-w", str(tmp_path / "out"), str(_source_tree(tmp_path))) == []
    (wheel,) = (tmp_path / "out").glob("fadewatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fadewatch/dashboard/assets/fadewatch.css" in names
    assert "fadewatch/server/alerts/evaluation/engine.py" in names
    assert "fadewatch/migrations/script.py.mako" in names


def test_an_editable_install_prints_no_warning_and_imports_from_the_checkout(tmp_path):
    import sysconfig

    src = _source_tree(tmp_path)
    prefix = tmp_path / "prefix"
    assert _pip("install", "--ignore-installed", "--prefix", str(prefix), "-e", str(src)) == []
    (prefix_site,) = prefix.glob("lib/python*/site-packages")
    # Under -S, the prefix's .pth files are read before the environment's (whose finder maps
    # the package to this checkout), so the new install's finder answers the import.
    code = (f"import site; site.addsitedir({str(prefix_site)!r}); "
            f"site.addsitedir({sysconfig.get_paths()['purelib']!r}); "
            "import fadewatch.server as m; print(m.__file__)")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(src / "server" / "__init__.py")
