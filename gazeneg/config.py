"""The run configuration: a frozen dataclass with defaults in code, overridable from a JSON file and
then the command line. Unknown keys and wrong types are errors; the resolved config is saved in the
run folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from gazeneg.errors import GazenegError


class ConfigError(GazenegError, ValueError):
    pass


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = "synthetic"          # "synthetic" (built-in default, rendered on first use) or a folder
    val_subjects: int = 2            # held-out subjects for validation (model selection)
    test_subjects: int = 3           # held-out subjects for the reported test figures
    split_seed: int = 0              # which subjects are held out; fixed across arms of a sweep
    split_fold: int = 0              # rotates the held-out subjects along the split_seed order (a sweep
                                     # uses fold = seed, so its seeds hold out different subjects)
    budget: int = 0                  # frames per cell per training subject; 0 = all
    test_groups: str = ""            # held-out test groups by name, comma-separated: subjects or subject/session;
                                     # "" = chosen by split_seed/split_fold
    val_groups: str = ""             # held-out validation groups by name, the same way
    # model
    model: str = "gazecnn"
    model_kwargs: dict = field(default_factory=dict)
    head: str = "regression"         # or "classification" (144-way softmax)
    ce_reg_weight: float = 0.0       # classification: weight of an L2 term on the expected point
    loss: str = "huber"              # regression loss on the true point: "huber" or "mse"
    # optimisation
    optimizer: str = "adamw"         # "adamw", "adam" or "sgd"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"         # "cosine", "step" or "none"
    epochs: int = 18
    batch_size: int = 64
    ema: float = 0.99                # decay of the weight EMA used for validation and test; 0 = off
    augment: bool = True
    flip: bool = True                # horizontal flip with col -> 15 - col (eyes swap)
    augment_backend: str = "auto"    # "albumentations" (CPU, per epoch), "torch" (per batch on the training
                                     # device); "auto" = torch on CUDA, albumentations otherwise
    realism: str = "auto"            # the per-frame webcam look on training photos (data/realism.py), with
                                     # augment: "on", "off", "auto" = on for synthetic data
    seed: int = 0
    threads: int = 0                 # torch threads; 0 = leave torch's default
    device: str = "auto"             # "auto", "cpu", "cuda"
    amp: bool = True                 # bf16 autocast on CUDA only
    compile: bool = False            # torch.compile the model (CUDA or CPU with a compiler)
    # fine-tuning
    init: str = ""                   # checkpoint to start from (fine-tuning); same architecture, checked
    backbone_lr_scale: float = 1.0   # the backbone's LR as a multiple of lr; 0 freezes it (BatchNorm stats too)
    # screen geometry for errors in cm and degrees (0 = not given)
    screen_w_cm: float = 0.0
    screen_h_cm: float = 0.0
    distance_cm: float = 0.0
    # wrong labels with a negative learning rate (docs/science.md sections 1, 2 and 4)
    neg_mode: str = "off"            # "off", "literal" (separate step at lr -lambda*lr) or "combined"
    neg_lambda: float = 0.0          # lambda per wrong point; Lambda = lambda * neg_k
    neg_lambda_schedule: str = "constant"  # "constant" or "linear" (ramps 0 -> lambda after warm-up)
    neg_distance: float = 2.0        # D, cells
    neg_k: int = 1                   # wrong points per sample
    neg_policy: str = "one_sided"    # one_sided | random | redraw | symmetric | prediction_side
    neg_direction: tuple = (1.0, 0.0)  # one_sided direction in (row, col); default straight down
    neg_boundary: str = "keep"       # keep | clip | reflect | drop
    neg_warmup_epochs: int = 0
    neg_other_photos: bool = False   # literal mode: negative step on a different batch of photos
    neg_optimizer: str = "separate"  # literal mode: "separate" (a second optimizer, its own moments) or "same"
                                     # (the training optimizer and its moments at LR -lambda*lr: the asker's recipe)
    neg_loss: str = "match"          # "match" (the true-label loss's shape), "mse": -1/2|f-w|^2, "huber":
                                     # -Huber(|f-w|), "repulsion": bounded 1/2 max(0, m-|f-w|)^2
    neg_margin: float = 0.0          # repulsion margin m; 0 = D
    guard_bound: float = 0.0         # error bound B: only samples with |f - y| < B; 0 = off
    guard_bound_norm: str = "euclidean"  # or "max" (per-axis)
    guard_direction: bool = False    # only where <f - w, y - f> > 0
    guard_grad_cap: float = 0.0      # cap on the negative step's gradient norm; 0 = off
    watchdog: bool = False           # divergence watchdog: restore best weights, halve lambda
    watchdog_pct: float = 50.0       # validation error this % above its best ...
    watchdog_patience: int = 2       # ... for this many epochs triggers it
    watchdog_action: str = "halve"   # "halve" lambda or "stop" wrong labels
    # classification wrong cells (docs/science.md section 3)
    cls_neg_loss: str = "complement"  # "complement" (-log(1 - p_l)) or "negated_ce" (+log p_l)
    cls_neg_weight: float = 0.0      # weight of the wrong-cell term; 0 = off
    cls_neg_confidence: float = 0.0  # guard: only where p(true cell) > this (NLNL-style); 0 = off
    cls_complement_only: bool = False  # train on wrong cells only, no true labels
    cls_neg_uniform: bool = False    # wrong cells uniform over all other cells instead of at distance D
    # output
    out: str = "runs"
    name: str = ""
    save_checkpoints: bool = True
    progress: bool = True

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


CHOICES = {
    "head": ("regression", "classification"),
    "loss": ("mse", "huber"),
    "optimizer": ("adamw", "adam", "sgd"),
    "schedule": ("cosine", "step", "none"),
    "device": ("auto", "cpu", "cuda"),
    "augment_backend": ("auto", "albumentations", "torch"),
    "realism": ("auto", "on", "off"),
    "neg_mode": ("off", "literal", "combined"),
    "neg_optimizer": ("separate", "same"),
    "neg_lambda_schedule": ("constant", "linear"),
    "neg_policy": ("one_sided", "random", "redraw", "symmetric", "prediction_side"),
    "neg_boundary": ("keep", "clip", "reflect", "drop"),
    "neg_loss": ("match", "mse", "huber", "repulsion"),
    "guard_bound_norm": ("euclidean", "max"),
    "watchdog_action": ("halve", "stop"),
    "cls_neg_loss": ("complement", "negated_ce"),
}


# Every field's --help: its group and one line with its unit (cells, cm, epochs, fraction, ...). A test
# checks that every field has one; the defaults and choices are added by add_config_args.
GROUPS = ("data", "model", "optimisation", "wrong labels", "guards", "output")
HELP = {
    # data
    "data": ("data", "'synthetic' (the built-in set, rendered on first use), 'synthetic:F' (F frames per cell) "
                     "or a data-set folder"),
    "val_subjects": ("data", "held-out groups for validation (model selection): subjects, or sessions when "
                             "there are too few subjects (with --test-groups, fewer if fewer remain); count"),
    "test_subjects": ("data", "held-out groups for the reported test figures (as --val-subjects); count"),
    "split_seed": ("data", "seed of the order in which groups are held out; the same across a sweep's arms"),
    "split_fold": ("data", "rotates the held-out groups along the split_seed order by test_subjects; index"),
    "budget": ("data", "frames per cell per training subject (the little-data setting); 0 = all"),
    "test_groups": ("data", "test on these groups by name, comma-separated: subjects (alice) or sessions "
                            "(me/s3); overrides the seeded choice"),
    "val_groups": ("data", "validate on these groups by name, as --test-groups"),
    # model
    "model": ("model", "architecture: gazecnn, mlp, resnet18, mobilenet_v3_small, or landmarks (ridge on the "
              "eye landmark features and head pose, no pixels; fitted in closed form)"),
    "model_kwargs": ("model", "the model's keyword arguments, a JSON object (e.g. '{\"width\": 32}')"),
    "head": ("model", "regression (a (row, col) point, cells) or classification (144-way softmax over cells)"),
    "ce_reg_weight": ("model", "classification: weight of an L2 term on the expected point, cells^2; 0 = off"),
    "loss": ("model", "true-label loss on the point: huber (quadratic within 1 cell, linear beyond) or mse"),
    "init": ("model", "checkpoint to start from (fine-tuning), same architecture (checked); '' = from scratch"),
    "backbone_lr_scale": ("model", "the backbone's LR as a multiple of --lr; 0 freezes it (BatchNorm "
                                   "statistics too); factor"),
    # optimisation
    "optimizer": ("optimisation", "adamw, adam or sgd"),
    "lr": ("optimisation", "peak learning rate, per step; > 0 (negative steps are --neg-mode/--neg-lambda)"),
    "momentum": ("optimisation", "SGD momentum, in [0, 1)"),
    "weight_decay": ("optimisation", "decoupled (AdamW) or L2 (Adam, SGD) weight decay, per step; >= 0"),
    "schedule": ("optimisation", "LR schedule over the run: cosine, step or none (constant)"),
    "epochs": ("optimisation", "passes over the training set; epochs"),
    "batch_size": ("optimisation", "photos per step (global, over all DDP processes); count"),
    "ema": ("optimisation", "decay of the weight EMA used for validation and test, per step, in [0, 1); 0 = off"),
    "augment": ("optimisation", "photometric and geometric augmentation of training photos; true/false"),
    "flip": ("optimisation", "random horizontal flip with col -> 15 - col (the eyes swap); true/false"),
    "augment_backend": ("optimisation", "albumentations (CPU, per epoch), torch (per batch on the device), "
                                        "auto (torch on CUDA, else albumentations)"),
    "realism": ("optimisation", "the webcam look on training photos, per frame, with --augment (exposure, colour "
                                "cast, blur, noise, JPEG, low resolution, shadow, sclera and iris tint, lashes, "
                                "glare; docs/domain-gap.md): on, off, or auto (on for synthetic data)"),
    "seed": ("optimisation", "seed of initialisation, batch order, augmentation and wrong points"),
    "threads": ("optimisation", "torch CPU threads; 0 = torch's default; count"),
    "device": ("optimisation", "auto (CUDA when available), cpu or cuda"),
    "amp": ("optimisation", "bf16 autocast, on CUDA only; true/false"),
    "compile": ("optimisation", "torch.compile the model (CUDA, or CPU with a compiler); true/false"),
    # wrong labels
    "neg_mode": ("wrong labels", "off, literal (a separate step at LR -lambda*lr on wrong points) or combined "
                                 "(one loss: true term minus lambda x wrong term)"),
    "neg_lambda": ("wrong labels", "lambda, the weight of each wrong point (Lambda = lambda x neg_k); >= 0"),
    "neg_lambda_schedule": ("wrong labels", "constant, or linear (ramps 0 -> lambda after the warm-up)"),
    "neg_distance": ("wrong labels", "D, how far each wrong point lies from the true one; cells"),
    "neg_k": ("wrong labels", "wrong points per photo; count"),
    "neg_policy": ("wrong labels", "where wrong points go: one_sided (along --neg-direction), random, redraw, "
                                   "symmetric (k evenly around) or prediction_side"),
    "neg_direction": ("wrong labels", "one_sided direction as row,col (normalised; 1,0 = straight down the rows)"),
    "neg_boundary": ("wrong labels", "a wrong point beyond the screen's edge: keep, clip, reflect (at the edge, "
                                     "rows -0.5..8.5, cols -0.5..15.5) or drop"),
    "neg_warmup_epochs": ("wrong labels", "epochs of true labels only before wrong points start; epochs"),
    "neg_optimizer": ("wrong labels", "literal mode: separate (a second optimizer with its own moments steps at LR "
                                      "-lambda*lr) or same (the training optimizer itself, its moments too, with its LR "
                                      "set to -lambda*lr for the wrong-label batch: the recipe as first asked)"),
    "neg_other_photos": ("wrong labels", "literal mode: the negative step on a different batch of photos; "
                                         "true/false"),
    "neg_loss": ("wrong labels", "the wrong-point term: match (the true loss's shape), mse, huber, or "
                                 "repulsion (bounded, 1/2 max(0, m - |f - w|)^2)"),
    "neg_margin": ("wrong labels", "repulsion margin m; 0 = --neg-distance; cells"),
    "cls_neg_loss": ("wrong labels", "classification wrong cells: complement (-log(1 - p_wrong)) or negated_ce "
                                     "(+log p_wrong)"),
    "cls_neg_weight": ("wrong labels", "weight of the wrong-cell term; 0 = off"),
    "cls_complement_only": ("wrong labels", "train on wrong cells only, no true labels; true/false"),
    "cls_neg_uniform": ("wrong labels", "wrong cells uniform over all other cells, not at distance D; true/false"),
    # guards
    "guard_bound": ("guards", "error bound B: wrong points only on photos with |f - y| < B; cells; 0 = off"),
    "guard_bound_norm": ("guards", "the bound's norm: euclidean, or max (per axis)"),
    "guard_direction": ("guards", "wrong points only where pushing away from them moves f towards y; "
                                  "true/false"),
    "guard_grad_cap": ("guards", "cap on the negative step's gradient norm; 0 = off"),
    "cls_neg_confidence": ("guards", "classification: wrong cells only where p(true cell) > this; probability; "
                                     "0 = off"),
    "watchdog": ("guards", "divergence watchdog: restores the best weights and acts (--watchdog-action); "
                           "true/false"),
    "watchdog_pct": ("guards", "validation error this far above its best triggers the watchdog; percent"),
    "watchdog_patience": ("guards", "... for this many epochs in a row; epochs"),
    "watchdog_action": ("guards", "halve lambda, or stop wrong labels"),
    # output
    "out": ("output", "folder under which each run gets its own new folder"),
    "name": ("output", "suffix of the run folder's name; '' = the model's name"),
    "save_checkpoints": ("output", "write best.pt and last.pt; true/false"),
    "progress": ("output", "progress bars; true/false"),
    "screen_w_cm": ("output", "visible screen width, for errors in cm and degrees; cm; 0 = not given"),
    "screen_h_cm": ("output", "visible screen height; cm; 0 = not given"),
    "distance_cm": ("output", "eye-to-screen distance, for errors in degrees; cm; 0 = not given"),
}


def _field_types() -> dict:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value, typ):
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
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(CHOICES[key])}, not {value!r}")
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
    values = {k: _coerce(k, v, types_[k]) for k, v in overrides.items()}
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
    GROUPS, each with its HELP line, its choices and its default."""
    groups = {g: parser.add_argument_group(f"{g} (TrainConfig)") for g in GROUPS}
    for name in _field_types():
        flag = "--" + name.replace("_", "-")
        default = getattr(TrainConfig, name, None) if not isinstance(getattr(TrainConfig, name, None),
                                                                      types.MemberDescriptorType) else None
        group, text = HELP[name]
        if name in CHOICES:
            text += f" {{{', '.join(CHOICES[name])}}}"
        if default is not None and default != "":
            text += f" (default: {','.join(map(str, default)) if isinstance(default, tuple) else default})"
        elif name == "model_kwargs":
            text += " (default: {})"
        # argparse formats help with %: a literal percent sign must be doubled.
        groups[group].add_argument(flag, dest=f"cfg_{name}", default=None, metavar=name.upper(),
                                   help=text.replace("%", "%%"))
    parser.add_argument("--config", default=None, help="JSON file of config values (the command line wins)")


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    overrides = load_config_file(args.config) if getattr(args, "config", None) else {}
    for name in _field_types():
        v = getattr(args, f"cfg_{name}", None)
        if v is not None:
            overrides[name] = v
    return from_dict(overrides, base=base)
