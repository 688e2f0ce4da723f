"""The classroom quiz: its scoring, its texts and its rounds as a small state machine.

A game is a frozen `QuizState`; every move is a pure function returning the next state
(`new_game`, `reveal`, `next_question`), so a UI keeps the state (Streamlit in its session
state) and only calls the moves. A move the game does not allow at that point (revealing twice,
going on before the answer is revealed or after the last round) returns the state unchanged.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.core.results import Prediction
from detector.ui.presentation import HEADLINES, percent

#: The answers a player can give, and the labels they mean.
GUESSES: dict[str, str] = {"AI-generated": "fake", "Real photo": "real"}


# ---------------------------------------------------------------------------------- scoring


def quiz_order(count: int, seed: int | None = None) -> list[int]:
    """A shuffled order of ``count`` quiz rounds (the same for the same seed)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order


def new_score(models: Sequence[str] = ()) -> dict[str, Any]:
    """An empty quiz score (a plain dict, ready for a UI's session state)."""
    return {"rounds": 0, "you": 0, "models": {name: 0 for name in models}, "history": []}


def score_round(
    score: Mapping[str, Any], guess: str, truth: str, predictions: Sequence[Prediction]
) -> dict[str, Any]:
    """The score after one round (a new dict; ``score`` is not changed).

    A model is right when its label equals the truth; ``uncertain`` counts as not right.
    """
    guessed = GUESSES.get(guess, guess)
    models = dict(score.get("models", {}))
    for prediction in predictions:
        right = prediction.label == truth
        models[prediction.model] = models.get(prediction.model, 0) + int(right)
    history = [
        *score.get("history", []),
        {
            "truth": truth,
            "guess": guessed,
            "models": {p.model: p.label for p in predictions},
        },
    ]
    return {
        "rounds": int(score.get("rounds", 0)) + 1,
        "you": int(score.get("you", 0)) + int(guessed == truth),
        "models": models,
        "history": history,
    }


def round_feedback(guess: str, truth: str, predictions: Sequence[Prediction]) -> str:
    """What to say when a round is revealed (Markdown)."""
    guessed = GUESSES.get(guess, guess)
    answer = "AI-generated" if truth == "fake" else "a real photo"
    you = "You were right" if guessed == truth else "Not this time"
    lines = [f"**{you}: this image is {answer}.**", "", "What the models said:"]
    for p in predictions:
        if p.label == "uncertain":
            mark = "unsure, counts as not right"
        else:
            mark = "right" if p.label == truth else "wrong"
        lines.append(
            f"- `{p.model}`: {HEADLINES[p.label].lower()}, P(AI-generated) {percent(p.p_fake)} "
            f"({mark})"
        )
    return "\n".join(lines)


def score_text(score: Mapping[str, Any]) -> str:
    """The running score in one line."""
    rounds = int(score.get("rounds", 0))
    parts = [f"You {score.get('you', 0)}/{rounds}"]
    parts += [f"`{name}` {right}/{rounds}" for name, right in score.get("models", {}).items()]
    return " · ".join(parts)


def reveal_notes(failures: Sequence[tuple[str, str | None]], note: str = "") -> str:
    """What follows the round feedback: the models that failed, then the example's note."""
    text = "".join(f"\n- `{model}` failed: {error}" for model, error in failures)
    return f"{text}\n\n{note}" if note else text


# ---------------------------------------------------------------------------------- rounds
@dataclass(frozen=True)
class QuizState:
    """One game: the shuffled order of the rounds, the current one and the score so far.

    ``count`` is the number of quiz images the game was dealt for, ``game`` counts the games
    played in a session (it keys the answer widgets, so a new game starts with fresh ones),
    ``revealed`` says whether the current round's answer is shown and ``feedback`` is that
    answer (Markdown). Fields can also be read by name (``state["score"]``).
    """

    count: int
    order: tuple[int, ...]
    score: dict[str, Any]
    game: int = 0
    pos: int = 0
    revealed: bool = False
    feedback: str = ""
    models: tuple[str, ...] = field(default=())

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    @property
    def current(self) -> int | None:
        """The index (into the quiz images) of the current round, or None once the game ends."""
        return None if is_done(self) else self.order[self.pos]


def new_game(count: int, seed: int | None, game: int = 0, models: Sequence[str] = ()) -> QuizState:
    """A fresh game of ``count`` rounds shuffled with ``seed``, the score at zero."""
    return QuizState(
        count=count,
        order=tuple(quiz_order(count, seed)),
        score=new_score(models),
        game=game,
        models=tuple(models),
    )


def play_again(
    state: QuizState, seed: int | None, models: Sequence[str] | None = None
) -> QuizState:
    """The next game of a session: reshuffled with ``seed``, score reset, ``game`` counted up."""
    chosen = state.models if models is None else models
    return new_game(state.count, seed, state.game + 1, chosen)


def is_done(state: QuizState) -> bool:
    """Whether every round has been played (the final score is due)."""
    return state.pos >= len(state.order)


def is_last(state: QuizState) -> bool:
    """Whether the current round is the last one."""
    return state.pos + 1 >= len(state.order)


def reveal(
    state: QuizState,
    guess: str | None,
    truth: str,
    predictions: Sequence[Prediction],
    notes: str = "",
) -> QuizState:
    """Score the current round once and show its answer (``notes`` follow the feedback).

    Without a guess, once the round is revealed or after the last round: unchanged.
    """
    if not guess or state.revealed or is_done(state):
        return state
    score = score_round(state.score, guess, truth, predictions)
    feedback = round_feedback(guess, truth, predictions) + notes
    return dataclasses.replace(state, score=score, revealed=True, feedback=feedback)


def next_question(state: QuizState) -> QuizState:
    """Go on to the next round (past the last one: the game is done).

    Before the answer is revealed, or once the game is done: unchanged.
    """
    if not state.revealed or is_done(state):
        return state
    return dataclasses.replace(state, pos=state.pos + 1, revealed=False, feedback="")


def progress(state: QuizState) -> str:
    """The current round's caption, e.g. ``Image 2 of 3``."""
    return f"Image {state.pos + 1} of {len(state.order)}"
