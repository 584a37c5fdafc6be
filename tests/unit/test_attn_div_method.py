"""The federated mapping of Attention Diversification (methods/attn_div/method.py)."""

import numpy as np
import pytest
import torch

from methods.attn_div.method import AttentionDiversification, source_domains
from methods.resolve import parse_run_spec

pytestmark = pytest.mark.unit

METHOD = AttentionDiversification()


def _spec(**sets):
    flat = {"method": "attn-div", "attn-div.train-per-domain": "40", "attn-div.test-per-domain": "20"}
    return parse_run_spec({**flat, **{f"attn-div.{k}": str(v) for k, v in sets.items()}})


def test_each_node_holds_one_source_domain_and_nobody_the_target():
    spec = _spec(**{"target-domain": 1})
    labels = METHOD.train_dataset(spec).y
    shards = METHOD.node_partition(spec, labels, 3)
    domains = [set((labels[s] // 10).tolist()) for s in shards]
    assert domains == [{0}, {2}, {3}] and all(len(s) == 40 for s in shards)
    # six nodes: each source domain is split between two nodes, disjointly
    six = METHOD.node_partition(spec, labels, 6)
    assert [set((labels[s] // 10).tolist()) for s in six] == [{0}, {2}, {3}] * 2
    assert len(np.intersect1d(six[0], six[3])) == 0 and len(six[0]) + len(six[3]) == 40


def test_the_domain_stage_trains_only_the_domain_model_of_the_batch_domain():
    spec = _spec(variant="domains", **{"target-domain": 0})
    torch.manual_seed(0)
    model = METHOD.build_model(spec)
    data = METHOD.train_dataset(spec)
    third = np.flatnonzero(data.y // 10 == 3)[:8]     # domain 3 = the third source of split 0
    loss = METHOD.train_step(model, (torch.tensor(data.x[third]), torch.tensor(data.y[third])), spec)
    loss.backward()
    has_grad = {name.split(".")[0] + (("." + name.split(".")[1]) if name.startswith("domain") else "")
                for name, p in model.named_parameters() if p.grad is not None}
    assert source_domains(spec.method) == [1, 2, 3]
    assert has_grad == {"domain_models.2"}


def test_a_target_domain_image_in_a_training_batch_is_refused():
    spec = _spec(variant="domains", **{"target-domain": 0})
    model = METHOD.build_model(spec)
    data = METHOD.train_dataset(spec)
    with pytest.raises(ValueError, match="target domain"):
        METHOD.train_step(model, (torch.tensor(data.x[:4]), torch.tensor(data.y[:4])), spec)


def test_stages_give_erm_intra_and_i2_the_same_schedule_per_split():
    spec = _spec(splits="2,3", **{"warm-rounds": 3, "final-rounds": 2})
    stages = {s.name: s for s in METHOD.stages(spec)}
    assert len(stages) == 12
    for t in (2, 3):
        assert stages[f"i2adr-{t}"].init_from == f"intra-warm-{t}"
        assert stages[f"erm-{t}"].init_from == f"erm-warm-{t}"
        for variant in ("erm", "intra", "i2adr"):
            final = stages[f"{variant}-{t}"]
            assert final.rounds == 2 and final.overrides["target_domain"] == t
            assert final.overrides["lr"] == pytest.approx(spec.method.lr / 16)
        assert stages[f"erm-warm-{t}"].rounds == stages[f"intra-warm-{t}"].rounds == 3
        # only the domain-model stage averages each domain model over its owner alone
        assert [n for n, s in stages.items() if s.average_changed_only and n.endswith(f"-{t}")] == [f"domains-{t}"]
