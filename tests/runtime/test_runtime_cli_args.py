"""orchestrate's options read without argparse give what argparse gives; anything else goes to argparse."""

from __future__ import annotations

import pytest

from runtime.cli import _orchestrate_fast, orchestrate_parser

ACCEPTED = [
    [],
    ["--profile", "serverless", "--no-remote", "--http-host", "127.0.0.1"],
    ["--http-port", "8081", "--no-http", "--no-watch", "--manifest", "build/m.json", "--health-path", "h.json"],
    ["--http-port=0", "--config=config/x.toml", "--demo", "--http-host=::"],
    ["--http-port", "-1", "--profile", "a", "--profile", "b"],  # a negative port is a value; the last one wins
    ["--config", ""],
]
REFERRED = [  # argparse decides: its help, its abbreviations, its errors
    ["--help"], ["-h"], ["--no-rem"], ["--http-port", "eighty"], ["--http-port"], ["--manifest", "--no-http"],
    ["--no-http=1"], ["--unknown"], ["serve"], ["--"],
]


def _argparse(argv: list[str]) -> dict:
    ns = vars(orchestrate_parser().parse_args(argv))
    return {"config": None, "profile": None, "demo": False, **ns}


@pytest.mark.parametrize("argv", ACCEPTED)
def test_accepted_arguments_read_as_argparse_reads_them(argv):
    assert vars(_orchestrate_fast(argv)) == _argparse(argv)


@pytest.mark.parametrize("argv", REFERRED)
def test_anything_else_is_left_to_argparse(argv):
    assert _orchestrate_fast(argv) is None
