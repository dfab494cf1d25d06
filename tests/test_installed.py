"""An installed gazeneg (the built wheel in a fresh venv, not an editable install) works outside a
checkout: caches in the user's cache folder, outputs under the current folder."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gazeneg.cli import main as console

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_keeps_the_repository_data_folder(monkeypatch):
    monkeypatch.delenv("GAZENEG_DATA_DIR", raising=False)
    assert console.is_checkout()
    console.use_user_cache_when_installed()
    assert "GAZENEG_DATA_DIR" not in os.environ


def test_installed_uses_the_user_cache_unless_a_folder_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(console, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.delenv("GAZENEG_DATA_DIR", raising=False)
    monkeypatch.setenv("GAZENEG_CACHE", str(tmp_path / "cache"))
    console.use_user_cache_when_installed()
    assert os.environ["GAZENEG_DATA_DIR"] == str(tmp_path / "cache" / "data")
    monkeypatch.setenv("GAZENEG_DATA_DIR", str(tmp_path / "mine"))
    console.use_user_cache_when_installed()
    assert os.environ["GAZENEG_DATA_DIR"] == str(tmp_path / "mine")


@pytest.mark.slow
def test_the_built_wheel_in_a_fresh_venv(tmp_path):
    # Built from a copy of what the wheel holds, so the build leaves nothing (build/) in the checkout.
    src = tmp_path / "src"
    shutil.copytree(ROOT / "gazeneg", src / "gazeneg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                        "-w", str(dist), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = dist.glob("gazeneg-*.whl")
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    py = fresh / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--quiet",
                        str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    # Dependencies reused from this venv: its site-packages after the fresh one's (the wheel's gazeneg wins;
    # this venv's editable-install hook is in a .pth file, which a .pth-added folder does not run).
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "reuse-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAZENEG_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), OMP_NUM_THREADS="1", PYTHONPATH="")
    exe = str(fresh / "bin" / "gazeneg")

    def gz(*args, ok=True):
        r = subprocess.run([exe, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
        assert (r.returncode == 0) == ok, f"gazeneg {' '.join(args)}: {r.returncode}\n{r.stderr[-2000:]}"
        return r

    where = subprocess.run([str(py), "-c", "import gazeneg; print(gazeneg.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where          # the installed copy, not the checkout
    assert gz("--version").stdout.strip() == "gazeneg 0.1.0"
    out = gz("render", "--out", "synth", "--subjects", "3", "--frames-per-cell", "1", "--quiet").stdout
    assert (elsewhere / "synth" / "labels.csv").is_file() and "synth" in out
    out = gz("train", "--epochs", "1", "--model", "mlp", "--progress", "false", "--threads", "1").stdout
    run = Path(out.strip().splitlines()[-1].split("run folder: ")[1])
    assert (elsewhere / run / "metrics.json").is_file()        # outputs under the current folder
    assert json.loads((elsewhere / run / "config.json").read_text())["data"] == "synthetic"
    cached = list((tmp_path / "cache" / "gazeneg" / "data" / "synthetic").glob("default-*/labels.csv"))
    assert len(cached) == 1                                     # the default set, in the user cache
    assert not (site.parent / "data").exists() and not (Path(where).parents[1] / "data").exists()
    assert "gazeneg toy" in gz("toy", "--help").stdout           # the toy ships in the package
    assert "gazeneg eval" in gz("eval", "--help").stdout          # so does eval (it lived in the checkout)
    assert "sgd:baseline" in gz("eval", "--list-arms").stdout
