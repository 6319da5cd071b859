import inspect
from collections.abc import Sequence

import pytest

from musicssl.augment import CHAINS, chain_options
from musicssl.encoders import ENCODERS, encoder_options
from musicssl.errors import MusicSSLError
from musicssl.methods import METHODS, method_options
from musicssl.options import coerce, describe, typed_options

REGISTRIES = [
    ("encoder", ENCODERS, encoder_options, ()),
    ("method", METHODS, method_options, ("encoder",)),
    ("augment", CHAINS, chain_options, ("sr", "num_samples")),
]


def _defaults(factory, given) -> dict | None:
    """The factory's options and their defaults; None when one has no default."""
    parameters = [p for p in inspect.signature(factory).parameters.values() if p.name not in given]
    if any(p.default is p.empty for p in parameters):
        return None
    return {p.name: p.default for p in parameters}


@pytest.mark.parametrize(("section", "registry", "options_of", "given"), REGISTRIES)
def test_every_registry_entry_takes_its_own_defaults_as_they_are(
    section, registry, options_of, given
):
    for name, factory in registry.items():
        defaults = _defaults(factory, given)
        if defaults is None:  # branches, combined: a required option (tested below)
            continue
        typed = options_of(name, defaults)
        assert typed == defaults, name
        assert [type(v) for v in typed.values()] == [type(v) for v in defaults.values()], name


@pytest.mark.parametrize(("section", "registry", "options_of", "given"), REGISTRIES)
def test_every_registry_refuses_an_unknown_entry_and_option_in_one_line(
    section, registry, options_of, given
):
    with pytest.raises(MusicSSLError, match=f"unknown .*'nonesuch'.*{sorted(registry)[0]}"):
        options_of("nonesuch", {})
    name = sorted(registry)[0]
    with pytest.raises(MusicSSLError) as caught:
        options_of(name, {"nonesuch": 1})
    assert str(caught.value).startswith(f"{section}.options.nonesuch: ")
    assert "takes no option 'nonesuch'" in str(caught.value) and "\n" not in str(caught.value)


def test_options_are_read_as_the_type_of_the_argument_they_set():
    typed = encoder_options(
        "spectrogram_vit", {"width": 96.0, "mlp_ratio": 2, "patch": (12, 16), "f_min": "null"}
    )
    assert typed == {"width": 96, "mlp_ratio": 2.0, "patch": (12, 16), "f_min": None}
    assert (type(typed["width"]), type(typed["mlp_ratio"])) == (int, float)
    assert method_options("bestrq", {"codebook_size": "1e3"}) == {"codebook_size": 1000}
    assert method_options("mae", {"noise_snr_db": [20, 40]}) == {"noise_snr_db": [20.0, 40.0]}
    assert chain_options("clmr", {"p_noise": 1}) == {"p_noise": 1.0}


def test_a_required_option_left_out_is_named():
    with pytest.raises(MusicSSLError, match=r"^method\.options\.terms: method combined needs"):
        method_options("combined", {})


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (int, "a whole number"),
        (float | None, "a number or null"),
        (bool, "true or false"),
        (Sequence[int] | None, "a list of whole numbers or null"),
        (tuple[float, float], "a list of 2 numbers"),
        (list[str], "a list of strings"),
        (dict[str, int], "a mapping"),
    ],
)
def test_types_are_described_in_words(kind, words):
    assert describe(kind) == words


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("abc", float),
        (None, int),
        (True, int),
        (2.5, int),
        ("yes", bool),
        (1, bool),
        ([1, 2], str),
        ("abc", Sequence[float]),
        ([1, 2, 3], tuple[int, int]),
        (["a"], list[float]),
        ([1], dict[str, int]),
    ],
)
def test_values_of_another_type_are_refused_naming_the_key_value_and_type(value, kind):
    with pytest.raises(MusicSSLError) as caught:
        coerce(value, kind, "x.y")
    assert str(caught.value) == f"x.y must be {describe(kind)}, got {value!r}"


def test_a_factory_with_keyword_catch_all_takes_any_option():
    def factory(sr: int, **options: float) -> None: ...

    assert typed_options("f", "f.options", factory, {"anything": "x"}) == {"anything": "x"}


def test_a_factory_without_annotations_reads_options_as_its_defaults_types():
    def factory(encoder, *, dim=32, scale=1.0, name="x", flag=False, other=None):
        return None

    given = {"dim": "8", "scale": "1e-3", "name": "y", "flag": "true", "other": "1e-3"}
    read = typed_options("method mine", "method.options", factory, given, given=["encoder"])
    assert read == {"dim": 8, "scale": 0.001, "name": "y", "flag": True, "other": "1e-3"}
    # A whole-number default does not say a fraction is wrong: it is taken as it is.
    half = typed_options(
        "method mine", "method.options", factory, {"dim": "0.5"}, given=["encoder"]
    )
    assert half == {"dim": 0.5}
    with pytest.raises(MusicSSLError, match="method.options.scale"):
        typed_options(
            "method mine", "method.options", factory, {"scale": "much"}, given=["encoder"]
        )
