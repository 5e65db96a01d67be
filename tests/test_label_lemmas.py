"""Label lemmas kept in the model cache: the same terms as spaCy gives, without loading it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from retrieval.embed.keywords import LabelLemmas, label_terms

ROOT = Path(__file__).resolve().parent.parent
LABELS = ("tabby cat", "cats", "Egyptian Mau", "running people", "taxis", "img_eb841e82")

CHILD = """
import json, sys
from retrieval.embed.keywords import LabelLemmas
kept = LabelLemmas.open()
print(json.dumps({"kept": kept.kept, "terms": kept.terms(sys.argv[1:]),
                  "spacy": "spacy" in sys.modules}))
"""


def child(cache: Path, labels) -> dict:
    env = {**os.environ, "MONTAGE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, *labels], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_kept_lemmas_give_spacys_terms_in_a_process_that_never_loads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path))
    first = LabelLemmas.open()
    assert not first.kept and first.path is not None and first.path.parent == tmp_path
    expected = label_terms(LABELS)
    assert first.terms(LABELS) == expected
    first.save()
    assert first.path.is_file()
    again = child(tmp_path, LABELS)
    assert again == {"kept": True, "terms": expected, "spacy": False}
    # a label never seen loads spaCy, as before, and gets its real lemmas
    new = child(tmp_path, ["dogs running"])
    assert new["spacy"] is True and new["terms"] == label_terms(["dogs running"]) == ["dog", "run"]


def test_a_damaged_kept_file_is_remade(tmp_path, monkeypatch):
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path))
    path = LabelLemmas.open().path
    path.write_bytes(b"\x00not marshal")
    damaged = LabelLemmas.open()
    assert not damaged.kept
    expected = label_terms(["red taxis"])
    assert damaged.terms(["red taxis"]) == expected
    damaged.save()
    assert LabelLemmas.open().known == {"red taxis": tuple(expected)}
