"""The agent following the signed registry: notification -> update -> shadow check -> serve.

A worker thread (never paho's callback thread) runs ``UpdateManager.update`` for each followed
model when the registry's retained notification changes and at least every
``check_interval_s``. Between "staged" and "active" the manager asks ``accept`` (the agent's
health-gated swap); a version rolled back later by the watch window is rejected in the store
so it is never installed again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge_agent.config import ModelDeliverySettings
from edge_agent.delivery.following import RolloutSource
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import InstalledModel, ModelStore, installed_blobs
from edge_agent.delivery.update import ModelSource, ShadowVerdict, UpdateManager
from edge_agent.errors import WireError
from edge_agent.transport import topics
from edge_agent.transport.budget import LinkBudget
from edge_agent.transport.client import Message, MqttClient
from edge_agent.trust.device.client import DeviceUpdater, clean_downloads, provision
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.device.variants import Platform
from edge_agent.wire.notices import RegistryNotice
from edge_agent.wire.states import UpdateState

log = logging.getLogger(__name__)


class AgentUpdates:
    """Keeps the followed models at their newest signed release."""

    def __init__(
        self,
        settings: ModelDeliverySettings,
        layout: StoreLayout,
        client: MqttClient,
        device_id: str,
        accept: Callable[[InstalledModel], ShadowVerdict],
        on_rollout_rollback: Callable[[str, str], None] | None = None,
        platform: Platform | None = None,
        budget: LinkBudget | None = None,
    ) -> None:
        """``platform`` picks the variant of a release this device runs best.

        Downloads stay within ``budget``, the link budget shared with sample uploads.
        """
        self.settings = settings
        self.client = client
        self.store = ModelStore(layout.models)
        self._metadata_dir = layout.trust_metadata
        self._download_dir = layout.trust_downloads
        provision(self._metadata_dir, settings.root)
        self._link = RegistryLink(client, device_id, budget)

        roll_back = on_rollout_rollback or self.rollout_roll_back

        def source(cancel: threading.Event) -> ModelSource:
            updater = DeviceUpdater(
                self._metadata_dir,
                client,
                device_id,
                self._download_dir,
                settings,
                cancel=cancel,
                link=self._link,
                platform=platform,
            )
            if settings.group is None:
                return updater
            return RolloutSource(  # only a signed rollout for the group moves this device
                updater,
                device_id,
                settings.group,
                active=lambda n: m.version if (m := self.store.active(n)) else None,
                rejected=lambda n: set(self.store.rejected(n)),
                roll_back=roll_back,
                clock=time.time,
            )

        self.manager = UpdateManager(
            self.store,
            source,
            lambda topic, payload: client.publish(topic, payload, qos=1),
            device_id,
            shadow_check=accept,
            allow_downgrade=settings.allow_downgrade,
            link_paused=budget.paused if budget is not None and budget.windows else None,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_timestamp: int | None = None

    def installed(self) -> list[InstalledModel]:
        """The active installed version of each followed model (served at start-up)."""
        return [m for name in self.settings.models if (m := self.store.active(name)) is not None]

    def start(self) -> None:
        """Watch the registry's notification and start the update worker."""
        self.client.subscribe(topics.registry_notify(), self._on_notify)
        self._wake.set()  # check once at start
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)
        self._thread.start()

    def roll_back(self, name: str, reason: str, *, reject: bool = True) -> None:
        """The served version proved bad after activation: back in the store, and rejected.

        ``reject=False``: a rollout rollback (see :meth:`rollout_roll_back`).
        """
        if self.store.previous(name) is None:
            log.error("%s: rolled back in service but the store has no previous version", name)
            return
        self.manager.roll_back(name, reason, reject=reject)

    def rollout_roll_back(self, name: str, reason: str) -> None:
        """The group's signed rollout was rolled back: back in the store, *not* rejected.

        Only a failure on this device bans a release here; a rollout rollback may come from
        other devices' health (and a later rollout may retry the same release).
        """
        self.roll_back(name, reason, reject=False)

    def stop(self) -> None:
        """Cancel a running update and stop the worker; the store keeps its state."""
        self._stop.set()
        self.manager.cancel()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self._link.close()
        self.store.close()

    def _on_notify(self, message: Message) -> None:
        try:
            version = RegistryNotice.decode(message.payload).timestamp_version
        except WireError as exc:
            log.warning("ignored a registry notification (%s)", exc)
            return
        if version != self._seen_timestamp:  # a nudge only: TUF decides what is new
            self._seen_timestamp = version
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.check_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.client.wait_connected(5):
                continue
            up_to_date = True
            for name in self.settings.models:
                if self._stop.is_set():
                    return
                transition = self.manager.update(name)
                log.info("%s: %s (%s)", name, transition.state.value, transition.reason)
                up_to_date = up_to_date and transition.state is UpdateState.ACTIVE
            self.store.gc(keep=self.settings.keep_versions)
            clean_downloads(self._download_dir, installed_blobs(self.store), partials=up_to_date)
