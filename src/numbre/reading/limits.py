"""The largest image numbre reads, in a module of its own so that settings can name it cheaply.

`numbre.web.settings` (imported by every `numbre` command for its option tables) needs the pixel
limit; `numbre.reading.images`, where it is enforced, imports Pillow and libspng, which a command such as
`numbre models` should not pay for at start.
"""

MAX_BYTES = 20_000_000  # a phone photo is 2-10 MB; more is not a handwritten digit
MAX_PIXELS = 40_000_000  # a 48-megapixel camera is the largest common source
# The pixel limit alone does not bound memory: a 1.5 kB WebP of 39 MP costs 600 MB to decode (libwebp
# keeps two canvases and hands Pillow a third copy), a float TIFF of 39 MP 450 MB (numbre's float
# conversions). What decoding and the conversion to grey hold at once may be this many bytes per
# allowed pixel: 160 MB at 40 MP, an RGBA image of the full pixel limit (see images.decoded_bytes).
DECODED_BYTES_PER_PIXEL = 4
MAX_DECODED_BYTES = MAX_PIXELS * DECODED_BYTES_PER_PIXEL

# File name endings of the formats the image reader decodes: how a folder's images are told from
# its other files by `numbre predict` and `numbre batch`.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                            ".pgm", ".ppm", ".pbm"})
