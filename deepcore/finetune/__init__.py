"""Fine-tuning: low-rank adapters (:mod:`.lora`), safetensors export/import and ``jax.export`` of the inference
function (:mod:`.export`), and Hugging Face checkpoint import (:mod:`.hf`: GPT-2-style LMs and ViT classifiers).

``deepcore.finetune.export`` and ``deepcore.finetune.hf`` need the ``safetensors`` package (the ``finetune``
extra); they are imported on demand.
"""
from deepcore.finetune.lora import LoRA, LoRAConfig, attach, merge, optimizer, unmerge  # noqa: F401
