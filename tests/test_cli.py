import subprocess
import sys

from sotto_cli.cli import COMMAND_MODULES, build_parser, main


def test_help_lists_every_command(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert "usage: sotto" in out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert name in out


def test_every_command_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sub_parser in sub.choices.items():
        text = sub_parser.format_help()
        assert f"sotto {name}" in text
        assert sub_parser.description or sub_parser.format_usage(), name
    assert len(sub.choices) >= len(COMMAND_MODULES)


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "sotto_cli", "--version"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("sotto ")
