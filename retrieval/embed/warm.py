"""The embedder's models, warmed in a thread while the indexer's workers decode."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


class WarmModels:
    """The embedder's models, and spaCy for the labels' keywords, loaded in a thread while the
    workers decode the first files.

    Loading them (the classifier, the people models, MiniLM, spaCy's pipeline) takes seconds
    of CPU; done at the first batch it would wait for the
    first file's analysis and then hold up its embedding. An error while loading (a missing
    model) is raised by :meth:`join`, in the indexing thread, before anything is embedded.
    """

    def __init__(self, analyse: Callable[[list[np.ndarray]], object], nlp: bool = True,
                 check: bool = False) -> None:
        """``analyse``: embeds frames as the run will (so it loads the models the run needs).
        ``check``: first load the analysis models too (:func:`retrieval.analysis.analyse.check_models`:
        the workers' face and people models), so a missing one is reported by :meth:`join`
        without holding up the workers' start (it took 0.8 s before they were spawned)."""
        import threading

        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(analyse, nlp, check),
                                        daemon=True, name="load-models")
        self._thread.start()

    def _load(self, analyse: Callable[[list[np.ndarray]], object], nlp: bool,
              check: bool) -> None:
        try:
            if check:
                from retrieval.analysis.analyse import check_models

                check_models()
            analyse([np.zeros((64, 64, 3), np.uint8)])
            from planner.nlp import load_nlp

            from .base import apply_torch_threads

            if nlp:  # not when every label's lemmas are probably kept (keywords.LabelLemmas)
                load_nlp()
            apply_torch_threads()  # torch may have been imported just now, by the text model
        except BaseException as exc:  # noqa: BLE001 - handed to the indexing thread by join
            self._error = exc

    def wait(self) -> None:
        """Until loading is over (its error, if any, is kept for :meth:`join`)."""
        self._thread.join()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
