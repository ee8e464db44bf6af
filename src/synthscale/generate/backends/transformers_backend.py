"""The ``transformers`` backend: a Hugging Face model folder, hub id or GGUF file, batched, on CPU or GPU.

``model`` is a local folder, a hub id, a ``.gguf`` file or the alias of a packaged GGUF
model (``smollm2-135m-instruct``, backends/gguf.py); GGUF weights are dequantized by
transformers on load (it needs the ``gguf`` package). A GGUF model is recorded as its file
name at ``sha256:`` + the first 16 hex digits of the file's sha256.

Requests are sorted by prompt length and cut into batches of ``batch_size``; each batch is
decoded together by the loop in ``_decode``: the prompts are run through the model (on CPU
one by one, without padding; on GPU as one left-padded batch) into one left-padded KV cache,
then one forward pass per step serves all unfinished rows, the cache grows in place, and
rows leave the batch (and the cache) as soon as they end, so a long answer does not keep
finished rows computing.
Each row picks its tokens with a SeededSampler, so a request's text depends on its own
seed (and not on its batch, up to floating-point rounding). A row ends at an end-of-sequence
token ("stop"), at its max_tokens ("length"), or when a stop string appears ("stop"; the
text is cut there). A request whose prompt leaves no room in the model's context gets an
error result; otherwise max_tokens is capped to the room left. Usage counts are exact:
prompt tokens, and generated tokens including the end-of-sequence token.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ...errors import ConfigError, MissingDependencyError
from .base import (Backend, GenerationRequest, GenerationResult, check_model_source, hub_hint, local_revision,
                   model_name)
from .gguf import file_sha256, gguf_revision, is_gguf, resolve_gguf
from .prompting import check_chat_mode, cut_at_stop, prompt_token_ids
from .sampler import RowSampling, SeededSampler

DEFAULT_MAX_TOKENS = 256
DEFAULT_BATCH_SIZE = 16


class TransformersBackend(Backend):
    """Generate with ``transformers.AutoModelForCausalLM`` (see the module docstring).

    ``device``: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...;
    ``dtype``: "auto" (bfloat16 on GPU, float32 on CPU), "float32", "bfloat16", "float16";
    ``chat``: "auto", "template" or "none" (backends/prompting.py); ``threads``: torch CPU
    threads (0 = torch's default); ``batch_size``: sequences decoded together.
    """

    name = "transformers"

    def __init__(self, model: str | os.PathLike, *, revision: str | None = None, device: str = "auto",
                 dtype: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE, chat: str = "auto", threads: int = 0,
                 trust_remote_code: bool = False):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "hf") from None
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.chat = check_chat_mode(chat)
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        torch_dtype = _torch_dtype(dtype, self.device)
        self.gguf_file: str | None = None
        self.gguf_sha256: str | None = None
        load: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
        if is_gguf(model):
            path = resolve_gguf(model)
            if revision:
                raise ConfigError(f"--revision does not apply to the GGUF file {path.name}: its revision is its sha256")
            if importlib.util.find_spec("gguf") is None:
                raise MissingDependencyError("gguf", "gguf")
            source, load = str(path.parent), {"gguf_file": path.name}
            self.gguf_file, self.gguf_sha256 = str(path), file_sha256(path)
        else:
            source = str(model)
            check_model_source(source)
        try:
            with _quiet_loading(self.gguf_file is not None):
                self.tokenizer = AutoTokenizer.from_pretrained(source, **load)
                self.hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **load)
        except (OSError, ValueError) as e:
            shown = self.gguf_file or source
            raise ConfigError(f"transformers cannot load model '{shown}'{'' if self.gguf_file else hub_hint(source)}: "
                              f"{str(e).splitlines()[0]}") from None
        self.hf_model.to(self.device).eval()
        if self.gguf_file:
            self.model, self.revision = os.path.basename(self.gguf_file), gguf_revision(self.gguf_file)
        else:
            self.model = model_name(source)
            self.revision = revision or getattr(self.hf_model.config, "_commit_hash", None) or local_revision(source)
        self.accelerators = 1 if self.device.type == "cuda" else 0
        self.context = int(getattr(self.hf_model.config, "max_position_embeddings", 0) or 0) or None
        self.eos_ids = _eos_ids(self.hf_model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.dtype = str(torch_dtype).replace("torch.", "")
        # the KV cache argument of forward(): "cache" in recent transformers, "past_key_values" before
        forward_args = inspect.signature(self.hf_model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._ragged_prefill: bool | None = None  # decided on first use (_prefill)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Answer the requests in batches; a request that cannot run gets an error result."""
        return self.generate_ids(requests, [prompt_token_ids(self.tokenizer, r.prompt, self.chat) for r in requests])

    def generate_ids(self, requests: list[GenerationRequest], prompt_ids: list[list[int]]) -> list[GenerationResult]:
        """Answer requests whose prompts are already token ids (the server formats chats itself)."""
        results: dict[str, GenerationResult] = {}
        runnable: list[tuple[GenerationRequest, list[int]]] = []
        for request, ids in zip(requests, prompt_ids):
            if not ids:
                results[request.request_id] = GenerationResult.failed(request, "the prompt encodes to no tokens")
            elif self.context and len(ids) >= self.context:
                results[request.request_id] = GenerationResult.failed(
                    request, f"prompt of {len(ids)} tokens leaves no room in the model's context of {self.context}",
                    prompt_tokens=len(ids))
            else:
                runnable.append((request, ids))
        for batch in self._batches(runnable):
            for result in self._run_batch(batch):
                results[result.request_id] = result
        return [results[r.request_id] for r in requests]

    def _batches(self, runnable: list[tuple[GenerationRequest, list[int]]]) -> list[list[tuple]]:
        """Batches of similar prompt length, at most batch_size each, whose padded prompt plus the longest
        generation still fits the context (a row's positions past its own budget would otherwise overflow it)."""
        batches: list[list[tuple]] = []
        current: list[tuple] = []
        longest = 0
        for item in sorted(runnable, key=lambda pair: len(pair[1])):
            budget = self._budget(item[0], len(item[1]))
            fits = not self.context or len(item[1]) + max(longest, budget) <= self.context
            if current and (len(current) == self.batch_size or not fits):
                batches.append(current)
                current, longest = [], 0
            current.append(item)
            longest = max(longest, budget)
        return batches + ([current] if current else [])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the model's tokenizer (no special tokens added)."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def describe(self) -> dict[str, Any]:
        """Backend settings for the run config and dataset card (a GGUF model adds its file and full sha256)."""
        described = {**super().describe(), "device": str(self.device), "dtype": self.dtype, "chat": self.chat,
                     "batch_size": self.batch_size, "context": self.context}
        if self.gguf_file:
            described.update(gguf_file=self.gguf_file, gguf_sha256=self.gguf_sha256)
        return described

    def close(self) -> None:
        """Drop the model (frees GPU memory)."""
        self.hf_model = None

    def _run_batch(self, batch: list[tuple[GenerationRequest, list[int]]]) -> list[GenerationResult]:
        budgets = [self._budget(request, len(ids)) for request, ids in batch]
        generated = self._decode([ids for _, ids in batch], [r for r, _ in batch], budgets)
        return [self._result(request, len(ids), tokens, stop_hit)
                for (request, ids), (tokens, stop_hit) in zip(batch, generated)]

    def _decode(self, prompts: list[list[int]], requests: list[GenerationRequest],
                budgets: list[int]) -> list[tuple[list[int], bool]]:
        """Decode a batch of prompts; per row, the generated ids (the end-of-sequence token included) and whether
        a stop string ended it."""
        import torch

        n, width = len(prompts), max(len(ids) for ids in prompts)
        device = self.device
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, ids in enumerate(prompts):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)
        sampler = SeededSampler([RowSampling.from_request(r.seed, r.sampling) for r in requests], width,
                                [width - len(ids) for ids in prompts])
        stops = [list(r.sampling.get("stop") or ()) for r in requests]
        generated: list[list[int]] = [[] for _ in range(n)]
        stopped = [False] * n
        active = list(range(n))  # the batch row of each row still decoding
        history = input_ids  # prompt and generated ids of the active rows (for the penalties)
        next_position = positions[:, -1]
        eos = set(self.eos_ids)
        with torch.inference_mode():
            cache, logits = self._prefill(prompts, input_ids, mask, positions, width + max(budgets))
            while True:
                picked = sampler.choose(history, logits)
                keep = []
                for j, token in enumerate(picked.tolist()):
                    row = active[j]
                    generated[row].append(token)
                    if token in eos or len(generated[row]) >= budgets[row]:
                        continue
                    if stops[row] and self._stop_found(generated[row], stops[row]):
                        stopped[row] = True
                        continue
                    keep.append(j)
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, dtype=torch.long, device=device)
                    cache.batch_select_indices(index)
                    sampler.select(keep)
                    history, mask, picked = history[index], mask[index], picked[index]
                    next_position = next_position[index]
                    active = [active[j] for j in keep]
                next_position = next_position + 1
                history = torch.cat([history, picked.unsqueeze(1)], 1)
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], 1)
                logits = self._forward(picked.unsqueeze(1), mask, next_position.unsqueeze(1), cache)
        return list(zip(generated, stopped))

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """The next-token logits of each row (one forward pass through the model, extending ``cache``)."""
        out = self.hf_model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                            logits_to_keep=1, **{self._cache_arg: cache})
        return out.logits[:, -1, :]

    def _prefill(self, prompts: list[list[int]], input_ids: Any, mask: Any, positions: Any,
                 capacity: int) -> tuple[Any, Any]:
        """The batch's KV cache (room for ``capacity`` positions) and each row's next-token logits.

        On CPU each prompt is run alone, without padding (a batch of prompts of different lengths
        would spend much of its time on padding), and the rows' caches are joined, left-padded,
        into one. On a GPU, which runs the padding in parallel, and for models whose cache layers
        are not plain full-attention layers (sliding windows, recurrent state), the padded batch
        is run at once.
        """
        import torch

        width = input_ids.shape[1]
        if self._ragged_prefill is None:
            self._ragged_prefill = self.device.type == "cpu" and _plain_cache(self.hf_model.config)
        if len(prompts) == 1 or not self._ragged_prefill:
            cache = _growing_cache(self.hf_model.config, capacity)
            return cache, self._forward(input_ids, mask, positions, cache)
        rows, logits = [], []
        for ids in prompts:
            row_cache = _growing_cache(self.hf_model.config, len(ids))
            row_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
            row_positions = torch.arange(len(ids), device=self.device).unsqueeze(0)
            logits.append(self._forward(row_ids, torch.ones_like(row_ids), row_positions, row_cache))
            rows.append(row_cache)
        return _joined_cache(self.hf_model.config, rows, width, capacity), torch.cat(logits, 0)

    def _stop_found(self, tokens: list[int], stops: list[str]) -> bool:
        """True when the text of the last few tokens holds a stop string (the final cut uses the whole text)."""
        tail = tokens[-(max(len(s) for s in stops) + 4):]
        return cut_at_stop(self.tokenizer.decode(tail, skip_special_tokens=True), stops)[1]

    def _budget(self, request: GenerationRequest, prompt_len: int) -> int:
        wanted = int(request.sampling.get("max_tokens", DEFAULT_MAX_TOKENS))
        return min(wanted, self.context - prompt_len) if self.context else wanted

    def _result(self, request: GenerationRequest, prompt_len: int, tokens: list[int],
                stop_hit: bool = False) -> GenerationResult:
        end = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        finish = "stop" if end is not None or stop_hit else "length"
        kept = tokens if end is None else tokens[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        text, cut = cut_at_stop(text, request.sampling.get("stop"))
        completion = len(tokens) if end is None else end + 1
        return GenerationResult(request.request_id, text, "stop" if cut else finish, prompt_len, completion)


@functools.lru_cache(maxsize=1)
def _growing_layer_class() -> type:
    """GrowingLayer (built on first use, so that importing this module does not import transformers)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A full-attention cache layer that appends in place into key/value buffers with room for
        ``capacity`` positions (transformers' DynamicLayer copies the whole cache at every step)."""

        capacity = 0

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self._allocate(key_states, value_states, key_states.shape[0])
            start, end = self._n, self._n + key_states.shape[-2]
            if end > self._k.shape[-2]:  # more than planned: grow (not reached in _decode)
                grow = max(end, 2 * self._k.shape[-2]) - self._k.shape[-2]
                self._k = torch.cat([self._k, self._k.new_zeros((*self._k.shape[:2], grow, self._k.shape[-1]))], 2)
                self._v = torch.cat([self._v, self._v.new_zeros((*self._v.shape[:2], grow, self._v.shape[-1]))], 2)
            self._k[:, :, start:end] = key_states
            self._v[:, :, start:end] = value_states
            self._n = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def _allocate(self, keys: Any, values: Any, batch: int) -> None:
            size = max(self.capacity, keys.shape[-2])
            self._k = keys.new_zeros((batch, keys.shape[1], size, keys.shape[-1]))
            self._v = values.new_zeros((batch, values.shape[1], size, values.shape[-1]))
            self._n = 0

        def join(self, rows: list[Any], width: int) -> None:
            """Fill this (empty) layer with the rows' layers, each left-padded with zeros to ``width`` positions."""
            first = rows[0]
            self.lazy_initialization(first.keys, first.values)
            self._allocate(first.keys, first.values, len(rows))
            for i, row in enumerate(rows):
                n = row.keys.shape[-2]
                self._k[i, :, width - n:width] = row.keys[0]
                self._v[i, :, width - n:width] = row.values[0]
            self._n = width
            self.keys, self.values = self._k[:, :, :width], self._v[:, :, :width]

        def batch_select_indices(self, indices: Any) -> None:
            if self.is_initialized:
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]

    return GrowingLayer


def _layered_cache() -> bool:
    """True when transformers' caches are made of layers (DynamicLayer, recent versions)."""
    return importlib.util.find_spec("transformers.cache_utils") is not None and \
        hasattr(importlib.import_module("transformers.cache_utils"), "DynamicLayer")


def _plain_cache(config: Any) -> bool:
    """True when every layer of the model's DynamicCache is a plain full-attention DynamicLayer."""
    if not _layered_cache():
        return False
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layers = DynamicCache(config=config).layers
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _growing_cache(config: Any, capacity: int) -> Any:
    """A DynamicCache whose full-attention layers are GrowingLayers with room for ``capacity`` positions
    (other layer kinds are left as transformers makes them). With older transformers, whose
    caches have no layers, a plain DynamicCache."""
    from transformers import DynamicCache

    if not _layered_cache():
        return DynamicCache()
    from transformers.cache_utils import DynamicLayer

    growing = _growing_layer_class()

    def layer() -> Any:
        made = growing()
        made.capacity = capacity
        return made

    cache = DynamicCache(config=config)
    if not cache.layers:
        cache.layer_class_to_replicate = layer
    else:
        cache.layers = [layer() if type(existing) is DynamicLayer else existing for existing in cache.layers]
    return cache


def _joined_cache(config: Any, rows: list[Any], width: int, capacity: int) -> Any:
    """One batch cache from single-row caches (plain layers only), left-padded to ``width`` positions."""
    cache = _growing_cache(config, capacity)
    for index, layer in enumerate(cache.layers):
        layer.join([row.layers[index] for row in rows], width)
    return cache


@contextmanager
def _quiet_loading(gguf: bool) -> Iterator[None]:
    """No progress bars while transformers loads a model (its GGUF loader draws its own tqdm bar)."""

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_utils = None
    if gguf:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        if was_enabled:
            hf_logging.enable_progress_bar()


def _torch_dtype(dtype: str, device: Any) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in choices:
        raise ConfigError(f"dtype must be auto, {', '.join(choices)}; got {dtype!r}")
    return choices[dtype]


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a generation: the generation config's eos ids and the tokenizer's eos id."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]
    if tokenizer.eos_token_id is not None and int(tokenizer.eos_token_id) not in ids:
        ids.append(int(tokenizer.eos_token_id))
    if not ids:
        raise ConfigError("the model names no end-of-sequence token (generation_config or tokenizer eos_token)")
    return ids
