"""Claims about the deposit module stored and sent sparse (methods/lirf/sparse.py) and the
proof of possession a withdrawal needs (methods/lirf/possession.py, server/lirf_checks.py)."""

import numpy as np
import pytest
import torch

from methods.lirf.nets import SplitCNN
from methods.lirf.possession import new_challenge, new_key_pair, sign, withdrawal_message
from methods.lirf.pruning import magnitude_prune, make_permanent
from methods.lirf.sparse import BITMAP, INDEX, SHAPE, VALUES, nbytes, pack, unpack
from methods.lirf.withdraw import holds_module, module_sha256
from protos import fedvault_pb2 as pb
from server.lirf_checks import withdraw_refusal

pytestmark = pytest.mark.unit


def _pruned_module() -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    shallow = SplitCNN(1, 10).shallow
    magnitude_prune(shallow, 0.5)
    make_permanent(shallow)
    return {k: v.numpy().copy() for k, v in shallow.state_dict().items()}


def _expected(arrays):
    return {k: (v.shape, v.dtype) for k, v in arrays.items()}


def test_a_pruned_module_round_trips_bit_for_bit_in_about_half_the_bytes():
    module = _pruned_module()
    packed = pack(module)
    back = unpack(packed, _expected(module))
    assert module_sha256(back) == module_sha256(module)  # what the receipt binds
    assert all(back[k].tobytes() == module[k].tobytes() for k in module)
    assert any(k.endswith(BITMAP) for k in packed)  # the 50 % pruned conv weights
    assert 0.5 < nbytes(packed) / nbytes(module) < 0.65
    assert not any(np.signbit(v[v == 0]).any() for v in module.values())  # no −0.0 left


def test_exactness_holds_for_negative_zero_nan_and_very_sparse_arrays():
    rare = np.zeros(1000, np.float32)
    rare[[3, 999]] = [np.nan, -0.0]
    odd = np.array([[0.0, -0.0, 1.5]], np.float32)
    arrays = {"rare": rare, "odd": odd, "scalar": np.float32(2.0).reshape(()),
              "counts": np.array([0, 0, 7], np.int64)}
    packed = pack(arrays)
    assert {"rare" + INDEX, "rare" + VALUES, "rare" + SHAPE} <= set(packed)  # 2 of 1000: indices
    back = unpack(packed)
    assert all(back[k].tobytes() == np.asarray(v).tobytes() and back[k].shape == np.shape(v)
               for k, v in arrays.items())


@pytest.mark.parametrize("tamper", [
    lambda p: p.pop("1.0.weight" + VALUES),
    lambda p: p.update({"1.0.weight" + SHAPE: np.array([10**9, 10**9], np.int64)}),
    lambda p: p.update({"1.0.weight" + VALUES: p["1.0.weight" + VALUES][:-1]}),
    lambda p: p.update({"1.0.weight" + BITMAP: p["1.0.weight" + BITMAP][:-1]}),
    lambda p: p.update({"extra": np.zeros(3, np.float32)}),
])
def test_a_malformed_packed_module_is_refused_against_the_expected_shapes(tamper):
    module = _pruned_module()
    packed = pack(module)
    tamper(packed)
    with pytest.raises(ValueError):
        unpack(packed, _expected(module))


def test_the_server_finds_the_module_even_when_smuggled_in_sparse_form():
    module = _pruned_module()
    sha = module_sha256(module)
    assert holds_module({f"shallow.{k}": v for k, v in pack(module).items()}, sha)
    assert not holds_module({f"shallow.{k}": v + 1 for k, v in module.items()}, sha)


RECEIPT = pb.DepositReceipt(deposit_id="d", owner_node_id=5, module_sha256="a" * 64)


def _signed(private, challenge, node=5, run_id="run-1"):
    return sign(private, withdrawal_message(run_id, "d", "a" * 64, node, challenge))


def test_only_a_signature_by_the_deposit_key_over_this_challenge_is_accepted():
    private, public = new_key_pair()
    other_private, _ = new_key_pair()
    challenge, old = new_challenge(), new_challenge()
    request = pb.WithdrawRequest(deposit_id="d", requester_node_id=5)

    def refused(signature, sender=5, req=request, run_id="run-1"):
        return withdraw_refusal(req, signature, sender, RECEIPT, public, challenge, run_id)

    assert refused(_signed(private, challenge)) is None
    assert "no proof" in refused(b"")
    assert "does not verify" in refused(_signed(other_private, challenge))  # another key
    assert "does not verify" in refused(_signed(private, old))  # a replayed signature
    assert "does not verify" in refused(_signed(private, challenge), run_id="run-2")
    assert "does not verify" in refused(b"\x00" * 64)  # forged bytes
    # relayed: node 6 presents the owner's signature for node 5, in its own name
    relayed = pb.WithdrawRequest(deposit_id="d", requester_node_id=6)
    assert "does not verify" in refused(_signed(private, challenge), sender=6, req=relayed)
    assert "in the name of" in refused(_signed(private, challenge), sender=6)
    wrong_id = pb.WithdrawRequest(deposit_id="x", requester_node_id=5)
    assert "no receipt" in refused(_signed(private, challenge), req=wrong_id)
    # a new node id (a resumed simulation) that holds the key is accepted
    moved = pb.WithdrawRequest(deposit_id="d", requester_node_id=2000)
    assert refused(_signed(private, challenge, node=2000), sender=2000, req=moved) is None


def test_the_signed_message_separates_its_fields():
    a = withdrawal_message("r", "d1", "s", 1, b"c")
    assert a != withdrawal_message("rd", "1", "s", 1, b"c")  # length-prefixed, not joined
    assert len(new_challenge()) == 32 and new_challenge() != new_challenge()
