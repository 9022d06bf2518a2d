import os
import re
import subprocess
import sys

import pytest

# CTest sets PYTHONPATH; this keeps a bare `python3 -m pytest tests/python` working too.
_PYTHON_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "python")
if os.path.abspath(_PYTHON_DIR) not in map(os.path.abspath, sys.path):
    sys.path.insert(0, os.path.abspath(_PYTHON_DIR))


def _subcommands(binary):
    """The subcommand names `specstate --help` lists (CLI11 prints them under SUBCOMMANDS)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    names, in_section = set(), False
    for line in text.splitlines():
        if line.strip().upper().startswith("SUBCOMMANDS"):
            in_section = True
            continue
        match = re.match(r"^  (\S+)", line)  # a name; wrapped descriptions indent further
        if in_section and match:
            names.add(match.group(1))
    return names


@pytest.fixture(scope="session")
def specstate_bin():
    """Path of the `specstate` binary (SPECSTATE_BIN), or skip when it is not given."""
    binary = os.environ.get("SPECSTATE_BIN")
    if not binary:
        pytest.skip("SPECSTATE_BIN is not set (CTest passes the built specstate binary)")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"SPECSTATE_BIN={binary} is not an executable file")
    return binary


@pytest.fixture(scope="session")
def specstate_validate(specstate_bin):
    """Runs `specstate validate FILE`; skips when the binary has no `validate` subcommand."""
    if "validate" not in _subcommands(specstate_bin):
        pytest.skip(f"{specstate_bin} has no `validate` subcommand yet (specstate --help)")

    def run(path):
        return subprocess.run([specstate_bin, "validate", str(path)], capture_output=True,
                              text=True, timeout=120)

    return run


@pytest.fixture(scope="session")
def specstate_replay(specstate_bin):
    """Runs `specstate replay FILE` through all five strategies on the CPU backend."""

    def run(path):
        return subprocess.run([specstate_bin, "replay", str(path), "--strategy", "all"],
                              capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture(scope="session")
def specstate_generate(specstate_bin):
    """Runs `specstate generate ... -o FILE`; skips when the binary has no `generate`."""
    if "generate" not in _subcommands(specstate_bin):
        pytest.skip(f"{specstate_bin} has no `generate` subcommand (specstate --help)")

    def run(path, *args):
        return subprocess.run([specstate_bin, "generate", *map(str, args), "-o", str(path)],
                              capture_output=True, text=True, timeout=120)

    return run
