"""SQL models: files with a YAML header, a dependency graph read from the SQL, and incremental kinds."""

from lakeforge.models.graph import ModelGraph
from lakeforge.models.model import Model, ModelConfig, load_models

__all__ = ["Model", "ModelConfig", "ModelGraph", "load_models"]
