"""The desktop interface: `numbre draw`, a window to draw digits in with the mouse (pygame-ce).

Like the web page it is a thin caller: it turns strokes into a numpy image and hands it to
`numbre.reading.recognize.Recognizer`. pygame-ce is the `desktop` extra, so it is imported only by
`numbre.desktop.window`, never by importing this package.

A front end: it may import reading and the core, and holds no ML logic.
"""
