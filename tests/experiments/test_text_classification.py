"""rnn_jax.data.speakers and experiments.text_classification: turns parsed from a made-up
play, the too-few-speakers error, the stratified fixed split, the many-to-one readout against
a Python loop, flag errors before any compile, and an end-to-end run that learns a corpus
where each speaker has their own words."""

import pathlib

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.text_classification import baselines
from experiments.text_classification import experiment as tc
from rnn_jax import readout, training
from rnn_jax.cells import get_cell
from rnn_jax.data import speakers

PLAY = """THE TRAGEDY OF NOBODY

ALICE:
Good morrow, sir.
How fare you?

BOB:
Well.

ALICE:
I am glad of it, Bob.

CAROL:

ALICE:
Farewell!

BOB:
Farewell, Alice; farewell.
"""


def test_turns_are_the_blocks_that_open_with_a_name():
    """The title block has no 'NAME:' line and CAROL's turn is empty: both skipped."""
    turns = speakers.parse_turns(PLAY)
    assert turns == [
        speakers.Turn("ALICE", ("Good morrow, sir.", "How fare you?")),
        speakers.Turn("BOB", ("Well.",)), speakers.Turn("ALICE", ("I am glad of it, Bob.",)),
        speakers.Turn("ALICE", ("Farewell!",)),
        speakers.Turn("BOB", ("Farewell, Alice; farewell.",))]
    assert speakers.parse_turns(PLAY.replace("\n", "\r\n")) == turns
    assert speakers.words("Farewell, Alice; farewell.") == (
        "farewell", ",", "alice", ";", "farewell", ".")


def test_examples_and_speaker_counts_follow_unit_and_min_words():
    turns = speakers.parse_turns(PLAY)
    per_turn = speakers.examples_of(turns, "line", min_words=3)
    assert per_turn == [[("good", "morrow", ",", "sir", "."), ("how", "fare", "you", "?")],
                        [], [("i", "am", "glad", "of", "it", ",", "bob", ".")], [],
                        [("farewell", ",", "alice", ";", "farewell", ".")]]
    assert speakers.top_speakers(turns, per_turn, 2, 1) == (("ALICE", "BOB"), (2, 1))
    whole = speakers.examples_of(turns, "turn", min_words=1)
    assert whole[0] == [("good", "morrow", ",", "sir", ".", "how", "fare", "you", "?")]
    assert speakers.top_speakers(turns, whole, 2, 2) == (("ALICE", "BOB"), (3, 2))


def test_a_text_with_too_few_speakers_says_how_many_it_has(key):
    with pytest.raises(ValueError, match="asked for 3 speakers, the text has 2 with >= 2 "
                                         "turns"):
        speakers.load(PLAY, speakers=3, min_turns=2, key=key)
    with pytest.raises(ValueError, match="asked for 2 speakers, the text has 1 with >= 3 "
                                         "turns"):
        speakers.load(PLAY, speakers=2, min_turns=3, key=key)


def make_play(num_speakers=3, turns_each=30, words_each=6, seed=0):
    """Each speaker draws the words of their turns from their own four words."""
    rng = np.random.default_rng(seed)
    vocab = {s: [f"w{s}x{i}" for i in range(4)] for s in range(num_speakers)}
    blocks = []
    for turn in range(turns_each * num_speakers):
        s = turn % num_speakers
        lines = [" ".join(rng.choice(vocab[s], words_each)) for _ in range(2)]
        blocks.append(f"SPEAKER {'ABCDEFGH'[s]}:\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def test_split_is_by_turn_stratified_and_fixed_by_the_key(key):
    data = speakers.load(make_play(), speakers=3, unit="line", key=key, test_fraction=0.2,
                         max_words=4)
    assert data.speakers == ("SPEAKER A", "SPEAKER B", "SPEAKER C")
    # 30 turns each, 6 held out per speaker; two lines per turn
    assert np.bincount(data.test.labels).tolist() == [12, 12, 12]
    assert np.bincount(data.train.labels).tolist() == [48, 48, 48]
    assert data.train.ids.shape == (144, 4) and (data.train.lengths == 4).all()
    again = speakers.load(make_play(), speakers=3, unit="line", key=key, max_words=4)
    np.testing.assert_array_equal(again.test.ids, data.test.ids)
    other = speakers.load(make_play(), speakers=3, unit="line", key=jax.random.key(1),
                          max_words=4)
    assert not np.array_equal(other.test.ids, data.test.ids)


def test_the_two_lines_of_a_turn_stay_on_one_side(key):
    """Turn i's two lines are made unique by a marker word 'tI': every marker is on one side."""
    play = "\n\n".join(f"{'AB'[i % 2]}:\nt{i} x\nt{i} y" for i in range(40))
    data = speakers.load(play, speakers=2, unit="line", key=key)
    sides = [{e[0] for e in examples.tokens} for examples in (data.train, data.test)]
    assert not sides[0] & sides[1] and len(sides[0] | sides[1]) == 40


def test_words_past_the_vocabulary_cap_and_padding_are_unknown(key):
    data = speakers.load(PLAY * 2, speakers=2, min_turns=2, key=key, vocab_size=3,
                         max_words=5)
    assert data.vocabulary.size == 3 and data.vocabulary.tokens[0] == "<unk>"
    index = {w: i for i, w in enumerate(data.vocabulary.tokens)}
    for examples in (data.train, data.test):
        for row, tokens in enumerate(examples.tokens):
            assert len(tokens) == examples.lengths[row] <= 5
            expected = [index.get(w, 0) for w in tokens] + [0] * (examples.ids.shape[1]
                                                                 - len(tokens))
            assert examples.ids[row].tolist() == expected


@pytest.mark.parametrize("cell_name", ["vanilla", "gru", "lstm"])
def test_last_state_readout_equals_a_python_loop_over_one_sequence(cell_name, key):
    """classify() of a padded batch == c + V h(length) from stepping the cell over the first
    `length` embedded words by hand; the padding's ids do not matter."""
    cell = get_cell(cell_name)
    params = tc.init_classifier(key, cell, 11, 5, 7, 4)
    ids = jax.random.randint(jax.random.fold_in(key, 1), (2, 9), 0, 11)
    lengths = jnp.array([9, 4])
    got = tc.classify(cell, params, ids.at[1, 4:].set(10), lengths)
    step = jax.jit(lambda carry, word: cell.step(  # one word: embed, project, step
        params.model.cell, carry, cell.project_inputs(params.model.cell, params.embed[word])))
    for row in range(2):
        carry = cell.initial_carry(params.model.cell)
        for t in range(int(lengths[row])):
            carry, h = step(carry, ids[row, t])
        expected = readout.linear(params.model.readout, h)
        np.testing.assert_allclose(got[row], expected, rtol=1e-5, atol=1e-6)


def write(tmp_path, text, name="play.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def quick(tmp_path, *argv):
    return driver.call(tc.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


@pytest.mark.slow
def test_end_to_end_learns_speakers_with_their_own_words(tmp_path):
    """Each speaker uses only their own words: the GRU population (two weight decays as
    members) and the n-gram baseline both classify the held-out turns almost perfectly; the
    majority class is at the prior."""
    pytest.importorskip("sklearn")
    path = write(tmp_path, make_play(num_speakers=3, turns_each=30))
    summary = quick(tmp_path, f"--data_path={path}", "--speakers=3", "--seeds=2",
                    "--grid=weight_decay=0,1e-4", "--steps=150", "--eval_every=50",
                    "--lr=1e-2", "--baseline", f"--figures_dir={tmp_path / 'fig'}")
    rows = summary["table"]  # one row per weight decay, each over its own 2 members
    assert [(r["weight_decay"], r["members"], r["test_examples"]) for r in rows] == [
        (0.0, 2, 18), (1e-4, 2, 18)]
    assert min(r["test_accuracy_mean"] for r in rows) >= 0.95
    majority, ngram = summary["baselines"]
    assert majority["test_accuracy_mean"] == pytest.approx(1 / 3)
    assert ngram["test_accuracy_mean"] == 1.0
    assert [r["test_examples"] for r in summary["prior"]] == [6, 6, 6]
    (figure,) = (tmp_path / "fig").glob("text_classification_*_curves.png")
    image = matplotlib.image.imread(figure)
    assert image.shape[1] > 1.5 * image.shape[0] and image.std() > 0.05  # two drawn panels


def test_majority_baseline_is_the_most_frequent_training_speaker(key):
    data = speakers.load(make_play(turns_each=10) + "\n" + "\n\n".join(
        f"SPEAKER A:\nwAx0 extra {i}" for i in range(10)), speakers=3, min_turns=2, key=key)
    result = baselines.majority(data)
    assert result["test_accuracy"] == pytest.approx(np.mean(data.test.labels == 0))
    assert result["train_accuracy"] == pytest.approx(np.mean(data.train.labels == 0))
    assert result["train_accuracy"] > 0.4  # A has twice the turns of B or C


@pytest.mark.parametrize("argv, match", [
    ([], (r"--data_path: expected a play's text file \(e.g. tinyshakespeare.txt\), "
         r"received ''")),
    (["--data_path=missing.txt"], (r"--data_path: expected a non-empty UTF-8 text file, "
                                  r"received '.*missing.txt', which does not exist")),
    (["--speakers=5"], r"--speakers: asked for 5 speakers, the text has 3 with >= 2 turns"),
    (["--speakers=1"], r"--speakers: expected an integer >= 2, received 1"),
    (["--min_turns=1"], r"--min_turns: expected an integer >= 2, received 1"),
    (["--max_words=2", "--min_words=3"], (r"--max_words: expected an integer >= "
                                         r"--min_words=3, received 2")),
    (["--vocab_size=1"], r"--vocab_size: expected an integer >= 2, received 1"),
    (["--test_fraction=1"], r"--test_fraction: expected a value in \(0, 1\), received 1.0"),
    (["--unit=word"], r"--unit: expected one of turn, line, received 'word'"),
    (["--embed=0"], r"--embed: expected an integer >= 1, received 0"),
])
def test_invalid_flags_fail_before_any_compile(argv, match, monkeypatch, tmp_path):
    monkeypatch.setattr(training, "make_train_step", lambda *a, **k: pytest.fail("compiled"))
    monkeypatch.chdir(tmp_path)
    data = [] if not argv or "data_path" in argv[0] else [
        f"--data_path={write(tmp_path, make_play(turns_each=4))}"]
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *data, *argv)
    assert not (tmp_path / "text_classification").exists()


def test_tiny_shakespeare_turns_and_speakers_when_present(key):
    """The page's numbers, when the corpus is at ../shared/data (skipped otherwise)."""
    path = pathlib.Path(__file__).parents[3] / "shared" / "data" / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip("tiny-shakespeare not at ../shared/data")
    text = path.read_text()
    assert len(speakers.parse_turns(text)) == 7097
    data = speakers.load(text, speakers=8, key=key)
    assert data.speakers[:4] == ("GLOUCESTER", "DUKE VINCENTIO", "MENENIUS", "ROMEO")
    assert data.turn_counts[0] == 211 and data.turn_counts[-1] == 127
    assert (len(data.train.labels), len(data.test.labels)) == (1031, 257)
