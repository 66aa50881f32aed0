"""Purposes by name: an audit or consent list shows the alias or DPV purpose a grant's code stands for."""

from twinledger.chain.types import (
    DPV_NAMESPACE,
    DPV_PURPOSES,
    PURPOSE_ALIASES,
    purpose_code,
    purpose_label,
    purpose_text,
)


def test_aliases_and_dpv_purposes_are_named_by_their_code():
    assert purpose_label(purpose_code("research")) == "research (dpv:ScientificResearch)"
    assert purpose_label(purpose_code("dpv:ScientificResearch")) == "research (dpv:ScientificResearch)"
    assert purpose_label(purpose_code("dpv:ServiceMonitoring")) == "dpv:ServiceMonitoring"
    full = DPV_NAMESPACE + "Marketing"
    assert purpose_label(purpose_code(full)) == f"dpv:Marketing ({full})"
    for name in DPV_PURPOSES:  # every DPV purpose by its name; those with a short alias by the alias
        alias = [a for a, iri in PURPOSE_ALIASES.items() if iri == f"dpv:{name}"]
        label = purpose_label(purpose_code(f"dpv:{name}"))
        assert label == (f"{alias[-1]} (dpv:{name})" if alias else f"dpv:{name}")


def test_an_unknown_purpose_stays_its_code_and_text_passes_through():
    code = purpose_code("a study of my own")
    assert purpose_label(code) == "0x" + code.hex()  # a hash cannot be read back: shown, not guessed
    assert purpose_text("0x" + purpose_code("dpv:Marketing").hex()) == "dpv:Marketing"
    assert purpose_text("research") == "research"
