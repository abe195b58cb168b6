"""Missing data files: checked downloads into the cache from a local HTTP mirror, and the offline message."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from editbench.config import CONF_DIR
from editbench.data import load_requests
from editbench.data.download import MIRROR_ENV, ONLINE_ENV, REMOTES, Remote, cache_dir, data_file
from editbench.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "counterfact_rome_format/counterfact_500_sample.json"


def dataset_cfg():
    return OmegaConf.load(CONF_DIR / "dataset" / "counterfact_rome.yaml")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture()
def mirror(tmp_path):
    """A folder laid out like the data directory, served over HTTP on an ephemeral local port."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve(root: Path, relative: str, content: bytes) -> None:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(content)


def test_missing_file_is_downloaded_checked_cached_and_read(mirror, data_dir, tmp_path, isolated_cache,
                                                            monkeypatch):
    root, url = mirror
    original = (data_dir / SAMPLE).read_bytes()
    # The registry's checksums are the real files' (test_every_registered_checksum_matches_the_offline_copy);
    # here the file served is whichever copy the tests have, so the registry takes its checksum.
    monkeypatch.setitem(REMOTES, SAMPLE, Remote(REMOTES[SAMPLE].url, hashlib.sha256(original).hexdigest()))
    serve(root, SAMPLE, original)
    monkeypatch.setenv(ONLINE_ENV, "1")
    monkeypatch.setenv(MIRROR_ENV, url)
    empty = tmp_path / "data"
    empty.mkdir()

    requests = load_requests(dataset_cfg(), empty, num_edits=3)

    cached = isolated_cache / "data" / SAMPLE
    assert cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == REMOTES[SAMPLE].sha256
    assert not list(cached.parent.glob(".*.part"))
    assert requests == load_requests(dataset_cfg(), data_dir, num_edits=3)
    # Later runs use the cached copy, offline and with the mirror gone.
    (root / SAMPLE).unlink()
    monkeypatch.delenv(ONLINE_ENV)
    assert data_file(empty, SAMPLE) == cached


def test_checksum_mismatch_raises_and_leaves_no_file(mirror, data_dir, tmp_path, isolated_cache, monkeypatch):
    root, url = mirror
    serve(root, SAMPLE, (data_dir / SAMPLE).read_bytes() + b"\n")
    monkeypatch.setenv(ONLINE_ENV, "1")
    monkeypatch.setenv(MIRROR_ENV, url)
    with pytest.raises(DataError, match=r"checksum mismatch for counterfact_rome_format/counterfact_500_sample\.json"):
        load_requests(dataset_cfg(), tmp_path, num_edits=1)
    folder = cache_dir() / "counterfact_rome_format"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_offline_message_names_every_way_forward(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.delenv(ONLINE_ENV, raising=False)
    with pytest.raises(DataError) as err:
        load_requests(dataset_cfg(), tmp_path, num_edits=1)
    msg = str(err.value)
    assert str(tmp_path / SAMPLE) in msg
    for way in ("data_dir=/path/to/data", "EDITBENCH_DATA=/path/to/data", "demo set", f"{ONLINE_ENV}=1",
                REMOTES[SAMPLE].url):
        assert way in msg, way
    assert not cache_dir().exists()  # nothing fetched, nothing written


def test_unreachable_source_is_one_clear_error(tmp_path, isolated_cache, monkeypatch):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(ONLINE_ENV, "1")
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=r"could not download .*Ways forward: \(1\) set data_dir=.*EDITBENCH_DATA"):
        data_file(tmp_path, SAMPLE)
    assert not list((cache_dir() / "counterfact_rome_format").glob("*"))


@pytest.mark.full_data("the offline copies of every registered data file (their sha256)")
def test_every_registered_checksum_matches_the_offline_copy(shared_data):
    """The checksums were taken from ../shared/data; a changed copy or a typo would fail every download."""
    for relative, remote in REMOTES.items():
        if remote.sha256 is None:  # files no offline copy exists of (see the registry's comment)
            assert not (shared_data / relative).exists()
            continue
        digest = hashlib.sha256()
        with (shared_data / relative).open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
        assert digest.hexdigest() == remote.sha256, relative


def test_files_present_in_the_data_dir_never_touch_the_cache(data_dir, isolated_cache, monkeypatch):
    monkeypatch.setenv(ONLINE_ENV, "1")
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")  # would fail if it were ever contacted
    assert data_file(data_dir, SAMPLE) == data_dir / SAMPLE
    assert not cache_dir().exists()
