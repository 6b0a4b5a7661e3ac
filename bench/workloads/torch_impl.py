"""PyTorch eager: ``nn.Module``s (images NCHW), ``torch.optim.Adam``, the default thread count; CUDA when
available (float32 matmuls in TF32 there, as under JAX), else CPU. Under bfloat16 the forward runs in
``torch.autocast`` (float32 master weights)."""
import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.workloads import ADAM, GAN_ADAM, inputs

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cuda":
    torch.set_float32_matmul_precision("high")  # TF32 matmuls, as JAX's default precision uses on such GPUs


def sync(loss):
    return float(loss.item())  # .item() waits for the device


def adam(params, cfg):
    return torch.optim.Adam(params, lr=cfg["learning_rate"], betas=(cfg["b1"], cfg["b2"]), eps=cfg["eps"])


def mlp(c):
    s, layers = c["sizes"], []
    for i, (a, b) in enumerate(zip(s[:-1], s[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(s) - 2 else [])
    return nn.Sequential(*layers)


def cnn(c):
    c1, c2, c3 = c["channels"]
    return nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, c["classes"]))


class CharLSTM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["embed"])
        self.lstm = nn.LSTM(c["embed"], c["hidden"], batch_first=True)
        self.out = nn.Linear(c["hidden"], c["vocab"])

    def forward(self, ids):
        return self.out(self.lstm(self.embed(ids))[0])


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (a.view(b, t, self.heads, -1).transpose(1, 2) for a in self.qkv(self.ln1(x)).split(d, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(a)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["d"])
        self.pos = nn.Parameter(0.02 * torch.randn(c["T"], c["d"]))
        self.blocks = nn.Sequential(*[Block(c["d"], c["heads"]) for _ in range(c["layers"])])
        self.ln_f = nn.LayerNorm(c["d"])
        self.head = nn.Linear(c["d"], c["vocab"], bias=False)

    def forward(self, ids):
        return self.head(self.ln_f(self.blocks(self.embed(ids) + self.pos[: ids.shape[1]])))


def generator(c):
    c1, c2 = c["g_channels"]
    base = c["hw"] // 4
    return nn.Sequential(nn.Linear(c["z"], base * base * c1), nn.ReLU(), nn.Unflatten(1, (c1, base, base)),
                         nn.ConvTranspose2d(c1, c2, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c2, 1, 4, 2, 1), nn.Tanh())


def discriminator(c):
    c1, c2 = c["d_channels"]
    return nn.Sequential(nn.Conv2d(1, c1, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(c1, c2, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear((c["hw"] // 4) ** 2 * c2, 1))


def model(workload, c):
    return {"W1": mlp, "W2": cnn, "W3": CharLSTM, "W4": GPT, "W4L": GPT, "W4XL": GPT, "W4LC": GPT}[workload](c)


def _tensor(a):
    a = np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 else a
    return torch.from_numpy(a).to(DEVICE).long() if a.dtype == np.int32 else torch.from_numpy(a).to(DEVICE)


def build(workload, cfg, dtype="float32"):
    torch.manual_seed(0)
    batch = {k: _tensor(v) for k, v in inputs(workload, cfg).items()}
    autocast = ((lambda: torch.autocast(DEVICE, dtype=torch.bfloat16)) if dtype == "bfloat16"
                else contextlib.nullcontext)
    if workload == "W5":
        return _gan(cfg, batch, autocast)
    net = model(workload, cfg).to(DEVICE)
    opt = adam(net.parameters(), ADAM)

    def step(state, batch):
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = net(batch["x"])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["y"].reshape(-1))
        loss.backward()
        opt.step()
        return state, loss.detach()

    return step, None, batch


def _gan(c, batch, autocast):
    G, D = generator(c).to(DEVICE), discriminator(c).to(DEVICE)
    g_opt, d_opt = adam(G.parameters(), GAN_ADAM), adam(D.parameters(), GAN_ADAM)
    b = batch["image"].shape[0]
    ones, zeros = torch.ones(b, 1, device=DEVICE), torch.zeros(b, 1, device=DEVICE)
    bce = F.binary_cross_entropy_with_logits

    def step(state, batch):
        d_opt.zero_grad(set_to_none=True)
        with autocast():
            fake = G(torch.randn(b, c["z"], device=DEVICE)).detach()
            real_logits, fake_logits = D(batch["image"]), D(fake)
        dl = bce(real_logits.float(), ones) + bce(fake_logits.float(), zeros)
        dl.backward()
        d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        with autocast():
            logits = D(G(torch.randn(b, c["z"], device=DEVICE)))
        gl = bce(logits.float(), ones)
        gl.backward()  # D's gradients from this pass are cleared before its next update
        g_opt.step()
        return state, (dl + gl).detach()

    return step, None, batch
