"""Tests for wssweep.science.models: shapes, seeding, init_scale and custom factories."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wssweep.config import ModelConfig
from wssweep.errors import InputError
from wssweep.science.models import build_model, last_linear

torch.set_num_threads(1)

# (name, input_shape, extra build kwargs) covering the datasets the studies use.
CASES = [
    ("logreg", (40,), {}),  # MNIST-1D
    ("logreg", (64,), {}),  # sklearn digits
    ("mlp", (40,), {}),
    ("mlp", (64,), {"activation": "tanh", "depth": 3, "width": 32}),
    ("mlp", (3, 32, 32), {"bias": False}),  # CIFAR through the flattening MLP
    ("conv1d", (40,), {}),
    ("resnet18", (3, 32, 32), {"resnet_width": "narrow"}),
]


HERE = "tests.science.test_models:"


def tiny_factory(input_shape, num_classes, hidden=8):
    """A custom model factory that takes the data's shape and class count."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.Linear(hidden, num_classes)
    )


def bare_factory(hidden=4):
    """A custom model factory that knows nothing of the data."""
    return nn.Sequential(nn.Linear(40, hidden), nn.Linear(hidden, 10))


def not_a_module(**kwargs):
    """A broken factory: returns no nn.Module."""
    return 3


def _build(name, shape, seed=0, **kw):
    return build_model(ModelConfig(name=name, **kw), input_shape=shape, num_classes=10, seed=seed)


@pytest.mark.parametrize(("name", "shape", "kw"), CASES)
def test_forward_shape(name, shape, kw):
    model = _build(name, shape, **kw)
    out = model(torch.randn(4, *shape))
    # each model maps a batch of 4 examples to 10 logits
    assert out.shape == (4, 10)


def test_conv1d_matches_mnist1d_convbase():
    model = _build("conv1d", (40,))
    # the MNIST-1D ConvBase flattens 25 channels × 5 positions for L = 40
    assert last_linear(model).in_features == 125
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    # three Conv1d layers with the paper's kernels 5, 3, 3, stride 2, padding 1
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (5, 2, 1),
        (3, 2, 1),
        (3, 2, 1),
    ]


def test_mlp_layout_and_bias_free():
    model = _build("mlp", (64,), depth=2, width=100, bias=False)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # depth 2 means two hidden layers plus the classifier: 64→100→100→10
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 100), (100, 100), (100, 10)]
    # bias=False removes every bias
    assert all(m.bias is None for m in linears)


def test_resnet18_widths_and_channels():
    narrow = _build("resnet18", (3, 32, 32))
    # the narrow ResNet-18 (Ash & Adams) ends at 128 channels
    assert last_linear(narrow).in_features == 128
    # no max-pool: CIFAR ResNet-18 keeps the 3×3 stride-1 stem
    assert not any(isinstance(m, nn.MaxPool2d) for m in narrow.modules())
    standard = _build("resnet18", (3, 32, 32), resnet_width="standard")
    # the standard ResNet-18 ends at 512 channels
    assert last_linear(standard).in_features == 512
    # a tiny batch through the standard width gives the right logits shape
    assert standard(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    gray = _build("resnet18", (1, 16, 16))
    # any number of input channels works (here 1-channel 16×16 images)
    assert gray(torch.randn(2, 1, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize(("name", "shape", "kw"), CASES)
def test_same_seed_same_weights_other_seed_different(name, shape, kw):
    a, b, c = (
        _build(name, shape, 3, **kw),
        _build(name, shape, 3, **kw),
        _build(name, shape, 4, **kw),
    )
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    # the same seed gives bit-identical parameters and buffers
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # a different seed gives different weights
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


def test_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    _build("resnet18", (3, 32, 32))
    _build("mlp", (40,), seed=9)
    # building models leaves the global CPU RNG state exactly as it was
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize(
    ("name", "shape"), [("mlp", (40,)), ("conv1d", (40,)), ("resnet18", (3, 8, 8))]
)
def test_init_scale_multiplies_weights_exactly(name, shape):
    base = dict(_build(name, shape).named_parameters())
    scaled = dict(_build(name, shape, init_scale=2.5).named_parameters())
    for key, p in base.items():
        if p.ndim >= 2:
            # every Linear/Conv weight is the default init times 2.5, bit for bit
            assert torch.equal(scaled[key], p * 2.5), key
        else:
            # biases and BatchNorm parameters keep their default init
            assert torch.equal(scaled[key], p), key


def test_custom_factory_with_shape_and_classes():
    model = build_model(
        ModelConfig(name="custom", factory=HERE + "tiny_factory", kwargs={"hidden": 5}),
        input_shape=(40,), num_classes=7, seed=1,
    )
    # the factory received input_shape, num_classes and the user's kwargs
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [5, 7]
    again = build_model(
        ModelConfig(name="custom", factory=HERE + "tiny_factory", kwargs={"hidden": 5}),
        input_shape=(40,), num_classes=7, seed=1,
    )
    # custom factories are seeded too
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True)
    )


def test_custom_factory_without_shape_gets_only_kwargs():
    model = build_model(
        ModelConfig(name="custom", factory=HERE + "bare_factory", kwargs={"hidden": 6}),
        input_shape=(40,), num_classes=10, seed=0,
    )
    # a factory that takes neither input_shape nor num_classes is called with kwargs alone
    assert model(torch.randn(2, 40)).shape == (2, 10)


def test_custom_factory_errors():
    with pytest.raises(InputError) as bad_path:
        build_model(ModelConfig(name="custom", factory="tests.nope:f"), input_shape=(40,),
                    num_classes=10, seed=0)
    # an unimportable factory path names model.factory
    assert bad_path.value.key == "model.factory"
    with pytest.raises(InputError) as bad_return:
        build_model(ModelConfig(name="custom", factory=HERE + "not_a_module"),
                    input_shape=(40,), num_classes=10, seed=0)
    # a factory returning something other than an nn.Module names model.factory
    assert bad_return.value.key == "model.factory"
    with pytest.raises(InputError) as bad_kwargs:
        build_model(ModelConfig(name="custom", factory=HERE + "bare_factory", kwargs={"depth": 3}),
                    input_shape=(40,), num_classes=10, seed=0)
    # keyword arguments the factory does not accept name model.kwargs
    assert bad_kwargs.value.key == "model.kwargs"


def test_a_model_given_inputs_it_cannot_take_names_model_name():
    # resnet18 on 1-D inputs (a custom dataset's shape, which the schema cannot see)
    with pytest.raises(InputError) as err:
        build_model(ModelConfig(name="resnet18"), input_shape=(64,), num_classes=10, seed=0)
    # the error names the config key at fault
    assert err.value.key == "model.name"


def test_last_linear():
    model = _build("resnet18", (3, 8, 8))
    # the last Linear in module order is the classifier head
    assert last_linear(model) is model.linear
    # a model without any Linear layer is a ValueError
    with pytest.raises(ValueError):
        last_linear(nn.Sequential(nn.Conv1d(1, 1, 3)))
