"""Looking at models: test-set evaluation and its text report (`evaluate`), saliency and why a digit
was read as it was (`explain`), figures (`plots`), the leaderboard of the classic models (`compare`),
the human-against-model contest (`contest`) and the HTML report (`report`).

May import training, reading, `numbre.model`, `numbre.data` and the core; never a front end.
"""
