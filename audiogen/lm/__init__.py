"""The language model: the Transformer (`model`), codebook patterns (`patterns`) and its fast decode steps
(`decode_cpu`: prepacked CPU kernels, `decode_cuda`: the fixed-shape compiled step)."""
