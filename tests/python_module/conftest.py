import os
import subprocess

import pytest

SOURCE = os.environ.get("SPECSTATE_SOURCE",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def source_path(*parts):
    return os.path.join(SOURCE, *parts)


@pytest.fixture(scope="session")
def specstate_bin():
    path = os.environ.get("SPECSTATE_BIN")
    if not path:
        pytest.skip("SPECSTATE_BIN is not set (CTest sets it to the built CLI)")
    return path


@pytest.fixture(scope="session")
def generated(specstate_bin, tmp_path_factory):
    """generated(name, *options): a trace `specstate generate` writes (tiny preset)."""
    folder = tmp_path_factory.mktemp("traces")

    def make(name, *options):
        path = folder / f"{name}.jsonl"
        if not path.exists():
            subprocess.run([specstate_bin, "generate", "--preset", "tiny", "-o", str(path),
                            *options], check=True, capture_output=True, timeout=120)
        return str(path)

    return make
