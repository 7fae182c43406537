"""scripts/ensure-chromium, which `make test` runs first: its branches for a machine without chromium.

Each test runs the script with a PATH holding only fakes of `id` (root or not) and `apt-get` (which logs its
arguments and, on install, puts a fake `chromium` on that PATH), so nothing is installed or removed here.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures.paths import ROOT

SCRIPT = ROOT / "scripts" / "ensure-chromium"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _run(tmp_path: Path, uid: int, apt: bool = True) -> tuple[subprocess.CompletedProcess, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    _fake(bin_dir, "id", f"echo {uid}")
    if apt:
        _fake(bin_dir, "apt-get", f'echo "$*" >> {log}\n'
                                  f'case "$*" in *install*) printf "#!/bin/sh\\n" > {bin_dir}/chromium; '
                                  f'/bin/chmod +x {bin_dir}/chromium;; esac')
    done = subprocess.run(["/bin/sh", str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True,
                          timeout=30)
    return done, log


def test_as_root_a_missing_chromium_is_installed_with_apt_get(tmp_path):
    done, log = _run(tmp_path, uid=0)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["update -q", "install -y -q chromium"]
    assert "installing Debian's chromium" in done.stderr


def test_not_root_it_stops_with_one_line_naming_the_command(tmp_path):
    done, log = _run(tmp_path, uid=1000)
    assert done.returncode == 1 and not log.exists()
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "sudo apt-get update && sudo apt-get install -y chromium" in lines[0]


def test_as_root_without_apt_get_it_says_what_to_do(tmp_path):
    done, _ = _run(tmp_path, uid=0, apt=False)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1 and "package manager" in done.stderr


def test_a_present_chromium_needs_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "chromium", "exit 0")
    _fake(bin_dir, "id", "exit 3")  # never asked
    done = subprocess.run(["/bin/sh", str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
