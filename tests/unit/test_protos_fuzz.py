"""Fuzzing every payload decoder: bad bytes end in PayloadError, never anything else.

A decoder sees bytes from peers it does not control. The claim tested here: for
any input, ``codec.decode`` either returns a message that passed its validator
(and survives encode -> decode unchanged) or raises ``PayloadError`` naming the
type. Any other exception (KeyError, RecursionError, UnicodeError, ...) fails.

Inputs: random bytes fed to every decoder, and valid encodings with some fields
replaced by arbitrary values (NaN, huge ints, junk strings, wrong versions) and
then mutated at the byte level (bit flips, truncation, appended or inserted
garbage). Each test counts the payloads it fed and checks the count; together
they are well over 10,000 (see EXAMPLES_*), in well under 20 s on two slow cores.
"""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import codec
from protos.codec import PayloadError
from test_protos import SHA, VALID_EXAMPLES  # the valid seed of each message type

pytestmark = pytest.mark.unit

# ---- inputs ----

_TYPES = list(VALID_EXAMPLES)
_IDS = [cls.DESCRIPTOR.name for cls in _TYPES]

_STRINGS = st.one_of(
    st.text(max_size=24),
    st.sampled_from(
        ["", "class", "sample", "{}", '{"a": 1}', "[1]", "null", '{"x": NaN}', "[" * 3000,
         "1" * 5000, SHA, SHA.upper(), "d-1"]
    ),
)
_DOUBLES = st.one_of(st.floats(), st.floats(0.0, 1.0), st.sampled_from([-0.0, 1.0 + 1e-12]))
_SCALARS = {
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: st.one_of(st.integers(-3, 12), st.integers(-(2**31), 2**31 - 1)),
    FieldDescriptor.TYPE_DOUBLE: _DOUBLES,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: _STRINGS,
}
_VERSIONS = st.sampled_from([0, 1, 2, 7, 2**32 - 1])


def _field_values(field: FieldDescriptor) -> st.SearchStrategy:
    scalar = _VERSIONS if field.name == "version" else _SCALARS[field.type]
    return st.lists(scalar, max_size=6) if field.is_repeated else scalar


@st.composite
def _encodings(draw, cls) -> bytes:
    """The valid seed of ``cls`` with up to three fields replaced by arbitrary values."""
    fields = cls.DESCRIPTOR.fields
    names = draw(st.lists(st.sampled_from([f.name for f in fields]), unique=True, max_size=3))
    msg = cls()
    msg.CopyFrom(VALID_EXAMPLES[cls])
    msg.version = codec.CURRENT_VERSION
    for field in fields:
        if field.name in names:
            value = draw(_field_values(field))
            if field.is_repeated:
                del getattr(msg, field.name)[:]
                getattr(msg, field.name).extend(value)
            else:
                setattr(msg, field.name, value)
    return msg.SerializeToString()


_POSITION = st.integers(0, 2**16)
_MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("flip"), _POSITION, st.integers(0, 7)),
        st.tuples(st.just("truncate"), _POSITION),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("insert"), _POSITION, st.binary(min_size=1, max_size=8)),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for op, *args in mutations:
        if op == "append":
            buf += args[0]
        elif op == "insert":
            i = args[0] % (len(buf) + 1)
            buf[i:i] = args[1]
        elif buf and op == "flip":
            buf[args[0] % len(buf)] ^= 1 << args[1]
        elif op == "truncate":
            del buf[args[0] % (len(buf) + 1):]
    return bytes(buf)


# ---- the oracle ----


def _decoded_or_refused(cls, data: bytes) -> bool:
    """True when ``data`` decoded; False on PayloadError; anything else propagates."""
    try:
        msg = codec.decode(cls, data)
    except PayloadError as exc:
        assert exc.message_type == cls.DESCRIPTOR.name and exc.field
        return False
    assert type(msg) is cls and msg.version == codec.CURRENT_VERSION
    # What decode accepts, encode accepts too, and it comes back unchanged.
    assert codec.decode(cls, codec.encode(msg)) == msg
    return True


# ---- the properties ----

# Examples per test. Each mutated example feeds 11 payloads (its semantic variant, then
# the byte-mutated one to all 10 decoders), each random one 10: in total
# 10 * 300 * 11 + 800 * 10 = 41,000 payloads, about 6 s of CPU on two slow cores.
EXAMPLES_PER_TYPE = 300
EXAMPLES_RANDOM = 800
# too_slow: on two busy cores generation time varies; a flaky health check would hide
# the property, and the example count above already bounds the run time.
_SLOW_CORES_OK = {"suppress_health_check": [HealthCheck.too_slow]}


@pytest.mark.parametrize("cls", _TYPES, ids=_IDS)
def test_mutated_encodings_are_decoded_or_refused(cls):
    fed = decoded = 0

    @settings(max_examples=EXAMPLES_PER_TYPE, deadline=None, **_SLOW_CORES_OK)
    @given(data=_encodings(cls), mutations=_MUTATIONS)
    def feed(data, mutations):
        nonlocal fed, decoded
        decoded += _decoded_or_refused(cls, data)
        mutated = _mutate(data, mutations)
        for target in _TYPES:  # also the wrong decoder: a payload read under the wrong key
            decoded += _decoded_or_refused(target, mutated)
        fed += 1 + len(_TYPES)

    feed()
    assert fed >= EXAMPLES_PER_TYPE * (1 + len(_TYPES))
    assert decoded > 0, "the generator never produced an acceptable payload"


def test_random_bytes_are_decoded_or_refused_by_every_decoder():
    fed = 0

    @settings(max_examples=EXAMPLES_RANDOM, deadline=None, **_SLOW_CORES_OK)
    @given(data=st.binary(max_size=256))
    def feed(data):
        nonlocal fed
        for cls in _TYPES:
            _decoded_or_refused(cls, data)
        fed += len(_TYPES)

    feed()
    assert fed >= EXAMPLES_RANDOM * len(_TYPES)
