"""Number formats shared by chips (what their arrays compute in) and tensors (how they are stored)."""

from __future__ import annotations

from enum import Enum


class DType(str, Enum):
    """A numeric format. The value is the name used in configs (``precision.weights=int4``)."""

    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    int8 = "int8"
    int4 = "int4"
    fp4 = "fp4"

    @property
    def bits(self) -> int:
        """Storage width in bits (tf32 is stored as 32-bit words)."""
        return _BITS[self]

    @property
    def is_integer(self) -> bool:
        return self in (DType.int8, DType.int4)

    @property
    def bytes(self) -> float:
        """Storage size in bytes; 0.5 for the 4-bit formats."""
        return _BITS[self] / 8


_BITS = {
    DType.fp32: 32,
    DType.tf32: 32,
    DType.bf16: 16,
    DType.fp16: 16,
    DType.fp8: 8,
    DType.int8: 8,
    DType.int4: 4,
    DType.fp4: 4,
}

KNOWN_DTYPES = tuple(d.value for d in DType)


def parse_dtype(name: str, where: str) -> DType:
    """Return the DType called ``name``; raise ValueError naming ``where`` and the known formats."""
    try:
        return DType(name)
    except ValueError:
        raise ValueError(
            f"{where}: unknown number format '{name}'; known formats: {', '.join(KNOWN_DTYPES)}"
        ) from None
