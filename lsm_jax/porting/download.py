"""Fetching weights files: from a Hugging Face repository through `huggingface_hub`, or from a URL with urllib.

    files = list_hub_files(repo, revision, what)          # {path: sha256 of LFS files or None}
    path = hub_download(repo, revision, filename, dest, quiet, what)
    fetch_url(url, target, hint)

Every failure is a `DownloadError` with one line that says what to do next: no network gives the manual
download (the repository's page, then `--checkpoint FILE`), a cut or damaged download says that nothing was
kept. The hub is $HF_ENDPOINT when set (read at each call), else huggingface.co; its telemetry is off unless
the user turned it on. The listing is one request without retries, so an offline machine fails at once;
downloads keep `huggingface_hub`'s retries, with its warnings silenced (they would break the one line).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = ["DownloadError", "allowed_http", "check_sha256", "fetch_url", "hub_download", "hub_endpoint",
           "list_hub_files", "manual_hint", "sha256_of"]

DEFAULT_ENDPOINT = "https://huggingface.co"
LOOPBACK_HOSTS = ("localhost",)


class DownloadError(ValueError):
    """A file that could not be listed or fetched; the message is one line."""


def hub_endpoint() -> str:
    """$HF_ENDPOINT (read at each call, unlike huggingface_hub's constant) or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def manual_hint(repo: str, what: str) -> str:
    return f"download {what} by hand from {hub_endpoint()}/{repo} and pass it with --checkpoint FILE"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None, name: str, hint: str) -> str:
    """The file's sha256, checked against `expected` when known (the hub's LFS oid, a URL's #sha256=)."""
    sha = sha256_of(path)
    if expected and sha != expected.lower():
        raise DownloadError(f"download of {name} is damaged (sha256 {sha[:12]}…, expected {expected[:12]}…); "
                            f"nothing was cached: run the command again, or {hint}")
    return sha


def _import_hub():
    """huggingface_hub, imported with its telemetry off unless the user says otherwise (the setting is read
    once, at its import: the user agent otherwise reports the environment and fetches a registry for it)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub
    return huggingface_hub


def _is_unreachable(err: BaseException | None) -> bool:
    """A failure to reach the server at all (DNS, refused, offline mode), as opposed to an HTTP answer;
    looked for along the chain of causes (huggingface_hub wraps connection errors)."""
    seen = 0
    while err is not None and seen < 8:
        names = {c.__name__ for c in type(err).__mro__}
        if names & {"ConnectError", "ConnectTimeout", "OfflineModeIsEnabled", "ProxyError", "UnsupportedProtocol"}:
            return True
        if isinstance(err, (ConnectionRefusedError, socket.gaierror, socket.timeout)) or (
                isinstance(err, urllib.error.URLError) and isinstance(err.reason, OSError)):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _status(err: BaseException) -> int | None:
    return getattr(getattr(err, "response", None), "status_code", None)


def _short(err: BaseException) -> str:
    status = _status(err)
    if isinstance(status, int):
        return f"HTTP {status}"
    text = " ".join(str(err).split())
    text = text[:160] + "…" if len(text) > 160 else text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def list_hub_files(repo: str, revision: str, what: str) -> dict[str, str | None]:
    """{path: sha256 of LFS files, None for the others} of a hub repository, by one listing request
    (no retries: without network this fails at once). `what` names the file for the manual-download hint."""
    _import_hub()
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
    url = f"{hub_endpoint()}/api/models/{repo}/tree/{urllib.parse.quote(revision, safe='')}"
    files: dict[str, str | None] = {}
    params: dict | None = {"recursive": True, "expand": False}
    try:
        while url:
            response = get_session().get(url, params=params, headers=build_hf_headers(), timeout=20)
            hf_raise_for_status(response)
            for item in response.json():
                if item.get("type") == "file":
                    lfs = item.get("lfs") or {}
                    files[item["path"]] = lfs.get("oid") or lfs.get("sha256")
            url = (response.links.get("next") or {}).get("url")
            params = None
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        status = _status(err)
        if _is_unreachable(err):
            raise DownloadError(f"cannot reach the Hugging Face hub at {hub_endpoint()} ({_short(err)}): "
                                + manual_hint(repo, what)) from None
        if status in (401, 403, 404):
            raise DownloadError(f"hf://{repo}: no such repository or revision {revision!r} on {hub_endpoint()} "
                                f"(HTTP {status})") from None
        raise DownloadError(f"cannot list hf://{repo} ({_short(err)}): " + manual_hint(repo, what)) from None
    return files


def hub_download(repo: str, revision: str, filename: str, dest: Path, quiet: bool, what: str) -> Path:
    """`filename` of `repo` into the folder `dest` (huggingface_hub's `local_dir`: its partial files stay
    inside `dest`); its progress bar unless `quiet`."""
    _import_hub()
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    hub_log = logging.getLogger("huggingface_hub")
    level, bars_off = hub_log.level, are_progress_bars_disabled()
    hub_log.setLevel(logging.ERROR)          # its retry warnings would break the one-line errors
    if quiet:
        disable_progress_bars()
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_dir=dest, endpoint=hub_endpoint()))
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        if _is_unreachable(err):
            raise DownloadError(f"cannot reach the Hugging Face hub at {hub_endpoint()} ({_short(err)}): "
                                + manual_hint(repo, what)) from None
        raise DownloadError(f"download of hf://{repo}/{filename} failed ({_short(err)}); nothing was cached: "
                            "run the command again, or " + manual_hint(repo, what)) from None
    finally:
        hub_log.setLevel(level)
        if quiet and not bars_off:
            enable_progress_bars()


def allowed_http(host: str | None) -> bool:
    """Plain http only for this machine (localhost, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() in LOOPBACK_HOSTS:
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def fetch_url(url: str, target: Path, hint: str) -> None:
    """`url` into `target`, written as `<target>.part` and renamed when complete and of the announced length."""
    part = target.with_name(target.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "lsm-jax"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            got = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                got += len(block)
        if length is not None and got != int(length):
            raise DownloadError(f"download of {url} was cut short ({got} of {length} bytes); nothing was cached: "
                                f"run the command again, or {hint}")
    except DownloadError:
        raise
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        if _is_unreachable(err):
            raise DownloadError(f"cannot reach {urllib.parse.urlsplit(url).hostname} ({_short(err)}): {hint}") from None
        raise DownloadError(f"download of {url} failed ({_short(err)}); nothing was cached: "
                            f"run the command again, or {hint}") from None
    os.replace(part, target)
