"""``python -m vpcost_utils.models.recover [TAG ...]``: build (or load) the recovered EfficientNet-Lite0 models.

Prints each model's build time and its agreement with the dense model on the held-out photographs.
"""

from __future__ import annotations

import argparse
import json

from .efficientnet_lite_recovered import RECIPES, build_recovered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tags", nargs="*", help=f"which models (default all): {', '.join(RECIPES)}")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tags if t not in RECIPES]
    if unknown:
        parser.error(f"unknown recovered model(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    for tag in args.tags or RECIPES:
        _, info = build_recovered(tag)
        print(tag, json.dumps({k: info[k] for k in ("build_seconds", "steps", "final_loss", "agreement")
                               | ({"measured_sparsity"} & info.keys())}))


if __name__ == "__main__":
    main()
