"""docs/cli.md is generated from the parser; every subcommand must have its section there."""

from pathlib import Path

from ilcore.cli.main import build_parser

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def _names(parser, prefix="ilcore"):
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            for name, sub in choices.items():
                yield f"{prefix} {name}"
                yield from _names(sub, f"{prefix} {name}")


def test_every_subcommand_and_option_is_documented():
    text = DOC.read_text()
    parser = build_parser()
    names = list(_names(parser))
    assert "ilcore train bc" in names and "ilcore dagger" in names
    for name in names:
        assert f"## `{name}`" in text, f"{name} missing from docs/cli.md: run python scripts/gen_cli_docs.py"
    for action in parser._actions:
        for sub in (getattr(action, "choices", None) or {}).values():
            for opt in sub._actions:
                for flag in opt.option_strings:
                    assert flag in text, f"{flag} missing from docs/cli.md"


def test_every_subcommand_takes_json():
    def leaves(parser, name):
        subs = [a for a in parser._actions if isinstance(getattr(a, "choices", None), dict)]
        flags = {f for a in parser._actions for f in a.option_strings}
        if not subs or "--policy" in flags:  # `eval` runs itself as well as `eval oneshot`
            yield name, flags
        for action in subs:
            for sub_name, sub in action.choices.items():
                yield from leaves(sub, f"{name} {sub_name}")

    found = dict(leaves(build_parser(), "ilcore"))
    assert len(found) >= 10
    missing = [name for name, flags in found.items() if "--json" not in flags]
    assert not missing, f"subcommands without --json: {missing}"
