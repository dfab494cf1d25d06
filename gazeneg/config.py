"""The run configuration: a frozen dataclass with defaults in code, overridable from a JSON file and
then the command line. Unknown keys and wrong types are errors; the resolved config is saved in the
run folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from gazeneg.errors import GazenegError


class ConfigError(GazenegError, ValueError):
    pass


# The --help groups, in the order --help shows them.
GROUPS = ("data", "model", "optimisation", "wrong labels", "guards", "output")


def opt(default, group: str, help: str, choices: tuple = ()):
    """A TrainConfig field whose --help group, help line (with its unit: cells, cm, epochs, fraction, ...)
    and allowed values live in its metadata: the one place each option is written. add_config_args adds
    the choices and the default to the help line; from_dict checks a value against the choices."""
    if group not in GROUPS:
        raise ValueError(f"option group {group!r} is not one of {', '.join(GROUPS)}")
    if choices and default not in choices:
        raise ValueError(f"default {default!r} is not one of its choices {', '.join(choices)}")
    meta = {"group": group, "help": help, "choices": tuple(choices)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = opt("synthetic", "data",
        "'synthetic' (the built-in set, rendered on first use), 'synthetic:F' (F frames per cell) or a "
        "data-set folder")
    val_subjects: int = opt(2, "data",
        "held-out groups for validation (model selection): subjects, or sessions when there are too few "
        "subjects (with --test-groups, fewer if fewer remain); count")
    test_subjects: int = opt(3, "data",
        "held-out groups for the reported test figures (as --val-subjects); count")
    split_seed: int = opt(0, "data",
        "seed of the order in which groups are held out; the same across a sweep's arms")
    # a sweep uses split_fold = seed, so its seeds hold out different subjects
    split_fold: int = opt(0, "data",
        "rotates the held-out groups along the split_seed order by test_subjects; index")
    budget: int = opt(0, "data", "frames per cell per training subject (the little-data setting); 0 = all")
    test_groups: str = opt("", "data",
        "test on these groups by name, comma-separated: subjects (alice) or sessions (me/s3); overrides the "
        "seeded choice")
    val_groups: str = opt("", "data", "validate on these groups by name, as --test-groups")
    # model
    model: str = opt("gazecnn", "model",
        "architecture: gazecnn, mlp, resnet18, mobilenet_v3_small, or landmarks (ridge on the eye landmark "
        "features and head pose, no pixels; fitted in closed form)")
    model_kwargs: dict = opt({}, "model",
        "the model's keyword arguments, a JSON object (e.g. '{\"width\": 32}')")
    head: str = opt("regression", "model",
        "regression (a (row, col) point, cells) or classification (144-way softmax over cells)",
        choices=("regression", "classification"))
    ce_reg_weight: float = opt(0.0, "model",
        "classification: weight of an L2 term on the expected point, cells^2; 0 = off")
    loss: str = opt("huber", "model",
        "true-label loss on the point: huber (quadratic within 1 cell, linear beyond) or mse",
        choices=("mse", "huber"))
    # optimisation
    optimizer: str = opt("adamw", "optimisation", "adamw, adam or sgd", choices=("adamw", "adam", "sgd"))
    lr: float = opt(2e-3, "optimisation",
        "peak learning rate, per step; > 0 (negative steps are --neg-mode/--neg-lambda)")
    momentum: float = opt(0.9, "optimisation", "SGD momentum, in [0, 1)")
    weight_decay: float = opt(1e-4, "optimisation",
        "decoupled (AdamW) or L2 (Adam, SGD) weight decay, per step; >= 0")
    schedule: str = opt("cosine", "optimisation",
        "LR schedule over the run: cosine, step or none (constant)", choices=("cosine", "step", "none"))
    epochs: int = opt(18, "optimisation", "passes over the training set; epochs")
    batch_size: int = opt(64, "optimisation", "photos per step (global, over all DDP processes); count")
    ema: float = opt(0.99, "optimisation",
        "decay of the weight EMA used for validation and test, per step, in [0, 1); 0 = off")
    augment: bool = opt(True, "optimisation",
        "photometric and geometric augmentation of training photos; true/false")
    flip: bool = opt(True, "optimisation",
        "random horizontal flip with col -> 15 - col (the eyes swap); true/false")
    augment_backend: str = opt("auto", "optimisation",
        "albumentations (CPU, per epoch), torch (per batch on the device), auto (torch on CUDA, else "
        "albumentations)", choices=("auto", "albumentations", "torch"))
    realism: str = opt("auto", "optimisation",
        "the webcam look on training photos, per frame, with --augment (exposure, colour cast, blur, noise, "
        "JPEG, low resolution, shadow, sclera and iris tint, lashes, glare; docs/domain-gap.md): on, off, or "
        "auto (on for synthetic data)", choices=("auto", "on", "off"))
    camera_mean: str = opt("", "optimisation",
        "a camera's mean eye strip (`gazeneg adapt FRAMES --out FILE`): each epoch's training photos are multiplied "
        "by one gain image so their mean strip is that camera's (renders matched to your webcam; docs/domain-gap.md); "
        "'' = off")
    seed: int = opt(0, "optimisation", "seed of initialisation, batch order, augmentation and wrong points")
    threads: int = opt(0, "optimisation", "torch CPU threads; 0 = torch's default; count")
    device: str = opt("auto", "optimisation",
        "auto (CUDA when available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    amp: bool = opt(True, "optimisation", "bf16 autocast, on CUDA only; true/false")
    compile: bool = opt(False, "optimisation",
        "torch.compile the model (CUDA, or CPU with a compiler); true/false")
    # fine-tuning
    init: str = opt("", "model",
        "checkpoint to start from (fine-tuning), same architecture (checked); '' = from scratch")
    backbone_lr_scale: float = opt(1.0, "model",
        "the backbone's LR as a multiple of --lr; 0 freezes it (BatchNorm statistics too); factor")
    # screen geometry for errors in cm and degrees (0 = not given)
    screen_w_cm: float = opt(0.0, "output",
        "visible screen width, for errors in cm and degrees; cm; 0 = not given")
    screen_h_cm: float = opt(0.0, "output", "visible screen height; cm; 0 = not given")
    distance_cm: float = opt(0.0, "output",
        "eye-to-screen distance, for errors in degrees; cm; 0 = not given")
    # wrong labels with a negative learning rate (docs/science.md sections 1, 2 and 4)
    neg_mode: str = opt("off", "wrong labels",
        "off, literal (a separate step at LR -lambda*lr on wrong points) or combined (one loss: true term "
        "minus lambda x wrong term)", choices=("off", "literal", "combined"))
    neg_lambda: float = opt(0.0, "wrong labels",
        "lambda, the weight of each wrong point (Lambda = lambda x neg_k); >= 0")
    neg_lambda_schedule: str = opt("constant", "wrong labels",
        "constant, or linear (ramps 0 -> lambda after the warm-up)", choices=("constant", "linear"))
    neg_distance: float = opt(2.0, "wrong labels",
        "D, how far each wrong point lies from the true one; cells")
    neg_k: int = opt(1, "wrong labels", "wrong points per photo; count")
    neg_policy: str = opt("one_sided", "wrong labels",
        "where wrong points go: one_sided (along --neg-direction), random, redraw, symmetric (k evenly "
        "around) or prediction_side",
        choices=("one_sided", "random", "redraw", "symmetric", "prediction_side"))
    neg_direction: tuple = opt((1.0, 0.0), "wrong labels",
        "one_sided direction as row,col (normalised; 1,0 = straight down the rows)")
    neg_boundary: str = opt("keep", "wrong labels",
        "a wrong point beyond the screen's edge: keep, clip, reflect (at the edge, rows -0.5..8.5, cols "
        "-0.5..15.5) or drop", choices=("keep", "clip", "reflect", "drop"))
    neg_warmup_epochs: int = opt(0, "wrong labels",
        "epochs of true labels only before wrong points start; epochs")
    neg_other_photos: bool = opt(False, "wrong labels",
        "literal mode: the negative step on a different batch of photos; true/false")
    neg_optimizer: str = opt("separate", "wrong labels",
        "literal mode: separate (a second optimizer with its own moments steps at LR -lambda*lr) or same "
        "(the training optimizer itself, its moments too, with its LR set to -lambda*lr for the wrong-label "
        "batch: the recipe as first asked)", choices=("separate", "same"))
    neg_loss: str = opt("match", "wrong labels",
        "the wrong-point term: match (the true loss's shape), mse, huber, or repulsion (bounded, 1/2 max(0, "
        "m - |f - w|)^2)", choices=("match", "mse", "huber", "repulsion"))
    neg_margin: float = opt(0.0, "wrong labels", "repulsion margin m; 0 = --neg-distance; cells")
    guard_bound: float = opt(0.0, "guards",
        "error bound B: wrong points only on photos with |f - y| < B; cells; 0 = off")
    guard_bound_norm: str = opt("euclidean", "guards",
        "the bound's norm: euclidean, or max (per axis)", choices=("euclidean", "max"))
    guard_direction: bool = opt(False, "guards",
        "wrong points only where pushing away from them moves f towards y; true/false")
    guard_grad_cap: float = opt(0.0, "guards", "cap on the negative step's gradient norm; 0 = off")
    watchdog: bool = opt(False, "guards",
        "divergence watchdog: restores the best weights and acts (--watchdog-action); true/false")
    watchdog_pct: float = opt(50.0, "guards",
        "validation error this far above its best triggers the watchdog; percent")
    watchdog_patience: int = opt(2, "guards", "... for this many epochs in a row; epochs")
    watchdog_action: str = opt("halve", "guards",
        "halve lambda, or stop wrong labels", choices=("halve", "stop"))
    # classification wrong cells (docs/science.md section 3)
    cls_neg_loss: str = opt("complement", "wrong labels",
        "classification wrong cells: complement (-log(1 - p_wrong)) or negated_ce (+log p_wrong)",
        choices=("complement", "negated_ce"))
    cls_neg_weight: float = opt(0.0, "wrong labels", "weight of the wrong-cell term; 0 = off")
    cls_neg_confidence: float = opt(0.0, "guards",
        "classification: wrong cells only where p(true cell) > this; probability; 0 = off")
    cls_complement_only: bool = opt(False, "wrong labels",
        "train on wrong cells only, no true labels; true/false")
    cls_neg_uniform: bool = opt(False, "wrong labels",
        "wrong cells uniform over all other cells, not at distance D; true/false")
    # output
    out: str = opt("runs", "output", "folder under which each run gets its own new folder")
    name: str = opt("", "output", "suffix of the run folder's name; '' = the model's name")
    save_checkpoints: bool = opt(True, "output", "write best.pt and last.pt; true/false")
    progress: bool = opt(True, "output", "progress bars; true/false")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["neg_direction"] = list(self.neg_direction)
        # Named held-out groups are left out while unset, so the configs (and the hashes of them that
        # cache base models and key sweep runs) of everything that does not name groups stay as before.
        for k in ("test_groups", "val_groups"):
            if not d[k]:
                del d[k]
        return d

    def replace(self, **overrides) -> TrainConfig:
        return from_dict(overrides, base=self)


# Derived from the fields' metadata (read-only views for callers and tests; written nowhere else).
HELP = {f.name: (f.metadata["group"], f.metadata["help"]) for f in dataclasses.fields(TrainConfig)}
CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig) if f.metadata["choices"]}


def config_values(cls, cfg: TrainConfig, derived=()) -> dict:
    """The values of dataclass cls's fields read from cfg by name: every init field of cls but those in
    `derived` (values cls computes from the config itself) is named as the TrainConfig field it holds, so a
    class that carries config options (step.Recipe, objective.WrongLabelObjective) copies none by hand and
    each option is written once, here in TrainConfig. A field that is neither is an error."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in derived:
            continue
        if f.name not in names:
            raise TypeError(f"{cls.__name__}.{f.name} is not a TrainConfig field: name it as the config field "
                            f"it holds, or list it among the values {cls.__name__} derives")
        values[f.name] = getattr(cfg, f.name)
    return values


def _field_types() -> dict:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value, typ, choices: tuple = ()):
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"config key {key!r} must be true or false, not {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be an integer, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r} must be an integer, not {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r} must be a number, not {value!r}")
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, not {value!r}")
        if choices and value not in choices:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(choices)}, not {value!r}")
        return value
    if typ is dict or origin is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"config key {key!r} must be a JSON object, not {value!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a JSON object, not {value!r}")
        return value
    if typ is tuple or origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} must be a list of numbers, not {value!r}") from None
    raise ConfigError(f"config key {key!r}: unsupported type {typ}")  # pragma: no cover


def from_dict(overrides: dict, base: TrainConfig | None = None) -> TrainConfig:
    types_ = _field_types()
    unknown = [k for k in overrides if k not in types_]
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig)}
    values = {k: _coerce(k, v, types_[k], choices[k]) for k, v in overrides.items()}
    cfg = dataclasses.replace(base or TrainConfig(), **values)
    validate(cfg)
    return cfg


MAX_LR = 10.0   # a learning rate above this is a typo (1e9 was accepted and diverged in the first step)


def validate(cfg: TrainConfig) -> None:
    checks = [
        (cfg.epochs >= 1, "epochs must be >= 1"),
        (cfg.batch_size >= 1, "batch_size must be >= 1"),
        (0.0 <= cfg.ema < 1.0, "ema must be in [0, 1): the weight-EMA decay, 0 = off"),
        (0 < cfg.lr <= MAX_LR, f"lr must be a finite number > 0 and at most {MAX_LR:g} (a larger step diverges at "
         f"once), not {cfg.lr} (negative steps are configured with neg_mode/neg_lambda)"),
        (0.0 <= cfg.momentum < 1.0, f"momentum must be in [0, 1), not {cfg.momentum}"),
        (0.0 <= cfg.weight_decay < math.inf, f"weight_decay must be a finite number >= 0, not {cfg.weight_decay}"),
        (cfg.threads >= 0, f"threads must be >= 0 (0 = torch's default), not {cfg.threads}"),
        (all(0.0 <= v < math.inf for v in (cfg.screen_w_cm, cfg.screen_h_cm, cfg.distance_cm)),
         "screen_w_cm, screen_h_cm and distance_cm must be finite numbers >= 0 (0 = not given)"),
        (math.isfinite(cfg.neg_lambda) and math.isfinite(cfg.neg_distance) and math.isfinite(cfg.guard_bound)
         and math.isfinite(cfg.guard_grad_cap) and math.isfinite(cfg.cls_neg_weight),
         "neg_lambda, neg_distance, guard_bound, guard_grad_cap and cls_neg_weight must be finite"),
        (cfg.watchdog_pct > 0, f"watchdog_pct must be > 0, not {cfg.watchdog_pct}"),
        (cfg.val_subjects >= 1 and cfg.test_subjects >= 1, "val_subjects and test_subjects must be >= 1"),
        (cfg.split_fold >= 0, "split_fold must be >= 0"),
        (cfg.backbone_lr_scale >= 0, "backbone_lr_scale must be >= 0 (0 freezes the backbone)"),
        (cfg.budget >= 0, "budget must be >= 0"),
        (cfg.neg_lambda >= 0, "neg_lambda must be >= 0"),
        (cfg.neg_distance > 0, "neg_distance must be > 0"),
        (cfg.neg_k >= 1, "neg_k must be >= 1"),
        (not (cfg.camera_mean and cfg.augment_backend == "torch"),
         "camera_mean matches each epoch's photos on the CPU: use augment_backend albumentations or auto"),
        (len(cfg.neg_direction) == 2 and any(cfg.neg_direction), "neg_direction must be two numbers, not both 0"),
        (cfg.guard_bound >= 0 and cfg.guard_grad_cap >= 0, "guard values must be >= 0"),
        (cfg.watchdog_patience >= 1, "watchdog_patience must be >= 1"),
        (not (cfg.head == "regression" and (cfg.cls_neg_weight > 0 or cfg.cls_complement_only)),
         "cls_neg_* options need head=classification"),
        (not (cfg.loss == "huber" and cfg.neg_loss == "mse" and cfg.neg_mode != "off"),
         "loss huber with neg_loss mse is unbounded below for every neg_lambda > 0 (a quadratic negative term "
         "outgrows Huber's linear tail) and runs away: use neg_loss match (Huber-shaped repulsion) or loss mse "
         "(docs/science.md section 2)"),
        (not (cfg.head == "classification" and cfg.neg_mode != "off"),
         "neg_mode (regression wrong points) needs head=regression; use cls_neg_weight for classification"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def load_config_file(path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a JSON config file")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}): a config file is JSON") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config file must hold a JSON object")
    return d


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """One --key option per config field (dashes or underscores), parsed as strings and coerced later
    so that file values and command-line values go through the same type checks. --help shows them in
    GROUPS, each with the help line, choices and default of its field (opt)."""
    groups = {g: parser.add_argument_group(f"{g} (TrainConfig)") for g in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text, choices = f.metadata["help"], f.metadata["choices"]
        if choices:
            text += f" {{{', '.join(choices)}}}"
        if default != "":
            text += f" (default: {','.join(map(str, default)) if isinstance(default, tuple) else default})"
        # argparse formats help with %: a literal percent sign must be doubled.
        groups[f.metadata["group"]].add_argument("--" + f.name.replace("_", "-"), dest=f"cfg_{f.name}",
                                                 default=None, metavar=f.name.upper(),
                                                 help=text.replace("%", "%%"))
    parser.add_argument("--config", default=None, help="JSON file of config values (the command line wins)")


# ----------------------------------------------------------------------------------------------
# Options of the other commands' configs (the studies' SweepConfig and PersonalConfig, `gazeneg eval`'s own)


def option(default=dataclasses.MISSING, help: str = "", *, group: str | None = None, choices: tuple = (),
           parse=None, metavar: str | None = None, default_factory=dataclasses.MISSING):
    """A config field that a command-line option sets, its help line, --help group (None: the command's
    main options) and allowed values in its metadata, as opt does for TrainConfig: the one place the option
    is written. add_options derives the parser's option from it: --name-with-dashes, the type and nargs from
    the field's type (bool: a flag; tuple[int, ...] or list[str]: one or more values), parse (an argparse
    type=, e.g. units.at_least) when given, and None when not given, so that the config's own default
    applies. `%` in the help is a percent sign."""
    if not help:
        raise ValueError("an option needs its help line")
    if choices and default is not dataclasses.MISSING and default not in choices:
        raise ValueError(f"default {default!r} is not one of its choices {', '.join(choices)}")
    meta = {"option": True, "help": help, "group": group, "choices": tuple(choices), "parse": parse,
            "metavar": metavar}
    return field(default=default, default_factory=default_factory, metadata=meta)


def option_of(cls, name: str, *, default=dataclasses.MISSING, default_factory=dataclasses.MISSING):
    """The option `name` of dataclass cls (its help, group and choices, written once there) on another
    field, with that field's own default: for a config that shares an option (PersonalConfig's --data is
    SweepConfig's) or sets another default for it (SweepConfig's arms: every arm)."""
    return field(default=default, default_factory=default_factory, metadata=_fields(cls)[name].metadata)


def _fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def options_of(*classes) -> dict:
    """{name: (field, type)} of every field of classes that carries an option's help (option, option_of).
    A name in several classes must carry one shared definition (option_of): two help texts for one option
    are an error."""
    found: dict = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("option"):
                continue
            if f.name in found and found[f.name][0].metadata != f.metadata:
                raise ValueError(f"option --{f.name.replace('_', '-')} is defined twice ({cls.__name__} and "
                                 f"another class): share one definition with config.option_of")
            found.setdefault(f.name, (f, hints[f.name]))
    return found


def _argparse_kwargs(f: dataclasses.Field, typ) -> dict:
    m = f.metadata
    kw = {"help": m["help"].replace("%", "%%"), "dest": f.name}
    if typ is bool:
        return {**kw, "action": "store_true"}
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (tuple, list):
        kw["nargs"], typ = "+", args[0]
    kw["default"] = None
    if m["parse"] is not None:
        kw["type"] = m["parse"]
    elif typ in (int, float):
        kw["type"] = typ
    if m["choices"]:
        kw["choices"] = m["choices"]
    if m["metavar"]:
        kw["metavar"] = m["metavar"]
    return kw


def add_options(parser: argparse.ArgumentParser, classes: tuple, order: tuple) -> None:
    """One option per option field of classes (options_of), added in `order` (every option's name once:
    the command's --help layout), each in its metadata's group."""
    found = options_of(*classes)
    if sorted(order) != sorted(found):
        raise ValueError(f"the option order must name each option once: missing {sorted(set(found) - set(order))}, "
                         f"unknown or repeated {sorted(n for n in order if n not in found or order.count(n) > 1)}")
    groups: dict = {None: parser}
    for name in order:
        f, typ = found[name]
        g = f.metadata["group"]
        if g not in groups:
            groups[g] = parser.add_argument_group(g)
        groups[g].add_argument("--" + name.replace("_", "-"), **_argparse_kwargs(f, typ))


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    overrides = load_config_file(args.config) if getattr(args, "config", None) else {}
    for name in _field_types():
        v = getattr(args, f"cfg_{name}", None)
        if v is not None:
            overrides[name] = v
    return from_dict(overrides, base=base)
