"""The error taxonomy: each family's transient form is its subclass with the ``Transient`` mixin, and ``typed``
picks it as a boundary's mapper decided; the ``error:``/``fix:`` text is the same either way."""

from __future__ import annotations

import pytest

from lakeforge.errors import (
    ConfigError,
    EngineError,
    LakeforgeError,
    ModelError,
    StorageError,
    Transient,
    TransientEngineError,
    TransientStorageError,
    TransientWarehouseError,
    WarehouseError,
)


@pytest.mark.parametrize(("family", "transient_form"), [
    (StorageError, TransientStorageError),
    (WarehouseError, TransientWarehouseError),
    (EngineError, TransientEngineError),
])
def test_each_family_has_a_transient_form(family: type[LakeforgeError], transient_form: type[LakeforgeError]) -> None:
    assert issubclass(transient_form, family) and issubclass(transient_form, Transient)
    assert not issubclass(family, Transient)
    again = family.typed("cannot read s3://b/x: 503", hint="run again", transient=True)
    assert type(again) is transient_form
    final = family.typed("cannot read s3://b/x: 403", hint="grant the access", transient=False)
    assert type(final) is family
    for error in (again, final):  # what the CLI prints: the message, then the fix
        assert (error.message.split(": ")[0], error.hint) in {("cannot read s3://b/x", "run again"),
                                                               ("cannot read s3://b/x", "grant the access")}
        assert str(error) == f"{error.message}\n  fix: {error.hint}"


def test_a_transient_form_typed_again_stays_itself() -> None:
    error = TransientWarehouseError.typed("lost", transient=True)
    assert type(error) is TransientWarehouseError and error.hint is None


@pytest.mark.parametrize("family", [ConfigError, ModelError, LakeforgeError])
def test_user_errors_have_no_transient_form(family: type[LakeforgeError]) -> None:
    assert type(family.typed("bad", transient=False)) is family
    with pytest.raises(TypeError, match="has no transient form"):
        family.typed("bad", transient=True)
