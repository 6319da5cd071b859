"""The ``musicssl`` command: a thin shell over the package's functions, in one error boundary.

The verbs live in ``musicssl.cli_verbs`` and its siblings (``cli_evaluate``, ``cli_search``,
``cli_readouts``, ``cli_data``: each verb's options beside the call they feed) and
their option types in ``musicssl.cli_options``: no default is written there, and options are
checked as they are parsed, before any long work starts. ``main`` sets the process-wide
settings (``musicssl.runtime``), parses, and runs the verb.

Exit status: 0 done; 1 an expected failure, told in one line on stderr that names the path or
option and the reason; 2 a bad command line; 70 a bug (a traceback, then a request to report
it); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, as a cluster's scheduler stops a job):
both end as an interrupted verb does, a run's checkpoints kept.
"""

from __future__ import annotations

import argparse
import errno
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

from musicssl.cli_verbs import add_verbs
from musicssl.errors import MusicSSLError
from musicssl.processes import is_first_process
from musicssl.runtime import configure_cpu_runtime, configure_torch

EXIT_FAILURE, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 70, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the verb is, so that it stops as on Ctrl-C."""


def _terminate_in(pid: int) -> Callable[[int, FrameType | None], None]:
    """The SIGTERM handler of the process ``pid``: raise ``Terminated`` there; a process it
    forked (a data loader's worker) ends as SIGTERM ends a process."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated

    return terminate


DESCRIPTION = """\
musicssl: self-supervised learning of music audio representations.

Typical path on the built-in corpus. Each clip carries its split (train, valid or test)
from its manifest on; pretraining reads the train split only, so evaluation never scores
audio the encoder trained on:
  musicssl corpus build --out {corpus}          # labelled clips, split by piece
  musicssl data pack {corpus}/manifest.jsonl --out data/store  # decode once; splits,
                                                   # labels and captions travel along
  musicssl pretrain {recipe} data.store=data/store --out runs/simclr
  musicssl evaluate runs/simclr --out reports/simclr   # every built-in task, and baselines
  musicssl compare reports/simclr reports/byol         # once reports/byol is made alike

Text-to-music search with an audio-text recipe (clap-shortchunk-cpu, slap-shortchunk-cpu):
  musicssl embed runs/clap {corpus}/audio --out clap.npz && musicssl index clap.npz --out idx
  musicssl search idx --run runs/clap --text "slow organ piece in a minor key"

Your own music: index it with --splits TABLE (a .csv of path,split) or --split-by parent
(one folder, one split); pretraining refuses a store whose clips carry no split.

Or all of it at once, on a laptop CPU in about a quarter of an hour:
  musicssl demo

`musicssl VERB --help` explains each verb's options and their defaults.
"""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, naming the option and the reason."""

    given: Sequence[str] = ()  # the command line being parsed

    def error(self, message: str) -> NoReturn:
        # A misspelt option goes unread, and argparse says first that one is missing.
        unknown = [
            arg.split("=", 1)[0]
            for arg in self.given
            if arg.startswith("--") and arg.split("=", 1)[0] not in self._option_string_actions
        ]
        if "required" in message and unknown:
            message += f"; {', '.join(unknown)} is not an option of {self.prog}"
        elif "required" in message and (greedy := self._greedy()):
            option, word = greedy
            missing = message.rsplit(": ", 1)[-1]
            message += (
                f" ({option} read {word} as one of its values: give {missing} before {option})"
            )
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _greedy(self) -> tuple[str, str] | None:
        """An option of many values (``--tasks A B``) that took more than one word, and the
        last of them: a positional argument given after it is read as one of its values."""
        for at, arg in enumerate(self.given):
            action = self._option_string_actions.get(arg)
            if action is None or action.nargs not in ("+", "*"):
                continue
            words = []
            for word in self.given[at + 1 :]:
                if word.startswith("-"):
                    break
                words.append(word)
            if len(words) > 1:
                return arg, words[-1]
        return None


def build_parser() -> argparse.ArgumentParser:
    from musicssl.demo import DEMO_RECIPE
    from musicssl.recipe import DEFAULT_CORPUS

    parser = Parser(
        prog="musicssl",
        description=DESCRIPTION.format(corpus=DEFAULT_CORPUS, recipe=DEMO_RECIPE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from musicssl import __version__

    parser.add_argument("-V", "--version", action="version", version=f"musicssl {__version__}")
    add_verbs(parser.add_subparsers(dest="verb", metavar="VERB", required=True))
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of a command line; exits (status 2) with one line when they are bad."""
    parser = build_parser()
    Parser.given = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options: `pretrain R.yaml --out X train.steps=5`.
    if extra and args.verb == "pretrain" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:  # the verb's own help lists what it takes
        parser.exit(EXIT_USAGE, f"musicssl: error: unrecognized arguments: {' '.join(extra)} "
                    f"(see musicssl {args.verb} --help)\n")  # fmt: skip
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``musicssl`` command; returns its exit status."""
    # OpenMP waiters that sleep, and a glibc that keeps freed memory (musicssl.runtime):
    # OpenMP reads its setting once, when torch loads, so this comes before anything else.
    configure_cpu_runtime()
    threading.excepthook = _background_failure
    # A file name that is not UTF-8 (an old Latin-1 rip) prints with its odd bytes escaped.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = parse(argv)
    except SystemExit as stop:  # --help (0) or a bad command line (2), already told
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    if threading.current_thread() is not threading.main_thread():  # no signals to take
        return run(args)
    before = signal.signal(signal.SIGTERM, _terminate_in(os.getpid()))
    try:
        return run(args)
    finally:
        signal.signal(signal.SIGTERM, before)


def _background_failure(hook: threading.ExceptHookArgs) -> None:
    """A helper thread's failure (a log writer on a full or read-only disk) as one line.

    The verb itself has failed, or will, with its own one-line reason; the thread adds its own.
    """
    if hook.exc_type is SystemExit:
        return
    reason = describe_os_error(hook.exc_value) if isinstance(hook.exc_value, OSError) else None
    print(f"musicssl: note: a background writer stopped ({reason or hook.exc_value!r})",
          file=sys.stderr)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run a parsed command inside the one error boundary."""
    try:
        if getattr(args, "uses_torch", False):
            configure_torch()
        args.run(args)
    except MusicSSLError as error:
        return _fail(str(error), EXIT_FAILURE)
    except OSError as error:
        if error.errno == errno.EPIPE:  # `musicssl compare ... | head`: the reader left
            return _quiet_broken_pipe()
        return _fail(describe_os_error(error, _output_of(args)), EXIT_FAILURE)
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated):
            return _fail(_interrupted(args, "terminated"), EXIT_TERMINATED)
        return _fail(_interrupted(args), EXIT_INTERRUPTED)
    except Exception as error:
        message = _known_failure(error, args)
        if message is None and not is_first_process() and _peer_stopped(error):
            return EXIT_FAILURE  # the run's first process stopped, and says why
        return _bug(error) if message is None else _fail(message, EXIT_FAILURE)
    return 0


# How torch's process groups say that another process of the run is gone.
PEER_GONE = ("closed by peer", "reset by peer", "Broken pipe", "process exited", "aborted")


def _peer_stopped(error: Exception) -> bool:
    """Whether ``error`` is a collective that failed because another process stopped."""
    return isinstance(error, RuntimeError) and any(words in str(error) for words in PEER_GONE)


def _interrupted(args: argparse.Namespace, stopped: str = "interrupted") -> str:
    """What an interrupted (or ``stopped``) verb left, and how to go on (a run resumes from
    its checkpoint).

    ``--resume`` is offered only for a folder that takes it: one stopped before it held a run
    (in the corpus build, say) has nothing to resume.
    """
    run = getattr(args, "resume", None) or (
        getattr(args, "out", None) if getattr(args, "recipe", None) is not None else None
    )
    if getattr(args, "verb", None) == "corpus" and getattr(args, "out", None):
        return (
            f"{stopped}: the clips finished in {args.out} are kept; run the same command "
            "again to finish the build"
        )
    verb = getattr(getattr(args, "run", None), "__name__", "")
    if verb == "run_demo":  # its run resumes and its embeddings are cached
        return (
            f"{stopped}: the corpus, the run's last checkpoint and the cached embeddings are "
            "kept; run the same command again to go on from there"
        )
    if verb in ("run_data_pack", "run_data_index"):
        done = "packed into" if verb == "run_data_pack" else "indexed for"
        return (
            f"{stopped}: what was {done} {args.out} (saved every few seconds) is kept; "
            "run the same command again to go on from there"
        )
    if run is None or not hasattr(args, "overrides"):
        return stopped
    from musicssl.checkpoint import check_resumable, is_run, latest

    try:
        check_resumable(run)
        kept = (
            f"the checkpoint {latest(run).name} is kept"
            if is_run(run)
            else "no checkpoint yet (it starts again from step 0)"
        )
    except MusicSSLError:
        return (
            f"{stopped} before {run} held a run, so nothing was saved there; "
            "run the same command again"
        )
    return f"{stopped}: {kept}; continue with `musicssl pretrain --resume {run}`"


def _known_failure(error: Exception, args: argparse.Namespace) -> str | None:
    """The line for a failure that is not raised as ours yet is no bug; None for a bug."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, torch.cuda.OutOfMemoryError):
        return f"{_first_line(error)}{_lower_batch(args)}"
    if isinstance(error, MemoryError):
        return f"out of memory{_lower_batch(args)}"
    # pathlib's resolve() (Python < 3.13) tells of a symbolic link loop this way.
    if isinstance(error, RuntimeError) and str(error).startswith("Symlink loop from "):
        where = str(error).removeprefix("Symlink loop from ").strip("'")
        return f"{where}: too many levels of symbolic links (ELOOP)"
    return None


def _bug(error: Exception) -> int:
    traceback.print_exc()
    from musicssl.plugins import failing_package

    found = failing_package(error)
    if found is not None:  # an installed package's method or encoder failed in its own code
        package, frame = found
        where = f"{frame.filename}, line {frame.lineno}, in {frame.name}"
        return _fail(f"the error is in the code of package {package} ({where}): "
                     f"{type(error).__name__}: {error}", EXIT_FAILURE)  # fmt: skip
    print("musicssl: error: this is a bug in musicssl: please report it with the command line "
          "and the traceback above", file=sys.stderr)  # fmt: skip
    return EXIT_BUG


def describe_os_error(error: OSError, output: str | None = None) -> str:
    """One line for a failed file operation: the path(s), the reason and its errno name.

    Writes that fail without a file name (a full disk under ``write``) name ``output``, the
    command's output option, when there is one.
    """
    reason = error.strerror or _first_line(error) or type(error).__name__
    code = errno.errorcode.get(error.errno or -1)
    if code:
        reason = f"{reason} ({code})"
    if error.filename is not None:
        where = os.fsdecode(error.filename)
        if error.filename2 is not None:
            where = f"{where} -> {os.fsdecode(error.filename2)}"
        return f"{where}: {reason}"
    if output is not None:
        return f"{reason}, while writing {output}"
    return reason


def _output_of(args: argparse.Namespace) -> str | None:
    for name in ("out", "resume"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            return value
    return None


def _lower_batch(args: argparse.Namespace) -> str:
    if args.verb == "pretrain":
        return "; lower train.batch_size"
    return "; lower --batch-size" if hasattr(args, "batch_size") else ""


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _fail(message: str, status: int) -> int:
    if not is_first_process():  # every process of a run meets the same; the first says it
        return status
    # One line, whatever the message holds.
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"musicssl: error: {text}", file=sys.stderr)
    return status


def _quiet_broken_pipe() -> int:
    # Python would complain again while flushing stdout at exit; point it at nothing.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
