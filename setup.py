"""Builds the extension module specstate._core with the project's CMake build (python/CMakeLists.txt)
for the Python that runs pip; pyproject.toml holds the metadata.

    pip install --no-build-isolation .                      # offline, Debian's setuptools
    SPECSTATE_WITH_CUDA=OFF pip install --no-build-isolation .   # skip the CUDA backend

SPECSTATE_WITH_CUDA (ON/OFF) overrides CMake's detection of nvcc (CUDACXX, /usr/local/cuda/bin).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(self.build_temp).resolve() / "cmake"
        package_dir = build_dir / "package"
        configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                     "-DSPECSTATE_BUILD_TESTS=OFF", "-DSPECSTATE_BUILD_BENCH=OFF",
                     f"-DSPECSTATE_PYTHON={sys.executable}",
                     f"-DSPECSTATE_PYTHON_PACKAGE_DIR={package_dir}"]
        if "SPECSTATE_WITH_CUDA" in os.environ:
            configure.append(f"-DSPECSTATE_WITH_CUDA={os.environ['SPECSTATE_WITH_CUDA']}")
        env = dict(os.environ)
        if "CUDACXX" not in env and Path("/usr/local/cuda/bin/nvcc").exists():
            env["CUDACXX"] = "/usr/local/cuda/bin/nvcc"
        subprocess.run(configure, check=True, env=env)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "specstate_python",
                        "-j", str(os.cpu_count() or 1)], check=True, env=env)
        built = next(package_dir.glob("_core*.so"))
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


setup(ext_modules=[Extension("specstate._core", sources=[])], cmdclass={"build_ext": CMakeBuild})
