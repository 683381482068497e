"""notebooks/README.md maps the notes' topics to notebook sections, experiment pages and library
functions: every relative link resolves, every `§ title` link names a section heading of its
notebook, and every `rnn_jax.…` name in the map imports."""

import importlib
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAP = ROOT / "notebooks" / "README.md"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
NAME = re.compile(r"`(rnn_jax(?:\.\w+)+)`")


def relative_links() -> list[tuple[str, str]]:
    links = LINK.findall(MAP.read_text(encoding="utf-8"))
    return [(text, target) for text, target in links if "://" not in target]


def headings(path: pathlib.Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [line.lstrip("#").strip() for cell in notebook.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def resolve(dotted: str):
    """`rnn_jax.a.b.c` -> the object: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_map_has_links_and_names():
    assert len(relative_links()) >= 30, f"expected the map's links, received {relative_links()}"
    assert len(NAME.findall(MAP.read_text(encoding="utf-8"))) >= 30


@pytest.mark.parametrize("text,target", relative_links())
def test_link_target_exists(text, target):
    path = (MAP.parent / target.split("#")[0]).resolve()
    assert path.exists(), (f"notebooks/README.md: link {text!r} points at {target}, which does "
                           "not exist")


@pytest.mark.parametrize("text,target", [(t, g) for t, g in relative_links() if t.startswith("§")])
def test_section_exists_in_its_notebook(text, target):
    section = text.removeprefix("§").strip()
    found = headings(MAP.parent / target)
    assert section in found, (f"notebooks/README.md: expected a section {section!r} in {target}, "
                              f"received the headings {found}")


@pytest.mark.parametrize("dotted", sorted(set(NAME.findall(MAP.read_text(encoding="utf-8")))))
def test_named_function_imports(dotted):
    resolve(dotted)  # raises if the module or the attribute is missing


def test_a_missing_link_or_name_fails(tmp_path):
    """The checks can fail: a made-up section and a made-up function are caught."""
    notebook = ROOT / "notebooks" / "seq2seq.ipynb"
    assert "No such section" not in headings(notebook)
    with pytest.raises(AttributeError):
        resolve("rnn_jax.seq2seq.decode.no_such_function")
    with pytest.raises(ModuleNotFoundError):
        resolve("no_such_package.module")
