"""`.ci/run` survives a `make --version` that writes more than the script reads.

The script runs under `set -o pipefail`; it printed make's first line with `| head -n 1`,
and when make was still writing after `head` exited, make's SIGPIPE (exit 141) failed CI
before any test ran (5 in 200 runs with the real make).  A fake make that writes many
lines makes that deterministic.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_run_survives_a_long_make_version(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_make = bin_dir / "make"
    fake_make.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = "--version" ]; then\n'
        "  for i in $(seq 1 200000); do echo \"GNU Make 4.3 line $i\"; done\n"
        "  exit 0\n"
        "fi\n"
        'echo "make called with: $*" >> "$(dirname "$0")/make_args"\n')
    fake_make.chmod(fake_make.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])
    assert "GNU Make 4.3 line 1\n" in proc.stdout
    assert "line 2\n" not in proc.stdout  # only the first line is printed
    # the README's test command: make test
    calls = (bin_dir / "make_args").read_text().splitlines()
    assert calls[0].startswith("make called with: test ")
    # then the documentation, warnings as errors, every page executed
    assert [c.split()[3] for c in calls[1:]] == ["docs"]
