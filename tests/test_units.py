"""gazeneg/units.py: the one WIDTHxHEIGHT parser, and every command that takes a size using it (import, capture,
live, predict): a bad value is one line naming the option and the value."""

import argparse

import pytest

from gazeneg.cli import main as console
from gazeneg.errors import GazenegError
from gazeneg.units import SizeError, parse_size, size_arg


@pytest.mark.parametrize("text, unit, expect", [
    ("1920x1080", "pixels", (1920, 1080)), ("1440 X 900", "pixels", (1440, 900)),
    ("34.4x19.3", "cm", (34.4, 19.3)), ("50x30", "cm", (50.0, 30.0))])
def test_good_sizes(text, unit, expect):
    got = parse_size(text, "--x", unit)
    assert got == expect and all(type(v) is type(e) for v, e in zip(got, expect, strict=True))


@pytest.mark.parametrize("text, unit", [
    ("big", "pixels"), ("1920", "pixels"), ("1920x1080x3", "pixels"), ("0x1080", "pixels"), ("-5x10", "pixels"),
    ("1920.5x1080", "pixels"), ("", "pixels"), ("x", "pixels"), ("nanx10", "cm"), ("infx10", "cm"),
    ("0x19", "cm"), (None, "pixels")])
def test_bad_sizes_name_the_option_and_the_value(text, unit):
    with pytest.raises(SizeError) as e:
        parse_size(text, "--screen-cm" if unit == "cm" else "--screen", unit)
    msg = str(e.value)
    assert msg.startswith("--screen") and repr(text) in msg and "WIDTHxHEIGHT" in msg and "\n" not in msg
    assert isinstance(e.value, GazenegError) and isinstance(e.value, ValueError)


def test_the_argparse_type_keeps_the_message(capsys):
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--screen-cm", type=size_arg("--screen-cm", "cm"))
    assert p.parse_args(["--screen-cm", "30x20"]).screen_cm == (30.0, 20.0)
    with pytest.raises(SystemExit):
        p.parse_args(["--screen-cm", "30by20"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "x: error: argument --screen-cm: '30by20': expected WIDTHxHEIGHT in cm, two positive numbers, e.g. 34.4x19.3"


def _one_line_error(argv, capsys) -> str:
    try:
        rc = console.main(argv)
    except SystemExit as e:   # argparse: usage, then the error line
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "Traceback" not in "\n".join(err)
    return err[-1]


def test_every_command_that_takes_a_size_uses_the_one_parser(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "t.csv").write_text("filename,x,y\na.png,2,3\n")
    line = _one_line_error(["import", str(tmp_path / "photos"), str(tmp_path / "t.csv"), "--screen", "19x",
                            "--out", str(tmp_path / "o")], capsys)
    assert line == "error: --screen '19x': expected WIDTHxHEIGHT in pixels, two positive numbers, e.g. 1920x1080"
    line = _one_line_error(["capture", "--out", str(tmp_path / "c"), "--screen", "0x0", "--headless",
                            "--source", str(tmp_path)], capsys)
    assert line.startswith("error: --screen '0x0': expected WIDTHxHEIGHT in pixels")
    assert not (tmp_path / "c").exists()
    line = _one_line_error(["live", "x.pt", "--screen", "wide"], capsys)
    assert line.startswith("error: --screen 'wide': expected WIDTHxHEIGHT in pixels")
    line = _one_line_error(["live", "x.pt", "--screen-cm", "30x-1"], capsys)
    assert "argument --screen-cm: '30x-1': expected WIDTHxHEIGHT in cm" in line
    line = _one_line_error(["predict", "x.pt", "src", "--screen", "1920x1080.5"], capsys)
    assert "argument --screen: '1920x1080.5': expected WIDTHxHEIGHT in pixels" in line
    line = _one_line_error(["predict", "x.pt", "src", "--screen-cm", "axb"], capsys)
    assert "argument --screen-cm: 'axb'" in line
