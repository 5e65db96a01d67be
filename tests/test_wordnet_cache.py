"""WordNet's noun graph is parsed once and then read from the user's model cache."""
from __future__ import annotations

from retrieval.embed import wordnet


def test_the_kept_graph_is_the_parsed_one_and_a_damaged_copy_is_parsed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path))
    wordnet._graph.cache_clear()
    try:
        first = wordnet._graph()
        kept = list(tmp_path.glob("wordnet-nouns-*.marshal"))
        assert len(kept) == 1
        assert first == wordnet._parse_graph(wordnet._data_dir())
        wordnet._graph.cache_clear()
        assert wordnet._graph() == first  # read back from the file
        kept[0].write_bytes(b"\x00damaged")
        wordnet._graph.cache_clear()
        assert wordnet._graph() == first
        assert "02084071" in wordnet._graph()[1]["dog"]  # dog.n.01
    finally:
        wordnet._graph.cache_clear()
