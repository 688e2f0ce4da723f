"""The quiz of the Classroom page: guess, reveal the models' verdicts and the truth, keep score.

The game is a `detector.ui.quiz.QuizState` (re-exported by `detector.ui.classroom`) kept in
``st.session_state["quiz"]``; the buttons' callbacks only call its pure moves. The section is a
fragment: answering reruns only the quiz.
"""

from __future__ import annotations

import secrets

import streamlit as st

from detector.ui import classroom as cr
from pages import common


def reveal(guess_key: str, example: cr.Example, number: int, names: list[str]) -> None:
    """Button callback: score the round once, with the models' verdicts."""
    state: cr.QuizState = st.session_state["quiz"]
    guess = st.session_state.get(guess_key)
    if not guess or state.revealed:
        return
    upload = common.example_upload(example, number)
    views = [common.analyse(upload, name, None) for name in names]
    predictions = [v.prediction for v in views if v.prediction is not None]
    failures = [(v.model, v.error) for v in views if not v.ok]
    note = cr.example_note(example, number) if example.credit else ""
    notes = cr.reveal_notes(failures, note)
    st.session_state["quiz"] = cr.reveal(state, guess, example.label, predictions, notes)


def next_round() -> None:
    """Button callback: move on to the next image."""
    st.session_state["quiz"] = cr.next_question(st.session_state["quiz"])


def play_again(names: list[str]) -> None:
    """Button callback: a new game, freshly shuffled, score reset."""
    st.session_state["quiz"] = cr.play_again(st.session_state["quiz"], secrets.randbits(32), names)


@st.fragment
def quiz(examples: list[cr.Example], names: list[str]) -> None:
    """Section 5: guess, then reveal the models' verdicts and the truth; the score is kept."""
    st.header("5 · Spot the fake")
    st.markdown(cr.QUIZ_INTRO)
    known = [(i, e) for i, e in enumerate(examples) if e.known]
    if not known:
        st.info(cr.NO_EXAMPLES, icon=":material/extension:")
        return
    state = st.session_state.get("quiz")
    if not isinstance(state, cr.QuizState) or state.count != len(known):
        state = st.session_state["quiz"] = cr.new_game(len(known), secrets.randbits(32), 0, names)
    if state.current is None:
        st.success(f"**Quiz complete.** {cr.score_text(state.score)}", icon=":material/flag:")
        st.button(
            "Play again", key="quiz_again", type="primary", on_click=play_again, args=(names,)
        )
        return

    number, example = known[state.current]
    upload = common.example_upload(example, number + 1)
    checked = common.check_upload(upload.digest, upload)
    left, right = st.columns(2, gap="large")
    with left:
        if checked.image is not None:
            st.image(checked.image, caption=cr.progress(state), width="stretch")
        else:
            st.error(f"This example cannot be read: {checked.error}")
    with right:
        guess_key = f"quiz_guess_{state.game}_{state.pos}"
        guess = st.radio(
            "Your guess: is this image AI-generated or a real photo?",
            list(cr.GUESSES),
            index=None,
            key=guess_key,
            disabled=state.revealed,
        )
        if not state.revealed:
            st.button(
                "Reveal the answer",
                key="quiz_reveal",
                type="primary",
                disabled=not guess,
                on_click=reveal,
                args=(guess_key, example, number + 1, names),
            )
        else:
            st.markdown(state.feedback)
            st.button(
                "See the final score" if cr.is_last(state) else "Next image",
                key="quiz_next",
                on_click=next_round,
            )
        if state.score["rounds"]:
            st.markdown(f"**Score so far:** {cr.score_text(state.score)}")
