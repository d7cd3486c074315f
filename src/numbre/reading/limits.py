"""The largest image numbre reads, in a module of its own so that settings can name it cheaply.

`numbre.web.settings` (imported by every `numbre` command for its option tables) needs the pixel
limit; `numbre.reading.images`, where it is enforced, imports Pillow and libspng, which a command such as
`numbre models` should not pay for at start.
"""

MAX_BYTES = 20_000_000  # a phone photo is 2-10 MB; more is not a handwritten digit
MAX_PIXELS = 40_000_000  # a 48-megapixel camera is the largest common source
