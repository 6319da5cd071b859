"""The ``musicssl`` command's options: defaults read from the library, values checked on parsing.

No default is written in the command: ``Verb.option`` gives an option the default of the
parameter of the same name of the verb's library function, read from its signature only when
``--help`` prints it, and ``given`` passes on only the options the user gave, so the function
applies its own default. The types below refuse a bad value while the command line is parsed,
before any long work starts, with a message that argparse prefixes with the option's name.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.runtime import device_problem


class Default:
    """An option's default, read from the library only when ``--help`` prints it."""

    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read

    def __str__(self) -> str:
        value = self._read()
        if isinstance(value, (list, tuple)):
            return " ".join(str(item) for item in value) or "none"
        return "none" if value is None else str(value)


def default_of(function: str, name: str) -> Default:
    """The default of parameter ``name`` of ``function`` ("package.module:function")."""

    def read() -> Any:
        module, _, attribute = function.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        return inspect.signature(target).parameters[name].default

    return Default(read)


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` that the user gave, as keyword arguments."""
    values = {name: getattr(args, name) for name in names}
    return {name: value for name, value in values.items() if not isinstance(value, Default)}


class Verb:
    """A verb's parser whose options default to the parameters of one library function.

    Args:
        parser: the verb's parser.
        function: "package.module:function", whose keyword parameters the options set.
    """

    def __init__(self, parser: argparse.ArgumentParser, function: str) -> None:
        self.parser, self.function = parser, function

    def option(self, *flags: str, group: Any = None, **settings: Any) -> argparse.Action:
        """``add_argument``; an optional option without ``default`` takes the function's."""
        action = (group or self.parser).add_argument(*flags, **settings)
        if action.option_strings and not action.required and "default" not in settings:
            action.default = default_of(self.function, action.dest)
        return action


# --- numbers --------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


# --- paths ----------------------------------------------------------------------------------


def existing_folder(text: str) -> str:
    if not _is(Path(text), "dir"):
        raise argparse.ArgumentTypeError(_not_a(text, "folder"))
    return text


def model_folder(text: str) -> str:
    """A run or checkpoint folder, or hf:FOLDER (an audio model saved by Hugging Face; ``~``
    expanded, as the shell does not after ``hf:``)."""
    if text[:3].lower() == "hf:" and not text.startswith("hf:"):
        raise argparse.ArgumentTypeError(f"{text}: write hf: in lower case (hf:FOLDER)")
    if text.startswith("hf:"):
        if text == "hf:":
            raise argparse.ArgumentTypeError("hf: names no folder: give hf:FOLDER")
        return "hf:" + existing_folder(os.path.expanduser(text.removeprefix("hf:")))
    return existing_folder(text)


def existing_file(text: str) -> str:
    if not _is(Path(text), "file"):
        raise argparse.ArgumentTypeError(_not_a(text, "file"))
    return text


def _not_a(text: str, kind: str) -> str:
    """Why ``text`` is not the ``kind`` asked for: missing, or something else."""
    return f"{text}: {'no such' if not _is(Path(text), 'any') else 'not a'} {kind}"


def existing_path(text: str) -> str:
    if not _is(Path(text), "any"):
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return text


def output_folder(text: str) -> str:
    """A folder the verb may create, or reuse if it is its own (the verb decides)."""
    _not_empty(text)
    if _is(Path(text), "any") and not _is(Path(text), "dir"):
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a folder")
    return _creatable(text)


def corpus_folder(text: str) -> str:
    """A built-in corpus to read (one that holds its manifest may be read-only), or a folder
    the verb may build one in."""
    if _is(Path(text) / "manifest.jsonl", "file"):
        return text
    return output_folder(text)


def output_file(text: str) -> str:
    """A file the verb may write (over its own earlier output only: the verb decides)."""
    _not_empty(text)
    if _is(Path(text), "dir"):
        raise argparse.ArgumentTypeError(f"{text}: is a folder; give a file name")
    return _creatable(text)


def _not_empty(text: str) -> None:
    """An empty path is refused: read as the current folder, it would write there."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; give a name")


def _creatable(text: str) -> str:
    """``text`` if its nearest existing folder can take new entries; nothing is created."""
    folder = Path(text).absolute().parent
    while True:
        try:
            os.stat(folder)
            break
        except (FileNotFoundError, NotADirectoryError):
            if folder.parent == folder:
                break
            folder = folder.parent
        except OSError as error:  # a symbolic link loop, a name too long
            raise argparse.ArgumentTypeError(f"{text}: {folder}: {error.strerror}") from None
    if not _is(folder, "dir"):
        raise argparse.ArgumentTypeError(f"{text}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        reason = "read-only file system" if read_only else "permission denied"
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {folder} ({reason})")
    return text


def _is(path: Path, kind: str) -> bool:
    try:
        if kind == "dir":
            return path.is_dir()
        if kind == "file":
            return path.is_file()
        return path.exists()
    except OSError:  # a name too long, a folder we may not search
        return False


# --- the rest -------------------------------------------------------------------------------


def device_name(text: str) -> str:
    """``cpu``, ``mps``, ``cuda`` or ``cuda:N``; CUDA or MPS only where this machine has it."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r}: give cpu, cuda, cuda:N or mps")
    problem = None if kind == "cpu" else device_problem(text)  # cpu needs no torch yet
    if problem:
        raise argparse.ArgumentTypeError(f"{text}: {problem}; use --device cpu")
    return text


def layer_choice(text: str) -> str | int:
    """``all`` or a layer number; a negative one counts back from the last (-1)."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a layer number (0, 1, ..., or -1 for the last) or all"
        ) from None


def override(text: str) -> str:
    key, sep, _ = text.partition("=")
    if not sep or not key.strip() or text.startswith("-"):
        from musicssl.recipe_files import RECIPES

        if text.endswith((".yaml", ".yml")) or (RECIPES / f"{text}.yaml").is_file():
            raise argparse.ArgumentTypeError(
                f"{text!r} is a recipe: give the RECIPE first, then key=value settings"
            )
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value (e.g. train.steps=100)")
    return text


def recipe_file(text: str) -> str:
    """A packaged recipe's name or a recipe file, resolved to the file.

    A ``key=value`` word is passed on as it is: after ``--resume RUN`` it is an override, which
    the verb refuses with its own message.
    """
    from musicssl.recipe import recipe_path
    from musicssl.recipe_files import RECIPES

    if "=" in text and not os.path.exists(text):
        return text
    try:
        path = recipe_path(text)
    except MusicSSLError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not _is(path, "file"):
        packaged = (RECIPES / path.name).is_file() and path.parent == Path()
        hint = f" (the packaged recipe is named {path.stem}, without .yaml)" if packaged else ""
        raise argparse.ArgumentTypeError(f"{text}: no such recipe file{hint}")
    return str(path)
