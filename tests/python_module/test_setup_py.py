"""setup.py's choices for `pip install`: the interpreter that runs it, and the CUDA backend
whenever nvcc is found, passed to CMake on every build so that a build folder configured
without CUDA (an earlier SPECSTATE_WITH_CUDA=OFF build) never turns it off silently."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import source_path


@pytest.fixture(scope="module")
def setup_py():
    spec = importlib.util.spec_from_file_location("specstate_setup", source_path("setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the helpers; setup() runs only as __main__
    return module


@pytest.fixture
def fake_nvcc(tmp_path):
    path = tmp_path / "bin" / "nvcc"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def test_cuda_is_on_when_nvcc_is_found(setup_py, fake_nvcc):
    args, what = setup_py.cuda_arguments({"CUDACXX": fake_nvcc})
    assert args == [f"-DCMAKE_CUDA_COMPILER={fake_nvcc}", "-DSPECSTATE_WITH_CUDA=ON"]
    assert what == f"CUDA backend ON (nvcc {fake_nvcc})"
    # On PATH, without CUDACXX.
    args, _ = setup_py.cuda_arguments({"PATH": os.path.dirname(fake_nvcc)})
    assert args[-1] == "-DSPECSTATE_WITH_CUDA=ON" and fake_nvcc in args[0]


def test_cuda_is_off_without_nvcc_or_when_asked(setup_py, fake_nvcc, monkeypatch, tmp_path):
    monkeypatch.setattr(setup_py, "DEFAULT_NVCC", str(tmp_path / "absent"))
    assert setup_py.cuda_arguments({"PATH": str(tmp_path)}) == (
        ["-DSPECSTATE_WITH_CUDA=OFF"], "CUDA backend OFF (no nvcc found)")
    assert setup_py.cuda_arguments({"CUDACXX": fake_nvcc, "SPECSTATE_WITH_CUDA": "off"}) == (
        ["-DSPECSTATE_WITH_CUDA=OFF"], "CUDA backend OFF (SPECSTATE_WITH_CUDA=OFF)")
    with pytest.raises(SystemExit, match="SPECSTATE_WITH_CUDA=ON but no nvcc found"):
        setup_py.cuda_arguments({"PATH": str(tmp_path), "SPECSTATE_WITH_CUDA": "ON"})
    with pytest.raises(SystemExit, match="SPECSTATE_WITH_CUDA=maybe: ON or OFF"):
        setup_py.cuda_arguments({"SPECSTATE_WITH_CUDA": "maybe"})


def test_configure_names_the_interpreter_and_the_cuda_choice(setup_py, fake_nvcc, tmp_path):
    command, what = setup_py.configure_command(tmp_path, {"CUDACXX": fake_nvcc},
                                               "/opt/py/bin/python")
    assert "-DSPECSTATE_PYTHON=/opt/py/bin/python" in command
    assert "-DSPECSTATE_WITH_CUDA=ON" in command
    assert what == ("specstate: building for /opt/py/bin/python, CUDA backend ON "
                    f"(nvcc {fake_nvcc})")
    # One build folder per interpreter: a cache never names another Python's headers.
    assert (setup_py.build_directory(tmp_path, "/a/python")
            != setup_py.build_directory(tmp_path, "/b/python"))


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_a_build_folder_configured_without_cuda_gets_it_back(setup_py, tmp_path):
    """The stale folder of the issue: configured with SPECSTATE_WITH_CUDA=OFF (as the offline
    install test builds), then configured by setup.py with nvcc present."""
    nvcc = setup_py.find_nvcc(dict(os.environ))
    if nvcc is None:
        pytest.skip("no nvcc: nothing to turn on")
    build = tmp_path / "cmake"
    env = {k: v for k, v in os.environ.items() if k not in ("CUDACXX", "SPECSTATE_WITH_CUDA")}
    stale, _ = setup_py.configure_command(build, {"SPECSTATE_WITH_CUDA": "OFF"}, sys.executable)
    subprocess.run(stale, check=True, capture_output=True, env=env, timeout=300)
    assert "SPECSTATE_WITH_CUDA:BOOL=OFF" in (build / "CMakeCache.txt").read_text()
    again, what = setup_py.configure_command(build, {"CUDACXX": nvcc}, sys.executable)
    assert what.endswith(f"CUDA backend ON (nvcc {nvcc})")
    out = subprocess.run(again, check=True, capture_output=True, text=True, env=env, timeout=300)
    cache = (build / "CMakeCache.txt").read_text()
    assert "SPECSTATE_WITH_CUDA:BOOL=ON" in cache, out.stdout
    assert re.search(rf"^CMAKE_CUDA_COMPILER:\w+={re.escape(nvcc)}$", cache, re.M), out.stdout
