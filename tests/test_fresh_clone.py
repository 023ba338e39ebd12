"""The README's two commands, run as a newcomer would: in a fresh clone, with only the
system's Python on PATH (Debian's /usr/bin/python3, which refuses pip installs into itself,
PEP 668), not in the developer's environment the other tests run in.

The commands are read from the README itself, so the test follows them when they change. The
test command is run on one test file (the whole suite inside the suite would run twice); the
set-up it starts with is the whole one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def _system_env() -> dict[str, str]:
    # Only the system's directories on PATH; the machine's package settings (pip's index,
    # certificates, proxies) and HOME (pip's cache) carry over, they are not interpreters.
    env = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items()
                if k.startswith("PIP_") or k.lower().endswith("_proxy")})
    return env


def test_readme_names_two_commands_that_set_up_first():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert all(command.startswith("scripts/setup.sh && ") for command in commands)
    assert "analyze sample_pcaps/" in commands[0] and "pytest" in commands[1]


def test_readme_commands_work_in_a_fresh_clone_with_the_system_python(tmp_path):
    system_python = shutil.which("python3", path=SYSTEM_PATH)
    assert system_python is not None, "no python3 in the system's directories"
    env = _system_env()
    # The interpreter the commands will meet is the system's, and it is PEP 668's kind: the
    # reason setup.sh makes a venv. (A machine whose python3 takes pip installs would not
    # prove the point.)
    marker = subprocess.run([system_python, "-c", "import sys, sysconfig, os; print(os.path.exists("
                             "os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"],
                            env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert marker == "True", f"{system_python} is not an externally managed Python"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, env=env)
    if (ROOT / ".git").exists():
        # What is being tested is this working tree: uncommitted changes go into the clone too.
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, capture_output=True,
                              check=True).stdout
        if diff:
            subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=clone, input=diff, check=True)
    analyze, test = _readme_commands()

    ran = subprocess.run(["bash", "-c", analyze], cwd=clone, env=env, capture_output=True, text=True,
                         timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "C-GET" in ran.stdout and "Traceback" not in ran.stderr
    venv_python = clone / ".venv" / "bin" / "python"
    assert venv_python.exists()
    # The venv is made from the system's Python, not from the one running these tests.
    base = subprocess.run([str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert base == subprocess.run([system_python, "-c", "import sys; print(sys.base_prefix)"],
                                  capture_output=True, text=True, check=True).stdout.strip()

    ran = subprocess.run(["bash", "-c", f"{test} tests/test_status.py"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert re.search(r"\d+ passed", ran.stdout) and " failed" not in ran.stdout
