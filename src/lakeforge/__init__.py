"""lakeforge: equipment telemetry from a landing zone to Delta Lake, a warehouse and ML."""

from lakeforge.errors import LakeforgeError

__version__ = "0.1.0"
__all__ = ["LakeforgeError", "__version__"]
