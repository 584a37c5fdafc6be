"""Claims about LIRF's algorithm pieces: losses, split nets, pruning, data layout, config."""

import numpy as np
import pytest
import torch

from methods.config import ConfigError
from methods.lirf.config import parse_sample_ids
from methods.lirf.data import deposit_indices, node_indices
from methods.lirf.losses import deposit_loss, kd, random_labels
from methods.lirf.nets import DepositNet, RecoveredNet, SplitCNN, deposit_class_mask
from methods.lirf.pruning import conv_sparsity, magnitude_prune, make_permanent
from methods.lirf.withdraw import holds_module, module_sha256, recovered_arrays, shallow_part
from methods.registry import get_method
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit
MASK = deposit_class_mask((0, 1, 2), 10)


def _spec(**over):
    return parse_run_spec({"method": "lirf", **{f"lirf.{k}": v for k, v in over.items()}})


def _net(seed=0):
    torch.manual_seed(seed)
    return SplitCNN(1, 10)


def test_kd_vanishes_for_equal_logits_and_ignores_the_other_classes():
    z = torch.randn(4, 10)
    other = z.clone()
    other[:, :3] += torch.randn(4, 3) * 5  # differs only on the deposit classes
    assert kd(other, z, ~MASK, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd(other, z, MASK, 4.0).item() > 0.01


def test_random_labels_cover_all_classes_not_only_the_preserved_ones():
    torch.manual_seed(0)
    labels = random_labels(torch.zeros(5000, dtype=torch.long), 10)
    assert set(labels.tolist()) == set(range(10))


def test_deposit_loss_trains_both_shallow_parts_and_never_the_deep_part_or_teacher():
    net = DepositNet(_net(), MASK)
    net.train()
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    deposit_loss(net(x), y, net.deposit_mask, temperature=4.0, alpha=0.8).backward()
    trained = [*net.target.shallow.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.deposit.parameters())
    assert all(p.grad is None for p in net.target.deep.parameters())
    assert all(p.grad is None for p in net.teacher.parameters())
    assert not net.target.deep.training and not net.teacher.training  # BN statistics frozen


def test_recovered_net_concatenates_deposit_logits_from_the_deposit_path():
    target, deposit = _net(0), _net(1).shallow
    recovered = RecoveredNet(target, deposit, MASK).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        out, z_target, z_deposit = recovered(x), target(x), target.deep(deposit(x))
    assert torch.equal(out[:, :3], z_deposit[:, :3]) and torch.equal(out[:, 3:], z_target[:, 3:])


def test_pruning_zeroes_half_of_each_conv_keeps_channels_and_holds_through_training():
    module = _net().shallow
    magnitude_prune(module, 0.5)
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    out = module(torch.randn(4, 1, 28, 28))
    out.pow(2).mean().backward()
    opt.step()
    make_permanent(module)
    assert conv_sparsity(module) == pytest.approx(0.5, abs=0.01)
    assert module(torch.randn(2, 1, 28, 28)).shape == (2, 32, 7, 7)  # what the deep part eats


def test_the_owner_holds_every_deposit_class_sample_and_the_retrain_drops_them():
    y = np.repeat(np.arange(10), 50)

    def iid(labels, n):
        order = np.random.default_rng(0).permutation(len(labels))
        return [np.sort(s) for s in np.array_split(order, n)]

    shards = node_indices(_spec(**{"owner-partition": 2}).method, y, 4, iid)
    assert sorted(np.concatenate(shards).tolist()) == list(range(500))
    assert set(np.flatnonzero(y < 3)) <= set(shards[2].tolist())
    assert all(not np.isin(y[s], (0, 1, 2)).any() for i, s in enumerate(shards) if i != 2)
    retrain = node_indices(_spec(**{"owner-partition": 2, "fedavg-data": "preserved"}).method,
                           y, 4, iid)
    assert not np.isin(y[np.concatenate(retrain)], (0, 1, 2)).any()
    assert len(np.concatenate(retrain)) == 350


def test_sample_level_deposit_is_owner_local_ids_and_its_classes():
    labels = np.array([5, 3, 5, 7, 1])
    indices, classes = deposit_indices(labels, level="sample", sample_ids=[2, 0, 3])
    assert indices.tolist() == [0, 2, 3] and classes == (5, 7)
    with pytest.raises(ValueError):
        deposit_indices(labels, level="sample", sample_ids=[9])
    with pytest.raises(ValueError, match="no sample"):
        deposit_indices(labels, level="class", classes=[0])
    with pytest.raises(ValueError, match="preserved"):  # nothing left for g to keep
        deposit_indices(np.array([0, 1, 2, 3, 1]), level="sample", sample_ids=[0, 1, 2, 3],
                        num_classes=4)


def test_sample_ids_accept_ranges_and_reject_nonsense():
    assert parse_sample_ids("0-3, 7,3") == (0, 1, 2, 3, 7)
    for bad in ("", "a", "5-2", "-1"):
        with pytest.raises(ConfigError):
            parse_sample_ids(bad)
    with pytest.raises(ConfigError):
        _spec(level="sample")  # no ids
    with pytest.raises(ConfigError):
        _spec(**{"deposit-classes": "1,1"})


def test_module_hash_finds_the_module_under_any_name_the_server_might_receive():
    method = get_method("lirf")
    arrays = method.shared_state(_net())
    module = shallow_part(method.shared_state(_net(1)))
    sha = module_sha256(module)
    assert not holds_module(arrays, sha)  # a target model
    assert holds_module({f"shallow.{k}": v for k, v in module.items()}, sha)  # as a "target"
    assert holds_module(recovered_arrays(arrays, module), sha)  # under "deposit."
    assert module_sha256({**module, "x": np.zeros(1)}) != sha


def test_sample_level_loss_anchors_retained_rows_and_trains_t_r_only_on_members():
    net = DepositNet(_net(), MASK).train()
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    out = net(x)
    losses = []
    for member in (None, torch.ones(8, dtype=torch.bool)):  # all rows in D_r: the class level
        torch.manual_seed(0)
        losses.append(deposit_loss(out, y, MASK, temperature=4.0, alpha=0.8, member=member))
    assert torch.allclose(losses[0], losses[1])
    retained = deposit_loss(net(x), y, MASK, temperature=4.0, alpha=0.8,
                            member=torch.zeros(8, dtype=torch.bool))
    again = deposit_loss(net(x), y, MASK, temperature=4.0, alpha=0.8,
                         member=torch.zeros(8, dtype=torch.bool))
    assert retained.item() == again.item()  # no random labels on retained samples
    retained.backward()
    assert all(p.grad is None for p in net.deposit.parameters())  # T_r learns D_r only
    assert any(p.grad.abs().sum() > 0 for p in net.target.shallow.parameters())


def test_class_level_anchors_train_t_r_only_and_leave_t_s_batchnorm_to_d_r():
    from methods.common.datasets import ArrayDataset
    from methods.lirf.data import anchored_deposit_set
    from methods.lirf.losses import anchored_deposit_loss

    net = DepositNet(_net(), MASK).train()
    x, y = torch.randn(8, 1, 28, 28), torch.tensor([0, 1, 2, 0, 5, 6, 7, 8])
    anchor = torch.tensor([False] * 4 + [True] * 4)
    stats = [b.clone() for b in net.target.shallow.buffers()]
    anchored_deposit_loss(net, x[4:], y[4:], anchor[4:], temperature=4.0, alpha=0.8).backward()
    # anchors alone: T_r learns (its deposit logits), T neither learns nor updates its BN stats
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.deposit.parameters())
    assert all(p.grad is None for p in net.target.shallow.parameters())
    assert all(torch.equal(a, b) for a, b in zip(stats, net.target.shallow.buffers()))
    # D_r rows get the official objective, weighted by their share of the batch
    torch.manual_seed(0)
    mixed = anchored_deposit_loss(net, x, y, anchor, temperature=4.0, alpha=0.8)
    torch.manual_seed(0)
    official = deposit_loss(net(x[:4]), y[:4], MASK, temperature=4.0, alpha=0.8)
    z_original, z_deposit = net.anchor_logits(x[4:])
    z = torch.where(MASK, z_deposit, z_original)
    anchor_term = 0.8 * kd(z, z_original, torch.ones_like(MASK), 4.0) + 0.2 * torch.nn.functional.cross_entropy(z, y[4:])
    assert torch.allclose(mixed, 0.5 * official + 0.5 * anchor_term, atol=1e-5)
    # the owner's data: 6 deposit-class rows, 4 preserved; 3 anchors are drawn among the 4
    data = ArrayDataset(np.zeros((10, 1, 2, 2), np.float32), np.array([0, 1, 2, 0, 1, 2, 5, 6, 7, 8]), 10,
                        "toy")
    drawn = anchored_deposit_set(data, np.arange(6), (0, 1, 2), 3, np.random.default_rng(0))
    assert drawn.member.tolist() == [True] * 6 + [False] * 3
    assert set(drawn.y[6:]) <= {5, 6, 7, 8} and len(set(drawn.y[6:])) == 3
    assert len(anchored_deposit_set(data, np.arange(6), (0, 1, 2), 99,
                                    np.random.default_rng(0)).y) == 10  # at most what it holds
    with pytest.raises(ConfigError, match="anchor-samples"):
        _spec(**{"anchor-samples": -1})
    with pytest.raises(ConfigError, match="anchor-samples"):
        _spec(**{"anchor-samples": 10, "level": "sample", "deposit-samples": "0-9"})


def test_an_owner_with_anchors_trains_on_d_r_plus_that_many_preserved_samples(tmp_path):
    from server.runner import Job, run_job
    from server.scenario import resolve
    from tests.inprocess_grid import InProcessGrid, partition_nodes

    torch.set_num_threads(1)
    tiny = {"data.dataset": "digits", "num-clients": "3", "num-server-rounds": "1",
            "lirf.local-epochs": "1", "lirf.deposit-epochs": "1", "node-wait-timeout": "2",
            "lirf.retrain-baseline": "false"}
    steps = {}
    for count in (0, 16):
        spec = resolve("lirf", {**tiny, "lirf.anchor-samples": str(count)})
        summary = run_job(InProcessGrid(partition_nodes(3)),
                          Job(spec=spec, run_dir=str(tmp_path / str(count))))
        steps[count] = summary["deposit_sample_steps"]
        assert 0 <= summary["recovered"]["pre_acc"] <= 1
    assert steps[16] == steps[0] + 16  # one deposit epoch: D_r's rows and 16 anchors
