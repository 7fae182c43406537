"""core.vocab.text.fold: the one accent folding (lower case, no accents, straight quotes, same length)."""
from __future__ import annotations

import pytest

from core.vocab.text import fold


@pytest.mark.parametrize("text,folded", [
    ("Não posso escrever isso", "nao posso escrever isso"),  # Portuguese tilde
    ("ÇÃO ção Estereótipo É", "cao cao estereotipo e"),  # cedilla, upper case
    ("Mañana, ¿qué pasó? ÑANDÚ", "manana, ¿que paso? nandu"),  # Spanish
    ("Ça va, élève, naïve, Noël, Œuvre", "ca va, eleve, naive, noel, œuvre"),  # French (œ has no decomposition)
    ("I can\u2019t \u201cwrite\u201d \u2018that\u2019 \u201eok\u201d \u00b4x\u201b", "i can't \"write\" 'that' \"ok\" 'x'"),
    ("Ōsaka ÿ ő ū", "osaka y o u"),  # letters the old tables did not know
    ("Ｓｏｒｒｙ 2ª", "sorry 2a"),  # compatibility forms with one base letter
    ("plain ASCII, Even `ticks`", "plain ascii, even `ticks`"),  # ASCII only lower-cases
])
def test_fold(text, folded):
    assert fold(text) == folded


@pytest.mark.parametrize("text", [
    "Straße", "Ærø", "ﬁne…", "½ Łódź", "na\u0303o", "İstanbul", "ΣΟΦΟΣ", "日本語", "\u00a0x", "",
])
def test_fold_keeps_every_offset(text):
    """The refusal judge quotes the original text at the folded text's offsets, so no character may expand
    or vanish: ß, æ, ﬁ, … and ½ stay as they are, a lone combining mark too, İ keeps one character."""
    out = fold(text)
    assert len(out) == len(text)
    assert fold("Straße") == "straße" and fold("İstanbul") == "istanbul" and fold("na\u0303o") == "na\u0303o"
    assert fold("\u00a0x") == " x"
