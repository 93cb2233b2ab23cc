"""authgate: a Kubernetes-native auth gateway.

``authgate.identity`` is the identity database and domain; ``authgate.gateway`` (the
aiohttp service) and ``authgate.operator`` (the kopf operator) stand on it and never
import each other. The layering is checked by import-linter.
"""

__version__ = "0.1.0"
