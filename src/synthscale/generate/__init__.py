"""generate: turn natural documents or topics into synthetic corpora with any backend.

Styles (prompt catalogue, user YAML styles) -> chunking -> GenerationRequests (plan) ->
a Backend (transformers, vllm, openai, or one registered from outside, such as toyworld's)
-> quality gates -> synthetic Documents with provenance. ``run_generation`` is the one
engine: it does this resumably into numbered shards with a manifest, a failures file, a
summary and a dataset card; ``generate_with_workers`` splits the input over K workers
(local processes, Ray, Slurm) and merges their outputs. See docs/generate.md.
"""

from .backends import BACKENDS, backend_kinds, make_backend, register_backend
from .backends.base import Backend, BackendError, GenerationRequest, GenerationResult
from .chunking import DEFAULT_CHUNK_TOKENS, approx_token_counts, chunk_document, reassemble, split_sentences
from .gates import GateConfig, Verdict, check_output
from .job import read_topics, run_generation
from .job_config import GenerateJob
from .plan import output_document, plan_requests, request_seed
from .style_files import load_style_file, resolve_style
from .styles import AUDIENCES, FORMATS, STYLES, Style, get_style, textbook_style_name
from .workers import generate_with_workers

__all__ = [
    "AUDIENCES", "BACKENDS", "Backend", "BackendError", "DEFAULT_CHUNK_TOKENS", "FORMATS", "GateConfig",
    "GenerateJob", "GenerationRequest", "GenerationResult", "STYLES", "Style", "Verdict",
    "approx_token_counts", "backend_kinds", "check_output", "chunk_document", "generate_with_workers", "get_style",
    "load_style_file",
    "make_backend", "output_document", "plan_requests", "read_topics", "reassemble", "register_backend",
    "request_seed", "resolve_style", "run_generation", "split_sentences", "textbook_style_name",
]
