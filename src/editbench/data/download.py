"""Data files missing from the data directory: the download cache, and opt-in canonical downloads.

`data_file(data_dir, relative)` returns the file to read, in this order:

1. `<data_dir>/<relative>`;
2. a copy downloaded earlier, `cache_root()/data/<relative>`;
3. with `EDITBENCH_ONLINE=1` only (the harness is offline by default), a fresh download from
   the file's public source in `REMOTES`, checked against its sha256 and moved into the cache
   atomically, so an interrupted or corrupt download never leaves a file that looks complete.

Otherwise it raises one `DataError` naming the ways forward. `EDITBENCH_DOWNLOAD_URL` replaces
every source by a mirror laid out like the data directory (`<url>/<relative>`; `file://` works).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from editbench.cache import cache_root
from editbench.demo import is_demo_dir
from editbench.errors import DataError

log = logging.getLogger(__name__)

DATA_ENV = "EDITBENCH_DATA"  # the data directory when data_dir is unset (read by loaders.resolve_data_dir)
ONLINE_ENV = "EDITBENCH_ONLINE"
MIRROR_ENV = "EDITBENCH_DOWNLOAD_URL"
TIMEOUT_S = 60
_CHUNK = 1 << 20

_ROME = "https://rome.baulab.info/data/dsets"  # REMOTE_ROOT_URL of kmeng01/rome's dsets/*.py
_MEMIT = "https://memit.baulab.info/data/dsets"  # the same for kmeng01/memit


def _github(repo: str, commit: str, path: str) -> str:
    # Pinned to a commit, so the bytes behind the URL cannot change under the checksum.
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class Remote:
    """Where a data file comes from. `sha256` None: no local copy to take a checksum from."""

    url: str
    sha256: str | None


# Keys are paths relative to the data directory, as editbench/conf/dataset/*.yaml and the stats corpus name
# them. The GitHub sources and checksums are those of the offline copies in ../shared/data
# (SOURCES.md records each copy as byte-for-byte from that repository and commit).
REMOTES: dict[str, Remote] = {
    "counterfact_easyedit_mend_format/counterfact-edit.json": Remote(
        _github("Jometeorie/KnowledgeSpread", "51d7402617c2e52bde0dc11b76e400c3725a181a",
                "data/counterfact/counterfact-edit.json"),
        "bfe31a7081932739406e282bb625d74222549c3386c15b1df3dfbc3978c69eec"),
    "counterfact_easyedit_mend_format/counterfact-train.json": Remote(
        _github("Jometeorie/KnowledgeSpread", "51d7402617c2e52bde0dc11b76e400c3725a181a",
                "data/counterfact/counterfact-train.json"),
        "f7d443ffb0c5da6cbe816cdac45281ccb3f204b8a840f00d07a4aafa949bcd76"),
    "counterfact_easyedit_mend_format/counterfact-val.json": Remote(
        _github("Jometeorie/KnowledgeSpread", "51d7402617c2e52bde0dc11b76e400c3725a181a",
                "data/counterfact/counterfact-val.json"),
        "42b44645471020a9419d183deb9e113e82941380046861770ea0083dabd13982"),
    "counterfact_rome_format/counterfact_500_sample.json": Remote(
        _github("furonglegend/Met", "9a33baa807b2fb0b9bbe72712df82b4fb675c692", "data/counterfact_500.json"),
        "99a455fe1b99dc332ec1fa921e69fd9297606e9c51d4f108522782f6ad125803"),
    "counterfact_aux/known_1000.json": Remote(
        _github("kmeng01/rome", "e59421da69304843d75d967d3691ad7a04141fc7", "counterfact/compiled/known_1000.json"),
        "61daca55318bb5260c1e62e133debef9102c7b278bbc7b19dd2ac655543f333a"),
    "zsre/zsre_mend_eval_portability_gpt4.json": Remote(
        _github("JasonForJoy/Model-Editing-Hurt", "82614b0414cfe6284ba0b136174f00716a4fe531",
                "edited-data/zsre_mend_eval_portability_gpt4.json"),
        "0cf155da229b2eccae19fcfe5f7a09523363d357f5f15508d1521f495ad5ecd9"),
    "zsre/zsre_mend_train-1k.json": Remote(
        _github("Jometeorie/KnowledgeSpread", "51d7402617c2e52bde0dc11b76e400c3725a181a",
                "data/zsre/zsre_mend_train-1k.json"),
        "e62596101d8ed551889c26c0d2a5277f92eaef3b14416d8eaee39b04a244ab60"),
    "wikitext2/wiki.test.raw": Remote(
        _github("Tylogi/TyloQuant", "aa7023b3a96905a70f7a7ce9836834f02694c670", "data/wikitext-2-raw/wiki.test.raw"),
        "4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c"),
    "wikitext2/wiki.valid.tokens": Remote(
        _github("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8",
                "word_language_model/data/wikitext-2/valid.txt"),
        "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
    # The reference code's own downloads (ROME dsets/counterfact.py and zsre.py, MEMIT's
    # multi_counterfact). No copy of these files exists offline, so there is no checksum to
    # check against: they are accepted as served and their sha256 is logged. For counterfact.json,
    # compare with d017056125178a13728594e66a801357a8db9ed7973a7425554bb4271de9fc6f, the Git LFS
    # object id recorded in SOURCES.md (not verified against the server from here).
    "counterfact_rome_format/counterfact.json": Remote(f"{_ROME}/counterfact.json", None),
    "counterfact_rome_format/multi_counterfact.json": Remote(f"{_MEMIT}/multi_counterfact.json", None),
    "zsre/zsre_mend_eval.json": Remote(f"{_ROME}/zsre_mend_eval.json", None),
}


def online() -> bool:
    return os.environ.get(ONLINE_ENV) == "1"


def cache_dir() -> Path:
    """Where downloaded data files are kept: `$EDITBENCH_CACHE/data`."""
    return cache_root() / "data"


def source_url(relative: str) -> str | None:
    """The URL a data file is fetched from (the mirror's when EDITBENCH_DOWNLOAD_URL is set)."""
    if relative not in REMOTES:
        return None
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{relative}" if mirror else REMOTES[relative].url


def find_data_file(data_dir: Path, relative: str) -> Path | None:
    """The file to read for `relative`, downloading it when allowed; None when it is unavailable.

    A failed download (network, checksum) still raises, because the user asked for it.
    """
    local = Path(data_dir) / relative
    if local.is_file():
        return local
    cached = cache_dir() / relative
    if cached.is_file():
        log.info("%s is not in %s; using the downloaded copy %s", relative, data_dir, cached)
        return cached
    if online() and relative in REMOTES:
        return download(relative, data_dir)
    return None


def data_file(data_dir: Path, relative: str, hint: str = "") -> Path:
    """Like `find_data_file`, but a missing file raises a DataError that lists the ways forward."""
    path = find_data_file(data_dir, relative)
    if path is None:
        where = f"data file {Path(data_dir) / relative} not found"
        if is_demo_dir(data_dir):
            where += " (the demo set shipped with editbench holds only the edits of dataset=counterfact)"
        raise DataError(f"{where}. {ways_forward(Path(data_dir), relative)}" + (f"; {hint}." if hint else "."))
    return path


def ways_forward(data_dir: Path, relative: str, *, failed_download: bool = False) -> str:
    """The ways to get a missing data file, numbered, for error messages."""
    ways = [f"set data_dir=/path/to/data to a folder that holds {relative} (on project machines: ../shared/data)",
            f"or set the environment variable {DATA_ENV}=/path/to/data"]
    if not is_demo_dir(data_dir):
        ways.append(f"or leave both data_dir and {DATA_ENV} unset to run on the small demo set shipped with "
                    "editbench (dataset=counterfact only)")
    url = source_url(relative)
    if failed_download:
        ways.append(f"or retry the download from {url} once it is reachable ({ONLINE_ENV}=1 is set)")
    elif url is not None:
        ways.append(f"or set {ONLINE_ENV}=1 to download it from {url} into {cache_dir()}")
    return "Ways forward: " + "; ".join(f"({i}) {w}" for i, w in enumerate(ways, 1))


def download(relative: str, data_dir: Path | None = None) -> Path:
    """Fetch one registered data file into the cache, checking its sha256; return its path.

    `data_dir` only serves the error message (the file lands in the cache, never in the data dir,
    which may be read-only or shared).
    """
    from tqdm.auto import tqdm

    url, expected = source_url(relative), REMOTES[relative].sha256
    dest = cache_dir() / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file sits beside the destination, so the final os.replace is atomic.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest, received = hashlib.sha256(), 0
    try:
        log.info("downloading %s from %s", relative, url)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}", leave=False) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        if total is not None and received != total:  # matters for files without a checksum
            raise OSError(f"connection closed after {received} of {total} bytes")
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise DataError(f"checksum mismatch for {relative} downloaded from {url}: expected sha256 {expected}, "
                            f"got {actual}; the download was discarded. If you use a mirror ({MIRROR_ENV}), "
                            "it serves a different file; otherwise set data_dir=/path/to/data to a folder that "
                            "holds the right one")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        # ValueError: a malformed URL, e.g. a mirror given without its scheme.
        failed = ways_forward(Path(data_dir) if data_dir else cache_dir(), relative, failed_download=True)
        raise DataError(f"could not download {relative} from {url}: {err}. {failed}.") from err
    finally:
        tmp.unlink(missing_ok=True)
    if expected is None:
        log.warning("%s has no known checksum; kept as served by %s (sha256 %s)", relative, url, actual)
    log.info("downloaded %s to %s", relative, dest)
    return dest
