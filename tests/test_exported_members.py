from __future__ import annotations

import subprocess
import sys

import caproute


def test_all_is_sorted_and_resolvable() -> None:
    assert caproute.__all__ == sorted(caproute.__all__)
    for name in caproute.__all__:
        assert getattr(caproute, name) is not None, name


def test_unknown_attribute_raises() -> None:
    try:
        caproute.DoesNotExist  # noqa: B018
    except AttributeError as exc:
        assert "DoesNotExist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light() -> None:
    code = (
        "import sys, caproute; "
        "heavy = [m for m in ('pydantic', 'httpx', 'httpx2', 'anthropic', 'yaml', 'tenacity', "
        "'rich') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_all_matches_the_lazy_export_table() -> None:
    assert set(caproute.__all__) == {*caproute._EXPORTS, "__version__"}
