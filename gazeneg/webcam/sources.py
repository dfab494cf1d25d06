"""The webcam plumbing shared by capture and live: frame sources (camera, video file, image folder),
the clock a replay runs on, the fullscreen window with its key codes, and the frame loop.

    source = open_source("0")                 # camera index, video file or image folder
    why = frame_loop(source, step, press, clock=default_clock(source), done=lambda: finished)

step(frame, now) handles one frame and returns the key names pressed meanwhile (from a window or a
script); press(key, now) acts on each. Only Window touches cv2.imshow / cv2.waitKeyEx.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from gazeneg.data.images import MAX_PIXELS, ImageFileError, read_image
from gazeneg.errors import GazenegError
from gazeneg.units import parse_size

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_FRAME_PIXELS = MAX_PIXELS   # a frame of an image-folder source beyond this is refused before decoding
DEFAULT_SCREEN = (1920, 1080)


class CaptureError(GazenegError, RuntimeError):
    """A problem the person capturing can fix; the message says how."""


class CameraError(CaptureError):
    pass


class GuiError(CaptureError):
    pass


# ----------------------------------------------------------------------------------------------
# Frame sources: read() -> BGR frame, or None when a file source has no more frames


class CameraSource:
    live = True

    def __init__(self, index: int, *, width: int = 640, height: int = 480):
        self.index = index
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            self.cap.release()
            dev = Path(f"/dev/video{index}")
            if sys.platform.startswith("linux") and dev.exists():
                raise CameraError(f"camera {index} ({dev}) exists but cannot be opened: it is busy (close "
                                  "other programs using it: browser tabs, video calls) or you lack permission "
                                  "(add yourself to the 'video' group)")
            raise CameraError(f"no camera at index {index}: check it is plugged in, try --source 1, or give a "
                              "video file or image folder as --source")
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.cap.release()
            raise CameraError(f"camera {index} opened but delivers no frames: it is probably busy in another "
                              "program (browser tab, video call); close that and try again")
        self._first = frame
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        ok, frame = self.cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera {self.index} stopped delivering frames (unplugged?). Every frame "
                              "captured so far is saved; plug it back in and re-run with --resume")
        return frame

    def close(self) -> None:
        self.cap.release()


class VideoFileSource:
    live = False

    def __init__(self, path, *, fps: float | None = None):
        self.path = Path(path)
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise CaptureError(f"{self.path}: cannot open as a video (unsupported codec or not a video)")
        self.fps = fps or self.cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        return frame if ok else None

    def close(self) -> None:
        self.cap.release()


class ImageFolderSource:
    """Every image in a folder, in file-name order, as consecutive frames at `fps`."""

    live = False

    def __init__(self, folder, *, fps: float = 30.0, recursive: bool = False):
        self.folder = Path(folder)
        found = self.folder.rglob("*") if recursive else self.folder.iterdir()
        self.files = sorted(p for p in found if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise CaptureError(f"{self.folder}: no images ({', '.join(IMAGE_EXTS)}) in this folder"
                               + (" or below it" if recursive else ""))
        self.fps = fps
        self._i = 0

    def read(self) -> np.ndarray | None:
        if self._i >= len(self.files):
            return None
        path = self.files[self._i]
        self._i += 1
        # The header of the bytes OpenCV decodes is bounded first (data.images): a small file can declare
        # a huge image, and formats whose size cannot be read undecoded (Radiance .hdr, ...) are refused.
        try:
            return read_image(path, max_pixels=MAX_FRAME_PIXELS)
        except ImageFileError as e:
            raise CaptureError(f"{path}: {e}") from None
        except OSError as e:
            raise CaptureError(f"{path}: cannot be read ({e.strerror or e})") from None

    def close(self) -> None:
        pass


def open_source(spec, *, fps: float | None = None, width: int = 640, height: int = 480):
    """A camera for an integer (or a string of digits), an ImageFolderSource for a folder, a
    VideoFileSource for a file."""
    s = str(spec)
    if s.isdigit():
        return CameraSource(int(s), width=width, height=height)
    p = Path(s)
    if p.is_dir():
        return ImageFolderSource(p, fps=fps or 30.0)
    if p.is_file():
        return VideoFileSource(p, fps=fps)
    raise CaptureError(f"--source {s!r}: not a camera index, a video file or an image folder")


def frame_count(source) -> int | None:
    """How many frames a file source holds: the images of a folder, a video's own count (None when its
    container does not say, and for a camera)."""
    if isinstance(source, ImageFolderSource):
        return len(source.files)
    if isinstance(source, VideoFileSource):
        n = int(source.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return n if n > 0 else None
    return None


class ProgressSource:
    """A file source whose reading shows on a progress bar (tqdm, on stderr): headless capture and live ran
    for 48 s and 25 s with no sign of life. Everything else is the wrapped source's (read() returns its
    frames, close() closes it too)."""

    def __init__(self, source, *, desc: str, total: int | None = None, file=None):
        from tqdm import tqdm

        self.source = source
        self.bar = tqdm(total=total if total is not None else frame_count(source), desc=desc, unit="frame",
                        file=file or sys.stderr, dynamic_ncols=True, leave=True)

    def read(self):
        frame = self.source.read()
        if frame is not None:
            self.bar.update(1)
        return frame

    def close(self) -> None:
        self.bar.close()
        self.source.close()

    def __getattr__(self, name):   # live, fps, files, ...: the wrapped source's
        if name == "source":       # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)


class FrameClock:
    """Time for a file source: each call returns the next frame's timestamp at `fps`, so fixation
    delays and timeouts are counted in frames and a replay is deterministic."""

    def __init__(self, fps: float = 30.0):
        self.dt = 1.0 / fps
        self.n = 0

    def __call__(self) -> float:
        t = self.n * self.dt
        self.n += 1
        return t


def default_clock(source):
    """Wall time for a live camera; for a file source a FrameClock at its fps, so a replay is
    deterministic."""
    return time.time if getattr(source, "live", False) else FrameClock(getattr(source, "fps", 30.0))


def frame_loop(source, step, press, *, clock, done=lambda: False, max_frames: int | None = None) -> str:
    """Read frames until done() is true, max_frames were read, or the source ends; for each, now =
    clock(), then press(key, now) for every key name step(frame, now) returns. Returns why it stopped:
    "done", "max frames" or "source ended"."""
    n = 0
    while not done():
        if max_frames is not None and n >= max_frames:
            return "max frames"
        frame = source.read()
        if frame is None:
            return "source ended"
        n += 1
        now = clock()
        for key in step(frame, now):
            press(key, now)
    return "done"


# ----------------------------------------------------------------------------------------------
# Screen and window (the only part that needs a display)


def screen_size(override: str | None = None) -> tuple[int, int]:
    """(width, height) in pixels: `override` "WxH", else tkinter's idea of the screen, else 1920x1080."""
    if override:
        return parse_size(override, "--screen", "pixels")
    try:
        import tkinter

        root = tkinter.Tk()
        root.withdraw()
        w, h = root.winfo_screenwidth(), root.winfo_screenheight()
        root.destroy()
        if w > 0 and h > 0:
            return int(w), int(h)
    except Exception:  # no tkinter, no display: fall back
        pass
    return DEFAULT_SCREEN


GUI_MISSING = ("this OpenCV has no GUI support (cv2.imshow: 'The function is not implemented'), usually "
               "because opencv-python-headless is installed. Install the GUI build: pip uninstall "
               "opencv-python-headless && pip install --force-reinstall opencv-python; or run with --headless "
               "and a video file or image folder as --source")

# cv2.waitKeyEx codes of the arrow keys on each backend (GTK, Qt, Windows, macOS), plus WASD.
_KEYCODES = {
    **dict.fromkeys((65361, 0x1000012, 2424832, 63234, ord("a")), "left"),
    **dict.fromkeys((65363, 0x1000014, 2555904, 63235, ord("d")), "right"),
    **dict.fromkeys((65362, 0x1000013, 2490368, 63232, ord("w")), "up"),
    **dict.fromkeys((65364, 0x1000015, 2621440, 63233, ord("s")), "down"),
    32: "space",
    27: "esc",
    ord("q"): "esc",
}


def key_name(code: int) -> str | None:
    return _KEYCODES.get(code) if code >= 0 else None


class Window:
    """A fullscreen OpenCV window: show(canvas) -> key names pressed. The only class that calls
    cv2.imshow / cv2.waitKeyEx. extra_keys: {key code: name} beyond the arrows, WASD, space, Esc, q."""

    def __init__(self, name: str = "gazeneg", *, fullscreen: bool = True, extra_keys: dict | None = None):
        self.keys = {**_KEYCODES, **(extra_keys or {})}
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise GuiError("no display (DISPLAY is not set): run on a desktop session, or use --headless with a "
                           "video file or image folder as --source")
        self.name = name
        try:
            cv2.namedWindow(name, cv2.WINDOW_NORMAL)
            if fullscreen:
                cv2.setWindowProperty(name, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
        except cv2.error as e:
            if "not implemented" in str(e).lower():
                raise GuiError(GUI_MISSING) from None
            raise

    def show(self, canvas: np.ndarray) -> list[str]:
        try:
            cv2.imshow(self.name, canvas)
        except cv2.error as e:
            if "not implemented" in str(e).lower():
                raise GuiError(GUI_MISSING) from None
            raise
        code = cv2.waitKeyEx(1)
        k = self.keys.get(code) if code >= 0 else None
        return [k] if k else []

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.name)
        except cv2.error:
            pass
