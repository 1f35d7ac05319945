"""The worker's command line: the host's plain ``--flag value`` lines are read without
argparse, with the same result argparse gives; everything else is argparse's."""

import subprocess
import sys

import pytest

from snakepit_bridge.worker_args import _plain, parse_args, parser

HOST_LINES = [
    ["--adapter", "m:A"],
    ["--adapter", "m:A", "--worker-id", "default-3", "--ready-fd", "7", "--pipe-fd", "9",
     "--max-concurrency", "4", "--log-level", "warning", "--heartbeat-interval", "0.5",
     "--heartbeat-timeout", "0", "--no-dependent", "--shutdown-grace", "1.5",
     "--host-address", "127.0.0.1:5000"],
    ["--adapter=m:A", "--log-level=none", "--host-address", "", "--ready-fd=3"],
]


@pytest.mark.parametrize("argv", HOST_LINES)
def test_a_plain_line_reads_as_argparse_reads_it(argv):
    fast = _plain(argv)
    assert fast is not None
    assert vars(fast) == vars(parser().parse_args(argv))


@pytest.mark.parametrize("argv", [
    ["--adapt", "m:A"],                      # an abbreviation: argparse accepts it
    ["--adapter", "m:A", "--ready-fd", "-1"],  # a value starting with "-"
])
def test_other_lines_are_argparses(argv):
    assert _plain(argv) is None
    assert vars(parse_args(argv)) == vars(parser().parse_args(argv))


@pytest.mark.parametrize("argv, named", [
    (["--adapter", "m:A", "--max-concurrency", "many"], "--max-concurrency"),
    (["--adapter", "m:A", "--log-level", "loud"], "--log-level"),
    (["--worker-id", "w"], "--adapter"),
    (["--adapter", "m:A", "--no-such-flag", "1"], "--no-such-flag"),
])
def test_bad_lines_get_argparses_usage_error_naming_the_flag(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_a_worker_reads_the_hosts_line_without_importing_argparse():
    code = ("import sys\n"
            "from snakepit_bridge.worker_args import parse_args\n"
            "args = parse_args(['--adapter', 'm:A', '--ready-fd', '5', '--no-dependent'])\n"
            "assert (args.ready_fd, args.no_dependent) == (5, True)\n"
            "assert 'argparse' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_help_is_argparses():
    out = subprocess.run([sys.executable, "-m", "snakepit_bridge", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--adapter ADAPTER" in out.stdout and "--pipe-fd" in out.stdout
