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


@pytest.fixture(scope="session")
def disaggregated(generated):
    """disaggregated(dtype): a TP 2 decode rank's trace, fed by a TP 1 prefill instance, with a
    host tier: handoffs, offloads, restores and retracts."""

    def make(dtype):
        trace = generated(f"pd-host-{dtype}", "--tp", "2", "--rank", "1", "--prefill-tp", "1",
                          "--host-slots", "4", "--requests", "24", "--steps", "300", "--seed",
                          "5", "--pool-rows", "10", "--ssm-dtype", dtype)
        text = open(trace).read()
        assert all(f'"{kind}"' in text for kind in ("handoff", "offload", "restore", "retract"))
        return trace

    return make
