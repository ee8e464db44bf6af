"""generate/gates and language: each quality gate on constructed outputs, drop vs flag, counts per reason."""

from __future__ import annotations

import pytest

from synthscale.errors import ConfigError
from synthscale.generate import GateConfig, check_output, get_style
from synthscale.generate.language import guess_language

SOURCE = ("Brumholt is a market town on the river Olm. It was founded in 1801 by Tessa Varn, who built the first "
          "bridge over the river. Today about 1200 people live there, and the town is known for its black leather.")
GOOD_HQ = ("Brumholt is a market town on the Olm river, founded in 1801 by Tessa Varn, the builder of its first "
           "bridge. Some 1200 people live in the town, which is known for black leather.")
HQ, QA = get_style("hq"), get_style("qa")
GATES = GateConfig()
LONG = ("The bridge was rebuilt in stone after a flood in 1843. Merchants from Tarn brought salt by barge each spring. "
        "A guild of tanners set prices for hides and kept strict rules about dyes. The first school opened in 1850, "
        "with two teachers and forty pupils. Later a railway reached the valley, and the old ford fell out of use. "
        "Visitors today walk along the quay, where warehouses have become shops and small museums.")
LONG2 = ("In winter the river froze hard enough for carts to cross. Fairs were held on the ice, with music and roasted "
         "chestnuts. Older residents remember skating races between the parishes, won most years by millers' sons.")
GIBBERISH = " ".join(a + b for a in ("zor", "ble", "qua", "vri", "tes", "gor")
                     for b in ("p", "nk", "x", "dd", "sh", "v"))


def reasons(text, finish="stop", style=HQ, source=SOURCE, config=GATES):
    return check_output(text, finish, style, source, config).reasons


def test_a_faithful_paraphrase_passes_every_gate():
    verdict = check_output(GOOD_HQ, "stop", HQ, SOURCE, GATES)
    assert verdict.keep and verdict.reasons == []
    assert verdict.measures["language"] == "en" and 0.4 <= verdict.measures["length_ratio"] <= 2.5
    qa = ("Question: Where is Brumholt?\nAnswer: On the river Olm.\n"
          "Question: Who founded it?\nAnswer: Tessa Varn, in 1801.")
    assert check_output(qa, "stop", QA, SOURCE, GATES).keep


@pytest.mark.parametrize("text, finish, expected", [
    ("", "stop", ["empty"]),
    ("Okay.", "stop", ["empty"]),
    (GOOD_HQ, "length", ["truncated"]),
    (SOURCE, "stop", ["near_copy"]),
    (("The town is big. " * 12).strip(), "stop", ["repetition"]),
    ("Brumholt: a town.\n" * 3 + "It has a bridge over the river Olm, made in 1801.", "stop", ["repetition"]),
    ("Brumholt is a town on the Olm.", "stop", ["length_ratio"]),
    (" ".join([GOOD_HQ, LONG, LONG2]), "stop", ["length_ratio"]),
    ("Brumholt ist eine Stadt an der Olm, die im Jahr 1801 von Tessa Varn gegründet wurde. Heute leben dort etwa "
     "1200 Menschen, und die Stadt ist für ihr schwarzes Leder bekannt.", "stop", ["wrong_language"]),
    (GIBBERISH, "stop", ["wrong_language"]),
])
def test_each_gate_catches_its_failure(text, finish, expected):
    assert reasons(text, finish) == expected


def test_flag_mode_keeps_outputs_and_reports_the_reasons():
    config = GateConfig(action="flag", truncated="flag")
    verdict = check_output(SOURCE, "length", HQ, SOURCE, config)
    assert verdict.keep and verdict.reasons == ["truncated", "near_copy"]
    assert not check_output("", "stop", HQ, SOURCE, config).keep  # nothing to keep
    assert check_output(GOOD_HQ, "length", HQ, SOURCE, GateConfig(truncated="keep")).reasons == []
    # truncation dropped while content gates only flag
    assert not check_output(GOOD_HQ, "length", HQ, SOURCE, GateConfig(action="flag", truncated="drop")).keep


def test_gates_can_be_tuned_or_turned_off():
    assert reasons(SOURCE, config=GateConfig(near_copy=None)) == []
    german = "Brumholt ist eine Stadt an der Olm, die im Jahr 1801 von Tessa Varn gegründet wurde und bekannt ist."
    german_source = "Brumholt ist eine Marktstadt an der Olm. Sie wurde 1801 gegründet und ist für Leder bekannt."
    assert reasons(german, source=german_source, config=GateConfig(language="same", length_ratio=False)) == []
    assert reasons(german, config=GateConfig(language=None, length_ratio=False)) == []
    off = GateConfig.off()
    assert check_output(SOURCE, "length", HQ, SOURCE, off).keep
    textbook = get_style("textbook")  # generate styles have no length-ratio bounds
    assert check_output(GOOD_HQ + " " + LONG, "stop", textbook, "short seed", GATES).keep
    with pytest.raises(ConfigError, match="gates.action"):
        GateConfig(action="delete")
    with pytest.raises(ConfigError, match="gates.language"):
        GateConfig(language="klingon")


def test_language_guesses():
    assert guess_language(GOOD_HQ) == "en"
    french = "Le bateau est arrivé dans le port de la ville avec une cargaison de sel et de bois."
    russian = "Москва является столицей России и крупнейшим городом страны по численности"
    assert guess_language(french) == "fr" and guess_language(russian) == "other"
    assert guess_language("too short") is None
