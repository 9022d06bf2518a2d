"""Builds the extension module specstate._core with the project's CMake build (python/CMakeLists.txt)
for the Python that runs pip; pyproject.toml holds the metadata. Offline on Debian 12, in a
virtual environment that sees Debian's NumPy and setuptools:

    python3 -m venv --system-site-packages ~/venv && . ~/venv/bin/activate
    pip install --no-build-isolation --no-index .        # nothing downloaded
    pip wheel --no-build-isolation --no-index --no-deps -w dist .

The CUDA backend is built whenever nvcc is found ($CUDACXX, PATH, /usr/local/cuda/bin), and
SPECSTATE_WITH_CUDA=OFF (or ON) in the environment decides instead. The choice is passed to
CMake on every build, so a build folder left by an earlier build never decides it.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# Where the CUDA toolkit installs nvcc outside PATH (tools/setup.sh looks there too).
DEFAULT_NVCC = "/usr/local/cuda/bin/nvcc"


def find_nvcc(environ):
    """The CUDA compiler CMake would find, or None."""
    for candidate in (environ.get("CUDACXX"), shutil.which("nvcc", path=environ.get("PATH")),
                      DEFAULT_NVCC):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def cuda_arguments(environ):
    """-D options that decide the CUDA backend, and the reason, in words."""
    nvcc = find_nvcc(environ)
    wanted = environ.get("SPECSTATE_WITH_CUDA", "").upper()
    if wanted not in ("", "ON", "OFF"):
        raise SystemExit(f"SPECSTATE_WITH_CUDA={environ['SPECSTATE_WITH_CUDA']}: ON or OFF")
    if wanted == "OFF" or (not wanted and nvcc is None):
        why = "SPECSTATE_WITH_CUDA=OFF" if wanted else "no nvcc found"
        return ["-DSPECSTATE_WITH_CUDA=OFF"], f"CUDA backend OFF ({why})"
    if nvcc is None:
        raise SystemExit("SPECSTATE_WITH_CUDA=ON but no nvcc found (set CUDACXX)")
    return ([f"-DCMAKE_CUDA_COMPILER={nvcc}", "-DSPECSTATE_WITH_CUDA=ON"],
            f"CUDA backend ON (nvcc {nvcc})")


def build_directory(build_temp, python=sys.executable):
    """One CMake build folder per interpreter: another Python never reuses a cache that names
    this one's headers."""
    return Path(build_temp).resolve() / f"cmake-{hashlib.sha1(python.encode()).hexdigest()[:10]}"


def configure_command(build_dir, environ, python=sys.executable):
    """The CMake configure command for the package, and what it builds, in words."""
    cuda, what = cuda_arguments(environ)
    command = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
               "-DSPECSTATE_BUILD_TESTS=OFF", "-DSPECSTATE_BUILD_BENCH=OFF",
               "-DSPECSTATE_BUILD_PYTHON=ON", f"-DSPECSTATE_PYTHON={python}",
               f"-DSPECSTATE_PYTHON_PACKAGE_DIR={build_dir / 'package'}", *cuda]
    return command, f"specstate: building for {python}, {what}"


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = build_directory(self.build_temp)
        command, what = configure_command(build_dir, os.environ)
        print(what, file=sys.stderr, flush=True)
        subprocess.run(command, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "specstate_python",
                        "-j", str(os.cpu_count() or 1)], check=True)
        built = next((build_dir / "package").glob("_core*.so"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it
    setup(ext_modules=[Extension("specstate._core", sources=[])],
          cmdclass={"build_ext": CMakeBuild})
