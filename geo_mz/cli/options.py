"""Click options the ``geo-mz`` commands share, and makers for the common shapes of option.

One place for the options many commands take (``--workspace``, ``--out``, ``--lang``,
``--strict``) and for the shapes that recur with other names: an input file
(:func:`file_option`) and a choice shown with its default (:func:`choice_option`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: Options most analysis commands share.
workspace_option = click.option(
    "--workspace", required=True, type=click.Path(dir_okay=False), help="工作空间 / workspace."
)
out_option = click.option(
    "--out",
    "out_dir",
    default="out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="输出目录 / output folder.",
)
lang_option = click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="输出语言 / output language.",
)

strict_option = click.option(
    "--strict",
    is_flag=True,
    help="路网质量不达标时失败(最大连通分量<90%长度或<50%人口可达) / fail when the road network "
    "fails its quality checks (largest component < 90 % of the length, < 50 % of people reached).",
)


def file_option(*decls: str, help: str, **kwargs: Any) -> Decorator:
    """Return an option naming an existing file (not a folder); None when not given.

    Parameters
    ----------
    *decls
        The option's names (and its parameter's), as for ``click.option``.
    help
        Its help text (Chinese first, then English).
    **kwargs
        More ``click.option`` settings.
    """
    return click.option(
        *decls, type=click.Path(exists=True, dir_okay=False), default=None, help=help, **kwargs
    )


def choice_option(
    *decls: str,
    choices: Sequence[str],
    default: str,
    help: str,
    **kwargs: Any,
) -> Decorator:
    """Return an option taking one of ``choices``, its default shown in the help.

    Parameters
    ----------
    *decls
        The option's names (and its parameter's), as for ``click.option``.
    choices
        The values it accepts.
    default
        The value when not given.
    help
        Its help text (Chinese first, then English).
    **kwargs
        More ``click.option`` settings.
    """
    return click.option(
        *decls,
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help=help,
        **kwargs,
    )


def with_options(options: Sequence[Decorator]) -> Decorator:
    """Return a decorator adding click ``options`` to a command, shown in the order listed."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


__all__ = [
    "choice_option",
    "file_option",
    "lang_option",
    "out_option",
    "strict_option",
    "with_options",
    "workspace_option",
]
