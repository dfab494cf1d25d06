"""gazeneg/config.py: TrainConfig from defaults, a JSON file and the command line, each value through one
type check; every fault one ConfigError naming the key, the value or the file and line."""

import argparse
import json

import pytest

from gazeneg.config import (
    MAX_LR,
    ConfigError,
    TrainConfig,
    add_config_args,
    config_from_args,
    from_dict,
    load_config_file,
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
