"""toyworld: a built-in fictional world and its corpora, made by code, offline, deterministic by seed.

``build_toyworld(out_dir, ToyworldConfig.preset("default"))`` writes the natural web-like
corpus, the hq / qa / textbook synthetic corpora (through the generate stage) and the
held-out eval domains. See docs/toyworld.md. Importing this package registers the
``toyworld`` backend of ``synthscale.generate.make_backend`` (backend.py).
"""

from .backend import ToyworldBackend
from .build import ToyworldCorpora, build_toyworld, build_toyworld_command
from .config import SIZES, TOYWORLD_VERSION, ToyworldConfig, load_toyworld_config
from .textbook import write_topics
from .world import Entity, Fact, World, make_world

__all__ = [
    "ToyworldBackend", "ToyworldConfig", "ToyworldCorpora", "build_toyworld", "build_toyworld_command",
    "load_toyworld_config", "SIZES", "TOYWORLD_VERSION", "World", "Entity", "Fact", "make_world",
    "write_topics",
]
