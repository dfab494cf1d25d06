"""Reading an image file whose header may lie about its size: one reader for the data-set loader, the
importer and the image-folder frame source.

A small file can declare a huge image (a 9 MB Radiance .hdr of 12000 x 12000 pixels decodes to 3 GB; a
1 MB PNG of 20000 x 20000 to 1.2 GB). read_image reads the file's bytes once, takes the width and height
from the header of those bytes, refuses more than `max_pixels` before anything is decoded, and only then
hands the same bytes to OpenCV. The header is trusted only for the formats whose signature both PIL and
OpenCV recognise (PNG, JPEG, BMP, TIFF, WebP): for a file of those the decoder that decodes is the one
whose header was checked. Any other format (Radiance HDR, OpenEXR, PFM, PNM, ...: files OpenCV would
decode but whose size PIL does not read) is refused, whatever its name.

    img_bgr = read_image(path, max_pixels=64_000_000)   # or ImageFileError with a one-line reason
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

MAX_PIXELS = 64_000_000            # a 4K webcam frame is 8.3 MP; a photo beyond this is refused undecoded
MAX_FILE_BYTES = 512 * 1024 ** 2   # a file this large is no photo of a face: refused unread
# PIL's format name -> the file signatures (magic bytes) of that format, which OpenCV's decoders test too.
SIGNATURES = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "WEBP": (b"RIFF",),
}
FORMATS = "PNG, JPEG, BMP, TIFF or WebP"


class ImageFileError(ValueError):
    """An image file is refused or cannot be decoded; the message says why, without the path (callers
    put the file, and the line of the CSV that names it, in front)."""


def header_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header of an image file's bytes, without decoding its pixels.
    Raises ImageFileError for a format outside FORMATS or one whose signature does not match."""
    saved = PIL.Image.MAX_IMAGE_PIXELS
    try:
        PIL.Image.MAX_IMAGE_PIXELS = None   # the size is checked by the caller, with the real numbers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PIL.Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format, im.size
    except PIL.UnidentifiedImageError:
        raise ImageFileError(f"is not a {FORMATS} image (its size cannot be checked before decoding); not "
                             "decoded") from None
    except (OSError, ValueError, SyntaxError) as e:   # a header PIL recognises but cannot parse
        raise ImageFileError(f"is not a readable {FORMATS} image ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else ''}); not decoded") from None
    finally:
        PIL.Image.MAX_IMAGE_PIXELS = saved
    sigs = SIGNATURES.get(fmt)
    if sigs is None:
        raise ImageFileError(f"is a {fmt} image; gazeneg reads {FORMATS} only")
    if not data.startswith(sigs) or (fmt == "WEBP" and data[8:12] != b"WEBP"):
        raise ImageFileError(f"does not start with the {fmt} signature its header claims; not decoded")
    return fmt, int(w), int(h)


def read_image(path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image at path as a BGR uint8 (H, W, 3) array, decoded by OpenCV from the bytes whose header
    said it has at most max_pixels pixels. ImageFileError (a reason without the path) otherwise; a missing
    or unreadable file is the OSError of reading it."""
    path = Path(path)
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise ImageFileError(f"is a {size / 1024 ** 2:.0f} MB file, more than an image gazeneg reads "
                             f"({MAX_FILE_BYTES // 1024 ** 2} MB); not read")
    data = path.read_bytes()
    fmt, w, h = header_size(data)
    if w * h > max_pixels:
        limit = f"{max_pixels / 1e6:.0f} megapixels" if max_pixels >= 1_000_000 else f"{max_pixels} pixels"
        raise ImageFileError(f"is {w}x{h} pixels ({fmt}), more than {limit}; not decoded")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageFileError(f"cannot be decoded ({str(e).strip().splitlines()[-1][:120]})") from None
    if img is None:
        raise ImageFileError(f"cannot be decoded (a corrupt or truncated {fmt} file)")
    if img.shape[:2] not in ((h, w), (w, h)):   # (w, h): turned by its EXIF orientation
        raise ImageFileError(f"decoded to {img.shape[1]}x{img.shape[0]}, its header says {w}x{h}")
    return img
