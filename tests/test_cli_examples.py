"""Every example command we print in `--help` epilogs and show in the README parses: a
renamed or misspelt option in an example is a user's first error message."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from render3d.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser):
    """The parser and every sub-parser under it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def _command(line: str) -> list[str] | None:
    """The render3d arguments of one example line, or None when the line runs something else.
    An epilog's description follows the command after two or more spaces; a README line's
    after `#`; environment variables may come first; `[X]` is an optional placeholder, written as X."""
    line = re.split(r"\s{2,}|\s#", line.strip())[0].replace("[", "").replace("]", "")
    line = re.sub(r"^([A-Z_][A-Z0-9_]*=\S*\s+)+", "", line)          # environment variables first
    if not line.startswith(("render3d ", "torchrun ")):
        return None
    words = shlex.split(line)
    if "render3d" not in words or "..." in words:
        return None
    return words[words.index("render3d") + 1:]


def _examples() -> list[tuple[str, list[str]]]:
    found = []
    for parser in _parsers(build_parser()):
        for line in (parser.epilog or "").splitlines():
            if line.startswith("  ") and (words := _command(line)) is not None:
                found.append((parser.prog, words))
    readme = (REPO / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        for line in block.splitlines():
            if (words := _command(line)) is not None:
                found.append(("README.md", words))
    return found


EXAMPLES = _examples()
OPTIONS = {option for parser in _parsers(build_parser()) for action in parser._actions
           for option in action.option_strings}


def test_the_examples_are_found():
    sources = {source for source, _ in EXAMPLES}
    assert "README.md" in sources and "render3d" in sources and "render3d dataset synth" in sources
    assert len(EXAMPLES) > 40


@pytest.mark.parametrize("source,words", EXAMPLES, ids=[" ".join(w) for _, w in EXAMPLES])
def test_example_parses(source, words):
    # spelt out in full: argparse would also take an abbreviation, which hides a renamed option
    for word in words:
        assert not word.startswith("--") or word.split("=")[0] in OPTIONS, \
            f"{source}: `render3d {' '.join(words)}`: {word} is not an option"
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(words)
    except (SystemExit, argparse.ArgumentError) as error:
        pytest.fail(f"{source}: `render3d {' '.join(words)}` does not parse: {error}")
    # as main() does: only `train` takes the extra key=value overrides
    assert not extra or (getattr(args, "overrides", None) is not None and all("=" in e for e in extra)), \
        f"{source}: `render3d {' '.join(words)}`: unrecognized {extra}"


def test_version(capsys):
    import render3d
    from render3d.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"render3d {render3d.__version__}\n"


# the top-level usage was printed for a subcommand's misspelt option, hiding the options it has
@pytest.mark.parametrize("words, prog", [(["dataset", "synth", "out", "--count", "16"], "render3d dataset synth"),
                                         (["info", "--x"], "render3d info"), (["dataset", "--x"], "render3d dataset"),
                                         (["--x"], "render3d"),
                                         (["train", "a.yaml", "--out", "r", "-x"], "render3d train")])
def test_an_unknown_option_is_said_by_the_command_typed(words, prog, capsys):
    from render3d.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(words)
    err = capsys.readouterr().err
    assert done.value.code == 2 and f"\n{prog}: error: unrecognized arguments: " in err
    assert err.startswith(f"usage: {prog} ")


# `--seeds 0 1` (as a list is typed elsewhere) was said as "unrecognized arguments: 1" alone
@pytest.mark.parametrize("words, said", [
    (["render", "grid", "--seeds", "0", "1"], "1 (--seeds takes one value: --seeds 0,1)"),
    (["render", "grid", "--seeds", "0,", "2-4", "video"], "2-4 video (--seeds takes one value: --seeds 0,2-4)"),
    (["demo", "--seeds", "0-3", "7"], "7 (--seeds takes one value: --seeds 0-3,7)"),
    (["render", "grid", "--seeds", "0-3", "x"], "x"),             # not a seed: no hint
    (["export-mesh", "--seed", "0", "1"], "1")])                   # one seed only: no hint
def test_seeds_given_as_several_words_are_shown_as_one(words, said, capsys):
    from render3d.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(words)
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: unrecognized arguments: {said}")


@pytest.mark.parametrize("text, seeds", [("0-3", [0, 1, 2, 3]), ("1,5,7", [1, 5, 7]), (" 2 - 4 ,9", [2, 3, 4, 9]),
                                         (str(2 ** 64 - 1), [2 ** 64 - 1])])
def test_seeds_parse(text, seeds):
    from render3d.cli._args import parse_seeds

    assert parse_seeds("render", text) == seeds


# '0-3,3-1' dropped the empty range, '1_0' was 10 and an Arabic-Indic three was 3 (int() takes them)
@pytest.mark.parametrize("text", ["0-3,3-1", "3-1", "1_0", "\u0663", "", "1-", "-1", "1,,2", "0x10", "1.5",
                                  str(2 ** 64)])
def test_seeds_that_are_not_seeds_are_refused(text):
    from render3d.cli._args import UsageError, parse_seeds

    with pytest.raises(UsageError, match=re.escape(f"render3d render: --seeds expected ints in 0..2**64-1 like 0-3 "
                                                   f"or 1,5,7, got {text!r}")):
        parse_seeds("render", text)


# a slip like 0-100000000 built a list of 10^8 ints before anything was said; 0-(2**64-1) never ended
@pytest.mark.parametrize("text, count", [("0-100000000", 100000001), (f"0-{2 ** 64 - 1}", 2 ** 64),
                                         ("0-1000,2000-2023", 1025)])
def test_too_many_seeds_are_refused_before_the_list_is_made(text, count):
    from render3d.cli._args import MAX_SEEDS, UsageError, parse_seeds

    assert MAX_SEEDS == 1024
    with pytest.raises(UsageError, match=re.escape(f"render3d demo: --seeds expected at most 1024 seeds in one "
                                                   f"call, got {count} from {text!r}")):
        parse_seeds("demo", text)
    assert parse_seeds("demo", "0-1000,2000-2022") == [*range(1001), *range(2000, 2023)]   # 1024 pass
