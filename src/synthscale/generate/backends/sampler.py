"""Per-request seeded sampling inside Hugging Face ``generate``.

``generate(do_sample=True)`` draws every row of a batch from the one global RNG, so a
request's text would depend on its batch neighbours. ``SeededSampler`` is a logits
processor that samples each row itself and hands back scores where only the chosen token
is finite; greedy decoding then picks exactly that token.

The filtering is vectorised over the batch; only the random draw is per row: each row
draws a vector of uniforms from a torch.Generator seeded with its request seed, and
picks argmax(p / E) with E = -log(U) (an exact draw from the categorical p, the
"exponential race"). A row's draws thus depend only on its own seed and logits. Applied
per row, in order: repetition penalty (over prompt and output, as HF defines it),
presence and frequency penalties (over the output, as OpenAI defines them), temperature
(0 = greedy), top-k (0 = off) and top-p.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowSampling:
    """Sampling settings of one row (one request)."""

    seed: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    @classmethod
    def from_request(cls, seed: int, sampling: dict) -> "RowSampling":
        """The row settings of a request's sampling dict (missing keys: no effect)."""
        return cls(seed=seed, temperature=float(sampling.get("temperature", 1.0)),
                   top_p=float(sampling.get("top_p", 1.0)), top_k=int(sampling.get("top_k", 0)),
                   repetition_penalty=float(sampling.get("repetition_penalty", 1.0)),
                   presence_penalty=float(sampling.get("presence_penalty", 0.0)),
                   frequency_penalty=float(sampling.get("frequency_penalty", 0.0)))


class SeededSampler:
    """A logits processor (``__call__(input_ids, scores)``) sampling each row from its own seeded generator.

    ``prompt_width`` is the padded prompt length (generated tokens start there);
    ``pad_lengths[i]`` is the number of left-padding tokens of row i.
    """

    def __init__(self, rows: list[RowSampling], prompt_width: int, pad_lengths: list[int]):
        self.rows, self.prompt_width, self.pad_lengths = rows, prompt_width, pad_lengths
        self._generators: list[torch.Generator] | None = None
        self._params: dict[str, torch.Tensor] = {}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        chosen = self.choose(input_ids, scores)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen.unsqueeze(1), 0.0)

    def choose(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The token id each row picks next (a long tensor, one per row) given its ids so far and its scores."""
        if self._generators is None:
            self._setup(scores.device)
        p = self._params
        logits = self._penalised(input_ids, scores.float())
        greedy_pick = logits.argmax(-1)
        if bool(p["greedy"].all()):
            return greedy_pick  # nothing to draw: the generators are left untouched, as when rows are mixed
        logits = logits / p["temperature"]
        logits = _top_k(logits, p["top_k"])
        logits = _top_p(logits, p["top_p"])
        probs = logits.softmax(-1)
        draws = torch.stack([torch.rand(probs.shape[-1], generator=g, device=probs.device)
                             for g in self._generators])
        sampled = (probs / -torch.log(draws.clamp_min(1e-20))).argmax(-1)
        return torch.where(p["greedy"], greedy_pick, sampled)

    def select(self, rows: list[int]) -> None:
        """Keep only the rows at positions ``rows`` (in that order), e.g. when the others have finished."""
        self.rows = [self.rows[i] for i in rows]
        self.pad_lengths = [self.pad_lengths[i] for i in rows]
        if self._generators is None:
            return
        index = torch.tensor(rows, dtype=torch.long, device=self._not_pad.device)
        self._generators = [self._generators[i] for i in rows]
        self._params = {k: v.index_select(0, index) for k, v in self._params.items()}
        self._not_pad = self._not_pad.index_select(0, index)

    def _setup(self, device: torch.device) -> None:
        self._generators = [torch.Generator(device=device).manual_seed(r.seed) for r in self.rows]

        def column(values: list[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)

        temperature = [r.temperature for r in self.rows]
        self._params = {
            "greedy": torch.tensor([t == 0 for t in temperature], device=device),
            "temperature": column([t if t > 0 else 1.0 for t in temperature]),
            "top_k": torch.tensor([r.top_k for r in self.rows], dtype=torch.long, device=device),
            "top_p": column([r.top_p for r in self.rows]),
            "repetition": column([r.repetition_penalty for r in self.rows]),
            "presence": column([r.presence_penalty for r in self.rows]),
            "frequency": column([r.frequency_penalty for r in self.rows]),
        }
        width = self.prompt_width
        self._not_pad = torch.arange(width, device=device).unsqueeze(0) >= column(self.pad_lengths, torch.long)

    def _penalised(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        p = self._params
        if bool((p["repetition"] != 1.0).any()):
            real = torch.cat([self._not_pad, torch.ones_like(input_ids[:, self.prompt_width:], dtype=torch.bool)], 1)
            seen = torch.zeros_like(logits).scatter_add_(1, input_ids, real.to(logits.dtype)) > 0
            penalised = torch.where(logits > 0, logits / p["repetition"], logits * p["repetition"])
            logits = torch.where(seen, penalised, logits)
        if bool((p["presence"] != 0).any() or (p["frequency"] != 0).any()):
            generated = input_ids[:, self.prompt_width:]
            counts = torch.zeros_like(logits).scatter_add_(1, generated, torch.ones_like(generated, dtype=logits.dtype))
            logits = logits - p["frequency"] * counts - p["presence"] * (counts > 0).to(logits.dtype)
        return logits


def _top_k(logits: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Keep each row's k best logits (k = 0 or >= vocab: all)."""
    vocab = logits.shape[-1]
    active = (k > 0) & (k < vocab)
    if not bool(active.any()):
        return logits
    kth = logits.sort(-1, descending=True).values.gather(1, (k.clamp(1, vocab) - 1).unsqueeze(1))
    return torch.where(active.unsqueeze(1) & (logits < kth), float("-inf"), logits)


_TOP_P_CANDIDATES = 256  # top-p first looks among this many best tokens, and sorts the whole row only if needed


def _top_p(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's smallest set of best tokens whose probability reaches top_p (1 = all).

    The nucleus almost always lies among a few hundred best tokens: those are found with
    ``topk`` (much cheaper than sorting a 50k vocabulary every step); only when their
    probability does not reach top_p is the whole row sorted. The kept set is the same.
    """
    if not bool((top_p < 1.0).any()):
        return logits
    vocab = logits.shape[-1]
    k = min(vocab, _TOP_P_CANDIDATES)
    best, order = logits.topk(k, dim=-1)
    probs = (best - logits.logsumexp(-1, keepdim=True)).exp()
    before = probs.cumsum(-1) - probs  # probability of the better tokens before each one
    if k < vocab and not bool((before[:, -1:] > top_p).all()):
        best, order = logits.sort(-1, descending=True)  # some nucleus is wider than the candidates
        probs = (best - logits.logsumexp(-1, keepdim=True)).exp()
        before = probs.cumsum(-1) - probs
    keep_sorted = before <= top_p  # the best token is always kept
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))
