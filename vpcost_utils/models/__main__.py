"""Print the registry as Markdown: ``python -m vpcost_utils.models > docs/models.md``."""

from ._docs import registry_markdown

print(registry_markdown(), end="")
