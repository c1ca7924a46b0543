"""python-tuf's ``FetcherInterface`` over MQTT: how ngclient gets metadata from the registry.

ngclient builds URLs from the base URLs it is given; the device gives it ``METADATA_URL`` and
this fetcher maps ``mqtt-registry:///metadata/3.targets.json`` to the registry path
``metadata/3.targets.json``. Target files do not go through ngclient's download (see
``partial.py``), but the same URL scheme names them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from tuf.api.exceptions import DownloadError
from tuf.ngclient import FetcherInterface

from edge_agent.config import FetchSettings
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.device.transfer import fetch_stream

URL_PREFIX = "mqtt-registry:///"
METADATA_URL = f"{URL_PREFIX}metadata/"
TARGETS_URL = f"{URL_PREFIX}targets/"


def registry_path(url: str) -> str:
    """The registry path a fetcher URL names; DownloadError for any other URL."""
    if not url.startswith(URL_PREFIX):
        raise DownloadError(f"not a registry URL: {url!r} (expected {URL_PREFIX}...)")
    return url[len(URL_PREFIX) :]


class MqttFetcher(FetcherInterface):
    """Streams registry files in chunks over the device's MQTT connection."""

    def __init__(
        self,
        link: RegistryLink,
        settings: FetchSettings | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.link = link
        self.settings = settings or FetchSettings()
        self.cancel = cancel

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = registry_path(url)
        return self._guarded(fetch_stream(self.link, path, self.settings, self.cancel))

    @staticmethod
    def _guarded(chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Wrap errors raised while iterating (ngclient wraps only what ``_fetch`` raises)."""
        try:
            yield from chunks
        except DownloadError:
            raise
        except Exception as exc:
            raise DownloadError(f"fetching from the registry failed: {exc}") from exc
