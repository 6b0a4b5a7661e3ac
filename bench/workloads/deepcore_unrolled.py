"""deepcore as in ``deepcore_impl``, with the transformers' blocks unrolled (``TransformerLM(scan=False)``)
instead of scanned: what the library's default layout costs or saves at run time (W4, W4L, W4XL)."""
import functools

from bench.workloads import deepcore_impl

sync = deepcore_impl.sync
build = functools.partial(deepcore_impl.build, scan=False)
