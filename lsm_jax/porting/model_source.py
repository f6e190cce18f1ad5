"""Where a model comes from: a released name, a Hugging Face file, a URL, a weights file or a checkpoint folder.

    resolved = resolve("lsm_light_x4")         # -> ResolvedModel(path=<checkpoint folder>, label, ...)
    Upscaler.from_checkpoint(resolved.path)

Sources, tried in this order:

  an existing folder      an lsm-jax checkpoint folder (config.json + params/), used as it is;
  an existing file        a state_dict (.pth/.pt, .safetensors, .npz): converted on first use;
  hf://OWNER/REPO/PATH    a file of a Hugging Face repository (hf://OWNER/REPO@REV/PATH for a revision;
                          hf://OWNER/REPO alone when the repository holds one weights file);
  https://HOST/PATH       a weights file anywhere (http:// only for this machine: localhost, 127.0.0.1, ::1);
                          a `#sha256=HEX` fragment is checked against the download;
  a release name          one of `releases.NAMES` (lsm, lsm_s, lsm_light x2/x3/x4): the authors' weights in the
                          hub repository their README names; the file is found by listing it (`releases`).

Weights are converted once (architecture read from the weights, `reference` semantics, as `lsm-convert` does)
into `<user cache>/lsm-jax/models/<sha256 of the weights file>/`, a checkpoint folder with a `source.json`. A
remote source also records which file it resolved to (`models/refs/`), so the next run opens the converted
folder without touching the network. Nothing half-written is ever an entry: files are downloaded into a
temporary folder beside the entries (`lsm_jax.porting.download`), checked (size, the hub's sha256 or the URL's),
converted there and renamed into place; a failed or interrupted download leaves no entry. `.pth` files are
read without PyTorch (`lsm_jax.porting.pth`) when it is not installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from lsm_jax.porting.download import (DownloadError, allowed_http, check_sha256, fetch_url, hub_download,
                                      hub_endpoint, list_hub_files, manual_hint, sha256_of)
from lsm_jax.porting.releases import NAMES, RELEASES, WEIGHT_SUFFIXES, match_release_files, release_name

__all__ = ["ModelSourceError", "ResolvedModel", "describe_sources", "models_dir", "resolve"]

STALE_SECONDS = 24 * 3600                                     # temporary folders older than this are debris
Report = Callable[[str], None]
log = logging.getLogger(__name__)


class ModelSourceError(ValueError):
    """A model source that cannot be used; the message is one line and says what to do next."""


@dataclass(frozen=True)
class ResolvedModel:
    """A checkpoint folder ready for `Upscaler.from_checkpoint`, and where it came from."""

    path: Path
    label: str               # a short name for tables and messages: the release name, file stem, folder name
    source: str              # what the user gave
    sha256: str | None = None   # of the weights file it was converted from (None: a checkpoint folder)
    converted: bool = False  # converted in this call (False: a folder, or the cache had it)


def describe_sources() -> str:
    """One line of what a model source can be, for help texts and errors."""
    return (f"a released model ({', '.join(NAMES)}), hf://OWNER/REPO/FILE, an https:// URL of a weights file, "
            "a .pth/.safetensors/.npz weights file, or an lsm-jax checkpoint folder")


# ----------------------------------------------------------------------------------------------
# The cache


def models_dir() -> Path:
    """<user cache>/lsm-jax/models: converted checkpoints by sha256, and `refs/` from sources to them."""
    from lsm_jax.runtime.compile_cache import user_cache_dir
    return user_cache_dir() / "models"


def _entry_ok(entry: Path) -> bool:
    return (entry / "config.json").is_file() and (entry / "params").is_dir()


def _ref_path(root: Path, identity: str) -> Path:
    return root / "refs" / (hashlib.sha256(identity.encode()).hexdigest()[:32] + ".json")


def _read_ref(root: Path, identity: str) -> str | None:
    """The sha256 a source resolved to last time, if its converted folder is still there."""
    try:
        ref = json.loads(_ref_path(root, identity).read_text())
    except (OSError, ValueError):
        return None
    sha = ref.get("sha256") if isinstance(ref, dict) and ref.get("source") == identity else None
    return sha if isinstance(sha, str) and _entry_ok(root / sha) else None


def _write_ref(root: Path, identity: str, sha: str, **extra) -> None:
    path = _ref_path(root, identity)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"source": identity, "sha256": sha, **extra}, indent=1))
        os.replace(tmp, path)
    except OSError as err:   # the next run only has to resolve the file again
        log.warning("cannot record %s in the model cache: %s", identity, err)


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A temporary folder beside the entries (same file system: entries are renamed into place)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelSourceError(f"cannot create the model cache {root}: {err.strerror or err} "
                               "(set XDG_CACHE_HOME to a writable folder)") from None
    now = time.time()
    for debris in root.glob(".tmp-*"):         # the temporary folders of runs that were killed
        with contextlib.suppress(OSError):
            if now - debris.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(debris, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert_into_cache(weights: Path, root: Path, staging: Path, sha: str, display: str, origin: dict,
                        report: Report | None, key: str | None = None) -> tuple[Path, bool]:
    """(the entry for `sha`, whether this call converted it): converted in `staging`, renamed into place."""
    entry = root / sha
    if _entry_ok(entry):
        return entry, False
    from lsm_jax.model.network import count_parameters
    from lsm_jax.model.saved import CheckpointError
    from lsm_jax.porting.checkpoint import ConversionError, convert
    out = staging / "checkpoint"
    try:
        cfg = convert(weights, None, out, key,
                      report=None if report is None else lambda line: report(line.replace(str(weights), display)))
    except (ConversionError, CheckpointError) as err:
        raise ModelSourceError(str(err).replace(str(weights), display)) from None
    (out / "source.json").write_text(json.dumps({**origin, "sha256": sha, "architecture": cfg.arch,
                                                 "scale": int(cfg.upscale), "semantics": "reference"}, indent=1))
    try:
        os.replace(out, entry)
    except OSError:
        if not _entry_ok(entry):    # not another process finishing first: a real problem
            raise ModelSourceError(f"cannot write the converted checkpoint to {entry}") from None
    if report is not None:
        report(f"converted {display}: {cfg.arch} x{cfg.upscale}, {count_parameters(cfg):,} parameters; "
               f"cached in {entry}")
    return entry, True


def _download_and_convert(root: Path, fetch: Callable[[Path], Path], expected: str | None, name: str, hint: str,
                          display: str, origin: dict, report: Report | None, key: str | None) -> tuple[str, Path, bool]:
    """(sha256, entry, converted) of a remote file: `fetch(folder)` downloads it into a staging folder."""
    with _staging(root) as staging:
        (staging / "download").mkdir()
        weights = fetch(staging / "download")
        sha = check_sha256(weights, expected, name, hint)
        try:
            entry, converted = _convert_into_cache(weights, root, staging, sha, display, origin, report, key)
        except ModelSourceError as err:
            raise ModelSourceError(f"{err} (downloaded from {name}; nothing was cached)") from None
    return sha, entry, converted


# ----------------------------------------------------------------------------------------------
# Resolving


def resolve(source: str | os.PathLike, *, report: Report | None = None, cache: str | os.PathLike | None = None,
            key: str | None = None) -> ResolvedModel:
    """The checkpoint folder of `source` (see the module docstring), downloading and converting when needed.

    `report` receives progress lines (downloading, converting; None: quiet, no progress bars); `cache` replaces
    `models_dir()`; `key` picks the entry of a BasicSR checkpoint (default `params_ema`). Errors are
    `ModelSourceError`, one line each.
    """
    root = Path(cache) if cache is not None else models_dir()
    text = os.fspath(source)
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            return _resolve_folder(path, text)
        if path.is_file():
            return _resolve_weights_file(path, text, root, report, key)
        if text.startswith("hf://"):
            repo, revision, filename = _parse_hf(text)
            return _resolve_hub(text, repo, revision, filename, None, None, root, report, key)
        if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
            return _resolve_url(text, root, report, key)
        name = release_name(text)
        if name is not None:
            rel = RELEASES[name]
            return _resolve_hub(text, rel.repo, rel.revision, rel.filename, rel.variant, rel.scale, root, report,
                                key, label=rel.name)
    except DownloadError as err:
        raise ModelSourceError(str(err)) from None
    if os.sep in text or "/" in text or Path(text).suffix.lower() in WEIGHT_SUFFIXES:
        raise ModelSourceError(f"{text}: no such file or folder")
    raise ModelSourceError(f"unknown model {text!r}: the released models are {', '.join(NAMES)} "
                           "(or give hf://OWNER/REPO/FILE, an https:// URL, a weights file or a checkpoint folder)")


def _resolve_folder(path: Path, text: str) -> ResolvedModel:
    if (path / "config.json").is_file():
        return ResolvedModel(path, path.resolve().name, text)
    weights = sorted(p.name for p in path.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES) \
        if os.access(path, os.R_OK) else []
    hint = (f"; it holds weights ({', '.join(weights[:3])}): pass one of them as the model" if weights
            else "; a checkpoint folder is what lsm-convert or lsm-train writes")
    raise ModelSourceError(f"{path}: not an lsm-jax checkpoint folder (no config.json){hint}")


def _resolve_weights_file(path: Path, text: str, root: Path, report: Report | None, key: str | None
                          ) -> ResolvedModel:
    if path.name == "config.json" and (path.parent / "params").is_dir():
        raise ModelSourceError(f"{path}: this is the config of a checkpoint folder; pass the folder {path.parent}")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelSourceError(f"{path}: not a weights file (expected {', '.join(WEIGHT_SUFFIXES)}) "
                               "or an lsm-jax checkpoint folder")
    stat = path.stat()
    identity = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}" + (f":{key}" if key else "")
    sha = _read_ref(root, identity)
    if sha is None:
        sha = sha256_of(path)
        if key:   # another entry of the same file is another model
            sha = hashlib.sha256(f"{sha}:{key}".encode()).hexdigest()
    converted = False
    if not _entry_ok(root / sha):
        with _staging(root) as staging:
            _, converted = _convert_into_cache(path, root, staging, sha, path.name,
                                               {"source": str(path.resolve()), "file": path.name}, report, key)
    _write_ref(root, identity, sha)
    return ResolvedModel(root / sha, path.stem, text, sha, converted)


def _parse_hf(text: str) -> tuple[str, str, str | None]:
    parts = text[len("hf://"):].strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ModelSourceError(f"{text}: expected hf://OWNER/REPO/FILE (or hf://OWNER/REPO@REVISION/FILE)")
    repo, _, revision = parts[1].partition("@")
    return f"{parts[0]}/{repo}", revision or "main", "/".join(parts[2:]) or None


def _resolve_hub(text: str, repo: str, revision: str, filename: str | None, variant: str | None,
                 scale: int | None, root: Path, report: Report | None, key: str | None,
                 label: str | None = None) -> ResolvedModel:
    what = f"the {variant} x{scale} weights" if variant else (filename or f"the weights file of {repo}")
    identity = f"hub:{hub_endpoint()}/{repo}@{revision}:" + (filename or f"{variant}_x{scale}") \
        + (f":{key}" if key else "")
    label = label or Path(filename or repo).stem
    sha = _read_ref(root, identity)
    if sha is not None:
        return ResolvedModel(root / sha, label, text, sha)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelSourceError(f"{text} is not in the model cache and HF_HUB_OFFLINE is set: "
                               + manual_hint(repo, what))
    listing = list_hub_files(repo, revision, what)
    has = f"hf://{repo} has: {', '.join(sorted(listing)) or 'no files'}"
    if filename is not None:
        if filename not in listing:
            raise ModelSourceError(f"hf://{repo}@{revision}: no file {filename!r}; {has}")
    else:
        matches = match_release_files(sorted(listing), variant, scale)
        if len(matches) != 1:
            kind = f"{variant} x{scale}" if variant else "weights"
            problem = "no file matches" if not matches else f"{len(matches)} files match ({', '.join(matches)})"
            raise ModelSourceError(f"hf://{repo}: {problem} {kind}; {has}. Pass the file you want as "
                                   f"--model hf://{repo}/FILE")
        filename = matches[0]
    if report is not None:
        report(f"downloading {filename} from hf://{repo} ({hub_endpoint()})")
    sha, entry, converted = _download_and_convert(
        root, lambda folder: hub_download(repo, revision, filename, folder, report is None, what),
        listing.get(filename), f"hf://{repo}/{filename}", manual_hint(repo, what), filename,
        {"source": f"hf://{repo}@{revision}/{filename}", "endpoint": hub_endpoint(), "file": filename}, report, key)
    if scale is not None:
        from lsm_jax.model.saved import read_config
        held = int(read_config(entry).upscale)
        if held != scale:
            raise ModelSourceError(f"hf://{repo}/{filename} was taken for {variant} x{scale} by its name, but it "
                                   f"holds a x{held} network; pass the file you want as --model hf://{repo}/FILE")
    _write_ref(root, identity, sha, file=filename)
    return ResolvedModel(entry, label, text, sha, converted)


def _resolve_url(text: str, root: Path, report: Report | None, key: str | None) -> ResolvedModel:
    parsed = urllib.parse.urlsplit(text)
    scheme = parsed.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not allowed_http(parsed.hostname)):
        raise ModelSourceError(f"{text}: only https:// URLs are downloaded (http:// only from this machine)")
    expected = None
    if parsed.fragment:
        m = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", parsed.fragment)
        if not m:
            raise ModelSourceError(f"{text}: the only URL fragment understood is #sha256=<64 hex digits>")
        expected = m.group(1).lower()
    url = urllib.parse.urlunsplit(parsed._replace(fragment=""))
    filename = Path(urllib.parse.unquote(parsed.path)).name or "weights"
    if Path(filename).suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelSourceError(f"{text}: the file name must end in {', '.join(WEIGHT_SUFFIXES)} "
                               "(the format is read from it)")
    identity = f"url:{url}" + (f":{key}" if key else "")
    sha = _read_ref(root, identity)
    if sha is not None and (expected is None or sha == expected):
        return ResolvedModel(root / sha, Path(filename).stem, text, sha)
    hint = f"download {url} by hand and pass it with --checkpoint FILE"
    if report is not None:
        report(f"downloading {url}")

    def fetch(folder: Path) -> Path:
        fetch_url(url, folder / filename, hint)
        return folder / filename

    sha, entry, converted = _download_and_convert(root, fetch, expected, url, hint, filename,
                                                  {"source": url, "file": filename}, report, key)
    _write_ref(root, identity, sha, file=filename)
    return ResolvedModel(entry, Path(filename).stem, text, sha, converted)
