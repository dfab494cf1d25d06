"""Gaze samples streamed to other programs while the tracker runs: a Lab Streaming Layer outlet and a
WebSocket server. Both are tracker sinks (write(sample, frame, res), close()) and need the optional extra
`pip install "gazeneg[stream]"` (pylsl, whose wheel ships liblsl; websockets).

LSL: a stream of type "Gaze" (name --lsl-name, default "gazeneg"), one sample per frame, LSL_CHANNELS as
double64 channels with their label, unit and type in the stream's metadata (desc/channels, as the XDF
convention and LabRecorder expect), the screen in desc/screen; missing values are NaN. Each sample's LSL
timestamp is its t_mono on pylsl.local_clock() (the same clock on Linux; elsewhere the offset measured at
start is added), so LabRecorder aligns it with the other streams. Events go out as a second, irregular
"Markers" stream (name + "-events", one string channel).

WebSocket: ws://127.0.0.1:8765 by default (this machine only; another interface only when its address is
given), every sample as one JSON text message (record.GazeSample's fields) to every connected client;
a client may send {"event": "..."} (or plain text) to set the event column of the next sample.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time

from gazeneg.webcam.record import EventInbox, GazeSample

EXTRA_HINT = 'pip install "gazeneg[stream]"'
# (label, unit, type) of each LSL channel
LSL_CHANNELS = (("row", "cells", "ScreenY"), ("col", "cells", "ScreenX"), ("x_px", "pixels", "ScreenX"),
                ("y_px", "pixels", "ScreenY"), ("raw_row", "cells", "ScreenY"), ("raw_col", "cells", "ScreenX"),
                ("cal_row", "cells", "ScreenY"), ("cal_col", "cells", "ScreenX"), ("valid", "bool", "Validity"),
                ("frame", "count", "FrameIndex"), ("yaw", "degrees", "HeadYaw"), ("pitch", "degrees", "HeadPitch"),
                ("roll", "degrees", "HeadRoll"))
STATE_CODES = {"ok": 1.0}


class StreamError(ValueError):
    """A stream cannot be opened; the message names the option and the fix."""


def require(module: str, option: str):
    """The optional module, or a one-line StreamError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise StreamError(f"{option} needs the {module} package ({e.msg if hasattr(e, 'msg') else e}): "
                          f"{EXTRA_HINT}") from None


def _num(v) -> float:
    return float("nan") if v is None else float(v)


class LslSink:
    def __init__(self, *, name: str = "gazeneg", source_id: str | None = None, screen=(1920, 1080),
                 rate_hz: float = 30.0):
        pylsl = require("pylsl", "--lsl")
        self.pylsl = pylsl
        sid = source_id or f"gazeneg-{name}"
        info = pylsl.StreamInfo(name, "Gaze", len(LSL_CHANNELS), rate_hz, "double64", sid)
        chans = info.desc().append_child("channels")
        for label, unit, kind in LSL_CHANNELS:
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", kind)
        scr = info.desc().append_child("screen")
        scr.append_child_value("width_px", str(screen[0]))
        scr.append_child_value("height_px", str(screen[1]))
        scr.append_child_value("grid", "9 rows x 16 columns; (row, col) cell centres, row 0 top, col 0 left")
        info.desc().append_child_value("manufacturer", "gazeneg")
        self.outlet = pylsl.StreamOutlet(info)
        minfo = pylsl.StreamInfo(name + "-events", "Markers", 1, 0.0, "string", sid + "-events")
        self.markers = pylsl.StreamOutlet(minfo)
        self.offset = pylsl.local_clock() - time.monotonic()
        if abs(self.offset) < 1e-3:
            self.offset = 0.0

    def wait(self, timeout: float) -> bool:
        return bool(self.outlet.wait_for_consumers(timeout))

    def write(self, sample: GazeSample, frame=None, res=None) -> None:
        d = sample.__dict__
        values = [STATE_CODES.get(sample.state, 0.0) if k == "valid" else _num(d[k]) for k, _, _ in LSL_CHANNELS]
        ts = sample.t_mono + self.offset
        self.outlet.push_sample(values, ts)
        if sample.event:
            self.markers.push_sample([sample.event], ts)

    def close(self) -> None:
        self.outlet = self.markers = None


def parse_address(text: str, default_port: int = 8765) -> tuple[str, int]:
    """"PORT", "HOST:PORT" or "HOST" -> (host, port); the host defaults to 127.0.0.1 (this machine only)."""
    host, _, port = text.rpartition(":") if ":" in text else ("", "", text)
    if not port.isdigit():
        host, port = text, str(default_port)
    if not 0 < int(port) < 65536:
        raise StreamError(f"--websocket {text!r}: port must be 1..65535")
    return host or "127.0.0.1", int(port)


class WebSocketSink:
    """A WebSocket server in a background thread broadcasting each sample as JSON."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, events: EventInbox | None = None):
        self.ws = require("websockets", "--websocket")
        server_mod = require("websockets.asyncio.server", "--websocket")
        self.host, self.port = host, port
        self.events = events
        self.clients: set = set()
        self.connected = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self._serve, self._broadcast = server_mod.serve, server_mod.broadcast
        self.thread = threading.Thread(target=self._run, name="gazeneg-websocket", daemon=True)
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise StreamError(f"--websocket {host}:{port}: cannot listen ({self._error})")

    async def _handler(self, conn) -> None:
        self.clients.add(conn)
        self.connected.set()
        try:
            async for message in conn:
                if self.events is not None:
                    try:
                        msg = json.loads(message)
                        text = msg.get("event", "") if isinstance(msg, dict) else str(msg)
                    except ValueError:
                        text = str(message)
                    self.events.put(text)
        except Exception:  # a client that vanished: nothing to tell it
            pass
        finally:
            self.clients.discard(conn)

    async def _main(self) -> None:
        try:
            # compression=None: each ~400-byte sample is sent as it is, not deflated per client (~0.04 ms of the
            # server thread a sample; 12 KB/s at 30 fps); every client reads both.
            self.server = await self._serve(self._handler, self.host, self.port, compression=None)
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self.port = self.server.sockets[0].getsockname()[1]   # port 0: the one the system chose
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        for c in list(self.clients):
            await c.close()
        self.server.close()
        await self.server.wait_closed()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    def wait(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def write(self, sample: GazeSample, frame=None, res=None) -> None:
        # No client connected: nothing to send, and the event loop's thread is not woken for it (a client that
        # connects now gets the next sample, as it would a moment later).
        if not self.clients:
            return
        # The JSONL line's text (record.GazeSample.json_line, encoded once per sample for both).
        self.loop.call_soon_threadsafe(self._send, sample.json_line())

    def _send(self, msg: str) -> None:
        if self.clients:
            self._broadcast(self.clients, msg)

    def close(self) -> None:
        if self.thread.is_alive() and hasattr(self, "_stop"):
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(10)
