"""Reading digits from images: decoding with size limits (`images`, `limits`), the one preprocessing
pipeline every front end uses (`preprocess`), cutting a line into digits (`segment`, `read_line`) and
the `Recognizer` (`recognize`) that runs a model file through ONNX Runtime and says "not a digit"
when it should.

May import `numbre.model`, `numbre.data` and the core; never training, insight, plotting or a front
end, and never torch: the inference install reads digits without the `train` extra.
"""
