"""Model builders, one family per module; each returns a :class:`deepcore.core.Layer` (or its config). Index:

Imported here
    MLP(num_classes, widths)            flatten + Dense/ReLU stack
    VGG(num_classes, stages)            conv-BatchNorm-ReLU stages with max-pooling, a dense head
    ResNet(num_classes, widths, depths), BasicBlock(features)   the CIFAR-style residual network
    ConvAutoencoder(image_shape, channels, latent)              conv encoder + transposed-conv decoder, [0, 1] out
Family modules (import them: ``from deepcore.models import rnn``)
    rnn: char_lm, seq_classifier, sample, make_cell              recurrent language models and classifiers
    transformer: TransformerBlock, TransformerStack, TransformerLM, LMConfig, lm_init, lm_apply
    generate: generate, generate_uncached, sample_logits         KV-cache generation for TransformerLM
    seq2seq: EncoderDecoder, Seq2SeqConfig, encode, decode, memory_kvs   the encoder-decoder transformer
    search: greedy_search, beam_search, seq2seq_step             decoding it (KV cache, length-normalised beams)
    vit: ViT, patchify                                           the vision transformer
    gan: dcgan_generator, dcgan_discriminator, SpectralNorm      DCGAN networks (training: ``deepcore.gan``)
    vae: conv_encoder, conv_decoder, VAE                         a convolutional VAE (training: ``deepcore.vae``)
    bigram: fit_bigram, bigram_nats, bigram_bits                 a count-based baseline for character LMs
    forecast: forecaster, forecast_body, causal_conv_block       multi-step forecasters (GRU/LSTM/TCN/transformer)
    forecast_baselines: naive, seasonal_naive, fit_linear_ar, linear_ar   the forecasts they must beat
    unet: unet                                                   the diffusion U-Net (training: ``deepcore.diffusion``)
"""
from deepcore.models.mlp import MLP  # noqa: E402,F401
from deepcore.models.cnn import VGG  # noqa: E402,F401
from deepcore.models.resnet import BasicBlock, ResNet  # noqa: E402,F401
from deepcore.models.autoencoder import ConvAutoencoder  # noqa: E402,F401

__all__ = ["MLP", "VGG", "ResNet", "BasicBlock", "ConvAutoencoder"]
