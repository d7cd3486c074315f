"""Models and model files: the architecture zoo with each model's training recipe (`zoo`, `recipe`),
safetensors model files with their metadata and digests (`file`), the ONNX form and its export
(`onnx_model`, `export`), the calibrated "not a digit" rejection a model file carries (`rejection`),
probabilities and metrics from logits (`probabilities`, `metrics`), torch models built from files
(`network`) and printed summaries (`summary`).

May import `numbre.data` and the core (`numbre.errors`, `numbre.atomic`), never reading, training,
insight or a front end. `file`, `onnx_model`, `rejection`, `probabilities` and `metrics` need no
torch, because reading digits uses them; `zoo`, `network`, `export` and `summary` need the `train`
extra.
"""
