"""Every example in the ``deepfocus`` commands' help parses with that command's options."""

import shlex

import pytest

from deepfocus_radio.cli.main import _command_modules, build_parser


def _examples(text):
    """The ``deepfocus ...`` command lines of an epilog, continuations joined, comments cut."""
    lines, current = [], ""
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not current and not line.startswith("deepfocus "):
            continue
        current += " " + line
        if current.endswith("\\"):
            current = current[:-1]
            continue
        lines.append(shlex.split(current, comments=True))
        current = ""
    return lines


MODULES = list(_command_modules())


@pytest.mark.parametrize("module", MODULES, ids=[m.NAME for m in MODULES])
def test_every_help_example_parses(module):
    examples = _examples(module.EXAMPLE)
    assert examples, f"'deepfocus {module.NAME} --help' shows no example"
    assert any(words[1] == module.NAME for words in examples)
    parser = build_parser()
    for words in examples:  # a few show the next step with another command
        args = parser.parse_args(words[1:])  # argparse exits on an unknown option
        assert args.command == words[1]


def test_a_continued_example_is_one_command():
    text = ("examples:\n  deepfocus score a.ecsv b.ecsv \\\n      --plot s.png   # a plot\n"
            "not a command")
    assert _examples(text) == [["deepfocus", "score", "a.ecsv", "b.ecsv", "--plot", "s.png"]]
