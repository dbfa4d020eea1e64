"""steel-train: the Steel-LLM model (Soft-MoE), kernels as switches over PyTorch references, FSDP2 from outside,
a token-stream dataset over `steel_data`'s shards, and the train loop. See ../shared/DESIGN.md, "Trainer".

Importing this package imports nothing heavy; `steel_train.model`, `.kernels`, `.parallel` and `.train` need torch.
"""
