"""gazeneg/config.py: TrainConfig from defaults, a JSON file and the command line, each value through one
type check; every fault one ConfigError naming the key, the value or the file and line."""

import argparse
import dataclasses
import json

import pytest

from gazeneg.config import (
    CHOICES,
    GROUPS,
    HELP,
    MAX_LR,
    ConfigError,
    TrainConfig,
    add_config_args,
    config_from_args,
    from_dict,
    load_config_file,
    opt,
)


@pytest.mark.parametrize("key, given, expect", [
    ("augment", "false", False), ("augment", "on", True), ("augment", True, True),
    ("epochs", "7", 7), ("lr", "1e-3", 1e-3), ("lr", 2, 2.0),
    ("model_kwargs", '{"width": 8}', {"width": 8}), ("neg_direction", "1,0", (1.0, 0.0)),
    ("optimizer", "sgd", "sgd")])
def test_values_are_coerced_to_the_fields_type(key, given, expect):
    got = getattr(from_dict({key: given}), key)
    assert got == expect and type(got) is type(expect)


@pytest.mark.parametrize("over, culprit", [
    ({"epochz": 3}, "unknown config key(s): epochz"), ({"augment": "maybe"}, "'augment' must be true or false"),
    ({"epochs": True}, "'epochs' must be an integer"), ({"epochs": "3.5"}, "'epochs' must be an integer"),
    ({"lr": "fast"}, "'lr' must be a number"), ({"optimizer": "rmsprop"}, "must be one of adamw, adam, sgd"),
    ({"model_kwargs": "[1]"}, "'model_kwargs' must be a JSON object"), ({"lr": MAX_LR * 10}, "lr must be"),
    ({"lr": float("nan")}, "lr must be"), ({"epochs": 0}, "epochs must be >= 1"),
    ({"ema": 1.0}, "ema must be in [0, 1)"), ({"neg_direction": "0,0"}, "not both 0")])
def test_a_bad_value_is_one_config_error_naming_it(over, culprit):
    with pytest.raises(ConfigError) as e:
        from_dict(over)
    assert culprit in str(e.value) and "\n" not in str(e.value)


def test_the_config_is_frozen_and_replace_checks_again():
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0
    assert cfg.replace(lr=0.5).lr == 0.5 and cfg.lr == 2e-3
    with pytest.raises(ConfigError):
        cfg.replace(lr=-1)
    # Named held-out groups are absent from to_dict while unset (hashes of older configs stay as they were).
    assert "test_groups" not in cfg.to_dict() and cfg.replace(test_groups="me/s3").to_dict()["test_groups"] == "me/s3"


def test_file_then_command_line(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"lr": 0.01, "epochs": 4, "model": "mlp"}))
    p = argparse.ArgumentParser()
    add_config_args(p)
    cfg = config_from_args(p.parse_args(["--config", str(path), "--lr", "0.1", "--neg-mode", "literal",
                                         "--loss", "mse"]))
    assert (cfg.lr, cfg.epochs, cfg.model, cfg.neg_mode) == (0.1, 4, "mlp", "literal")   # the command line wins
    assert "(default: 0.002)" in p.format_help() and "{adamw, adam, sgd}" in p.format_help()


@pytest.mark.parametrize("content, culprit", [
    ("{\n  \"lr\": 0.1,\n}", "line 3: not valid JSON"), ("[1, 2]", "must hold a JSON object"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0)")])
def test_a_bad_config_file_is_named_with_its_line(tmp_path, content, culprit):
    path = tmp_path / "cfg.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as e:
        load_config_file(path)
    assert str(e.value).startswith(str(path)) and culprit in str(e.value)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config_file(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config_file(tmp_path)


def test_each_option_is_written_once_in_its_fields_metadata():
    """Every field carries its --help group, help line and choices; HELP and CHOICES are views of them."""
    fields = dataclasses.fields(TrainConfig)
    for f in fields:
        assert f.metadata["group"] in GROUPS and len(f.metadata["help"]) > 10, f.name
        assert HELP[f.name] == (f.metadata["group"], f.metadata["help"])
        choices = f.metadata["choices"]
        assert CHOICES.get(f.name, ()) == choices
        if choices:
            assert getattr(TrainConfig(), f.name) in choices, f.name
    assert set(HELP) == {f.name for f in fields} and len(CHOICES) >= 16
    assert {f.metadata["group"] for f in fields} == set(GROUPS)


def test_choices_are_checked_from_the_metadata():
    """A value outside a field's metadata choices is one ConfigError listing them; every listed choice passes."""
    for f in dataclasses.fields(TrainConfig):
        for c in f.metadata["choices"]:
            over = {f.name: c}
            if f.name == "head" and c == "classification":
                over["neg_mode"] = "off"
            if f.name == "neg_loss" and c == "mse":
                over["loss"] = "mse"
            if f.name == "neg_mode" and c != "off":
                over["head"] = "regression"
            assert getattr(from_dict(over), f.name) == c
        if f.metadata["choices"]:
            with pytest.raises(ConfigError) as e:
                from_dict({f.name: "not-a-choice"})
            assert f"config key {f.name!r} must be one of {', '.join(f.metadata['choices'])}" in str(e.value)


def test_the_help_line_comes_from_the_metadata():
    p = argparse.ArgumentParser()
    add_config_args(p)
    action = next(a for a in p._actions if a.dest == "cfg_neg_boundary")
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == "neg_boundary")
    assert action.help == f.metadata["help"] + " {keep, clip, reflect, drop} (default: keep)"
    assert next(a for a in p._actions if a.dest == "cfg_model_kwargs").help.endswith("(default: {})")
    assert next(a for a in p._actions if a.dest == "cfg_neg_direction").help.endswith("(default: 1.0,0.0)")


def test_opt_refuses_an_unknown_group_or_a_default_outside_its_choices():
    with pytest.raises(ValueError, match="option group 'extras'"):
        opt(1, "extras", "a count of something; count")
    with pytest.raises(ValueError, match="not one of its choices a, b"):
        opt("c", "data", "one of a or b", choices=("a", "b"))
    d = opt({}, "model", "a JSON object of keyword arguments")
    assert d.default_factory() == {} and d.default_factory() is not d.default_factory()


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict({"lrr": 1})
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        from_dict({"epochs": "ten"})
    with pytest.raises(ConfigError, match="'optimizer' must be one of"):
        from_dict({"optimizer": "lbfgs"})
    assert from_dict({"lr": "0.5", "flip": "false"}).lr == 0.5
    assert TrainConfig().replace(epochs=3).epochs == 3


@pytest.mark.parametrize("kw, culprit", [
    (dict(lr="inf"), "lr must be a finite"),
    (dict(momentum=-1), "momentum"),
    (dict(threads=-3), "threads"),
    (dict(weight_decay=-1), "weight_decay"),
    (dict(screen_w_cm=-30), "screen_w_cm"),
    (dict(neg_lambda="nan"), "finite"),
])
def test_values_that_make_no_sense_are_refused(kw, culprit):
    with pytest.raises(ConfigError, match=culprit):
        from_dict(kw)


# ----------------------------------------------------------------------------------------------
# config.option: the other commands' options, written once in their fields' metadata


def test_add_options_derives_each_option_from_its_field():
    """The parser's option comes from the field: a bool is a flag, a tuple or list takes one or more values of
    its element type, `parse` is the argparse type, choices and metavar pass through, and an option not given
    is None (the config's own default then applies); `%` in a help line stays a percent sign."""
    from gazeneg.config import add_options, option

    def positive(text):
        if float(text) <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return float(text)

    @dataclasses.dataclass
    class Opts:
        fast: bool = option(False, "go fast")
        sizes: tuple[int, ...] = option((1, 2), "sizes", group="more")
        names: list[str] = option(help="names", default_factory=list)
        kind: str = option("a", "a or b; 50% of the time a", choices=("a", "b"), metavar="K", group="more")
        scale: float = option(1.0, "a positive scale", parse=positive)
        plain: int = 3   # no option

    p = argparse.ArgumentParser(prog="x")
    add_options(p, (Opts,), ("kind", "fast", "sizes", "names", "scale"))
    assert vars(p.parse_args([])) == {"kind": None, "fast": False, "sizes": None, "names": None, "scale": None}
    a = p.parse_args(["--fast", "--sizes", "3", "4", "--names", "u", "v", "--kind", "b", "--scale", "0.5"])
    assert (a.fast, a.sizes, a.names, a.kind, a.scale) == (True, [3, 4], ["u", "v"], "b", 0.5)
    for bad in (["--kind", "c"], ["--scale", "-1"], ["--sizes", "x"], ["--plain", "1"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    text = p.format_help()
    assert "--kind K" in text and "50% of the time" in text and "more:" in text
    assert text.index("--kind") < text.index("--fast")   # the given order


def test_an_option_is_defined_once_or_shared_and_the_order_names_each_once():
    from gazeneg.config import add_options, option, option_of, options_of

    @dataclasses.dataclass
    class A:
        data: str = option("x", "the data folder")

    @dataclasses.dataclass
    class Shared:
        data: str = option_of(A, "data", default="y")   # the same definition, another default

    @dataclasses.dataclass
    class Twice:
        data: str = option("x", "a second, different help for the same option")

    assert options_of(A, Shared)["data"][0].metadata is dataclasses.fields(A)[0].metadata
    assert Shared().data == "y"
    with pytest.raises(ValueError, match="--data is defined twice"):
        options_of(A, Twice)
    for order in ((), ("data", "data"), ("data", "other")):
        with pytest.raises(ValueError, match="must name each option once"):
            add_options(argparse.ArgumentParser(), (A,), order)
    with pytest.raises(ValueError, match="needs its help line"):
        option(1)
    with pytest.raises(ValueError, match="not one of its choices"):
        option("c", "one of a or b", choices=("a", "b"))
