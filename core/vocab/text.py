"""Text normalisation shared by the judges and the vocabulary: the one accent folding of the project.

Why one function: English and Portuguese spellings ("Não"/"nao", "estereótipo"/"estereotipo") must meet
wherever text is compared, the same way everywhere: in the `refusal` judge's rules, the rubric judge's
reading of a model's answer, the learned judge's n-grams and the vocabulary's keys. Four hand-written tables
had drifted apart (one knew "ñ", another did not; none knew "ō" or "Ç" in every place).

What `fold` does, one character for one character (so an offset in the folded text is an offset in the
original: the `refusal` judge quotes the original at "char N"):
* lower-cases (a character whose lower case is longer, like "İ", keeps the first character of it);
* removes accents: a character whose compatibility decomposition (Unicode NFKD) is one base character plus
  combining marks becomes that base character ("ã" -> "a", "Ç" -> "c", "ō" -> "o", "Ａ" -> "a", "ª" -> "a");
* straightens typographic quotes (’ ‘ ‛ ´ -> ', “ ” „ -> "), so rules are written with ASCII quotes.
What it leaves: characters whose decomposition is longer than one character ("ß", "æ", "ﬁ", "…", "½";
expanding them would shift offsets), characters with no decomposition ("ł", "ø", CJK), and combining marks
that stand alone in decomposed (NFD) text ("a" followed by U+0303 stays two characters).
"""
from __future__ import annotations

import functools
import re
import unicodedata

QUOTES: dict[str, str] = {"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u00b4": "'",
                          "\u201c": '"', "\u201d": '"', "\u201e": '"'}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """One character, folded (lower case, no accent, straight quote), still one character."""
    if char in QUOTES:
        return QUOTES[char]
    lower = char.lower() or char
    base = "".join(c for c in unicodedata.normalize("NFKD", lower) if not unicodedata.combining(c)).lower()
    return base if len(base) == 1 else lower[0]


def fold(text: str) -> str:
    """`text` lower-cased, without accents, with straight quotes, and exactly as long (see the module
    docstring for which characters change)."""
    lower = text.lower()
    if len(lower) != len(text):  # a character such as "İ" lower-cases to two: fold one by one
        return "".join(_fold_char(c) if not c.isascii() else c.lower() for c in text)
    if lower.isascii():
        return lower
    return _NON_ASCII.sub(lambda m: _fold_char(m.group()), lower)
