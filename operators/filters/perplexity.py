"""perplexity_filter: KenLM perplexity over sentencepiece pieces, as Data-Juicer computes it."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from operators.base import Filter, FilterParams
from operators.doc import Doc
from operators.registry import register


class PerplexityParams(FilterParams):
    lang: str = "en"
    min_ppl: float = 0
    max_ppl: float = 1500
    model_dir: str | None = None
    """Steel extension: folder holding Data-Juicer's `{lang}.sp.model` and `{lang}.arpa.bin`."""
    sp_model_path: str | None = None
    """Steel extension: the sentencepiece model (overrides `model_dir`)."""
    kenlm_model_path: str | None = None
    """Steel extension: the KenLM model, ARPA or binary (overrides `model_dir`)."""

    def resolved_paths(self) -> tuple[Path, Path]:
        base = Path(self.model_dir) if self.model_dir else None
        sp = Path(self.sp_model_path) if self.sp_model_path else (base / f"{self.lang}.sp.model" if base else None)
        lm = Path(self.kenlm_model_path) if self.kenlm_model_path else (base / f"{self.lang}.arpa.bin" if base else None)
        return sp, lm  # type: ignore[return-value]

    @model_validator(mode="after")
    def _models_exist(self):
        sp, lm = self.resolved_paths()
        if sp is None or lm is None:
            raise ValueError(
                "parameter 'model_dir': needs its models: set model_dir (holding "
                f"{self.lang}.sp.model and {self.lang}.arpa.bin) or sp_model_path and kenlm_model_path"
            )
        for label, path in (("sentencepiece model", sp), ("KenLM model", lm)):
            if not path.is_file():
                raise ValueError(f"parameter 'model_dir': {label} not found: {path}")
        return self


@register
class PerplexityFilter(Filter):
    name = "perplexity_filter"
    summary = "KenLM perplexity of the sentencepiece pieces, per line with sentence boundaries."
    Params = PerplexityParams
    stat_key = "perplexity"
    bounds = ("min_ppl", "max_ppl")

    def setup(self) -> None:
        import kenlm
        import sentencepiece

        sp, lm = self.params.resolved_paths()
        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(sp))
        self._lm = kenlm.Model(str(lm))

    def compute_stat(self, doc: Doc) -> float:
        text = " ".join(self._sp.encode_as_pieces(doc.text))
        score, length = 0.0, 0
        for line in text.splitlines():
            score += self._lm.score(line)
            length += len(line.split()) + 1
        return round(10.0 ** (-score / length), 1) if length else 0.0
