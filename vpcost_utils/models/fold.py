"""BatchNorm folded into the convolution before it, for frozen networks: the same function, one pass less.

The VP loop runs its backbone frozen and in eval mode, so each BatchNorm is a fixed per-channel affine
map that can move into the weights and bias of the conv feeding it. That skips one read and write of
every such activation in each forward and backward pass (1.5x forward+backward on a 2-core CPU for
ResNet-18, docs/benchmarks.md) and gives the same logits to float rounding. Uses torch.fx to find the
pairs and torch's own ``fuse_conv_bn_eval`` to fold them.
"""

from __future__ import annotations

import copy

from torch import nn


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of a frozen eval-mode network with each BatchNorm2d that directly follows a Conv2d folded into it.

    The same function to float rounding (the BatchNorm's affine map moves into the conv's weight and bias) and
    one memory pass less per pair. Folded are only plain ``nn.Conv2d`` -> ``nn.BatchNorm2d`` pairs, called once,
    whose conv feeds nothing else and neither carries hooks (so masked or quantized convs are left alone); a
    network torch.fx cannot trace comes back unchanged.
    """
    import torch.fx
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    try:
        traced = torch.fx.symbolic_trace(copy.deepcopy(module))
    except Exception:  # noqa: BLE001  (any tracing failure: keep the network as it is)
        return copy.deepcopy(module)
    modules = dict(traced.named_modules())
    calls = [n.target for n in traced.graph.nodes if n.op == "call_module"]

    def plain(m: nn.Module, kind: type) -> bool:
        return type(m) is kind and not (m._forward_hooks or m._forward_pre_hooks or m.training)

    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not plain(modules[node.target], nn.BatchNorm2d):
            continue
        conv_node = node.args[0]
        if not (isinstance(conv_node, torch.fx.Node) and conv_node.op == "call_module"
                and plain(modules[conv_node.target], nn.Conv2d) and len(conv_node.users) == 1
                and calls.count(conv_node.target) == 1 and calls.count(node.target) == 1):
            continue
        parent, _, name = conv_node.target.rpartition(".")
        fused = fuse_conv_bn_eval(modules[conv_node.target], modules[node.target]).requires_grad_(False)
        setattr(traced.get_submodule(parent), name, fused)
        node.replace_all_uses_with(conv_node)
        traced.graph.erase_node(node)
    traced.recompile()
    traced.delete_all_unused_submodules()
    return traced.eval()


def count_batchnorm(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())
