"""The classroom quiz as a state machine: every move of `detector.ui.quiz`, on real values."""

from __future__ import annotations

import dataclasses

import pytest

import detector
from detector.ui import classroom as cr
from detector.ui import quiz


def prediction(p_fake: float, label: str, model: str = "a") -> detector.Prediction:
    return detector.Prediction(model, p_fake, label, 0.5, 0.01, (0.4, 0.6))


FAKE = [prediction(0.9, "fake", "a"), prediction(0.2, "real", "b")]


def test_new_game_is_a_seeded_shuffle_with_an_empty_score():
    state = quiz.new_game(5, seed=7, models=["a", "b"])
    assert sorted(state.order) == [0, 1, 2, 3, 4]
    assert state.order == tuple(quiz.quiz_order(5, 7)) == quiz.new_game(5, 7).order
    assert (state.count, state.game, state.pos, state.revealed, state.feedback) == (
        5,
        0,
        0,
        False,
        "",
    )
    assert state.score == {"rounds": 0, "you": 0, "models": {"a": 0, "b": 0}, "history": []}
    assert state.current == state.order[0] and not quiz.is_done(state)
    assert quiz.progress(state) == "Image 1 of 5"
    # fields read by name, as the page's session state is read
    assert state["order"] == state.order and state["score"]["rounds"] == 0


def test_new_game_of_no_rounds_is_done_at_once():
    state = quiz.new_game(0, seed=1)
    assert state.order == () and quiz.is_done(state) and state.current is None


def test_state_is_frozen():
    state = quiz.new_game(2, seed=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.pos = 1  # type: ignore[misc]


def test_reveal_scores_the_round_once():
    state = quiz.new_game(3, seed=3, models=["a", "b"])
    after = quiz.reveal(state, "AI-generated", "fake", FAKE, "\n- `c` failed: boom")
    assert after.revealed and after.pos == 0
    assert after.score["rounds"] == 1 and after.score["you"] == 1
    assert after.score["models"] == {"a": 1, "b": 0}
    assert after.score["history"] == [
        {"truth": "fake", "guess": "fake", "models": {"a": "fake", "b": "real"}}
    ]
    assert after.feedback.startswith("**You were right: this image is AI-generated.**")
    assert after.feedback.endswith("\n- `c` failed: boom")
    assert state.score["rounds"] == 0 and not state.revealed  # the old state is unchanged
    # a second reveal of the same round counts nothing
    assert quiz.reveal(after, "Real photo", "fake", FAKE) is after


def test_a_wrong_guess_counts_the_round_but_not_the_player():
    state = quiz.reveal(quiz.new_game(2, seed=1), "Real photo", "fake", FAKE)
    assert state.score["rounds"] == 1 and state.score["you"] == 0
    assert state.feedback.startswith("**Not this time: this image is AI-generated.**")


def test_reveal_without_a_guess_is_refused():
    state = quiz.new_game(2, seed=1)
    assert quiz.reveal(state, None, "fake", FAKE) is state
    assert quiz.reveal(state, "", "fake", FAKE) is state


def test_next_before_reveal_is_refused():
    state = quiz.new_game(2, seed=1)
    assert quiz.next_question(state) is state


def test_next_moves_on_and_clears_the_answer():
    state = quiz.reveal(quiz.new_game(2, seed=1, models=["a"]), "AI-generated", "fake", FAKE)
    after = quiz.next_question(state)
    assert (after.pos, after.revealed, after.feedback) == (1, False, "")
    assert after.score == state.score and after.current == after.order[1]
    assert quiz.progress(after) == "Image 2 of 2" and quiz.is_last(after)


def test_next_after_the_last_question_ends_the_game():
    state = quiz.new_game(2, seed=5, models=["a"])
    for truth in ("fake", "real"):
        assert not quiz.is_done(state)
        state = quiz.next_question(quiz.reveal(state, "AI-generated", truth, FAKE[:1]))
    assert quiz.is_done(state) and state.current is None and state.pos == 2
    assert state.score["rounds"] == 2 and state.score["you"] == 1
    assert cr.score_text(state.score) == "You 1/2 · `a` 1/2"
    # nothing more to reveal or to move on to
    assert quiz.reveal(state, "AI-generated", "fake", FAKE) is state
    assert quiz.next_question(state) is state


def test_play_again_resets_the_score_and_reshuffles_with_the_seed():
    state = quiz.new_game(6, seed=1, models=["a"])
    state = quiz.next_question(quiz.reveal(state, "AI-generated", "fake", FAKE[:1]))
    again = quiz.play_again(state, seed=2)
    assert again.game == 1 and again.pos == 0 and not again.revealed
    assert again.score == quiz.new_score(["a"]) and again.count == 6
    assert again.order == tuple(quiz.quiz_order(6, 2))
    assert quiz.play_again(again, seed=2, models=["b"]).score["models"] == {"b": 0}
    assert quiz.play_again(again, seed=2).game == 2


def test_reveal_notes_list_failures_then_the_example_note():
    assert quiz.reveal_notes([]) == ""
    assert quiz.reveal_notes([("m", "broken")]) == "\n- `m` failed: broken"
    assert quiz.reveal_notes([("m", "x")], "Credit: CC0") == "\n- `m` failed: x\n\nCredit: CC0"
    assert quiz.reveal_notes([], "Credit") == "\n\nCredit"


def test_the_classroom_module_re_exports_the_quiz():
    assert cr.new_game is quiz.new_game and cr.QuizState is quiz.QuizState
    assert cr.GUESSES == {"AI-generated": "fake", "Real photo": "real"}
