"""Script -> :class:`ShotPlan`: scenes from blank lines or screenplay headings, one shot per
sentence (per clause for long ones), ids from each shot's own text.

Scenes: in a plain script every paragraph (block between blank lines) is a scene. Once a script
uses screenplay headings (``INT.``, ``EXT.``, ``INT./EXT.``, ``I/E``), the headings alone start
scenes and give them titles, because screenplays put blank lines after the heading and between
action paragraphs of one scene; text before the first heading is a scene with title "".
"""
from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from planner import nlp
from planner.errors import ScriptError
from planner.shots import PlannedShot, ShotPlan

MAX_SENTENCE_WORDS = 20  # longer sentences are cut at clause boundaries...
MAX_SENTENCE_SECONDS = 8.0  # ...as are sentences that take longer than this to read
MIN_PART_WORDS = 4  # no clause cut leaves a part shorter than this
MAX_PARAGRAPH_CHARS = 1_000_000  # spaCy's default max_length: longer texts exhaust its memory

# Language check, on spaCy's stop-word lists (measured: English prose ~55%, terse screenplay
# action ~17% English stop words; German/French/Spanish prose 3-5% English but 55-60% their own).
MIN_LANGUAGE_WORDS = 8  # below this the shares mean nothing ("Anna runs." passes)
MIN_FOREIGN_STOP_SHARE = 0.2  # another language's stop words this common, and twice English's
MIN_ENGLISH_STOP_SHARE = 0.05  # with >= 30 words: no English function words at all
OTHER_LANGUAGES = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
                   "nl": "Dutch", "pt": "Portuguese", "sv": "Swedish", "da": "Danish",
                   "nb": "Norwegian", "pl": "Polish", "cs": "Czech", "ro": "Romanian",
                   "tr": "Turkish", "fi": "Finnish", "hu": "Hungarian"}
MAX_NON_LATIN_SHARE = 0.2

_HEADING = re.compile(
    r"^\s*(?:INT\.?\s*/\s*EXT\.?|EXT\.?\s*/\s*INT\.?|I\s*/\s*E\.?|INT\.|EXT\.)(?=\s|$)", re.I)
_TRANSITION = re.compile(
    r"^\s*(?:FADE (?:IN|OUT)|FADE TO BLACK|(?:SMASH |MATCH |JUMP )?CUT TO|DISSOLVE TO)\s*[.:]?\s*$")
_LETTER_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_WORD = re.compile(r"\w+(?:['’]\w+)*")
# control characters (C0 but tab and newline, DEL, C1): a space each, so offsets and lines hold
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class _Paragraph:
    scene: int
    start: int  # char offset in the (newline-normalised) script
    text: str  # the paragraph with its inner newlines turned into spaces (offsets preserved)


def load_script(path: str | Path, cache: Path | None = None) -> ShotPlan:
    """Read a UTF-8 script file and plan it; every problem is a one-line :class:`ScriptError`.
    ``cache``: a folder of plans already made (see :func:`plan_text`)."""
    path = Path(path)
    if not path.exists():
        raise ScriptError(f"{path}: script file not found", hint="check the path and spelling")
    if path.is_dir():
        raise ScriptError(f"{path}: is a directory, not a script file",
                          hint="pass the path of a .txt file inside it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{path}: cannot be read ({exc.strerror})",
                          hint="check the file's permissions") from exc
    if b"\x00" in data:
        raise ScriptError(f"{path}: is a binary file (it contains NUL bytes), not a text script",
                          hint="save the script as UTF-8 plain text (.txt)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScriptError(
            f"{path}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} "
            "cannot be decoded)", hint="save the script as UTF-8 plain text (.txt)") from exc
    return plan_text(text, str(path), cache=cache)


def plan_text(
    text: str,
    source: str = "<text>",
    *,
    words_per_second: float = 2.5,
    min_seconds: float = 1.5,
    max_seconds: float = 6.0,
    cache: Path | None = None,
) -> ShotPlan:
    """Plan a script given as a string; ``source`` names it in errors and in the plan.

    ``cache``: a folder where plans are kept by their script text, settings and planner (its
    code, spaCy and the model's versions), so a script planned before costs no spaCy import
    or parse (a recut of an unchanged script from the command line).
    """
    _check_pace(words_per_second, min_seconds, max_seconds)
    if cache is not None:
        from planner.plancache import cached_plan

        return cached_plan(Path(cache), (text, source, words_per_second, min_seconds,
                                         max_seconds),
                           lambda: plan_text(text, source, words_per_second=words_per_second,
                                             min_seconds=min_seconds, max_seconds=max_seconds))
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)  # pasted escape codes, form feeds: never in a shot's text
    if not text:
        raise ScriptError(f"{source}: script is empty", hint="write at least one sentence")
    if not text.strip():
        raise ScriptError(f"{source}: script is empty (it contains only whitespace)",
                          hint="write at least one sentence")
    titles, paragraphs = _split_scenes(text)
    _check_english("\n".join(p.text for p in paragraphs), source)
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for para in paragraphs:
        if len(para.text) > MAX_PARAGRAPH_CHARS:
            line = bisect.bisect_right(line_starts, para.start)
            raise ScriptError(f"{source}:{line}: paragraph of {len(para.text)} characters is "
                              f"longer than the {MAX_PARAGRAPH_CHARS} the parser accepts",
                              hint="break it into paragraphs with blank lines")
    max_words = min(MAX_SENTENCE_WORDS, int(MAX_SENTENCE_SECONDS * words_per_second))
    parsed = nlp.analyse([p.text for p in paragraphs], max_words=max(max_words, 2 * MIN_PART_WORDS),
                         min_words=MIN_PART_WORDS)
    cast = _Cast()
    occurrences: Counter[str] = Counter()
    scene_ids: dict[int, int] = {}
    shots: list[PlannedShot] = []
    for para, parts in zip(paragraphs, parsed):
        for part in parts:
            shot_text = " ".join(para.text[part.start:part.end].split())
            key = shot_text.lower()
            occurrences[key] += 1
            shots.append(PlannedShot(
                id=shot_id(shot_text, occurrences[key]),
                scene=scene_ids.setdefault(para.scene, len(scene_ids)),
                text=shot_text,
                query=" ".join(part.visible or part.content or _words(shot_text)),
                characters=cast.resolve(part.mentions, part.continues),
                duration=duration_for(shot_text, words_per_second, min_seconds, max_seconds),
                line=bisect.bisect_right(line_starts, para.start + part.start),
            ))
    if not shots:
        raise ScriptError(f"{source}: script has no sentences to plan (only headings or symbols)",
                          hint="write the action as English sentences under the headings")
    kept_titles = tuple(titles[old] for old in sorted(scene_ids, key=scene_ids.__getitem__))
    return ShotPlan(source=source, shots=tuple(shots), scene_titles=kept_titles)


def shot_id(text: str, occurrence: int = 1) -> str:
    """``sh-`` + 8 hex of the sha1 of the normalised text; ``-2``, ``-3`` for repeats.

    Position never enters it, so editing one sentence or moving a paragraph leaves the other
    shots' ids (and whatever later stages cached under them) unchanged.
    """
    digest = hashlib.sha1(" ".join(text.lower().split()).encode("utf-8")).hexdigest()[:8]
    return f"sh-{digest}" if occurrence == 1 else f"sh-{digest}-{occurrence}"


def duration_for(text: str, words_per_second: float, min_seconds: float,
                 max_seconds: float) -> float:
    """Reading time of the text, clamped to [min_seconds, max_seconds], to 0.01 s."""
    seconds = len(_WORD.findall(text)) / words_per_second
    return round(min(max(seconds, min_seconds), max_seconds), 2)


def _check_pace(words_per_second: float, min_seconds: float, max_seconds: float) -> None:
    if not words_per_second > 0:
        raise ScriptError(f"words_per_second must be > 0, got {words_per_second}",
                          hint="2.5 is a calm narration pace")
    if not 0 < min_seconds <= max_seconds:
        raise ScriptError(
            f"need 0 < min_seconds <= max_seconds, got min_seconds={min_seconds}, "
            f"max_seconds={max_seconds}", hint="the defaults are 1.5 and 6.0")


def _split_scenes(text: str) -> tuple[list[str], list[_Paragraph]]:
    """Scene titles and the paragraphs (with their scene number) of a script."""
    lines: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        lines.append((offset, line))
        offset += len(line) + 1
    screenplay = any(_HEADING.match(line) for _, line in lines)
    titles: list[str] = [] if screenplay else [""]
    paragraphs: list[_Paragraph] = []
    block: list[tuple[int, str]] = []

    def close() -> None:
        if not block:
            return
        if not titles:  # screenplay text before its first heading
            titles.append("")
        start, end = block[0][0], block[-1][0] + len(block[-1][1])
        body = text[start:end].replace("\n", " ").replace("\t", " ")
        paragraphs.append(_Paragraph(len(titles) - 1, start, body))
        if not screenplay:
            titles.append("")
        block.clear()

    for start, line in lines:
        if _HEADING.match(line):
            close()
            titles.append(" ".join(line.split()))
        elif _TRANSITION.match(line) or not line.strip():
            close()
        else:
            block.append((start, line))
    close()
    return titles, paragraphs


def _check_english(body: str, source: str) -> None:
    """Refuse scripts that are clearly not English: the parser would produce nonsense shots."""
    letters = [ch for ch in body if ch.isalpha()]
    if not letters:
        raise ScriptError(f"{source}: script has no words to plan",
                          hint="write the action as English sentences")
    foreign = Counter(unicodedata.name(ch, "UNKNOWN ?").split()[0] for ch in letters
                      if not unicodedata.name(ch, "").startswith("LATIN"))
    share = sum(foreign.values()) / len(letters)
    if share > MAX_NON_LATIN_SHARE:
        alphabet = foreign.most_common(1)[0][0]
        raise ScriptError(
            f"{source}: script is not English: {share:.0%} of its letters are {alphabet}, "
            "not Latin", hint="the planner reads English only; translate the script into English")
    words = [w.lower().replace("’", "'") for w in _LETTER_WORD.findall(body)]
    if len(words) < MIN_LANGUAGE_WORDS:
        return  # too short to judge ("Anna runs.")
    english = _stop_share(words, "en")
    guesses = {lang: _stop_share(words, lang) for lang in OTHER_LANGUAGES}
    lang = max(guesses, key=guesses.__getitem__)
    hint = "the planner reads English only; translate the script into English"
    if guesses[lang] >= MIN_FOREIGN_STOP_SHARE and guesses[lang] > 2 * english:
        raise ScriptError(
            f"{source}: script looks {OTHER_LANGUAGES[lang]}, not English: {guesses[lang]:.0%} of "
            f"its words are {OTHER_LANGUAGES[lang]} stop words, {english:.0%} English ones",
            hint=hint)
    if english < MIN_ENGLISH_STOP_SHARE and len(words) >= 30:
        raise ScriptError(
            f"{source}: script does not look like English: only {english:.0%} of its "
            f"{len(words)} words are English stop words (English prose has 15-55%)", hint=hint)


def _stop_share(words: list[str], lang: str) -> float:
    stops = nlp.stop_words(lang)
    return sum(1 for w in words if w in stops) / len(words)


def _words(text: str) -> list[str]:
    """Last-resort query: the lowercase words of the text, deduplicated."""
    return list(dict.fromkeys(w.lower() for w in _LETTER_WORD.findall(text)))


class _Cast:
    """Who is on screen: names as written, pronouns carried from the most salient character.

    Salience: the characters of the latest part that had anyone, subjects first, then older
    ones. A personal pronoun picks the most salient character not already in its own clause
    ("Tom smiles at her": her is not Tom); possessives and reflexives refer to someone already
    in the part when there is one; "they" carries only a group of two or more. No gender is
    known, so "he" may pick a woman: a heuristic, not coreference resolution.
    """

    def __init__(self) -> None:
        self.salience: list[str] = []
        self.group: tuple[str, ...] = ()
        self.subjects: tuple[str, ...] = ()  # of the previous part, for subjectless clauses

    def resolve(self, mentions: tuple[nlp.Mention, ...], continues: bool = False
                ) -> tuple[str, ...]:
        if continues and not mentions:
            return self.subjects  # "... and sits by the window": same subject as before
        names = [m for m in mentions if m.kind == "name"]
        found: list[str] = []
        subjects: list[str] = []
        pronouns: dict[int, set[str]] = {}  # clause -> characters its pronouns already took
        for m in mentions:
            if m.kind == "name":
                who = [m.text]
            elif m.role in ("possessive", "reflexive"):
                if found:
                    continue  # "she pours herself her coffee": the one already in the part
                who = self.salience[:1]
            elif m.plural:
                who = list(self.group) if len(self.group) >= 2 else []
            else:
                same_clause = {n.text for n in names if n.clause == m.clause}
                if any(n.text not in same_clause for n in names):
                    continue  # a name earlier in the part, in another clause, is the antecedent
                same_clause |= pronouns.get(m.clause, set())  # "she laughs at him": two people
                who = [n for n in self.salience if n not in same_clause][:1]
                pronouns.setdefault(m.clause, set()).update(who)
            for name in who:
                if name not in found:
                    found.append(name)
                if m.role == "subject" and name not in subjects:
                    subjects.append(name)
        if found:
            ordered = subjects + [n for n in found if n not in subjects]
            self.salience = ordered + [n for n in self.salience if n not in ordered]
            if names:
                self.group = tuple(found)
        self.subjects = tuple(subjects)
        return tuple(found)
