"""Cases for attention and positional layers (:mod:`deepcore.layers.attention`, :mod:`deepcore.layers.position`)
and the transformer models (:mod:`deepcore.models.transformer`, :mod:`deepcore.models.vit`)."""
from deepcore.catalog.case import Case
from deepcore.layers.attention import MultiHeadAttention
from deepcore.layers.position import LearnedPositions, SinusoidalPositions
from deepcore.models.transformer import TransformerBlock, TransformerLM, TransformerStack
from deepcore.models.vit import ViT

LAYER_CASES = [
    Case("attention", lambda: MultiHeadAttention(2), (2, 5, 8)),
    Case("attention_causal_gqa", lambda: MultiHeadAttention(4, num_kv_heads=2, causal=True), (2, 5, 8)),
    Case("attention_reference_rope", lambda: MultiHeadAttention(2, head_dim=6, causal=True, rope=True,
                                                                implementation="reference", use_bias=False),
         (2, 5, 8)),
    Case("attention_mqa_out", lambda: MultiHeadAttention(4, num_kv_heads=1, out_features=3), (2, 5, 8)),
    Case("learned_positions", lambda: LearnedPositions(8), (2, 5, 4)),
    Case("sinusoidal_positions", lambda: SinusoidalPositions(), (2, 5, 4)),
    Case("transformer_block_dropout", lambda: TransformerBlock(2, dropout=0.25, approximate_gelu=False), (2, 5, 8),
         stochastic=True),
    Case("transformer_stack_unrolled", lambda: TransformerStack(2, 2, scan=False), (2, 5, 8)),
    Case("transformer_stack_scan_remat", lambda: TransformerStack(2, 2, remat=True, rope=True), (2, 5, 8)),
]

MODEL_CASES = [
    Case("transformer_block", lambda: TransformerBlock(2), (2, 5, 8)),
    Case("gpt_tiny", lambda: TransformerLM(vocab_size=11, d_model=8, num_layers=2, num_heads=2, max_len=8),
         (2, 6), int_max=11),
    Case("gpt_tiny_rope_tied", lambda: TransformerLM(vocab_size=11, d_model=8, num_layers=2, num_heads=2, max_len=8,
                                                     positions="rope", tie_embeddings=True, num_kv_heads=1,
                                                     scan=False), (2, 6), int_max=11),
    Case("vit_tiny", lambda: ViT(3, patch_size=4, d_model=8, num_layers=2, num_heads=2), (2, 8, 8, 1)),
    Case("vit_tiny_mean", lambda: ViT(3, patch_size=4, d_model=8, num_layers=1, num_heads=2, pool="mean"),
         (2, 8, 8, 2)),
]
