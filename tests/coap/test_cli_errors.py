"""What the ``dtlsfast`` client command prints when it fails."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dtlsfast import cli


def test_no_answer_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never answers
        port = silent.getsockname()[1]
        code = cli.main(["get", "-B", "0.3", f"coaps://127.0.0.1:{port}/light"])
    assert code == 2
    assert "no answer within 0.3 s" in capsys.readouterr().err


def test_raw_key_options_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k.pem"
    key.write_text("")
    code = cli.main(["get", "-M", str(key), "-j", str(key), "coaps://127.0.0.1:1/light"])
    assert code == 2
    assert "not both" in capsys.readouterr().err
