"""The Steel-LLM model (`Steel`), its arguments and flavors, and FLOP accounting."""

from steel_train.model.args import FLAVORS, ModelArgs, model_args
from steel_train.model.flops import flops_per_token
from steel_train.model.model import Steel, count_parameters

__all__ = ["FLAVORS", "ModelArgs", "model_args", "Steel", "count_parameters", "flops_per_token"]
