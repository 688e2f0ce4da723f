"""The pure helpers behind the Gradio app's tabs: the verdict card, bars and notices both apps
draw (`detector.ui.verdict_cards`), the Compare and Evidence views and model lookup
(`app_views`), the API payloads (`api_payloads`), the texts (`app_texts`) and the examples
(`example_gallery`)."""

from __future__ import annotations

import html
import json

import pytest
from conftest import encode, make_image

import detector
from detector.ui import api_payloads, app_texts, app_views, example_gallery
from detector.ui import presentation as pres
from detector.ui import verdict_cards as cards
from detector.ui.evidence_board import EVIDENCE_INTRO


def info(name: str, trained: bool = True) -> detector.ModelInfo:
    return detector.ModelInfo(name, "cnn", trained, name.upper(), "", ("gradcam",), 64)


def prediction(model: str = "m", p: float = 0.9, **kwargs) -> detector.Prediction:
    label = "fake" if p >= 0.5 else "real"
    return detector.Prediction(model, p, label, 0.5, 12.0, (0.5, 0.5), **kwargs)


# ----------------------------------------------------------------------------------- cards
def test_code_html_escapes_and_marks_code():
    assert cards.code_html("run `a<b>` & go") == "run <code>a&lt;b&gt;</code> &amp; go"


def test_a_notice_has_its_kind_colour_class_and_data_attributes():
    card = cards.notice_html("No `model` <here>", "warning", "fd-agreement", agree=True, x='"')
    assert card.startswith('<div class="fd-card fd-agreement" data-kind="warning"')
    assert 'data-agree="True"' in card and 'data-x="&quot;"' in card
    assert cards.NOTICE_COLOURS["warning"] in card and "<code>model</code>" in card
    assert "&lt;here&gt;" in card and "<here>" not in card
    assert "#616161" in cards.notice_html("x", "unknown kind")
    assert 'class="fd-card fd-notice" data-kind="info"' in cards.notice_html("x")


def test_a_bar_shows_its_model_label_threshold_and_band():
    bar = cards.bar_html(prediction("<m>"), "<m> · AI-generated")
    assert bar.startswith('<div class="fd-bar" data-model="&lt;m&gt;"')
    assert "&lt;m&gt; · AI-generated" in bar and "<m>" not in bar
    assert 'title="threshold"' in bar and "uncertain band" not in bar
    banded = detector.Prediction("m", 0.55, "uncertain", 0.5, 1.0, (0.4, 0.6))
    assert 'title="uncertain band"' in cards.bar_html(banded)
    assert "margin-bottom:2px" not in cards.bar_html(banded)  # no label line without a label


def test_warnings_are_listed_under_their_title_and_escaped():
    assert cards.warnings_html((), "Title") == ""
    shown = cards.warnings_html(["<small>", "grey"], "Why <not>")
    assert 'class="fd-warnings"' in shown and "Why &lt;not&gt;" in shown
    assert shown.count("<li>") == 2 and "&lt;small&gt;" in shown


def test_one_verdict_card_serves_both_apps():
    warned = prediction("<m>", warnings=("too small",))
    card = cards.verdict_html(warned)
    assert card.startswith('<div class="fd-verdict" data-label="fake" data-model=')
    assert 'data-model="&lt;m&gt;"' in card and "<m>" not in card
    assert cards.bar_html(warned) in card and 'class="fd-probability"' in card
    assert 'class="fd-detail"' in card and "12000 ms" in card
    assert "fd-warnings" not in card and "fd-reason" not in card  # Streamlit: under the card
    assert 'class="fd-detail"' not in cards.verdict_html(warned, compact=True)
    gradio = cards.verdict_html(warned, warnings_title=pres.WARNINGS_TITLE)
    assert cards.warnings_html(warned.warnings, pres.WARNINGS_TITLE) in gradio
    flipped = detector.Stability("<m>", 0.9, 0.5, 0.1, True, 0.3, 0.9, ("JPEG q90",))
    unstable = cards.verdict_html(warned, stability=flipped)
    reason = pres.verdict(warned, flipped).reason
    assert reason and f'<div class="fd-reason">{html.escape(reason)}</div>' in unstable


def test_presentation_re_exports_the_one_card_and_bar():
    assert pres.verdict_html is cards.verdict_html and pres.bar_html is cards.bar_html


# ----------------------------------------------------------------------------------- models
def test_find_model_picks_the_best_or_says_why_not():
    infos = [info("best"), info("second"), info("recipe", trained=False)]
    assert app_views.find_model(infos, "")[0] == infos[0]
    assert app_views.find_model(infos, None)[0] == infos[0]
    assert app_views.find_model(infos, "second") == (infos[1], None)
    assert app_views.find_model(infos, "recipe") == (None, pres.untrained_message(infos[2]))
    missing = app_views.find_model(infos, "nope")
    assert missing == (None, "Unknown model `nope`. Trained models: best, second.")
    assert app_views.find_model(infos[2:], "recipe") == (None, pres.no_models_message())


def test_stress_names_follow_the_scope():
    infos = [info("best"), info("second"), info("recipe", trained=False)]
    assert [value for _, value in app_views.STRESS_SCOPES] == ["selected", "all"]
    assert app_views.stress_names(infos, "second", "all") == (["best", "second"], None)
    assert app_views.stress_names(infos, "second", "selected") == (["second"], None)
    assert app_views.stress_names(infos, "", None) == (["best"], None)
    assert app_views.stress_names(infos[2:], "x", "all") == ([], pres.no_models_message())
    names, problem = app_views.stress_names(infos, "nope", "selected")
    assert names == [] and problem and "nope" in problem


def test_compare_view_lines_up_answers_and_failures():
    outcomes = [
        pres.ModelOutcome("a", prediction("a", 0.9)),
        pres.ModelOutcome("b", prediction("b", 0.2)),
        pres.ModelOutcome("c", error="broken"),
    ]
    view = app_views.compare_view(outcomes)
    assert 'class="fd-card fd-agreement"' in view.agreement
    assert 'data-kind="warning"' in view.agreement and 'data-agree="False"' in view.agreement
    assert view.bars.count('class="fd-bar"') == 2
    assert f"a · {pres.HEADLINES['fake']}" in view.bars
    assert [row[0] for row in view.rows] == ["a", "b", "c"]
    assert view.shown == [] and view.captions == []  # no heatmaps without explanations
    assert view.status.startswith("**`c` failed.** broken")
    agreed = app_views.compare_view(outcomes[:1])
    assert 'data-kind="ok"' in agreed.agreement and 'data-agree="True"' in agreed.agreement
    failed = app_views.compare_view(outcomes[2:])
    assert 'data-kind="error"' in failed.agreement and failed.bars == ""


def test_compare_payload_gives_each_model_a_score_or_an_error():
    outcomes = [pres.ModelOutcome("a", prediction("a")), pres.ModelOutcome("c", error="x")]
    payload = api_payloads.compare_payload(outcomes)
    assert set(payload["agreement"]) == {"unanimous", "label", "counts", "text"}
    assert payload["models"][0] == {**pres.api_result(outcomes[0].prediction), "error": None}
    assert payload["models"][1] == {"model": "c", "error": "x"}
    json.dumps(payload)


def test_explain_models_and_method_payloads():
    result = api_payloads.explain_payload(prediction("a"), "gradcam", 3)
    assert result == {**pres.api_result(prediction("a")), "method": "gradcam", "patch": 3}
    infos = [info("a"), info("r", trained=False)]
    assert api_payloads.models_payload(infos) == [i.to_dict() for i in infos]
    assert api_payloads.unknown_method("gradcam") is None
    problem = api_payloads.unknown_method("magic")
    assert problem and problem.startswith("Unknown method 'magic'; use one of: gradcam")


# ----------------------------------------------------------------------------------- evidence
def test_evidence_cards_of_a_readable_and_a_broken_file(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(make_image(32, 32)))
    ev = app_views.evidence_card(detector.inspect_file(good))
    headline, tone = pres.evidence_headline(detector.inspect_file(good))
    assert ev.readable and f'data-tone="{tone}"' in ev.card
    assert 'class="fd-card fd-evidence-headline"' in ev.card
    assert cards.code_html(headline) in ev.card
    assert ev.data == pres.inspect_result(detector.inspect_file(good))
    broken = tmp_path / "broken.png"
    broken.write_bytes(encode(make_image(32, 32))[:60])
    bad = app_views.evidence_card(detector.inspect_file(broken))
    assert not bad.readable and 'data-tone="unreadable"' in bad.card
    assert 'data-kind="error"' in bad.card
    card = app_views.evidence_error_card("cannot read")
    assert 'class="fd-card fd-evidence-headline" data-kind="error"' in card


# ----------------------------------------------------------------------------------- texts
def test_texts_and_example_credits(tmp_path):
    assert app_texts.EVIDENCE_INTRO.startswith(EVIDENCE_INTRO)
    assert app_texts.INTRO.startswith("# Is this image AI-generated?")
    assert 'api_name="/predict"' in app_texts.API_DOCS
    assert "### Privacy" in app_texts.API_DOCS
    intro = app_texts.batch_intro(100, 200 * 1024 * 1024)
    assert "at most 100 files and 200 MB." in intro
    examples = [
        {"file": "a.png", "label": "fake", "source": "kit", "author": "Ann"},
        {"file": "b.png", "label": "real", "licence": "CC0"},
    ]
    credits = example_gallery.credits_markdown(examples)
    assert credits.splitlines()[:2] == ["- #1: source: kit, author: Ann", "- #2: licence: CC0"]
    assert credits.endswith("See `assets/examples/ATTRIBUTION.md`.")
    assert (
        example_gallery.example_note(1, examples) == "**Example 2** is a real photo. licence: CC0"
    )
    assert example_gallery.example_credit(-1, examples) == ""
    assert set(example_gallery.FIELDS) >= {"file", "path", "label"}


@pytest.mark.parametrize("kind", ["info", "error", "warning", "ok"])
def test_every_notice_kind_has_a_colour(kind):
    assert cards.NOTICE_COLOURS[kind] in cards.notice_html("x", kind)
