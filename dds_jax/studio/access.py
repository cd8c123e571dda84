"""Who may drive the studio: only its own page, opened through the URL with the secret it prints.

As Jupyter guards its local server: a random secret (``?token=...`` in the printed URL) that the first
visit turns into an HttpOnly, SameSite=Strict cookie the page's later calls carry; a ``Host`` check (a
DNS-rebinding page reaches 127.0.0.1 under its own host name); an ``Origin`` check on state-changing
requests (another site's form or fetch, multipart uploads included). Pure functions; the Flask hook
is :func:`dds_jax.studio.app.create_app`'s.
"""
import hmac
import secrets
import urllib.parse
from typing import FrozenSet, Mapping, Optional

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MIN_TOKEN_CHARS = 16
NO_SECRET = ("forbidden: no valid studio token; open the URL with ?token=... that python -m dds_jax.studio "
             "printed")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def check_token_choice(token: str) -> str:
    """A ``--token`` the user chose; refuses one too short to guess safely (there is no way to turn
    the secret off)."""
    if len(token) < MIN_TOKEN_CHARS or not token.isprintable() or any(c in token for c in " &#;?"):
        raise ValueError(f"--token must be at least {MIN_TOKEN_CHARS} printable characters without spaces "
                         "or &#;? (leave it out for a random one)")
    return token


def allowed_hosts(bind_host: str) -> FrozenSet[str]:
    """Host names the studio answers to: the loopback names and the address it listens on."""
    return frozenset(h.lower().strip("[]") for h in LOCAL_NAMES + (bind_host,) if h)


def host_name(netloc: str) -> str:
    """``'[::1]:8765'`` -> ``'::1'``, ``'LocalHost:80'`` -> ``'localhost'`` (a Host header or URL netloc)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def cookie_name(port: Optional[int]) -> str:
    """One cookie per port: cookies ignore the port, and two studios must not overwrite each other's."""
    return f"dds_studio_token_{port}" if port else "dds_studio_token"


def url(host: str, port: int, token: str) -> str:
    """The URL to open: the listening address (loopback when it listens on every address)."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/?token={token}"


def refusal(method: str, headers: Mapping[str, str], hosts: FrozenSet[str], port: Optional[int],
            token: str, given: Optional[str]) -> Optional[str]:
    """Why a request is refused (one line), or None. ``given``: the secret it carries (cookie, query
    or ``Authorization: token ...``); ``port``: the listening port (None: any, the test client)."""
    host = headers.get("Host", "")
    if host_name(host) not in hosts:
        return (f"forbidden: Host {host!r} is not this studio's address ({', '.join(sorted(hosts))}); "
                "open the URL it printed")
    if method not in SAFE_METHODS:
        origin = headers.get("Origin")
        if origin is not None and not _own_origin(origin, hosts, port):
            return f"forbidden: a request from {origin} may not change the studio; use its own page"
        if origin is None and headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
            return "forbidden: a request from another site may not change the studio; use its own page"
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        return NO_SECRET
    return None


def _own_origin(origin: str, hosts: FrozenSet[str], port: Optional[int]) -> bool:
    u = urllib.parse.urlsplit(origin)
    if u.scheme != "http" or host_name(u.netloc) not in hosts:
        return False
    try:
        return port is None or (u.port or 80) == port
    except ValueError:            # a port that is no number
        return False
