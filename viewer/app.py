"""The viewer's server: one viser server (page and data on one port), a `Session` per
browser, and the console lines that say where to point a browser or an SSH tunnel."""

from __future__ import annotations

import getpass
import ipaddress
import logging
import math
import socket
import threading
import time

from render3d._checks import is_number

from .cameras import framing_to_viser
from .session import RESOLUTIONS, Session
from .sources import Source, open_source

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is reachable only from this machine: every
    address it resolves to is a loopback one (127.1 and a name in /etc/hosts for 127.0.0.1
    count; the wildcard "" does not)."""
    if host == "localhost":
        return True
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def connect_lines(host: str, port: int) -> list[str]:
    """What to tell the user: the URL and, for a remote machine, the SSH tunnel command."""
    if is_loopback(host):
        shown = "localhost"
    else:  # a wildcard address is no place to point a browser at: name the machine
        shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown        # an IPv6 address in a URL
    return [
        f"render3d view: open http://{shown}:{port} in a browser",
        f"  from another machine, tunnel first: ssh -L {port}:localhost:{port} "
        f"{getpass.getuser()}@{socket.gethostname()}   then open http://localhost:{port}",
    ]


def check_host(fn: str, host: str) -> None:
    """Raise a ValueError naming `fn` unless this machine can listen on `host` (viser would
    otherwise try port after port on it forever)."""
    try:
        infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as error:
        raise ValueError(f"{fn}: argument 'host' expected a name or address of this machine, got {host!r}, "
                         f"which does not resolve ({getattr(error, 'strerror', None) or error})") from None
    family, kind, protocol, _, address = infos[0]
    try:
        with socket.socket(family, kind, protocol) as probe:
            probe.bind(address)
    except OSError as error:
        raise ValueError(f"{fn}: argument 'host' expected a name or address of this machine, got {host!r} "
                         f"({address[0]}), which it cannot listen on ({error.strerror})") from None


def free_port(fn: str, host: str, port) -> int:
    """The first port from `port` up that this machine can listen on at `host` (viser moves on
    to the next port when one is taken, past 65535 too, where it hangs)."""
    if not is_number(port, integer=True) or not 0 < port < 65536:
        raise ValueError(f"{fn}: argument 'port' expected a port number in 1..65535, got {port!r}")
    family, kind, protocol, _, address = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM,
                                                            flags=socket.AI_PASSIVE)[0]
    for candidate in range(int(port), 65536):
        with socket.socket(family, kind, protocol) as probe:
            try:
                probe.bind((address[0], candidate, *address[2:]))
                return candidate
            except OSError:
                continue
    raise ValueError(f"{fn}: argument 'port' expected a port with a free one at or above it, got {port}: "
                     f"none from {port} to 65535 is free on {host or 'every address'}")


class Viewer:
    """Serve `source` on `host`:`port` (viser picks the next free port if it is taken; see
    `port`). Starts at once; `stop` ends the server and every browser's render thread.
    `sessions` maps viser client ids to the connected browsers' `Session`s. A source that
    `follows` (a training run) is polled every `follow_seconds`; what it takes up is shown in
    every browser at once."""

    def __init__(self, source: Source, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 resolution: int = 256, rest_seconds: float = 0.2, follow_seconds: float = 10.0) -> None:
        import viser

        check_host("Viewer", host)
        low, high = RESOLUTIONS
        if not is_number(resolution, integer=True) or not low <= resolution <= high:
            raise ValueError(f"Viewer: argument 'resolution' expected pixels in {low}..{high}, got {resolution!r}")
        if not (is_number(rest_seconds) and math.isfinite(rest_seconds) and rest_seconds >= 0):
            raise ValueError(f"Viewer: argument 'rest_seconds' expected a finite number >= 0, got {rest_seconds!r}")
        if not (is_number(follow_seconds) and math.isfinite(follow_seconds) and follow_seconds > 0):
            raise ValueError(f"Viewer: argument 'follow_seconds' expected a finite number > 0, got {follow_seconds!r}")
        port = free_port("Viewer", host, port)
        self.source = source
        self.sessions: dict[int, Session] = {}
        self._lock = threading.Lock()
        self._geometry = None
        self.server = viser.ViserServer(host=host, port=port, label=f"render3d · {source.name}", verbose=False)
        self.server.scene.set_up_direction("+y")  # render3d's world up
        initial = framing_to_viser(source.framing)
        camera = self.server.initial_camera
        camera.position, camera.look_at, camera.up, camera.fov = (initial["position"], initial["look_at"],
                                                                  initial["up"], initial["fov"])
        has_geometry = type(source).client_geometry is not Source.client_geometry

        @self.server.on_client_connect
        def connect(client) -> None:
            session = Session(client, source, self.geometry if has_geometry else None, resolution=resolution,
                              rest_seconds=rest_seconds)
            with self._lock:
                self.sessions[client.client_id] = session
            log.info("render3d viewer: browser %d connected", client.client_id)

        @self.server.on_client_disconnect
        def disconnect(client) -> None:
            with self._lock:
                session = self.sessions.pop(client.client_id, None)
            if session is not None:
                session.close()
            log.info("render3d viewer: browser %d left", client.client_id)

        self._stopped = threading.Event()
        if source.follows:
            threading.Thread(target=self._follow, args=(follow_seconds,), name="render3d-viewer-follow",
                             daemon=True).start()

    def _follow(self, seconds: float) -> None:
        """Every `seconds`, let the source take up what is newer (a run's new checkpoint) and
        tell each browser, which renders it at once; one that cannot be shown is said once."""
        while not self._stopped.wait(seconds):
            try:
                taken = self.source.follow()
            except ValueError as error:
                message = str(error)
                log.warning("render3d view: %s", message)
                self._tell(lambda session: session.not_followed(message))
                continue
            except Exception:                       # say, a folder removed while listed: the next poll retries
                log.exception("render3d view: looking for a newer checkpoint failed")
                continue
            if taken is not None:
                log.info("render3d view: showing %s", taken)
                with self._lock:
                    self._geometry = None
                self._tell(lambda session: session.followed(taken))

    def _tell(self, call) -> None:
        with self._lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            try:
                call(session)
            except Exception:                   # a browser that just left: the others still hear it
                log.exception("render3d viewer: telling a browser failed")

    @property
    def port(self) -> int:
        return self.server.get_port()

    def geometry(self):
        """The source's browser-side mesh or splats, computed on first use."""
        with self._lock:
            if self._geometry is None:
                self._geometry = self.source.client_geometry()
            return self._geometry

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            sessions = list(self.sessions.values())
            self.sessions.clear()
        for session in sessions:
            session.close()
        self.server.stop()


def serve(target: str | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          resolution: int = 256) -> None:
    """`render3d view`: open TARGET (see `open_source`), serve it until Ctrl-C."""
    check_host("viewer.serve", host)            # before a checkpoint takes its seconds to load
    port = free_port("viewer.serve", host, port)
    source = open_source(target)
    if not is_loopback(host):
        log.warning("render3d view: serving on %s, beyond this machine: anyone who can reach port %d can see the "
                    "model and download it; prefer 127.0.0.1 with an SSH tunnel", host or "every address", port)
    viewer = Viewer(source, host=host, port=port, resolution=resolution)
    for line in connect_lines(host, viewer.port):
        print(line, flush=True)
    if source.follows:
        print(f"render3d view: following the run {target}: showing {source.name}, and each newer checkpoint "
              f"as training writes it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("render3d view: stopped", flush=True)
    finally:
        viewer.stop()
