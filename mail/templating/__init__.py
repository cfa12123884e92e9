"""Templates a team stores here and sends by alias (docs/templates.md).

A template is rendered at accept time, before any provider is chosen, so the stored message, the
provider request, a retry and a failover all carry the same bytes. `sandbox.py` is the language
(Jinja2's sandbox, narrowed to a subset whose cost is bounded), `variables.py` the declared
variables and the checking of a send's values against them, `rendering.py` the three parts of a
message rendered together, `versions.py` drafts, publishing and restoring."""
