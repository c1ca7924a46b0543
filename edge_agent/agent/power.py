"""The power policy's light variant, swapped in through the swap gates while saving.

The policy (:func:`edge_agent.telemetry.power_policy.decide`) names ``light_variant``, a model
under ``models:`` (served under its own name too, or ``serve: false``: its file is loaded only
when it is swapped in), while the device saves power. For each model a running pipeline uses, that
file is loaded as a temporary version of the model (``3+light``) and put through the model's
:class:`~edge_agent.serving.swap.SwapController`, exactly as a delivered release is: shadow
check against the version serving now, activation, watch window. A light variant that fails
(does not load, answers differently, errors, is slow) is refused and the model keeps serving;
it is tried again at the next saving episode, not at every policy check. When saving ends, the
version that served before comes back (:meth:`ModelHost.restore_from_light`).

A release (or a reload's new file) arriving while the light variant serves is judged against
the model's own version: the host restores that first. The light variant goes back on over
the new version once its watch window has passed (a swap during the watch would end it and
make the light variant the release's rollback target).

A shadow check takes ``serving.gates.shadow_seconds``, so swaps run on their own thread: the
policy's check never waits for one, and a policy that changes its mind meanwhile is followed
once the swap in progress ends. Every outcome is reported through ``report`` (the agent queues
it as a ``power_policy`` telemetry event with the reasons) and, by the swap controller, as swap
events on the rollout topic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Sequence

from edge_agent.agent.models import ModelHost, is_light
from edge_agent.config import ModelEntry

log = logging.getLogger(__name__)

Report = Callable[[str, str, str | None, list[str]], None]
"""``report(model, outcome, variant, reasons)``: outcome ``active``, ``rejected``,
``restored`` or ``rolled_back``; ``variant`` the light model now serving (None: the model's own
version)."""


class LightVariant:
    """Keeps the pipelines' models on the light variant while the policy asks for it."""

    def __init__(
        self,
        host: ModelHost,
        targets: Callable[[], Collection[str]],
        report: Report,
        configured: Callable[[], Iterable[ModelEntry]] = tuple,
    ) -> None:
        """Swap for ``targets()``' models; ``configured`` is the config's ``models:`` now.

        A ``serve: false`` entry (a light variant loaded only when swapped in) is found there;
        served models are the host's.
        """
        self._host = host
        self._configured = configured
        self._targets = targets
        self._report = report
        self._wanted: str | None = None
        self._why = ""
        self._refused: set[tuple[str, str]] = set()
        """(model, variant) refused in this saving episode: not tried again until the next."""
        self._warned: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def want(self, variant: str | None, reasons: Sequence[str] = ()) -> None:
        """Run ``variant`` (None: each model's own version) from now on; returns at once.

        Called at every policy check; ``reasons`` are kept from the call that changed the
        variant (they explain the swaps it causes).
        """
        if variant is not None and self._entry(variant) is None:
            if variant != self._warned:  # once, not at every policy check
                log.warning(
                    "power policy: light variant %r is not under `models:`; keeping models", variant
                )
            self._warned = variant
            variant = None
        with self._lock:
            if variant != self._wanted:
                self._wanted, self._why = variant, "; ".join(reasons)
            wanted_or_light = variant is not None or self._thread is not None
        if wanted_or_light:
            self._start()
            self._wake.set()

    def rolled_back(self, model: str, version: str, reason: str) -> None:
        """The light variant's watch window failed on ``model``: refused for this episode."""
        with self._lock:
            variant = self._wanted
            if variant is not None:
                self._refused.add((model, variant))
        self._report(
            model, "rolled_back", None, [f"light variant v{version} rolled back: {reason}"]
        )

    def _entry(self, variant: str) -> ModelEntry | None:
        """The light variant's model entry: served, or configured with ``serve: false``."""
        served = self._host.entries.get(variant)
        if served is not None:
            return served
        return next((m for m in self._configured() if m.name == variant and not m.serve), None)

    def close(self) -> None:
        """Stop the swap thread (a swap in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    # -- the swap thread -------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="light-variant", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.converge()
            except Exception:  # a swap must never end the thread: the next check retries
                log.exception("power policy: light variant swap failed")

    def converge(self) -> None:
        """Bring every target model to what the policy wants now (one swap at a time)."""
        with self._lock:
            variant, why = self._wanted, self._why
            if variant is None:
                self._refused.clear()  # the next saving episode tries again
        light = self._entry(variant) if variant is not None else None
        for name in sorted(self._targets()):
            controller = self._host.controllers.get(name)
            if controller is None or name == variant:
                continue
            on_light = is_light(controller.served.active.version)
            if light is not None and variant is not None:
                if on_light or (name, variant) in self._refused:
                    continue
                if controller.watching is not None:  # a release's watch: tried at a later check
                    continue
                verdict = self._host.swap_in_light(name, light, why or "power saving")
                if not verdict.ok and controller.watching is not None:
                    continue  # a release's watch began meanwhile: tried at a later check
                if verdict.ok:
                    self._report(
                        name,
                        "active",
                        variant,
                        [f"light variant {variant} active: {verdict.reason}"],
                    )
                else:
                    with self._lock:
                        self._refused.add((name, variant))
                    self._report(
                        name,
                        "rejected",
                        None,
                        [f"light variant {variant} refused: {verdict.reason}"],
                    )
            elif on_light:
                restored = self._host.restore_from_light(
                    name, f"power saving ended ({why})" if why else "power saving ended"
                )
                if restored is not None:
                    self._report(
                        name,
                        "restored",
                        None,
                        [f"back on v{restored}" + (f": {why}" if why else "")],
                    )
            if self._stop.is_set():
                return
