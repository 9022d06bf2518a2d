"""One set of trace rules: every trace of tests/trace_rules is refused by the Python checker at
the line and with the message that `specstate validate` gives (expected.txt, which the C++ test
tests/trace/test_trace_rules.cpp checks too), or accepted where the C++ reader accepts it."""

import os

import pytest

from specstate_trace import TraceError, read_trace

CORPUS = os.path.join(os.path.dirname(__file__), "..", "trace_rules")


def _expected():
    cases = {}
    with open(os.path.join(CORPUS, "expected.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name = line.split(":", 1)[0]
            cases[name] = line.rstrip("\n")
    return cases


EXPECTED = _expected()


def agreed_part(name, message):
    """All of the message, or for a JSON syntax error the part before the parser's detail."""
    if not name.startswith("json-syntax-"):
        return message
    for marker in ("invalid JSON: ", "not valid JSON ("):
        if marker in message:
            return message[:message.index(marker) + len(marker)]
    raise AssertionError(f"{name}: not a JSON syntax error: {message}")


def test_every_trace_of_the_corpus_has_an_expectation():
    traces = {f for f in os.listdir(CORPUS) if f.endswith(".jsonl")}
    assert traces == set(EXPECTED)
    assert len(traces) >= 60


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_python_checker_agrees_with_cpp(name, monkeypatch):
    monkeypatch.chdir(CORPUS)  # messages name the file as given, like `specstate validate`
    expected = EXPECTED[name]
    if expected == f"{name}: valid":
        read_trace(name)
        return
    with pytest.raises(TraceError) as err:
        read_trace(name)
    assert agreed_part(name, str(err.value)) == agreed_part(name, expected)
