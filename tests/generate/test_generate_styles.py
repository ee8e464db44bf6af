"""generate/styles, style_files, postprocess: the catalogue, YAML user styles, cleaning rules, prompt hashes."""

from __future__ import annotations

import pytest

from synthscale.corpus import Document
from synthscale.errors import ConfigError, InputError
from synthscale.generate import AUDIENCES, FORMATS, STYLES, Style, get_style, textbook_style_name
from synthscale.generate.postprocess import RegexRule, apply_steps
from synthscale.generate.style_files import load_style_file, resolve_style

DOC = Document(id="d1", text="Brumholt lies on the river Olm. It has 1200 people.")


def test_catalogue_has_the_rephrase_styles_and_the_textbook_grid():
    for name in ("hq", "qa", "easy", "hard"):
        style = get_style(name)
        assert style.kind == "rephrase" and style.render(document=DOC).endswith(DOC.text)
        assert style.length_ratio is not None and style.description
    assert "Question:" in get_style("qa").template and "Answer:" in get_style("qa").template
    grid = [textbook_style_name(a, f) for a in AUDIENCES for f in FORMATS]
    assert len(set(grid)) == 16 and all(n in STYLES for n in grid)
    assert len({STYLES[n].prompt_hash for n in grid}) == 16  # every cell is its own prompt
    assert STYLES["textbook"].template == STYLES["textbook-college-unit"].template
    with pytest.raises(ConfigError, match="unknown audience 'toddlers'"):
        textbook_style_name("toddlers", "unit")


def test_textbook_styles_fill_the_audience_and_seed_from_a_topic_or_an_extract():
    style = get_style("textbook-children-story")
    by_topic = style.render(topic="how rivers form")
    assert "how rivers form" in by_topic and "children about eight to ten years old" in by_topic
    assert "{audience}" not in by_topic and "{topic}" not in by_topic
    by_extract = style.render(document=DOC)
    assert DOC.text in by_extract and "extract" in by_extract
    assert style.prompt_hash_for("extract") == style.extract_prompt_hash != style.prompt_hash
    with pytest.raises(ConfigError, match="from a topic"):
        style.render()


def test_prompt_hash_depends_on_the_instruction_only():
    a = Style("a", "rephrase", "Say it for {audience}: {document}", audience="kids")
    b = Style("b", "rephrase", "Say it for {audience}: {document}", audience="kids", sampling={"temperature": 0.1})
    c = Style("c", "rephrase", "Say it for {audience}: {document}", audience="adults")
    assert a.prompt_hash == b.prompt_hash != c.prompt_hash


def test_style_validation_names_the_problem():
    with pytest.raises(ConfigError, match="must contain {document}"):
        Style("x", "rephrase", "no slot")
    with pytest.raises(ConfigError, match="sets no audience"):
        Style("x", "rephrase", "{audience} {document}")
    with pytest.raises(ConfigError, match="unknown sampling key 'temprature'"):
        Style("x", "rephrase", "{document}", sampling={"temprature": 1.0})
    with pytest.raises(ConfigError, match="sampling.top_p must be"):
        Style("x", "rephrase", "{document}", sampling={"top_p": 1.5})
    with pytest.raises(ConfigError, match="extract_template belongs to generate styles"):
        Style("x", "rephrase", "{document}", extract_template="{document}")


def test_postprocessing_strips_preambles_postscripts_and_applies_regex_rules():
    chatty = ("Sure! Here's a paraphrased version of the text:\n\nBrumholt is a town.\n\n\n\nIt lies on the Olm.\n"
              "I hope this helps!")
    text, changed = apply_steps(get_style("hq").postprocess, chatty)
    assert text == "Brumholt is a town.\n\nIt lies on the Olm."
    assert changed == ["strip_preamble", "strip_postscript"]
    assert get_style("hq").clean("Paraphrase:\nA fact.") == "A fact."
    assert get_style("qa").clean("Question: Where?\nAnswer: Here.") == "Question: Where?\nAnswer: Here."
    rule = RegexRule(r"^Note:.*\n?", "")
    assert apply_steps((rule, "strip"), "Body.\nNote: generated.\n")[0] == "Body."
    with pytest.raises(ConfigError, match="does not compile"):
        RegexRule("(unclosed")
    assert apply_steps(("trim_incomplete_sentence",), "One. Two is cut mi")[0] == "One."


def test_yaml_styles_load_with_base_rules_and_validation(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("""
styles:
  - name: eli5
    kind: rephrase
    audience: a curious five-year-old
    template: "Explain to {audience}:\\n\\n{document}"
    sampling: {temperature: 0.5, max_tokens: 128}
    postprocess: [strip_preamble, {regex: "^Note:.*$", replace: ""}, strip]
    length_ratio: [0.2, 5]
  - name: cold-hq
    base: hq
    sampling: {temperature: 0.1}
""")
    styles = load_style_file(path)
    eli5, cold = styles["eli5"], styles["cold-hq"]
    assert "a curious five-year-old" in eli5.render(document=DOC) and eli5.length_ratio == (0.2, 5.0)
    assert eli5.clean("Here is the explanation:\nBody.\nNote: x") == "Body."
    assert cold.template == get_style("hq").template and cold.sampling["temperature"] == 0.1
    assert cold.sampling["max_tokens"] == get_style("hq").sampling["max_tokens"]  # the rest from the base
    assert resolve_style("eli5", [path]) == eli5 and resolve_style("qa", [path]) == get_style("qa")
    single = tmp_path / "one.yml"
    single.write_text("name: topical\nkind: generate\ntemplate: 'Write about {topic}.'\n")
    assert resolve_style(str(single)).render(topic="rivers") == "Write about rivers."


@pytest.mark.parametrize("body, message", [
    ("name: hq\nkind: rephrase\ntemplate: '{document}'\n", "name of a built-in style"),
    ("name: x\nkind: rephrase\ntemplate: '{document}'\ncolour: red\n", "field 'colour'"),
    ("name: x\nkind: rephrase\n", "field 'template' is required"),
    ("name: x\nkind: generate\ntemplate: 'no topic slot'\n", "must contain {topic}"),
    ("name: x\nkind: rephrase\ntemplate: '{document}'\npostprocess: [shout]\n", "unknown postprocess step 'shout'"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_yaml_styles_raise_one_line_errors_naming_the_file(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises((ConfigError, InputError), match=message) as err:
        load_style_file(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
