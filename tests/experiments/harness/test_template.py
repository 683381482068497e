"""The experiment template: flags from the dataclass (real defaults), --quick precedence,
--seeds and --grid parsing, config.json completeness, the memory check, bad input."""

import dataclasses
import json

import pytest
from absl import flags

from experiments.harness import command_line, driver, template
from experiments.parity import experiment as parity

FIELDS = {f.name: f for f in dataclasses.fields(parity.Config)}


def test_every_field_is_a_flag_with_its_real_default_and_help():
    flag_values = flags.FlagValues()
    command_line.define_flags(parity.Config, flag_values)
    for name, field in FIELDS.items():
        default = flag_values[name].default
        expected = list(field.default) if isinstance(field.default, tuple) else field.default
        assert default == expected, name
        assert len(flag_values[name].help) > 10, name
    assert flag_values["hidden"].default == 16  # parity's, not the base's 32
    assert flag_values["steps"].default == 1000


def test_a_given_flag_beats_quick_which_beats_the_default():
    assert driver.parse(parity.EXPERIMENT, []).hidden == 16
    assert driver.parse(parity.EXPERIMENT, ["--quick"]).hidden == parity.QUICK["hidden"]
    assert driver.parse(parity.EXPERIMENT, ["--quick", "--hidden=5"]).hidden == 5
    assert driver.parse(parity.EXPERIMENT, ["--hidden=5"]).steps == 1000


def test_config_json_holds_every_value_that_affects_the_result(tmp_path):
    driver.call(parity.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", "--seeds=2",
                              "--grid=lr=0.01,0.02"])
    (run_dir,) = (tmp_path / "parity").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert set(config) == set(FIELDS) - set(template.Base.NOT_IN_CONFIG)
    assert config["hidden"] == parity.QUICK["hidden"] and config["grid"] == ["lr=0.01,0.02"]
    (pop_dir,) = [p for p in run_dir.iterdir() if p.is_dir()]
    members = json.loads((pop_dir / "config.json").read_text())["members"]
    assert [(m["seed"], m["lr"]) for m in members] == [(0, 0.01), (1, 0.01), (0, 0.02),
                                                       (1, 0.02)]
    rows = [json.loads(line) for line in (pop_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["member"] for r in rows}) == [0, 1, 2, 3]


@pytest.mark.parametrize("seeds, seed, expected", [
    ("1", 0, [0]), ("3", 5, [5, 6, 7]), ("0,3,7", 0, [0, 3, 7]), (" 2 ", 1, [1, 2]),
    ("4,", 0, None)])
def test_seeds_are_a_count_or_a_comma_separated_list(seeds, seed, expected):
    config = parity.Config(seeds=seeds, seed=seed)
    if expected is None:
        with pytest.raises(template.FlagError, match="--seeds: expected"):
            template.seeds_of(config)
    else:
        assert template.seeds_of(config) == expected


def test_the_grid_splits_member_values_from_shape_changing_ones():
    config = parity.Config(seeds="2", grid=("lr=0.01,0.1", "seq_len=5,7", "clip=0,1"))
    plan = template.expand(config)
    assert [c.seq_len for c, _ in plan] == [5, 7]
    members = plan[0][1]
    assert len(members) == 2 * 2 * 2
    assert {(m["lr"], m["clip"]) for m in members} == {(0.01, 0.0), (0.01, 1.0), (0.1, 0.0),
                                                      (0.1, 1.0)}
    assert all(isinstance(m["lr"], float) for m in members)


@pytest.mark.parametrize("argv, match", [
    (["--seeds=0"], "--seeds: expected a positive count or a list of distinct seeds >= 0, "
                    "received '0'"),
    (["--seeds=a,b"], "--seeds: expected a positive count or a list"),
    (["--seeds=1,1"], "--seeds: expected a positive count or a list"),
    (["--seeds=-1,2"], "--seeds: expected a positive count or a list"),
    (["--grid=bogus=1,2"], "--grid: expected a config field .*received 'bogus'"),
    (["--grid=lr=fast"], "--lr: expected float values, received 'fast'"),
    (["--grid=hidden=8.5"], "--hidden: expected int values, received '8.5'"),
    (["--grid=lr="], "--grid: expected name=v1,v2,... with at least one value"),
    (["--grid=lr"], "--grid: expected name=v1,v2,... with at least one value"),
    (["--grid=lr=0.1,0.1"], "--grid: expected distinct values"),
    (["--grid=lr=0.1", "--grid=lr=0.2"], "--grid: expected each field at most once"),
    (["--grid=seeds=1,2"], "--grid: expected a config field"),
    (["--grid=lr=0.1,-1"], "--lr: expected a positive, finite learning rate, received -1.0"),
    (["--grid=cell=lstm,transformer"], "--cell: expected one of"),
    (["--batch=100000000", "--seq_len=1000"], r"--seeds: expected a population that fits in "
                                              r"memory \(.* GiB here\), received '1 members, "
                                              r"estimated"),
    (["--seeds=abc"], "--seeds: expected a positive count"),
])
def test_bad_seeds_grids_and_populations_are_one_line_errors_before_anything_is_written(
        argv, match, tmp_path):
    with pytest.raises(template.FlagError, match=match):
        driver.call(parity.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])
    assert not (tmp_path / "parity").exists()
